"""The simulated people: customers' conversations and agents as the driver sees them.

What the driver knows of each conversation and agent (read from the engine's events or decided
by the scenario's draws), the customers' phases, and the lines they and the agents write.
"""

from __future__ import annotations

from random import Random

from runtime.simulation.model import AgentGroup

#: Roles of an agent present in a conversation (as opposed to wrapping up or invited).
PRESENT = ("PRIMARY", "ASSISTANT")
#: Conversation states after which the driver forgets a conversation.
GONE_STATES = ("CLOSING", "CLOSED")

# customer phases
BOT, WAITING, WITH_AGENT, NO_AGENT, LEFT = "BOT", "WAITING", "WITH_AGENT", "NO_AGENT", "LEFT"

BOT_QUESTIONS = (
    "Hi, where is my order?",
    "What are your opening hours?",
    "How do I reset my password?",
    "Can I change my delivery address?",
    "Do you ship abroad?",
    "My invoice looks wrong.",
    "How long does a refund take?",
)
CUSTOMER_LINES = (
    "Thanks. The order number is 4711.",
    "It was delivered to the wrong address.",
    "Yes, that is right.",
    "Could you check again please?",
    "I paid with my credit card.",
    "It arrived damaged.",
    "OK, what happens next?",
)
AGENT_LINES = (
    "Hello, thanks for waiting. Let me look into it.",
    "I have found your order.",
    "I have updated it for you.",
    "Is there anything else I can do?",
    "One moment while I check.",
)
_IDENTIFIERS = {
    "WEB": "visitor-{n}",
    "APP": "app-user-{n}",
    "EMAIL": "customer{n}@example.com",
}


def identifier(channel: str, number: int) -> str:
    pattern = _IDENTIFIERS.get(channel)
    if pattern is not None:
        return pattern.format(n=number)
    return f"+1555{number:07d}"


class SimAgent:
    __slots__ = (
        "busy_since",
        "conversations",
        "group",
        "id",
        "logged_in",
        "login_ms",
        "logout_ms",
        "on_break",
        "queues",
        "ready",
        "shift_over",
    )

    def __init__(self, agent_id: str, group: AgentGroup) -> None:
        self.id = agent_id
        self.group = group
        self.queues = group.queues
        self.logged_in = False
        self.ready = False
        self.on_break = False
        self.shift_over = False
        self.conversations: dict[str, None] = {}  # counted against the limit (incl. offers)
        self.login_ms: int | None = None
        self.logout_ms: int | None = None
        self.busy_since = 0

    def can_take(self) -> bool:
        return (
            self.logged_in
            and self.ready
            and not self.on_break
            and not self.shift_over
            and len(self.conversations) < self.group.max_conversations
        )


class SimConversation:
    __slots__ = (
        "abandon_token",
        "agents",
        "bot_left",
        "channel",
        "cid",
        "consult_pending",
        "consulting",
        "customer_id",
        "done",
        "exchanges_left",
        "excluded",
        "handover_drawn",
        "hold_planned",
        "needs_agent",
        "offers",
        "on_hold",
        "ordinal",
        "pace_ms",
        "phase",
        "queue",
        "request",
        "retried",
        "rng",
        "second_channel",
        "seq",
        "sessions",
        "silent",
        "sla_queue",
        "sla_removed",
        "state",
        "timers",
        "turn_token",
        "voice",
        "watch_at",
    )

    def __init__(self, cid: str, ordinal: int, customer_id: str) -> None:
        self.cid = cid
        self.ordinal = ordinal
        self.customer_id = customer_id
        self.channel = ""
        self.seq = 0
        self.state = "CREATED"
        self.done = False
        self.sessions: dict[str, bool] = {}  # session id -> live
        self.voice: dict[str, None] = {}  # voice session ids
        self.agents: dict[str, str] = {}  # agent id -> role
        self.offers: dict[str, None] = {}
        self.timers: dict[tuple[str, str], int] = {}  # (kind, subject) -> deadline ms
        self.watch_at: int | None = None
        self.request: tuple[str, int, int] | None = None  # (queue, requested at, order)
        self.excluded: tuple[str, ...] = ()  # agents the pending request may not go to
        self.sla_removed: tuple[int, tuple[str, ...]] | None = None
        self.on_hold = False
        self.phase = BOT
        self.turn_token = 0
        self.abandon_token = 0
        # the customer's plan
        self.needs_agent = False
        self.bot_left = 0
        self.exchanges_left = 0
        self.silent = False
        self.queue = "default"
        self.sla_queue = "default"
        self.second_channel = False
        self.retried = False
        self.hold_planned = False
        self.handover_drawn = False  # whether its agent drew a transfer or consult yet
        self.consulting: str | None = None  # the agent whose consult is pending or running
        self.consult_pending = False  # CONSULT_REQUESTED read, its AGENT_REQUESTED not yet
        self.pace_ms: int | None = None  # each delay with the agent, from a handling time
        self.rng: Random | None = None  # the customer's own stream (plan, patience)

    def live_sessions(self) -> list[str]:
        return [sid for sid, live in self.sessions.items() if live]
