"""Pipelined calls: many requests in one message per destination, answers in order.

A :class:`Gateway`'s methods make one call at a time: one message out, then wait for its
answer. The engine takes a ``Batch`` of many requests in one message and handles them in
order, so a client with many requests at once (a channel connector relaying a burst, a bulk
load, a benchmark) goes much faster with ``gw.pipeline()``::

    p = gw.pipeline()
    opened = [p.start_session(f"cust-{n}", "WEB", f"visitor-{n}") for n in range(100)]
    refs = p.wait()                      # SessionRefs, in the order asked
    for ref in refs:
        p.customer_message(ref.channel_session_id, "hello")
    p.wait()

Each method queues one request and returns a :class:`Pending`; :meth:`Pipeline.send` sends
everything queued, one ``Batch`` per destination (the host of each conversation, the
TopicMonitor, the AgentSupervisor), without waiting; :meth:`Pipeline.wait` sends what is still
queued and returns the answers of everything sent, in the order asked. Where conversations and
channel sessions live is looked up once for all of a send (one batch of lookups), or ahead
with :meth:`Pipeline.prefetch`.

``acks="last"`` asks the engine to answer only the last request of each destination's batch:
a host answers it after it has handled every earlier one of the batch (they are handled in
order, in one message). The others' ``Pending`` stay unanswered (value ``None``).

Arguments are checked as by the gateway's own methods (a bad one raises before anything is
queued). A request whose conversation's host no longer has it (it closed and left, or moved)
is looked up and sent again once, on its own, when its answer was asked for; a refusal
(including ids that were taken) raises its error from :meth:`Pipeline.wait`. Requests for a
host the gateway saw die are not sent: each is refused ``UnavailableError`` at once (its
conversation is being rebuilt elsewhere: ask again), and the rest of the send goes on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from actors.messages import (
    AgentJoin,
    Apply,
    Batch,
    Deliver,
    Failure,
    Locate,
    Location,
    OpenSession,
    Ref,
    ReplyTo,
    SnapshotQuery,
)
from domain.commands import CustomerMessage, EndConversation
from domain.enums import Channel, EndedBy, Role
from domain.errors import ErrorKind
from domain.ids import conversation_entity_id, session_entity_id
from domain.limits import MAX_EXTERNAL_ID, MAX_ID
from runtime import gateway_args as args
from runtime.gateway_calls import MAX_STRAY_ANSWERS, Answer, error_of, value_of
from runtime.gateway_core import EngineLink
from runtime.gateway_transport import Unreachable
from runtime.gateway_types import (
    BadArgumentError,
    IllegalTransitionError,
    SessionRef,
    UnavailableError,
)
from runtime.ids import IdSource

Acks = Literal["all", "last"]
#: How long a batch of lookups may take.
LOOKUP_TIMEOUT_S = 120.0


@dataclass(eq=False, slots=True)
class Pending:
    """One request of a pipeline and, once it came, its answer."""

    what: str
    call_id: str | None = None  # None: not sent yet, or sent without asking for an answer
    answer: Answer | None = None
    error: Exception | None = None  # refused before it was sent (e.g. its conversation closed)
    then: Callable[[Any], Any] | None = field(default=None, repr=False)
    #: when the answer came in (``time.monotonic()``; None: not yet, or none asked for)
    answered_at: float | None = None
    #: how to send it again once if its host no longer has its conversation
    again: Any = field(default=None, repr=False)

    @property
    def answered(self) -> bool:
        return self.answer is not None or self.error is not None

    @property
    def value(self) -> Any:
        """The answer's value (None: no answer asked for); a refusal raises its error."""
        if self.error is not None:
            raise self.error
        if self.answer is None:
            return None
        found = value_of(self.answer)
        return found if self.then is None else self.then(found)


