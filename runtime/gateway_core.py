"""A gateway's link to the engine: calls to actors and conversations, where conversations
live, host loss, and the engine going away and coming back.

:class:`EngineLink` is everything below :class:`runtime.gateway.Gateway`'s public methods:

- Calls: one ``Deliver`` in a ``Batch`` over the :mod:`transport <runtime.gateway_transport>`
  (embedded or connected), its answer matched by :class:`~runtime.gateway_calls.Answers`.
- Where conversations live: a bounded :class:`~runtime.gateway_cache.LocationCache`; a call to
  a conversation goes straight to its host, looked up again once if that host no longer has it,
  and answered from the archive (queries) or refused once it is closed.
- Pushed events: put in order per subscription and conversation, gaps read back from the
  conversation (:mod:`runtime.gateway_order`, :mod:`runtime.gateway_push`).
- Connected gateways never wait on a dead address: host notices are taken in before each send,
  every send gives up once nothing accepts connections at its address, and a call whose host
  dies is answered ``unavailable`` when the notice comes. While the engine's admin does not
  accept connections every call is refused ``unavailable`` at once; once it does again the link
  finds the engine's actors anew (their addresses change when the system restarts), watches
  hosts again and restores its channel-session subscriptions from the last seq handed over.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import replace
from typing import Any

from thespian.actors import ActorSystemException

from actors.messages import (
    AlarmAt,
    ArchivedQuery,
    Batch,
    BootStatus,
    ClockDriver,
    Deliver,
    DesksMoved,
    Directory,
    EventsQuery,
    HostLost,
    Locate,
    Location,
    Pushed,
    Reply,
    ReplyTo,
    Subscribe,
    WatchHosts,
    WhoAmI,
)
from domain.errors import NotHere
from domain.ids import (
    EntityKind,
    conversation_entity_id,
    conversation_id_of,
    entity_kind,
    parse_entity_id,
)
from infra.config import Settings
from infra.logs import get_logger
from runtime.gateway_cache import LocationCache
from runtime.gateway_calls import Answer, Answers, host_failed, rebuilt, value_of
from runtime.gateway_clock import VirtualClock, WallClock
from runtime.gateway_order import PushOrder
from runtime.gateway_push import PushedEvents
from runtime.gateway_transport import Transport, Unreachable
from runtime.gateway_types import (
    GatewayError,
    IllegalTransitionError,
    PushedEvent,
    UnavailableError,
)
from runtime.system import Addresses, find_for

log = get_logger("cx.gateway")

#: While the engine is away, how long a refusal stands before the admin is probed again.
AWAY_RECHECK_S = 0.2


class EngineLink(PushedEvents):
    def __init__(
        self, transport: Transport, settings: Settings, addresses: Addresses, *,
        virtual: bool, now: int = 0,
    ) -> None:  # fmt: skip
        self.transport = transport
        self.settings = settings
        self.addresses = addresses
        self.clock: VirtualClock | WallClock = VirtualClock(now) if virtual else WallClock()
        self.answers = Answers(transport, self.intake)
        self.locations = LocationCache()
        self.order = PushOrder()
        self.pushed: deque[PushedEvent] = deque()
        self.subscriptions: set[str] = set()  # what to subscribe again after a restart
        self.resubscribe: set[str] = set()  # subscriptions the engine lost
        self._host_lost_at: float | None = None
        self._away: str | None = None  # why the engine is taken as gone
        self._away_checked = 0.0
        try:
            self.boot: dict[str, Any] = self._handshake(starting=True)
        except Unreachable as error:
            raise UnavailableError(f"the engine does not answer: {error}") from None

    @property
    def system(self) -> Any:
        return self.transport.system

    @property
    def embedded(self) -> bool:
        return self.transport.embedded

    @property
    def virtual(self) -> bool:
        return isinstance(self.clock, VirtualClock)

    def call_id(self) -> str:
        return self.answers.new_id()

    def _handshake(self, *, starting: bool) -> dict[str, Any]:
        monitor = self.addresses.monitor
        self.me, wired = self.ask_direct(monitor, WhoAmI(self.call_id()))
        if not wired:
            if not starting:
                raise UnavailableError("the engine is starting again: retry")
            raise GatewayError(
                "the actor system is running but the engine in it did not start (see its log;"
                " e.g. the archive could not be opened), or was never started (use `cx start`)"
            )
        boot: dict[str, Any] = self.ask_direct(monitor, BootStatus(self.call_id()))
        if starting and isinstance(self.clock, VirtualClock):
            self.clock.now = max(self.clock.now, int(boot["now"]))  # a restored clock resumes
            # From now on the timer owners report their earliest alarm to this gateway.
            self.transport.send(monitor, ClockDriver(self.me))
            self.take_messages()
        # be told when a host dies, so that no call is sent to its dead address (and when a
        # room desk moves: DesksMoved)
        self.transport.send(monitor, WatchHosts(self.me))
        directory = self.ask_direct(monitor, Directory(self.call_id()))
        self.addresses = replace(self.addresses, desks=tuple(directory["desks"]))
        return boot

    # ------------------------------------------------------------------ engine away and back

    def ready(self) -> None:
        """Connected: refuse at once while the engine is away; find it again once it is back."""
        if self._away is None:
            return
        now = time.monotonic()
        if now - self._away_checked < AWAY_RECHECK_S:
            raise UnavailableError(f"{self._away}; retry later")
        self._away_checked = now
        problem = self._admin_problem()
        if problem is not None:
            self._away = problem
            raise UnavailableError(f"{problem}; retry later")
        self._rejoin()

    def _admin_problem(self) -> str | None:
        return self.transport.problem(self.settings.system.bind, self.settings.system.admin_port)

    def gone(self, why: str) -> UnavailableError:
        if self._away is None:
            log.warning("engine unreachable: calls are refused until it is back", problem=why)
        self._away = why
        self._away_checked = time.monotonic()
        return UnavailableError(f"{why}; retry later")

    def _rejoin(self) -> None:
        away, self._away = self._away, None
        try:
            self.addresses = find_for(self.system, self.settings)
            self.locations.clear()
            self.boot = self._handshake(starting=False)
        except (GatewayError, Unreachable, ActorSystemException) as error:
            # ActorSystemException: the admin died again while it was being asked (a restart)
            self._away, self._away_checked = away or str(error), time.monotonic()
            raise UnavailableError(f"the engine is not back yet: {error}") from None
        log.info("engine found again", subscriptions=len(self.subscriptions))
        self.resubscribe |= self.subscriptions

    # ------------------------------------------------------------------ calls

    def ask_direct(self, address: Any, message: Any) -> Any:
        """A message the actor answers itself (not forwarded). Whatever else arrives while
        waiting (pushed events, alarm reports, host notices) is kept, not taken for the answer."""
        try:
            self.transport.send(address, message)
        except Unreachable as error:  # the engine restarted (or is gone): find it again
            raise self.gone(f"the engine does not answer: {error}") from None
        answer = self._answer(message.call_id, None, None)
        if isinstance(answer, Reply):
            return answer.value
        raise GatewayError(f"no answer from the engine to {type(message).__name__}")

    def engine(
        self, role: str, payload: Any, *, watch: str | None = None, customer: str | None = None
    ) -> Any:
        """A call to the TopicMonitor (``monitor``) or the AgentSupervisor (``agents``), or
        with ``customer`` to that customer's room desk; found again once if its address no
        longer answers (the engine restarted)."""
        self.ready()
        try:
            return self.call(self.address_of(role, customer), "", payload, watch=watch)
        except Unreachable:
            self._away, self._away_checked = "the engine's actors moved", 0.0
        self.ready()
        try:
            return self.call(self.address_of(role, customer), "", payload, watch=watch)
        except Unreachable as error:
            raise self.gone(f"the engine does not answer: {error}") from None

    def address_of(self, role: str, customer: str | None = None) -> Any:
        """The monitor or supervisor (``role``), or ``customer``'s room desk (embedded: after
        taking in a notice that the desks moved; connected: each call takes notices in)."""
        if customer is not None:
            if self.embedded:
                self.take_messages()
            return self.addresses.desk_of(customer)
        return getattr(self.addresses, role)

    def call(self, address: Any, entity: str, payload: Any, *, watch: str | None = None) -> Any:
        """Send one request and wait for its answer. ``watch``: the conversation whose host
        the request ends up at, when it is not addressed to it (checked while waiting)."""
        call_id = self.call_id()
        batch = Batch(self.clock.now, (Deliver(entity, payload, ReplyTo(self.me, call_id)),))
        if self.embedded:
            self.transport.send(address, batch)
            return value_of(self.answers.collect(call_id))
        self.ready()
        self.take_messages()  # a host notice that came meanwhile
        self.transport.send(address, batch)
        conversation_id = watch or self._conversation_addressed(entity)
        host = self.locations.host(watch) if watch is not None else address
        return value_of(self._answer(call_id, host, conversation_id))

    def _answer(self, call_id: str, host: Any, conversation_id: str | None) -> Answer:
        if self.embedded:
            return self.answers.collect(call_id)

        def idle(started: float) -> Answer | None:
            problem = self._admin_problem()
            if problem is not None:
                raise self.gone(problem)
            if self._host_lost_at is not None and self._host_lost_at >= started:
                # a host died while this waited: its answer may never come (the request was
                # forwarded to that host); better a clear error than a long wait
                return host_failed(call_id)
            if conversation_id is not None and self._host_replaced(conversation_id, host):
                return rebuilt(call_id, conversation_id)
            return None

        try:
            return self.answers.wait(call_id, idle=idle, host=host)
        except TimeoutError as error:
            raise self.gone(str(error)) from None

    def _conversation_addressed(self, entity: str) -> str | None:
        kind = entity_kind(entity)
        if kind is EntityKind.CONVERSATION:
            return conversation_id_of(entity)
        if kind is EntityKind.SESSION:
            return self.locations.conversation_of(parse_entity_id(entity)[1])
        return None

    def _host_replaced(self, conversation_id: str, address: Any) -> bool:
        """Has the TopicMonitor moved the conversation off ``address`` (its host died)?"""
        try:
            location: Location = self.call(
                self.addresses.monitor, "", Locate(conversation_id=conversation_id)
            )
        except (GatewayError, Unreachable):
            return True
        if location.host is None or location.host != address:
            self.locations.forget_host(conversation_id)
            return True
        return False

    # ------------------------------------------------------------------ what arrives

    def take_messages(self) -> None:
        """Take in what has arrived."""
        for message in self.transport.arrived():
            self.answers.take(message)

    def intake(self, message: Any) -> None:
        """Keep pushed events, alarm reports and host notices; anything else (a late answer to
        an abandoned call) is dropped. Answers are kept by :class:`Answers` before this."""
        if isinstance(message, AlarmAt):
            self.clock.report(message)
        elif isinstance(message, DesksMoved):
            self.addresses = replace(self.addresses, desks=message.desks)
        elif isinstance(message, HostLost):
            self._host_lost_at = time.monotonic()
            moved = set(self.locations.host_lost(message.address))
            self.transport.host_died(message.address)
            self._moved(moved)
        elif isinstance(message, Batch):
            for item in message.items:
                if isinstance(item.payload, Pushed):
                    self._take_pushed(item.payload)

    # ------------------------------------------------------------------ conversations

    def conversation_of(self, session_id: str) -> str:
        conversation_id = self.locations.conversation_of(session_id)
        if conversation_id is None:
            location: Location = self.engine("monitor", Locate(session_id=session_id))
            conversation_id = location.conversation_id
            self.locations.put_session(session_id, conversation_id)
        return conversation_id

    def locate(self, conversation_id: str) -> Location:
        if not self.embedded:
            self.ready()
        host = self.locations.host(conversation_id)
        if host is not None:
            return Location(conversation_id, host, "")
        location: Location = self.engine("monitor", Locate(conversation_id=conversation_id))
        if location.host is not None:
            self.locations.put_host(conversation_id, location.host)
        else:
            self.locations.closed(conversation_id)
        return location

    def forget(self, conversation_id: str) -> None:
        self.locations.forget_host(conversation_id)

    def at_conversation(
        self, conversation_id: str, entity: str, payload: Any, what: str, *,
        archived: Any = None, session_id: str | None = None,
    ) -> Any:  # fmt: skip
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
            host = self.locate(conversation_id).host
            if host is None:
                if archived is not None:
                    return self.engine("monitor", archived)
                raise IllegalTransitionError(
                    f"{what} refused on conversation {conversation_id} in state CLOSED"
                )
            try:
                return self.call(host, entity, payload)
            except NotHere:
                gone = False
                self.forget(conversation_id)
            except Unreachable:
                gone = True
                self.locations.host_lost(host)
        if gone:
            raise UnavailableError(
                f"{what or 'the request'} not carried out on conversation {conversation_id}: its"
                " host is gone and the conversation is being rebuilt from its journal; retry"
            )
        if archived is not None:
            return self.engine("monitor", archived)
        if session_id is not None:
            raise IllegalTransitionError(
                f"{what} refused on channel session {session_id}: its conversation is closing"
            )
        raise IllegalTransitionError(
            f"{what} refused on conversation {conversation_id}: it is closing"
        )

    def subscribe_again(self, conversation_id: str, request: Subscribe) -> None:
        self.at_conversation(
            conversation_id, conversation_entity_id(conversation_id), request, "subscribe_session"
        )

    def events(self, conversation_id: str, after_seq: int) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.at_conversation(
            conversation_id,
            conversation_entity_id(conversation_id),
            EventsQuery(after_seq),
            "",
            archived=ArchivedQuery("events", conversation_id, after_seq),
        )
        return found

    def actor(self, address: Any) -> Any:
        return self.transport.actor(address)

    def alarms(self) -> dict[str, int]:
        return self.clock.alarms()

    def collect(self, call_id: str) -> Answer:
        return self.answers.collect(call_id)

    def close(self) -> None:
        self.transport.close()
