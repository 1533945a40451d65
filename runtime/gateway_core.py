"""How a gateway talks to the engine: sends, answers, pushed events, notices, reconnection.

:class:`GatewayCore` is the part of :class:`runtime.gateway.Gateway` below its public methods:

- Calls: one ``Deliver`` in a ``Batch`` to the actor (or host) concerned, then wait for its
  answer, keeping whatever else arrives meanwhile (answers that came together, pushed events,
  alarm reports, host notices).
- Where conversations live: a bounded :class:`~runtime.gateway_cache.LocationCache`.
- Pushed events: put in order per subscription and conversation, gaps read back from the
  conversation (:mod:`runtime.gateway_order`, :mod:`runtime.gateway_push`).
- Connected gateways never wait on a dead address: host notices are taken in before each send,
  every send gives up once nothing accepts connections at its address
  (:func:`runtime.gateway_link.send`), and a call whose host dies is answered ``unavailable``
  when the notice comes. While the engine's admin does not accept connections every call is
  refused ``unavailable`` at once; once it does again the gateway finds the engine's actors
  anew (their addresses change when the system restarts), watches hosts again and restores
  its channel-session subscriptions from the last seq handed over.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from typing import Any

from thespian.actors import ActorSystemException, PoisonMessage

from actors.messages import (
    AlarmAt,
    Batch,
    BootStatus,
    ClockDriver,
    Deliver,
    Failure,
    HostLost,
    Locate,
    Location,
    Pushed,
    Reply,
    ReplyTo,
    WatchHosts,
    WhoAmI,
)
from domain.errors import CxError, ErrorKind, error_for
from domain.ids import EntityKind, conversation_id_of, entity_kind, parse_entity_id
from infra.config import Settings
from infra.logs import get_logger
from infra.timefmt import wall_ms
from runtime import gateway_link
from runtime.gateway_cache import LocationCache
from runtime.gateway_order import PushOrder
from runtime.gateway_push import PushedEvents
from runtime.gateway_types import GatewayError, PushedEvent, UnavailableError
from runtime.system import Addresses, find

log = get_logger("cx.gateway")

ASK_TIMEOUT_S = 30.0
#: While waiting for an answer, how often to check that the engine and the host are still there.
HOST_CHECK_S = 1.0
#: Answers kept that came before they were waited for (several calls answered in one message)
MAX_STRAY_ANSWERS = 10_000
#: One look at the sockets for messages that have arrived (connected gateways).
PICKUP_S = 0.0002
#: At most this many turns at once (a steady stream of pushed events is taken by ``pushed``).
PICKUP_TURNS = 64
#: Hosts that died lately (their addresses are refused without a send).
DEAD_HOSTS_KEPT = 64
#: While the engine is away, how long a refusal stands before the admin is probed again.
AWAY_RECHECK_S = 0.2


class Unreachable(CxError):
    """Nothing accepts connections at the address any more (its process is gone)."""

    kind = ErrorKind.UNAVAILABLE


class GatewayCore(PushedEvents):
    def __init__(
        self, system: Any, settings: Settings, addresses: Addresses, *, virtual: bool,
        owns_system: bool, now: int = 0,
    ) -> None:  # fmt: skip
        self._system = system
        self.settings = settings
        self._actors = addresses
        self._virtual = virtual
        self._embedded = owns_system
        self._owns_system = owns_system
        self._now = now
        self._calls = itertools.count(1)
        self._hosts = LocationCache()
        self._order = PushOrder()
        self._pushed: deque[PushedEvent] = deque()
        self._stray: dict[str, Reply | Failure] = {}
        self._host_lost_at: float | None = None
        self._alarms: dict[str, tuple[Any, int | None]] = {}  # virtual clock: owner -> earliest
        self._away: str | None = None  # why the engine is taken as gone
        self._away_checked = 0.0
        self._subscriptions: set[str] = set()  # what to subscribe again after a restart
        self._dead: deque[Any] = deque(maxlen=DEAD_HOSTS_KEPT)
        self._resubscribe: set[str] = set()  # subscriptions the engine lost
        try:
            self.boot: dict[str, Any] = self._handshake(starting=True)
        except Unreachable as error:
            raise UnavailableError(f"the engine does not answer: {error}") from None

    @property
    def now_ms(self) -> int:
        """The clock as the gateway sees it (ms since the epoch; virtual time starts at 0)."""
        return self._now if self._virtual else wall_ms()

    def _handshake(self, *, starting: bool) -> dict[str, Any]:
        monitor = self._actors.monitor
        self._me, wired = self._ask_direct(monitor, WhoAmI(self._call_id()))
        if not wired:
            if not starting:
                raise UnavailableError("the engine is starting again: retry")
            raise GatewayError(
                "the actor system is running but the engine in it did not start (see its log;"
                " e.g. the archive could not be opened), or was never started (use `cx start`)"
            )
        boot: dict[str, Any] = self._ask_direct(monitor, BootStatus(self._call_id()))
        if starting and self._virtual:  # a restored system's clock resumes where it was
            self._now = max(self._now, int(boot["now"]))
            # From now on the timer owners report their earliest alarm to this gateway.
            self._send(monitor, ClockDriver(self._me))
            self._take_messages()
        # be told when a host dies, so that no call is sent to its dead address
        self._send(monitor, WatchHosts(self._me))
        return boot

    # ------------------------------------------------------------------ engine away and back

    def _ready(self) -> None:
        """Connected: refuse at once while the engine is away; find it again once it is back."""
        if self._away is None:
            return
        now = time.monotonic()
        if now - self._away_checked < AWAY_RECHECK_S:
            raise UnavailableError(f"{self._away}; retry later")
        self._away_checked = now
        problem = gateway_link.probe(self.settings.system.bind, self.settings.system.admin_port)
        if problem is not None:
            self._away = problem
            raise UnavailableError(f"{problem}; retry later")
        self._rejoin()

    def _gone(self, why: str) -> UnavailableError:
        if self._away is None:
            log.warning("engine unreachable: calls are refused until it is back", problem=why)
        self._away = why
        self._away_checked = time.monotonic()
        return UnavailableError(f"{why}; retry later")

    def _rejoin(self) -> None:
        away, self._away = self._away, None
        try:
            self._actors = find(self._system)
            self._hosts.clear()
            self.boot = self._handshake(starting=False)
        except (GatewayError, Unreachable, ActorSystemException) as error:
            # ActorSystemException: the admin died again while it was being asked (a restart)
            self._away, self._away_checked = away or str(error), time.monotonic()
            raise UnavailableError(f"the engine is not back yet: {error}") from None
        log.info("engine found again", subscriptions=len(self._subscriptions))
        self._resubscribe |= self._subscriptions

    # ------------------------------------------------------------------ calls

    def _call_id(self) -> str:
        return f"call-{next(self._calls)}"

    def _send(self, address: Any, message: Any) -> None:
        if self._embedded:
            self._system.tell(address, message)  # runs until quiescent
        elif not gateway_link.send(self._system, address, message):
            raise Unreachable(f"nothing answers at {address}")

    def _ask_direct(self, address: Any, message: Any) -> Any:
        """A message the actor answers itself (not forwarded). Whatever else arrives while
        waiting (pushed events, alarm reports, host notices) is kept, not taken for the answer."""
        try:
            self._send(address, message)
        except Unreachable as error:  # the engine restarted (or is gone): find it again
            raise self._gone(f"the engine does not answer: {error}") from None
        call_id = message.call_id
        answer = self._collect(call_id) if self._embedded else self._wait(call_id, None, None)
        if not isinstance(answer, Reply):
            raise GatewayError(f"no answer from the engine to {type(message).__name__}")
        return answer.value

    def _engine(self, role: str, payload: Any, *, watch: str | None = None) -> Any:
        """A call to the TopicMonitor (``monitor``) or the AgentSupervisor (``agents``); found
        again once if its address no longer answers (the engine restarted)."""
        self._ready()
        try:
            return self._call(getattr(self._actors, role), "", payload, watch=watch)
        except Unreachable:
            self._away, self._away_checked = "the engine's actors moved", 0.0
        self._ready()
        try:
            return self._call(getattr(self._actors, role), "", payload, watch=watch)
        except Unreachable as error:
            raise self._gone(f"the engine does not answer: {error}") from None

    def _call(self, address: Any, entity: str, payload: Any, *, watch: str | None = None) -> Any:
        """Send one request and wait for its answer. ``watch``: the conversation whose host
        the request ends up at, when it is not addressed to it (checked while waiting)."""
        call_id = self._call_id()
        item = Deliver(entity, payload, ReplyTo(self._me, call_id))
        batch = Batch(self.now_ms, (item,))
        if self._embedded:
            self._send(address, batch)
            answer = self._collect(call_id)
        else:
            self._ready()
            self._take_messages()  # a host notice that came meanwhile
            if address in self._dead:
                raise Unreachable(f"{address} is a host that died")
            self._send(address, batch)
            conversation_id = watch or self._conversation_addressed(entity)
            host = self._hosts.host(watch) if watch is not None else address
            answer = self._wait(call_id, host, conversation_id)
        if isinstance(answer, Failure):
            raise error_for(answer.kind, answer.message)
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
                    raise self._gone(f"no answer from the engine within {ASK_TIMEOUT_S:g} s")
                problem = gateway_link.probe(
                    self.settings.system.bind, self.settings.system.admin_port
                )
                if problem is not None:
                    raise self._gone(problem)
                if self._lost_during(started):
                    return _host_failed(call_id)
                if conversation_id is not None and self._host_replaced(conversation_id, address):
                    return _rebuilt(call_id, conversation_id)
                continue
            if isinstance(message, Reply | Failure):
                if message.call_id == call_id:
                    return message
                self._keep_stray(message)  # the answer to an outer, waiting call
                continue
            if isinstance(message, PoisonMessage) and _carries(message.poisonMessage, call_id):
                # Thespian could not deliver it (the actor is gone, e.g. its host died and
                # its conversations were rebuilt elsewhere): nothing was done; look it up again.
                return Failure(call_id, ErrorKind.NOT_HERE, "the actor addressed is gone")
            self._intake(message)
            if isinstance(message, HostLost) and address is not None and message.address == address:
                return _host_failed(call_id)  # the host it waits on died: answer now

    def _lost_during(self, started: float) -> bool:
        """Did a host die while a request begun at ``started`` waited? Its answer may never
        come (the request was forwarded to that host): better a clear error than a long wait."""
        return self._host_lost_at is not None and self._host_lost_at >= started

    def _conversation_addressed(self, entity: str) -> str | None:
        kind = entity_kind(entity)
        if kind is EntityKind.CONVERSATION:
            return conversation_id_of(entity)
        if kind is EntityKind.SESSION:
            return self._hosts.conversation_of(parse_entity_id(entity)[1])
        return None

    def _host_replaced(self, conversation_id: str, address: Any) -> bool:
        """Has the TopicMonitor moved the conversation off ``address`` (its host died)?"""
        try:
            location: Location = self._call(
                self._actors.monitor, "", Locate(conversation_id=conversation_id)
            )
        except (GatewayError, Unreachable):
            return True
        if location.host is None or location.host != address:
            self._hosts.forget_host(conversation_id)
            return True
        return False

    def _take_messages(self) -> None:
        """Take in what has arrived. Connected: Thespian's ``listen(0)`` returns before it looks
        at any socket, and a message on a new connection takes a few turns of the transport
        (accept, read): while a socket of this process is readable, turns of ``PICKUP_S``."""
        if self._embedded:
            while (message := self._system.listen(0)) is not None:
                self._intake(message)
            return
        for _ in range(PICKUP_TURNS):
            if not gateway_link.arrived(self._system):
                return
            message = self._system.listen(PICKUP_S)
            if message is not None:
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
            moved = set(self._hosts.host_lost(message.address))
            self._dead.append(message.address)
            self._moved(moved)
        elif isinstance(message, Batch):
            for item in message.items:
                if isinstance(item.payload, Reply | Failure):  # answers sent as one message
                    self._keep_stray(item.payload)
                elif isinstance(item.payload, Pushed):
                    self._take_pushed(item.payload)

    def _conversation_of(self, session_id: str) -> str:
        conversation_id = self._hosts.conversation_of(session_id)
        if conversation_id is None:
            location: Location = self._engine("monitor", Locate(session_id=session_id))
            conversation_id = location.conversation_id
            self._hosts.put_session(session_id, conversation_id)
        return conversation_id

    def _locate(self, conversation_id: str) -> Location:
        if not self._embedded:
            self._ready()
        host = self._hosts.host(conversation_id)
        if host is not None:
            return Location(conversation_id, host, "")
        location: Location = self._engine("monitor", Locate(conversation_id=conversation_id))
        if location.host is not None:
            self._hosts.put_host(conversation_id, location.host)
        else:
            self._hosts.closed(conversation_id)
        return location

    def _forget(self, conversation_id: str) -> None:
        self._hosts.forget_host(conversation_id)


def _carries(message: Any, call_id: str) -> bool:
    return isinstance(message, Batch) and any(
        item.reply_to is not None and item.reply_to.call_id == call_id for item in message.items
    )


def _host_failed(call_id: str) -> Failure:
    return Failure(
        call_id,
        ErrorKind.UNAVAILABLE,
        "a host of the engine failed while this request was in progress; it may or"
        " may not have been applied: check, or retry",
    )


def _rebuilt(call_id: str, conversation_id: str) -> Failure:
    return Failure(
        call_id,
        ErrorKind.UNAVAILABLE,
        f"the host of conversation {conversation_id} failed while handling this request;"
        " the conversation was rebuilt from its journal and the request may or may not"
        " have been applied: check, or retry (a customer message with the same"
        " message_id is never applied twice)",
    )
