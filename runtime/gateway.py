"""The gateway: how channel connectors, agent desks, tests and simulations talk to the engine.

``Gateway.embedded(...)`` runs the whole engine in this process (``simpleSystemBase``), on a
virtual clock by default: every method returns only when the system is quiescent, and
``advance(seconds)`` moves the clock, firing due timers in order. ``Gateway.connect(path)``
joins a long-running system started with ``cx start``. Both give the same interface.

Every refusal raises a :class:`GatewayError` subclass whose message names the id, the state and
what was refused; nothing has changed when it is raised. How calls reach the engine (and what a
connected gateway does when a host or the whole engine goes away) is :mod:`runtime.gateway_core`.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Mapping
from typing import Any

from thespian.actors import ActorSystem

from actors.messages import (
    AgentJoin,
    AgentLogin,
    AgentPresence,
    Apply,
    ArchivedActivity,
    ArchivedQuery,
    Directory,
    Drain,
    EventsQuery,
    FireAlarms,
    OpenSession,
    Ref,
    SnapshotQuery,
    Status,
    StatusQuery,
    Subscribe,
    Unsubscribe,
)
from domain.commands import (
    AddActivity,
    AgentLeave,
    AgentMessage,
    ApplyWrapUp,
    Command,
    CustomerMessage,
    EndConversation,
    EndSession,
    Hold,
    RequestAgent,
    Resume,
    SetData,
)
from domain.enums import (
    VOLUNTARY_LEAVE_REASONS,
    Channel,
    EndedBy,
    ParticipantType,
    Role,
    SessionEndReason,
    UnsubscribeReason,
)
from domain.errors import IdTaken, NotHere
from domain.ids import (
    MalformedIdError,
    SubscriptionKind,
    agent_subscription,
    conversation_entity_id,
    parse_subscription,
    session_entity_id,
    session_subscription,
)
from domain.limits import MAX_EXTERNAL_ID, MAX_ID
from domain.records import SYSTEM, Emitter
from infra.config import Settings, load_config
from infra.logs import configure_logging
from infra.timefmt import seconds_to_ms, wall_ms
from runtime.gateway_args import after_seq as _after_seq
from runtime.gateway_args import enum as _enum
from runtime.gateway_args import message_text as _message_text
from runtime.gateway_args import payload as _payload
from runtime.gateway_args import snake as _snake
from runtime.gateway_args import text as _text
from runtime.gateway_core import GatewayCore, Unreachable
from runtime.gateway_types import (
    BadArgumentError,
    GatewayError,
    IllegalTransitionError,
    PushedEvent,
    SessionRef,
    UnavailableError,
    UnknownIdError,
)
from runtime.ids import IdSource
from runtime.system import Addresses, boot, find, join

__all__ = [
    "BadArgumentError",
    "Gateway",
    "GatewayError",
    "IllegalTransitionError",
    "PushedEvent",
    "SessionRef",
    "UnavailableError",
    "UnknownIdError",
]

_GATEWAY_ENDS = frozenset(
    {SessionEndReason.CUSTOMER, SessionEndReason.NETWORK, SessionEndReason.AGENT}
)
_APP = Emitter("gateway", ParticipantType.APP)


class Gateway(GatewayCore):
    """One connection to the engine. Use :meth:`embedded` or :meth:`connect` to make one."""

    def __init__(
        self,
        system: Any,
        settings: Settings,
        addresses: Addresses,
        *,
        virtual: bool,
        ids: IdSource,
        owns_system: bool,
        now: int = 0,
    ) -> None:
        self._ids = ids
        super().__init__(
            system, settings, addresses, virtual=virtual, owns_system=owns_system, now=now
        )

    # ------------------------------------------------------------------ construction

    @classmethod
    def embedded(
        cls,
        config: str | os.PathLike[str] | Mapping[str, Any] | None = None,
        *,
        virtual_time: bool = True,
        seed: int = 0,
    ) -> Gateway:
        """The whole engine in this process; a context manager that shuts it down."""
        settings = load_config(config)
        configure_logging(settings.logging)
        system = ActorSystem("simpleSystemBase", transientUnique=True)
        now = 0 if virtual_time else wall_ms()
        try:
            addresses = boot(system, settings, virtual=virtual_time, now=now)
            gateway = cls(
                system,
                settings,
                addresses,
                virtual=virtual_time,
                ids=IdSource(seed),
                owns_system=True,
                now=now,
            )
            if gateway.boot["error"]:
                raise UnavailableError(f"cannot start on this storage: {gateway.boot['error']}")
            return gateway
        except BaseException:
            system.shutdown()
            raise

    @classmethod
    def connect(cls, config_path: str | os.PathLike[str]) -> Gateway:
        """Join the long-running system whose admin port ``config_path`` names.

        Fails with GatewayError if no system is running there: it never starts one.
        """
        settings = load_config(config_path)
        host, port = settings.system.bind, settings.system.admin_port
        try:
            with socket.create_connection((host, port), timeout=2.0):
                pass
        except OSError as error:
            raise GatewayError(
                f"no actor system is running on {host}:{port} (system.admin_port in {settings.source}):"
                f" {error.strerror or error}; start it with `cx start`"
            ) from None
        system = join(settings)
        addresses = find(system)
        return cls(
            system, settings, addresses, virtual=False, ids=IdSource(None), owns_system=False
        )

    def close(self) -> None:
        if self._system is not None:
            if self._owns_system:
                self._system.shutdown()
            self._system = None

    def __enter__(self) -> Gateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ customers

    def start_session(
        self,
        customer_id: str,
        channel: str,
        identifier: str,
        *,
        room_id: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> SessionRef:
        _text("customer_id", customer_id, limit=MAX_ID)
        _text("identifier", identifier, limit=MAX_EXTERNAL_ID)
        if room_id is not None:
            _text("room_id", room_id, limit=MAX_ID)
        kind = _enum(Channel, "channel", channel)
        payload = _payload("data", data)
        for _ in range(16):
            request = OpenSession(
                customer_id,
                kind,
                identifier,
                room_id,
                payload,
                self._ids.new("cs"),
                self._ids.new("conv"),
                self._ids.new("room"),
            )
            try:
                value = self._engine("monitor", request)
            except IdTaken:
                continue
            ref = SessionRef(**value)
            self._hosts.put_session(ref.channel_session_id, ref.conversation_id)
            return ref
        raise GatewayError("could not draw an unused id in 16 attempts")

    def customer_message(
        self, channel_session_id: str, text: str, *, message_id: str | None = None
    ) -> None:
        _text("channel_session_id", channel_session_id, limit=MAX_ID)
        _message_text(text)
        if message_id is not None:
            _text("message_id", message_id, limit=MAX_EXTERNAL_ID)
        mid = message_id if message_id is not None else self._ids.new("msg")
        self._to_session(channel_session_id, Apply(CustomerMessage(channel_session_id, text, mid)))

    def end_session(self, channel_session_id: str, reason: str = "CUSTOMER") -> None:
        _text("channel_session_id", channel_session_id, limit=MAX_ID)
        end = _enum(SessionEndReason, "reason", reason, allowed=_GATEWAY_ENDS)
        self._to_session(channel_session_id, Apply(EndSession(channel_session_id, end)))

    def request_agent(self, conversation_id: str, queue: str = "default") -> None:
        _text("queue", queue)
        self._apply(conversation_id, RequestAgent(queue, SYSTEM))

    # ------------------------------------------------------------------ agents

    def agent_login(
        self, agent_id: str, *, queues: Iterable[str] = ("default",), max_conversations: int = 3
    ) -> None:
        _text("agent_id", agent_id)
        if isinstance(queues, str):
            raise BadArgumentError(
                f"agent_login refused for {agent_id}: queues must be a list of names, not a string"
            )
        self._engine("agents", AgentLogin(agent_id, tuple(queues), max_conversations))

    def agent_ready(self, agent_id: str) -> None:
        self._presence(agent_id, "READY")

    def agent_not_ready(self, agent_id: str) -> None:
        self._presence(agent_id, "NOT_READY")

    def agent_logout(self, agent_id: str) -> None:
        self._presence(agent_id, "LOGOUT")

    def agent_join(self, agent_id: str, conversation_id: str, *, role: str = "PRIMARY") -> None:
        _text("agent_id", agent_id)
        joined_role = _enum(
            Role,
            "role",
            role,
            allowed=frozenset({Role.PRIMARY, Role.ASSISTANT, Role.SILENT_MONITOR, Role.WHISPER}),
        )
        for attempt in range(2):
            host = self._live_host(conversation_id, "agent_join")
            target = Ref(host, conversation_entity_id(conversation_id))
            try:
                join = AgentJoin(agent_id, target, joined_role)
                self._engine("agents", join, watch=conversation_id)
                return
            except NotHere:
                self._forget(conversation_id)
                if attempt:
                    raise IllegalTransitionError(
                        f"agent_join refused on conversation {conversation_id}: it is closing"
                    ) from None

    def agent_message(self, agent_id: str, conversation_id: str, text: str) -> None:
        _text("agent_id", agent_id)
        _message_text(text)
        self._apply(conversation_id, AgentMessage(agent_id, text, self._ids.new("msg")))

    def hold(self, agent_id: str, conversation_id: str, seconds: float) -> None:
        _text("agent_id", agent_id)
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise BadArgumentError(
                f"hold refused on conversation {conversation_id}: seconds must be a number, got {seconds!r}"
            )
        self._apply(conversation_id, Hold(agent_id, seconds))

    def resume(self, agent_id: str, conversation_id: str) -> None:
        _text("agent_id", agent_id)
        self._apply(conversation_id, Resume(agent_id))

    def agent_leave(self, agent_id: str, conversation_id: str, *, reason: str = "LEFT") -> None:
        _text("agent_id", agent_id)
        why = _enum(UnsubscribeReason, "reason", reason, allowed=VOLUNTARY_LEAVE_REASONS)
        self._apply(conversation_id, AgentLeave(agent_id, why))

    def apply_wrap_up(
        self, agent_id: str, conversation_id: str, codes: Iterable[str], note: str = ""
    ) -> None:
        _text("agent_id", agent_id)
        if isinstance(codes, str) or not all(isinstance(c, str) for c in codes):
            raise BadArgumentError(
                f"apply_wrap_up refused on conversation {conversation_id}: codes must be a list of strings"
            )
        if not isinstance(note, str):
            raise BadArgumentError(
                f"apply_wrap_up refused on conversation {conversation_id}: note must be a string"
            )
        self._apply(conversation_id, ApplyWrapUp(agent_id, tuple(codes), note))

    # ------------------------------------------------------------------ conversations

    def set_data(
        self, conversation_id: str, key: str, value: str | int | float | bool | None
    ) -> None:
        _text("key", key)
        if not isinstance(value, str | int | float | bool) and value is not None:
            raise BadArgumentError(
                f"set_data refused on conversation {conversation_id}: value must be a string, number, boolean or None"
            )
        self._apply(conversation_id, SetData(key, value))

    def end_conversation(self, conversation_id: str, *, by: str = "OPERATOR") -> None:
        self._apply(conversation_id, EndConversation(_enum(EndedBy, "by", by)))

    def add_activity(self, conversation_id: str, name: str, data: Mapping[str, Any]) -> None:
        _text("name", name)
        payload = _payload("data", data)
        live = Apply(AddActivity(name, payload, _APP))
        archived = ArchivedActivity(conversation_id, name, payload)
        self._query(conversation_id, live, archived)

    def conversation(self, conversation_id: str) -> dict[str, Any]:
        snapshot: dict[str, Any] = self._query(
            conversation_id, SnapshotQuery(), ArchivedQuery("conversation", conversation_id)
        )
        return snapshot

    def events(self, conversation_id: str, *, after_seq: int = 0) -> list[dict[str, Any]]:
        _after_seq(f"events refused for conversation {conversation_id}", after_seq)
        return self._query(  # type: ignore[no-any-return]
            conversation_id,
            EventsQuery(after_seq),
            ArchivedQuery("events", conversation_id, after_seq),
        )

    def history(self, room_id: str) -> list[dict[str, Any]]:
        _text("room_id", room_id, limit=MAX_ID)
        return self._engine("monitor", ArchivedQuery("history", room_id))  # type: ignore[no-any-return]

    def status(self) -> dict[str, dict[str, int]]:
        conversations: Status = self._engine("monitor", StatusQuery())
        router = self._ask_direct(self._actors.monitor, Directory(self._call_id()))["router"]
        try:
            routing: Status = self._call(router, "", StatusQuery())
        except Unreachable as error:
            raise UnavailableError(f"the engine's router does not answer: {error}") from None
        return {
            "conversations": dict(sorted(conversations.conversations.items())),
            "agents": dict(sorted(routing.agents.items())),
            "queues": dict(sorted(routing.queues.items())),
            "storage": dict(sorted(conversations.storage.items())),
        }

    # ------------------------------------------------------------------ pushed events

    def subscribe_session(self, channel_session_id: str, *, after_seq: int = 0) -> int:
        """Push this channel session's outbound events (its conversation's events) to this
        gateway: first those after ``after_seq``, then every new one. Returns the
        conversation's current sequence number."""
        _text("channel_session_id", channel_session_id, limit=MAX_ID)
        _after_seq(f"subscribe_session refused for {channel_session_id}", after_seq)
        conversation_id = self._conversation_of(channel_session_id)
        subscription = session_subscription(channel_session_id)
        self._order.start(subscription, conversation_id, after_seq)  # its replay comes next
        self._subscriptions.add(subscription)
        request = Subscribe(subscription, self._me, after_seq)
        seq: int = self._at_conversation(
            conversation_id, conversation_entity_id(conversation_id), request, "subscribe_session"
        )
        return seq

    def subscribe_agent(self, agent_id: str) -> None:
        """Push the events of every conversation this agent is subscribed to (live only: a
        desk that reconnects reads what it missed with ``events(conversation_id, after_seq)``)."""
        _text("agent_id", agent_id)
        subscription = agent_subscription(agent_id)
        self._order.stop(subscription)  # the agent's entity starts afresh too
        self._subscriptions.add(subscription)
        self._engine("agents", Subscribe(subscription, self._me))

    def unsubscribe(self, subscription: str) -> None:
        """Stop a subscription (``"session:<id>"`` or ``"agent:<id>"``)."""
        try:
            kind, ident = parse_subscription(subscription)
        except MalformedIdError as error:
            raise BadArgumentError(f"unsubscribe refused: {error}") from None
        self._order.stop(subscription)
        self._subscriptions.discard(subscription)
        if kind is SubscriptionKind.AGENT:
            self._engine("agents", Unsubscribe(subscription))
        else:
            self._to_session(ident, Unsubscribe(subscription))

    def pushed(self, timeout: float = 0.0) -> list[PushedEvent]:
        """The events pushed to this gateway since the last call, oldest first; under real time
        waits up to ``timeout`` seconds for the first one."""
        if not self._embedded and not self._pushed and timeout > 0:
            if self._order.waiting():  # wake up in time to read what is missing
                timeout = min(timeout, self._order.gap_wait_s)
            message = self._system.listen(timeout)
            if message is not None:
                self._intake(message)
        self._take_messages()
        if self._resubscribe:
            self._restore_subscriptions()
        if self._order.waiting():
            self._fill_gaps()
        events = list(self._pushed)
        self._pushed.clear()
        return events

    # ------------------------------------------------------------------ virtual clock

    def advance(self, seconds: float) -> None:
        """Move the virtual clock by ``seconds``, firing every timer due on the way, in order."""
        if not self._virtual:
            raise BadArgumentError(
                "advance refused: this gateway runs on real time, not a virtual clock"
            )
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not 0 <= seconds < 10**9
        ):
            raise BadArgumentError(
                f"advance refused: seconds must be a number >= 0, got {seconds!r}"
            )
        target = self._now + seconds_to_ms(seconds)
        while True:
            self._take_messages()  # every timer owner has reported its earliest alarm
            due = [
                (at, owner)
                for owner, at in self._alarms.values()
                if at is not None and at <= target
            ]
            if not due:
                break
            at = min(a for a, _ in due)
            self._now = max(self._now, at)
            for when, owner in due:  # owners due at the same instant: in a fixed order
                if when == at:
                    self._system.tell(owner, FireAlarms(self._now))
        self._now = target

    # ------------------------------------------------------------------ plumbing

    def _presence(self, agent_id: str, action: str) -> None:
        _text("agent_id", agent_id)
        self._engine("agents", AgentPresence(agent_id, action))

    def _live_host(self, conversation_id: str, what: str) -> Any:
        location = self._locate(conversation_id)
        if location.host is None:
            raise IllegalTransitionError(
                f"{what} refused on conversation {conversation_id} in state CLOSED"
            )
        return location.host

    def _apply(self, conversation_id: str, command: Command) -> None:
        self._at_conversation(
            conversation_id,
            conversation_entity_id(conversation_id),
            Apply(command),
            _snake(type(command).__name__),
        )

    def _to_session(self, session_id: str, payload: Apply | Unsubscribe) -> None:
        what = _snake(type(payload.command if isinstance(payload, Apply) else payload).__name__)
        conversation_id = self._conversation_of(session_id)
        self._at_conversation(
            conversation_id, session_entity_id(session_id), payload, what, session_id=session_id
        )

    def _query(self, conversation_id: str, live_query: Any, archived_query: Any) -> Any:
        """Ask the live conversation, or the archive once it is closed (also if it closes
        between the lookup and the call)."""
        return self._at_conversation(
            conversation_id,
            conversation_entity_id(conversation_id),
            live_query,
            "",
            archived=archived_query,
        )

    def _at_conversation(
        self,
        conversation_id: str,
        entity: str,
        payload: Any,
        what: str,
        *,
        archived: Any = None,
        session_id: str | None = None,
    ) -> Any:
        """Send ``payload`` to ``entity`` on the conversation's host and return the answer. When
        that host no longer has it (``not_here``: the conversation closed and left, or moved),
        look the host up again and retry once.

        With ``archived`` (a query for the TopicMonitor) a closed or closing conversation is
        answered from the archive. Without it, a closed one is refused ``{what} refused on
        conversation ... in state CLOSED`` and one that is still not there on the retry ``...:
        it is closing`` (naming the channel session ``session_id`` when there is one). The
        messages are built only when refused: this is every call's path.

        Connected: when nothing accepts connections at the host's address any more (its
        process died, the TopicMonitor rebuilds its conversations elsewhere), the request was
        not delivered: look again once, then refuse ``unavailable``."""
        gone = False
        for _ in range(2):
            host = self._locate(conversation_id).host
            if host is None:
                if archived is not None:
                    return self._engine("monitor", archived)
                raise IllegalTransitionError(
                    f"{what} refused on conversation {conversation_id} in state CLOSED"
                )
            try:
                return self._call(host, entity, payload)
            except NotHere:
                gone = False
                self._forget(conversation_id)
            except Unreachable:
                gone = True
                self._hosts.host_lost(host)
        if gone:
            raise UnavailableError(
                f"{what or 'the request'} not carried out on conversation {conversation_id}: its"
                " host is gone and the conversation is being rebuilt from its journal; retry"
            )
        if archived is not None:
            return self._engine("monitor", archived)
        if session_id is not None:
            raise IllegalTransitionError(
                f"{what} refused on channel session {session_id}: its conversation is closing"
            )
        raise IllegalTransitionError(
            f"{what} refused on conversation {conversation_id}: it is closing"
        )

    def _subscribe_again(self, conversation_id: str, request: Subscribe) -> None:
        self._at_conversation(
            conversation_id, conversation_entity_id(conversation_id), request, "subscribe_session"
        )

    def _events(self, conversation_id: str, after_seq: int) -> list[dict[str, Any]]:
        return self.events(conversation_id, after_seq=after_seq)

    def drain(self) -> None:
        """Embedded only: run the system until nothing is pending (every method already does)."""
        if self._embedded:
            self._system.tell(self._actors.monitor, Drain())
