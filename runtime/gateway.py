"""The gateway: how channel connectors, agent desks, tests and simulations talk to the engine.

``Gateway.embedded(...)`` runs the whole engine in this process (``simpleSystemBase``), on a
virtual clock by default: every method returns only when the system is quiescent, and
``advance(seconds)`` moves the clock, firing due timers in order. ``Gateway.connect(path)``
joins a long-running system started with ``cx start``. Both give the same interface.

Every refusal raises a :class:`GatewayError` subclass whose message names the id, the state and
what was refused; nothing has changed when it is raised.
"""

from __future__ import annotations

import functools
import itertools
import os
import socket
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import msgpack
from thespian.actors import ActorSystem, PoisonMessage

from actors.conversation import conversation_entity_id, session_entity_id
from actors.messages import (
    AgentJoin,
    AgentLogin,
    AgentPresence,
    AlarmAt,
    Apply,
    ArchivedActivity,
    ArchivedQuery,
    Batch,
    BootStatus,
    ClockDriver,
    Deliver,
    Directory,
    Drain,
    EventsQuery,
    Failure,
    FireAlarms,
    HostLost,
    Locate,
    Location,
    OpenSession,
    Pushed,
    Ref,
    Reply,
    ReplyTo,
    SnapshotQuery,
    Status,
    StatusQuery,
    Subscribe,
    Unsubscribe,
    WatchHosts,
    WhoAmI,
)
from actors.model.commands import (
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
from actors.model.enums import (
    VOLUNTARY_LEAVE_REASONS,
    Channel,
    EndedBy,
    ParticipantType,
    Role,
    SessionEndReason,
    UnsubscribeReason,
)
from actors.model.records import SYSTEM, Emitter
from runtime.config import Settings, load_config
from runtime.ids import IdSource
from runtime.logs import configure_logging
from runtime.system import Addresses, boot, find, join
from runtime.timefmt import seconds_to_ms, wall_ms

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

MAX_PAYLOAD_BYTES = 64 * 1024
ASK_TIMEOUT_S = 30.0
#: While waiting for a conversation's host, how often to check that it is still its host.
HOST_CHECK_S = 1.0
#: Answers kept that came before they were waited for (several calls answered in one message)
MAX_STRAY_ANSWERS = 10_000
_GATEWAY_ENDS = frozenset(
    {SessionEndReason.CUSTOMER, SessionEndReason.NETWORK, SessionEndReason.AGENT}
)
_APP = Emitter("gateway", ParticipantType.APP)


class GatewayError(Exception):
    """A request the engine refused or could not carry out."""


class UnknownIdError(GatewayError):
    """No such conversation, channel session, room or agent."""


class IllegalTransitionError(GatewayError):
    """Not allowed in the current state (of the conversation, session or agent)."""


class BadArgumentError(GatewayError):
    """A value out of range or of the wrong type."""


class UnavailableError(GatewayError):
    """The engine cannot do it now (e.g. the archive cannot be written): retry later."""


class _IdTaken(Exception):
    pass


class _NotHere(Exception):
    pass


_ERRORS: dict[str, type[GatewayError]] = {
    "unknown_id": UnknownIdError,
    "illegal_transition": IllegalTransitionError,
    "bad_argument": BadArgumentError,
    "unavailable": UnavailableError,
}


@dataclass(frozen=True, slots=True)
class SessionRef:
    conversation_id: str
    channel_session_id: str
    room_id: str


@dataclass(frozen=True, slots=True)
class PushedEvent:
    """An outbound event pushed to this gateway for one of its subscriptions.

    ``event`` is an event dict as :meth:`Gateway.events` returns them; its ``seq`` is what a
    reconnecting gateway passes as ``after_seq`` to resume without a gap."""

    subscription: str
    conversation_id: str
    event: dict[str, Any]


class Gateway:
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
        self._system = system
        self.settings = settings
        self._actors = addresses
        self._virtual = virtual
        self._embedded = owns_system
        self._owns_system = owns_system
        self._ids = ids
        self._now = now
        self._calls = itertools.count(1)
        self._hosts: dict[str, Any] = {}  # live conversation id -> host address
        self._session_conversation: dict[str, str] = {}
        self._pushed: deque[PushedEvent] = deque()
        self._stray: dict[str, Reply | Failure] = {}
        self._host_lost_at: float | None = None
        self._alarms: dict[str, tuple[Any, int | None]] = {}  # virtual clock: owner -> earliest
        self._me, wired = self._ask_direct(addresses.monitor, WhoAmI(self._call_id()))
        if not wired:
            raise GatewayError(
                "the actor system is running but the engine in it did not start (see its log;"
                " e.g. the archive could not be opened), or was never started (use `cx start`)"
            )
        self.boot: dict[str, Any] = self._ask_direct(addresses.monitor, BootStatus(self._call_id()))
        if virtual:  # a restored system's clock resumes at the latest journaled time
            self._now = max(self._now, int(self.boot["now"]))
            # From now on the timer owners report their earliest alarm to this gateway.
            self._system.tell(addresses.monitor, ClockDriver(self._me))
            self._take_messages()
        # be told when a host dies, so that no call is sent to its dead address
        self._system.tell(addresses.monitor, WatchHosts(self._me))

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
        _text("customer_id", customer_id, limit=128)
        _text("identifier", identifier, limit=256)
        if room_id is not None:
            _text("room_id", room_id, limit=128)
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
                value = self._call(self._actors.monitor, "", request)
            except _IdTaken:
                continue
            ref = SessionRef(**value)
            self._session_conversation[ref.channel_session_id] = ref.conversation_id
            return ref
        raise GatewayError("could not draw an unused id in 16 attempts")

    def customer_message(
        self, channel_session_id: str, text: str, *, message_id: str | None = None
    ) -> None:
        _text("channel_session_id", channel_session_id, limit=128)
        _message_text(text)
        if message_id is not None:
            _text("message_id", message_id, limit=256)
        mid = message_id if message_id is not None else self._ids.new("msg")
        self._to_session(channel_session_id, Apply(CustomerMessage(channel_session_id, text, mid)))

    def end_session(self, channel_session_id: str, reason: str = "CUSTOMER") -> None:
        _text("channel_session_id", channel_session_id, limit=128)
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
        self._call(self._actors.agents, "", AgentLogin(agent_id, tuple(queues), max_conversations))

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
                self._call(self._actors.agents, "", join, watch=conversation_id)
                return
            except _NotHere:
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
        if isinstance(after_seq, bool) or not isinstance(after_seq, int) or after_seq < 0:
            raise BadArgumentError(
                f"events refused for conversation {conversation_id}: after_seq must be an int >= 0"
            )
        return self._query(  # type: ignore[no-any-return]
            conversation_id,
            EventsQuery(after_seq),
            ArchivedQuery("events", conversation_id, after_seq),
        )

    def history(self, room_id: str) -> list[dict[str, Any]]:
        _text("room_id", room_id, limit=128)
        return self._call(self._actors.monitor, "", ArchivedQuery("history", room_id))  # type: ignore[no-any-return]

    def status(self) -> dict[str, dict[str, int]]:
        conversations: Status = self._call(self._actors.monitor, "", StatusQuery())
        router = self._ask_direct(self._actors.monitor, Directory(self._call_id()))["router"]
        routing: Status = self._call(router, "", StatusQuery())
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
        _text("channel_session_id", channel_session_id, limit=128)
        if isinstance(after_seq, bool) or not isinstance(after_seq, int) or after_seq < 0:
            raise BadArgumentError(
                f"subscribe_session refused for {channel_session_id}: after_seq must be an int >= 0"
            )
        conversation_id = self._conversation_of(channel_session_id)
        request = Subscribe(f"session:{channel_session_id}", self._me, after_seq)
        seq: int = self._at_conversation(
            conversation_id, conversation_entity_id(conversation_id), request, "subscribe_session"
        )
        return seq

    def subscribe_agent(self, agent_id: str) -> None:
        """Push the events of every conversation this agent is subscribed to (live only: a
        desk that reconnects reads what it missed with ``events(conversation_id, after_seq)``)."""
        _text("agent_id", agent_id)
        self._call(self._actors.agents, "", Subscribe(f"agent:{agent_id}", self._me))

    def unsubscribe(self, subscription: str) -> None:
        """Stop a subscription (``"session:<id>"`` or ``"agent:<id>"``)."""
        kind, _, ident = subscription.partition(":")
        if kind == "agent":
            self._call(self._actors.agents, "", Unsubscribe(subscription))
        elif kind == "session" and ident:
            self._to_session(ident, Unsubscribe(subscription))
        else:
            raise BadArgumentError(
                f"unsubscribe refused: {subscription!r} is not session:<id> or agent:<id>"
            )

    def pushed(self, timeout: float = 0.0) -> list[PushedEvent]:
        """The events pushed to this gateway since the last call, oldest first; under real time
        waits up to ``timeout`` seconds for the first one."""
        if not self._embedded and not self._pushed and timeout > 0:
            message = self._system.listen(timeout)
            if message is not None:
                self._intake(message)
        while (message := self._system.listen(0)) is not None:
            self._intake(message)
        events = list(self._pushed)
        self._pushed.clear()
        return events

    # ------------------------------------------------------------------ virtual clock

    @property
    def now_ms(self) -> int:
        """The clock as the gateway sees it (ms since the epoch; virtual time starts at 0)."""
        return self._now if self._virtual else wall_ms()

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

    def _call_id(self) -> str:
        return f"call-{next(self._calls)}"

    def _ask_direct(self, address: Any, message: Any) -> Any:
        """A message the actor answers itself (not forwarded). Whatever else arrives while
        waiting (pushed events, alarm reports, host notices) is kept, not taken for the answer."""
        self._system.tell(address, message)
        call_id = message.call_id
        answer = self._collect(call_id) if self._embedded else self._wait(call_id, None, None)
        if not isinstance(answer, Reply):
            raise GatewayError(f"no answer from the engine to {type(message).__name__}")
        return answer.value

    def _call(self, address: Any, entity: str, payload: Any, *, watch: str | None = None) -> Any:
        """Send one request and wait for its answer. ``watch``: the conversation whose host
        the request ends up at, when it is not addressed to it (checked while waiting)."""
        call_id = self._call_id()
        item = Deliver(entity, payload, ReplyTo(self._me, call_id))
        batch = Batch(self.now_ms, (item,))
        if self._embedded:
            self._system.tell(address, batch)  # runs until quiescent
            answer = self._collect(call_id)
        else:
            self._system.tell(address, batch)
            conversation_id = watch or self._conversation_addressed(entity)
            host = self._hosts.get(watch) if watch is not None else address
            answer = self._wait(call_id, host, conversation_id)
        if isinstance(answer, Failure):
            raise self._error(answer)
        return answer.value

    def _collect(self, call_id: str) -> Reply | Failure:
        found: Reply | Failure | None = None
        while (message := self._system.listen(0)) is not None:
            if isinstance(message, Reply | Failure) and message.call_id == call_id:
                found = message
            else:
                self._intake(message)
        if found is None:  # among answers that came together in one message
            found = self._stray.pop(call_id, None)
        if found is None:
            raise GatewayError(f"the engine did not answer {call_id}")
        return found

    def _wait(self, call_id: str, address: Any, conversation_id: str | None) -> Reply | Failure:
        started = time.monotonic()
        deadline = started + ASK_TIMEOUT_S
        while True:
            if call_id in self._stray:
                return self._stray.pop(call_id)
            message = self._system.listen(min(HOST_CHECK_S, max(0.0, deadline - time.monotonic())))
            if message is None:
                if time.monotonic() >= deadline:
                    raise UnavailableError(f"no answer from the engine within {ASK_TIMEOUT_S:g} s")
                if self._lost_during(started):
                    return Failure(
                        call_id,
                        "unavailable",
                        "a host of the engine failed while this request was in progress; it may or"
                        " may not have been applied: check, or retry",
                    )
                if conversation_id is not None and self._host_replaced(conversation_id, address):
                    return Failure(
                        call_id,
                        "unavailable",
                        f"the host of conversation {conversation_id} failed while handling this request;"
                        " the conversation was rebuilt from its journal and the request may or may not"
                        " have been applied: check, or retry (a customer message with the same"
                        " message_id is never applied twice)",
                    )
                continue
            if isinstance(message, Reply | Failure):
                if message.call_id == call_id:
                    return message
                self._keep_stray(message)  # the answer to an outer, waiting call
                continue
            if isinstance(message, PoisonMessage) and _carries(message.poisonMessage, call_id):
                # Thespian could not deliver it (the actor is gone, e.g. its host died and
                # its conversations were rebuilt elsewhere): nothing was done; look it up again.
                return Failure(call_id, "not_here", "the actor addressed is gone")
            self._intake(message)

    def _lost_during(self, started: float) -> bool:
        """Did a host die while a request begun at ``started`` waited? Its answer may never
        come (the request was forwarded to that host): better a clear error than a long wait."""
        return self._host_lost_at is not None and self._host_lost_at >= started

    def _conversation_addressed(self, entity: str) -> str | None:
        if entity.startswith("c:"):
            return entity[2:]
        if entity.startswith("s:"):
            return self._session_conversation.get(entity[2:])
        return None

    def _host_replaced(self, conversation_id: str, address: Any) -> bool:
        """Has the TopicMonitor moved the conversation off ``address`` (its host died)?"""
        try:
            location: Location = self._call(
                self._actors.monitor, "", Locate(conversation_id=conversation_id)
            )
        except GatewayError:
            return True
        if location.host is None or location.host != address:
            self._forget(conversation_id)
            return True
        return False

    def _take_messages(self) -> None:
        while (message := self._system.listen(0)) is not None:
            self._intake(message)

    def _keep_stray(self, answer: Reply | Failure) -> None:
        """Keep an answer that came before it was waited for; bounded, so that late answers to
        abandoned calls cannot pile up (the oldest kept goes first)."""
        if len(self._stray) >= MAX_STRAY_ANSWERS:
            del self._stray[next(iter(self._stray))]
        self._stray[answer.call_id] = answer

    def _intake(self, message: Any) -> None:
        """Keep pushed events, alarm reports and answers that came together in one message;
        anything else (a late answer to an abandoned call) is dropped."""
        if isinstance(message, AlarmAt):
            if message.at is None:  # nothing due there (also: a dead host's, from the monitor)
                self._alarms.pop(str(message.owner), None)
            else:
                self._alarms[str(message.owner)] = (message.owner, message.at)
        elif isinstance(message, HostLost):
            self._host_lost_at = time.monotonic()
            for conversation_id in [c for c, h in self._hosts.items() if h == message.address]:
                del self._hosts[conversation_id]
        elif isinstance(message, Batch):
            for item in message.items:
                if isinstance(item.payload, Reply | Failure):  # answers sent as one message
                    self._keep_stray(item.payload)
                elif isinstance(item.payload, Pushed):
                    pushed = item.payload
                    self._pushed.append(
                        PushedEvent(pushed.subscription, pushed.conversation_id, pushed.event)
                    )

    def _conversation_of(self, session_id: str) -> str:
        conversation_id = self._session_conversation.get(session_id)
        if conversation_id is None:
            location: Location = self._call(self._actors.monitor, "", Locate(session_id=session_id))
            conversation_id = location.conversation_id
            self._session_conversation[session_id] = conversation_id
        return conversation_id

    @staticmethod
    def _error(failure: Failure) -> Exception:
        if failure.kind == "id_taken":
            return _IdTaken(failure.message)
        if failure.kind == "not_here":
            return _NotHere(failure.message)
        return _ERRORS.get(failure.kind, GatewayError)(failure.message)

    def _presence(self, agent_id: str, action: str) -> None:
        _text("agent_id", agent_id)
        self._call(self._actors.agents, "", AgentPresence(agent_id, action))

    def _locate(self, conversation_id: str) -> Location:
        _text("conversation_id", conversation_id, limit=128)
        if not self._embedded and self._hosts:
            self._take_messages()  # a HostLost that came meanwhile drops stale addresses
        host = self._hosts.get(conversation_id)
        if host is not None:
            return Location(conversation_id, host, "")
        location: Location = self._call(
            self._actors.monitor, "", Locate(conversation_id=conversation_id)
        )
        if location.host is not None:
            self._hosts[conversation_id] = location.host
        return location

    def _forget(self, conversation_id: str) -> None:
        self._hosts.pop(conversation_id, None)

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
        messages are built only when refused: this is every call's path."""
        for _ in range(2):
            host = self._locate(conversation_id).host
            if host is None:
                if archived is not None:
                    return self._call(self._actors.monitor, "", archived)
                raise IllegalTransitionError(
                    f"{what} refused on conversation {conversation_id} in state CLOSED"
                )
            try:
                return self._call(host, entity, payload)
            except _NotHere:
                self._forget(conversation_id)
        if archived is not None:
            return self._call(self._actors.monitor, "", archived)
        if session_id is not None:
            raise IllegalTransitionError(
                f"{what} refused on channel session {session_id}: its conversation is closing"
            )
        raise IllegalTransitionError(
            f"{what} refused on conversation {conversation_id}: it is closing"
        )

    def drain(self) -> None:
        """Embedded only: run the system until nothing is pending (every method already does)."""
        if self._embedded:
            self._system.tell(self._actors.monitor, Drain())


def _carries(message: Any, call_id: str) -> bool:
    return isinstance(message, Batch) and any(
        item.reply_to is not None and item.reply_to.call_id == call_id for item in message.items
    )


# ---------------------------------------------------------------------- argument checks


@functools.cache  # a handful of class names, on every call's path
def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


def _text(what: str, value: object, *, limit: int = 64) -> None:
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        raise BadArgumentError(
            f"{what} must be a non-empty string of at most {limit} characters, got {value!r:.80}"
        )


def _message_text(text: object) -> None:
    if not isinstance(text, str) or len(text) > MAX_PAYLOAD_BYTES:
        raise BadArgumentError(f"text must be a string of at most {MAX_PAYLOAD_BYTES} characters")


_E = TypeVar("_E", Channel, SessionEndReason, Role, UnsubscribeReason, EndedBy)


def _enum(kind: type[_E], what: str, value: object, *, allowed: frozenset[Any] | None = None) -> _E:
    options = allowed if allowed is not None else frozenset(kind)
    try:
        member = kind(str(value).upper()) if isinstance(value, str) else None
    except ValueError:
        member = None
    if member is None or member not in options:
        names = ", ".join(sorted(str(o) for o in options))
        raise BadArgumentError(f"{what} must be one of {names}, got {value!r:.80}")
    return member


def _payload(what: str, data: Mapping[str, Any] | None) -> dict[str, Any]:
    if data is None:
        return {}
    if not isinstance(data, Mapping) or not all(isinstance(k, str) for k in data):
        raise BadArgumentError(f"{what} must be a mapping with string keys")
    try:
        packed = msgpack.packb(dict(data), use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as error:
        raise BadArgumentError(f"{what} holds a value that is not plain data: {error}") from None
    if len(packed) > MAX_PAYLOAD_BYTES:
        raise BadArgumentError(f"{what} is larger than {MAX_PAYLOAD_BYTES} bytes")
    unpacked: dict[str, Any] = msgpack.unpackb(
        packed, raw=False
    )  # a plain copy, detached from the caller
    return unpacked
