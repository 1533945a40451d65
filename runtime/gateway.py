"""The gateway: how channel connectors, agent desks, tests and simulations talk to the engine.

``Gateway.embedded(...)`` runs the whole engine in this process (``simpleSystemBase``), on a
virtual clock by default: every method returns only when the system is quiescent, and
``advance(seconds)`` moves the clock, firing due timers in order. ``Gateway.connect(path)``
joins a long-running system started with ``cx start``. Both give the same interface.

Every refusal raises a :class:`GatewayError` subclass whose message names the id, the state and
what was refused; nothing has changed when it is raised. How calls reach the engine (and what a
connected gateway does when a host or the whole engine goes away) is :mod:`runtime.gateway_core`;
many calls at once go faster through :meth:`Gateway.pipeline` (:mod:`runtime.gateway_pipeline`).

The parts below this class, each of one purpose: :mod:`runtime.gateway_core` (the link to the
engine: calls to conversations, host loss, the engine away and back),
:mod:`runtime.gateway_transport` (embedded or connected), :mod:`runtime.gateway_calls` (calls
and their answers, refusals as errors), :mod:`runtime.gateway_cache` (where conversations live,
bounded), :mod:`runtime.gateway_clock` (the virtual clock), :mod:`runtime.gateway_order` and
:mod:`runtime.gateway_push` (pushed events in order). Tests and benchmarks look behind the API
only through :mod:`runtime.testing`.
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
    Drain,
    FireAlarms,
    Ref,
    Unsubscribe,
)
from domain.commands import (
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
    Direction,
    EndedBy,
    ParticipantType,
    Role,
    SessionEndReason,
    UnsubscribeReason,
)
from domain.errors import NotHere
from domain.ids import conversation_entity_id, session_entity_id
from domain.limits import MAX_EXTERNAL_ID, MAX_ID
from domain.records import SYSTEM, Emitter
from infra.config import Settings, load_config
from infra.logs import configure_logging
from infra.timefmt import seconds_to_ms, wall_ms
from runtime.gateway_args import JOIN_ROLES
from runtime.gateway_args import enum as _enum
from runtime.gateway_args import message_text as _message_text
from runtime.gateway_args import snake as _snake
from runtime.gateway_args import text as _text
from runtime.gateway_clock import VirtualClock
from runtime.gateway_core import EngineLink
from runtime.gateway_desk import Desk
from runtime.gateway_inventory import Inventory
from runtime.gateway_operations import Operations
from runtime.gateway_pipeline import Acks, Pending, Pipeline
from runtime.gateway_presence import Participation
from runtime.gateway_queries import Queries
from runtime.gateway_rooms import Rooms
from runtime.gateway_subscriptions import Subscriptions
from runtime.gateway_transport import ConnectedTransport, EmbeddedTransport, Transport
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
from runtime.system import Addresses, boot, find_for, join

__all__ = [
    "BadArgumentError",
    "Gateway",
    "GatewayError",
    "IllegalTransitionError",
    "Pending",
    "Pipeline",
    "PushedEvent",
    "SessionRef",
    "UnavailableError",
    "UnknownIdError",
]

_GATEWAY_ENDS = frozenset(
    {SessionEndReason.CUSTOMER, SessionEndReason.NETWORK, SessionEndReason.AGENT}
)
_APP = Emitter("gateway", ParticipantType.APP)


class Gateway(Queries, Inventory, Subscriptions, Operations, Desk, Rooms, Participation):
    """One connection to the engine. Use :meth:`embedded` or :meth:`connect` to make one."""

    def __init__(
        self, transport: Transport, settings: Settings, addresses: Addresses, *,
        virtual: bool, ids: IdSource, now: int = 0,
    ) -> None:  # fmt: skip
        self._ids = ids
        self.settings = settings
        #: The link below the public methods (:mod:`runtime.gateway_core`): not for
        #: applications; :mod:`runtime.testing` is the supported way to look behind the API.
        self.engine = EngineLink(transport, settings, addresses, virtual=virtual, now=now)
        self._open = True

    @property
    def boot(self) -> dict[str, Any]:
        """What the engine reported when this gateway joined it (again, after a restart)."""
        return self.engine.boot

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
            transport = EmbeddedTransport(system)
            gateway = cls(
                transport, settings, addresses, virtual=virtual_time, ids=IdSource(seed), now=now
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
        addresses = find_for(system, settings)
        return cls(
            ConnectedTransport(system), settings, addresses, virtual=False, ids=IdSource(None)
        )

    def close(self) -> None:
        if self._open:
            self._open = False
            self.engine.close()

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
        return self._open_session(customer_id, channel, identifier, room_id, data, Direction.INBOUND)

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
        self.engine.engine("agents", AgentLogin(agent_id, tuple(queues), max_conversations))

    def agent_ready(self, agent_id: str) -> None:
        self._presence(agent_id, "READY")

    def agent_not_ready(self, agent_id: str) -> None:
        self._presence(agent_id, "NOT_READY")

    def agent_logout(self, agent_id: str) -> None:
        self._presence(agent_id, "LOGOUT")

    def agent_join(self, agent_id: str, conversation_id: str, *, role: str = "PRIMARY") -> None:
        _text("agent_id", agent_id)
        joined_role = _enum(Role, "role", role, allowed=JOIN_ROLES)
        for attempt in range(2):
            host = self._live_host(conversation_id, "agent_join")
            target = Ref(host, conversation_entity_id(conversation_id))
            try:
                join = AgentJoin(agent_id, target, joined_role)
                self.engine.engine("agents", join, watch=conversation_id)
                return
            except NotHere:
                self.engine.forget(conversation_id)
                if attempt:
                    raise IllegalTransitionError(
                        f"agent_join refused on conversation {conversation_id}: it is closing"
                    ) from None

    def agent_message(
        self, agent_id: str, conversation_id: str, text: str, *,
        channel_session_id: str | None = None,
    ) -> None:  # fmt: skip
        """``channel_session_id``: the customer's live channel session to answer on."""
        _text("agent_id", agent_id)
        _message_text(text)
        if channel_session_id is not None:
            _text("channel_session_id", channel_session_id, limit=MAX_ID)
        mid = self._ids.new("msg")
        self._apply(conversation_id, AgentMessage(agent_id, text, mid, channel_session_id))

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

    # ------------------------------------------------------------------ virtual clock

    def advance(self, seconds: float) -> None:
        """Move the virtual clock by ``seconds``, firing every timer due on the way, in order."""
        clock = self.engine.clock
        if not isinstance(clock, VirtualClock):
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
        system = self.engine.system
        clock.advance(
            clock.now + seconds_to_ms(seconds),
            self.engine.take_messages,
            lambda owner, now: system.tell(owner, FireAlarms(now)),
        )

    @property
    def now_ms(self) -> int:
        """The clock as the gateway sees it (ms since the epoch; virtual time starts at 0)."""
        return self.engine.clock.now

    # ------------------------------------------------------------------ many calls at once

    def pipeline(self, *, acks: Acks = "all") -> Pipeline:
        """Many requests at once, one message per destination, answers in the order asked
        (:mod:`runtime.gateway_pipeline`)."""
        return Pipeline(self.engine, self._ids, acks=acks)

    # ------------------------------------------------------------------ plumbing

    def _presence(self, agent_id: str, action: str) -> None:
        _text("agent_id", agent_id)
        self.engine.engine("agents", AgentPresence(agent_id, action))

    def _live_host(self, conversation_id: str, what: str) -> Any:
        location = self.engine.locate(conversation_id)
        if location.host is None:
            raise IllegalTransitionError(
                f"{what} refused on conversation {conversation_id} in state CLOSED"
            )
        return location.host

    def _apply(self, conversation_id: str, command: Command) -> None:
        self.engine.at_conversation(
            conversation_id,
            conversation_entity_id(conversation_id),
            Apply(command),
            _snake(type(command).__name__),
        )

    def _to_session(self, session_id: str, payload: Apply | Unsubscribe) -> None:
        what = _snake(type(payload.command if isinstance(payload, Apply) else payload).__name__)
        conversation_id = self.engine.conversation_of(session_id)
        self.engine.at_conversation(
            conversation_id, session_entity_id(session_id), payload, what, session_id=session_id
        )

    def drain(self) -> None:
        """Embedded only: run the system until nothing is pending (every method already does)."""
        if self.engine.embedded:
            self.engine.system.tell(self.engine.addresses.monitor, Drain())