@dataclass(slots=True)
class _Queued:
    pending: Pending
    #: where it goes: "monitor" or "agents", or a conversation (by id or by channel session)
    conversation_id: str | None
    session_id: str | None
    role: str | None
    build: Callable[[Any], tuple[str, Any]]  # host address (or None) -> (entity, payload)
    resolved: str | None = None  # the conversation it went to
    customer: str | None = None  # a start_session goes to the customer's room desk


class Pipeline:
    def __init__(self, link: EngineLink, ids: IdSource, *, acks: Acks = "all") -> None:
        if acks not in ("all", "last"):
            raise BadArgumentError(f"acks must be 'all' or 'last', got {acks!r}")
        self._link = link
        self._ids = ids
        self.acks = acks
        self._queued: list[_Queued] = []
        self._sent: dict[int, Pending] = {}  # sent, not waited for yet (by id())

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, kind: object, *rest: object) -> None:
        if kind is None:
            self.wait()

    # ------------------------------------------------------------------ requests

    def start_session(
        self, customer_id: str, channel: str, identifier: str, *,
        room_id: str | None = None, data: Mapping[str, Any] | None = None,
    ) -> Pending:  # fmt: skip
        """As :meth:`Gateway.start_session`; its value is the :class:`SessionRef`."""
        args.text("customer_id", customer_id, limit=MAX_ID)
        args.text("identifier", identifier, limit=MAX_EXTERNAL_ID)
        if room_id is not None:
            args.text("room_id", room_id, limit=MAX_ID)
        request = OpenSession(
            customer_id, args.enum(Channel, "channel", channel), identifier, room_id,
            args.payload("data", data), self._ids.new("cs"), self._ids.new("conv"),
            self._ids.new("room"),
        )  # fmt: skip
        return self._queue("start_session", None, None, "monitor", lambda _: ("", request),
                           then=self._opened, customer=customer_id)  # fmt: skip

    def customer_message(
        self, channel_session_id: str, text: str, *, message_id: str | None = None
    ) -> Pending:
        """As :meth:`Gateway.customer_message`."""
        args.text("channel_session_id", channel_session_id, limit=MAX_ID)
        args.message_text(text)
        if message_id is not None:
            args.text("message_id", message_id, limit=MAX_EXTERNAL_ID)
        command = CustomerMessage(
            channel_session_id, text, message_id if message_id is not None else self._ids.new("msg")
        )
        entity = session_entity_id(channel_session_id)
        return self._queue("customer_message", None, channel_session_id, None,
                           lambda _: (entity, Apply(command)))  # fmt: skip

    def end_conversation(self, conversation_id: str, *, by: str = "OPERATOR") -> Pending:
        """As :meth:`Gateway.end_conversation`."""
        command = Apply(EndConversation(args.enum(EndedBy, "by", by)))
        entity = conversation_entity_id(conversation_id)
        return self._queue("end_conversation", conversation_id, None, None,
                           lambda _: (entity, command))  # fmt: skip

    def conversation(self, conversation_id: str) -> Pending:
        """As :meth:`Gateway.conversation`, for a live conversation."""
        entity = conversation_entity_id(conversation_id)
        return self._queue("conversation", conversation_id, None, None,
                           lambda _: (entity, SnapshotQuery()))  # fmt: skip

    def agent_join(self, agent_id: str, conversation_id: str, *, role: str = "PRIMARY") -> Pending:
        """As :meth:`Gateway.agent_join`."""
        args.text("agent_id", agent_id)
        joined = args.enum(Role, "role", role, allowed=args.JOIN_ROLES)
        entity = conversation_entity_id(conversation_id)
        return self._queue("agent_join", conversation_id, None, "agents",
                           lambda host: ("", AgentJoin(agent_id, Ref(host, entity), joined)))  # fmt: skip

    # ------------------------------------------------------------------ sending, answers

    def prefetch(
        self, *, conversation_ids: Iterable[str] = (), channel_session_ids: Iterable[str] = ()
    ) -> dict[str, Any]:
        """Look up where these conversations and channel sessions live now (one batch of
        lookups), so that the sends that follow go straight to their hosts. Returns the
        address of each one's host by its id (None: closed; an unknown id is left out)."""
        where = self._where(conversation_ids, channel_session_ids)
        return {k: v.host for k, v in where.items() if isinstance(v, Location)}

    def send(self) -> list[Pending]:
        """Send everything queued, one message per destination; returns what was sent."""
        queued, self._queued = self._queued, []
        if not queued:
            return []
        if len(self._sent) + len(queued) > MAX_STRAY_ANSWERS:
            self._queued = queued
            raise BadArgumentError(f"at most {MAX_STRAY_ANSWERS} requests may await answers")
        where = self._where(
            [q.conversation_id for q in queued if q.conversation_id],
            [q.session_id for q in queued if q.session_id],
        )
        link = self._link
        groups: dict[str, tuple[Any, list[tuple[Pending, str, Any]]]] = {}
        for q in queued:
            host = None
            key = q.session_id or q.conversation_id
            if key is not None:
                found = where[key]
                if isinstance(found, Exception):
                    q.pending.error = found
                    continue
                if found.host is None:
                    q.pending.error = IllegalTransitionError(
                        f"{q.pending.what} refused on conversation {found.conversation_id}"
                        " in state CLOSED"
                    )
                    continue
                host = found.host
                q.resolved = found.conversation_id
            address = link.address_of(q.role, q.customer) if q.role else host
            q.pending.again = q
            entity, message = q.build(host)
            groups.setdefault(str(address), (address, []))[1].append((q.pending, entity, message))
        for address, items in groups.values():
            delivers = []
            for index, (pending, entity, message) in enumerate(items):
                reply_to = None
                if self.acks == "all" or index == len(items) - 1:
                    pending.call_id = link.call_id()
                    link.answers.time(pending.call_id)
                    reply_to = ReplyTo(link.me, pending.call_id)
                delivers.append(Deliver(entity, message, reply_to))
            try:
                link.transport.send(address, Batch(link.clock.now, tuple(delivers)), batch=True)
            except Unreachable as error:  # a host that died: its conversations are being rebuilt
                link.locations.host_lost(address)
                for pending, _, _ in items:
                    pending.call_id = None
                    pending.error = UnavailableError(
                        f"{pending.what} not carried out: {error} (a conversation whose host"
                        " died is being rebuilt from its journal); retry"
                    )
        for q in queued:
            self._sent[id(q.pending)] = q.pending
        return [q.pending for q in queued]

    def wait(self, pending: Iterable[Pending] | None = None, *, timeout: float = 60.0) -> list[Any]:
        """The values of ``pending`` (default: everything queued or sent and not waited for
        yet), in order, once every answer asked for has come; the first refusal among them
        raises."""
        if pending is None:
            self.send()
            wanted = list(self._sent.values())
        else:
            wanted = list(pending)
        deadline = time.monotonic() + timeout
        for each in wanted:
            self._sent.pop(id(each), None)
            if each.call_id is not None and each.answer is None:
                each.answer = self._answer(each.call_id, max(0.0, deadline - time.monotonic()))
                each.answered_at = self._link.answers.came(each.call_id)
                if isinstance(each.answer, Failure) and each.answer.kind is ErrorKind.NOT_HERE:
                    self._again(each, deadline)
        return [each.value for each in wanted]

    def _again(self, pending: Pending, deadline: float) -> None:
        """Its host no longer has the conversation (it closed and left, or moved): look it up
        again and send it once more, on its own."""
        queued: _Queued = pending.again
        pending.again, pending.answer, pending.call_id = None, None, None
        if queued.resolved is not None:
            self._link.forget(queued.resolved)
        again = Pipeline(self._link, self._ids)
        again._queued.append(queued)
        (sent,) = again.send()
        if sent.call_id is not None:
            sent.answer = self._answer(sent.call_id, max(0.0, deadline - time.monotonic()))
            sent.answered_at = self._link.answers.came(sent.call_id)
        if isinstance(sent.answer, Failure) and sent.answer.kind is ErrorKind.NOT_HERE:
            pending.answer = None
            pending.error = IllegalTransitionError(
                f"{pending.what} refused on conversation {queued.resolved}: it is closing"
            )

    def poll(self, timeout: float = 0.0) -> None:
        """Take in what has arrived (answers, pushed events for ``Gateway.pushed``), waiting up
        to ``timeout`` seconds for the first message."""
        link = self._link
        message = link.transport.listen(timeout)
        if message is not None:
            link.answers.take(message)
        link.take_messages()

    # ------------------------------------------------------------------ plumbing

    def _queue(
        self, what: str, conversation_id: str | None, session_id: str | None, role: str | None,
        build: Callable[[Any], tuple[str, Any]], *, then: Callable[[Any], Any] | None = None,
        customer: str | None = None,
    ) -> Pending:  # fmt: skip
        if conversation_id is not None:
            args.text("conversation_id", conversation_id, limit=MAX_ID)
        pending = Pending(what, then=then)
        self._queued.append(
            _Queued(pending, conversation_id, session_id, role, build, customer=customer)
        )
        return pending

    def _opened(self, value: Any) -> SessionRef:
        ref = SessionRef(**value)
        self._link.locations.put_session(ref.channel_session_id, ref.conversation_id)
        return ref

    def _answer(self, call_id: str, timeout: float) -> Answer:
        link = self._link
        if link.embedded:
            return link.answers.collect(call_id)

        def idle(started: float) -> Answer | None:
            problem = link.transport.problem(
                link.settings.system.bind, link.settings.system.admin_port
            )
            if problem is not None:
                raise link.gone(problem)
            return None

        try:
            return link.answers.wait(call_id, idle=idle, timeout=timeout)
        except TimeoutError as error:
            return Failure(call_id, ErrorKind.UNAVAILABLE, str(error))

    def _where(
        self, conversation_ids: Iterable[str], channel_session_ids: Iterable[str]
    ) -> dict[str, Location | Exception]:
        """Where each conversation and channel session is (by its id): from the location
        cache, or looked up in one batch; a refused lookup (no such id) is its error."""
        cache = self._link.locations
        where: dict[str, Location | Exception] = {}
        asked: list[tuple[str, Locate]] = []
        for session_id in dict.fromkeys(channel_session_ids):
            conversation_id = cache.conversation_of(session_id)
            host = cache.host(conversation_id) if conversation_id is not None else None
            if conversation_id is not None and host is not None:
                where[session_id] = Location(conversation_id, host, "")
            else:
                asked.append((session_id, Locate(session_id=session_id)))
        for conversation_id in dict.fromkeys(conversation_ids):
            host = cache.host(conversation_id)
            if host is not None:
                where[conversation_id] = Location(conversation_id, host, "")
            else:
                asked.append((conversation_id, Locate(conversation_id=conversation_id)))
        where.update(self._locate(asked))
        return where

    def _locate(self, asked: list[tuple[str, Locate]]) -> dict[str, Location | Exception]:
        found: dict[str, Location | Exception] = {}
        if not asked:
            return found
        link = self._link
        calls = [link.call_id() for _ in asked]
        delivers = tuple(
            Deliver("", request, ReplyTo(link.me, call_id))
            for (_, request), call_id in zip(asked, calls, strict=True)
        )
        link.transport.send(link.addresses.monitor, Batch(link.clock.now, delivers))
        for (key, request), call_id in zip(asked, calls, strict=True):
            answer = self._answer(call_id, LOOKUP_TIMEOUT_S)
            if isinstance(answer, Failure):
                found[key] = error_of(answer)
                continue
            location: Location = answer.value
            found[key] = location
            if request.session_id is not None:
                link.locations.put_session(request.session_id, location.conversation_id)
            if location.host is not None:
                link.locations.put_host(location.conversation_id, location.host)
            else:
                link.locations.closed(location.conversation_id)
        return found
