"""A Host is the Thespian actor that runs many entities: conversations, channel sessions, agents.

Entities are actors in the full sense (own address, private state, one message at a time, only
messages in and out) but they are *hosted*: a host process runs as many as
``placement.per_host`` allows. Messages between entities of one host go through the host's local
mailbox and never leave the process; messages to other actors leave as one batch per
destination when the current Thespian message is done.

Each host keeps one heap of alarms for all its entities (see :mod:`actors.timed`).
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Hashable
from dataclasses import replace
from typing import Any

import structlog

from actors.agent import AgentEntity
from actors.base import failure_of
from actors.bot import HostedBot, load_bot
from actors.channel_session import ChannelSessionEntity
from actors.context import Entity
from actors.conversation import ConversationEntity
from actors.durability import PROBE_KEY, Durability, Item
from actors.inventory import live_conversations
from actors.lifecycle_log import log_published
from actors.messages import (
    AgentLogin,
    AgentsLost,
    Alarm,
    Apply,
    ArchivistsMoved,
    Bounced,
    Deliver,
    Failure,
    HostInit,
    JoinSession,
    OpenConversation,
    Ref,
    Reload,
    Reply,
    ReplyTo,
    Reroute,
    RestoreConversation,
    Restored,
)
from actors.messages.survey import ListConversations
from actors.nodes import fits
from actors.restore import Rebuilt, rebuild
from actors.timed import TimedActor
from domain.commands import Command
from domain.conversation import ConversationMachine
from domain.effects import Effect, TellBot
from domain.errors import ErrorKind, Refused
from domain.ids import EntityKind, conversation_entity_id, conversation_id_of, entity_kind
from domain.policy import Policy
from domain.records import Event
from infra.codec import CodecError
from infra.journal_records import Record, command_record, conversation_of, open_record
from infra.journal_store import Journal, open_journal
from infra.policies import conversation_policy

log = structlog.get_logger("cx.host")


class Host(TimedActor):
    # Placed on a named node by requirements (actors.nodes.node_requirements).
    actorSystemCapabilityCheck = staticmethod(fits)  # noqa: N815 (Thespian's name)

    def __init__(self) -> None:
        super().__init__()
        self.host_id = ""
        self.kind = ""
        self.entities: dict[str, Entity] = {}
        self._mailbox: deque[Item] = deque()
        self._journal: Journal | None = None
        self._durability: Durability | None = None  # conversation hosts: see actors.durability
        self._draining = False
        self._cached_policy: Policy | None = None
        self._bot: HostedBot | None = None  # built on first use, once per host
        # the alarm keys each entity armed: removing an entity disarms its own keys instead of
        # scanning every live alarm of the host (100,000 conversations make that slow)
        self._armed: dict[str, set[Hashable]] = {}
        self._events: Counter[str] = Counter()  # events published here, by name (the metrics)
        self._unsent: list[Event] = []  # those of the message being handled

    # HostContext ------------------------------------------------------------------

    def ref(self, entity_id: str) -> Ref:
        return Ref(self.myAddress, entity_id)

    def post(self, target: Ref, payload: Any, reply_to: ReplyTo | None = None) -> None:
        if target.address == self.myAddress:
            self.local(target.entity, payload, reply_to)
        else:
            super().post(target, payload, reply_to)

    def local(self, entity_id: str, payload: Any, reply_to: ReplyTo | None = None) -> None:
        self._mailbox.append((entity_id, payload, reply_to))

    def arm(self, entity_id: str, key: Hashable, token: int, at: int, percent: int) -> None:
        self.alarms.arm((entity_id, key), token, at, Alarm(key, token, percent))
        armed = self._armed.get(entity_id)
        if armed is None:
            self._armed[entity_id] = {key}
        else:
            armed.add(key)

    def disarm(self, entity_id: str, key: Hashable) -> None:
        self.alarms.disarm((entity_id, key))
        armed = self._armed.get(entity_id)
        if armed is not None:
            armed.discard(key)
            if not armed:
                del self._armed[entity_id]

    def armed_keys(self, entity_id: str) -> frozenset[Hashable]:
        """The keys of the alarms an entity has armed and not disarmed (for inspection)."""
        return frozenset(self._armed.get(entity_id, ()))

    def spawn(self, entity: Entity) -> None:
        self.entities[entity.id] = entity

    def remove(self, entity_id: str) -> None:
        self.entities.pop(entity_id, None)
        for key in self._armed.pop(entity_id, ()):
            self.alarms.disarm((entity_id, key))

    def has(self, entity_id: str) -> bool:
        return entity_id in self.entities

    @property
    def journal_holds_events(self) -> bool:  # else conversations keep all their events
        return self._journal is None or self._journal.holds_events

    def journal_records(self, conversation_id: str) -> list[dict[str, Any]]:
        return [] if self._journal is None else self._journal.records_of(conversation_id)

    def journal(self, conversation_id: str, record: dict[str, Any]) -> None:
        if self._journal is not None:
            self._journal.add(conversation_id, record)

    def journal_command(self, cid: str, command: Command, now: int, effects: list[Effect]) -> None:
        """Not even encoded for a journal that keeps nothing (``storage.memory``)."""
        if self._journal is not None and self._journal.holds_events:
            self._journal.add(cid, command_record(cid, command, now, effects))

    def forget_journal(self, conversation_id: str) -> None:
        if self._journal is not None:
            self._journal.forget(conversation_id)

    def tell_bot(self, entity_id: str, told: TellBot) -> None:
        """The bot's answer to a conversation of this host, computed here and handed back
        through the local mailbox: the bot's commands follow the command that caused them."""
        if self._bot is None:
            self._bot = HostedBot(load_bot(self.wired().settings))
        for command in self._bot.answer(told):
            self.local(entity_id, Apply(command))

    def count_events(self, events: list[Event]) -> None:
        self._unsent.extend(events)  # counted and logged once journaled (before_send)

    def figures(self) -> dict[str, Any]:
        """Events published by this host's conversations (by name) and its journal writes."""
        durability = self._durability
        return {
            "events": dict(self._events),
            "journal": None if durability is None else durability.tally.as_dict(),
        }

    # journal durability ----------------------------------------------------------------

    def before_send(self) -> None:
        # Records reach the file before any reply or message leaves this host.
        if self._durability is not None:
            self._durability.flush()
            if self._durability.failing:  # this message was undone: its events never left
                self._unsent.clear()
        for event in self._unsent:
            self._events[event.name] += 1
            log_published(event)
        self._unsent.clear()

    def on_tick(self) -> None:
        if self._durability is not None:
            self._durability.tick()

    def wakeup_hint_ms(self) -> int | None:
        return self._durability.hint_ms() if self._durability is not None else None

    def on_exit(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None
            self._durability = None

    def conversation_of(self, entity_id: str) -> str | None:
        """The conversation an entity of this host belongs to (None for an agent)."""
        if entity_kind(entity_id) is EntityKind.CONVERSATION:
            return conversation_id_of(entity_id)
        session = self.entities.get(entity_id)
        if isinstance(session, ChannelSessionEntity):
            return conversation_id_of(session.conversation_entity)
        return None

    def evict(self, conversation_id: str) -> tuple[Entity | None, list[Entity]]:
        """Take a conversation and its channel sessions off this host (their alarms too)."""
        entity_id = conversation_entity_id(conversation_id)
        conversation = self.entities.get(entity_id)
        sessions: list[Entity] = [
            e
            for e in self.entities.values()
            if isinstance(e, ChannelSessionEntity) and e.conversation_entity == entity_id
        ]
        gone = {e.id for e in [conversation, *sessions] if e is not None}
        for entity_id in gone:
            self.remove(entity_id)
        # It may come back with the same timers and tokens: no old entry may fire for it.
        self.alarms.purge(lambda key: isinstance(key, tuple) and key[0] in gone)
        return conversation, sessions

    def enqueue(self, items: list[Item]) -> None:
        self._mailbox.extend(items)
        self._drain()

    # Thespian side -------------------------------------------------------------------

    def on_message(self, message: Any, sender: Any) -> None:
        if isinstance(message, HostInit):
            self.host_id, self.kind = message.host_id, message.kind
            self.wire(message.wiring)
            self.advance_clock(message.now)
            if message.kind == "conversations":
                self._journal = open_journal(message.wiring.settings.storage, message.host_id)
                self._durability = Durability(self, self._journal)
            self.replay_early()
        elif isinstance(message, ListConversations):
            now = max(self.now(), message.now)
            found = live_conversations(self.entities.values(), message.where, now)
            self.send(sender, Reply(message.call_id, found))
        elif isinstance(message, AgentsLost):
            for entity_id in list(self.entities):
                self._mailbox.append((entity_id, message, None))
            self._drain()
        elif isinstance(message, ArchivistsMoved):
            self.wiring = replace(self.wired(), archivists=message.archivists)
            for entity_id in self.entities:
                if entity_kind(entity_id) is EntityKind.CONVERSATION:
                    self._mailbox.append((entity_id, message, None))
            self._drain()
        else:
            super().on_message(message, sender)

    def on_rewired(self, reroute: bool) -> None:
        super().on_rewired(reroute)
        if reroute:
            for entity_id in list(self.entities):
                self._mailbox.append((entity_id, Reroute(), None))
            self._drain()

    def on_reload(self, message: Reload) -> None:
        # New conversations get the new policy; the bot answers with the new script from its
        # next answer on. Live conversations keep the policy they were opened (and journaled) with.
        self._cached_policy = None
        self._bot = None

    def on_deliver(self, item: Deliver, sender: Any) -> None:
        self._mailbox.append((item.entity, item.payload, item.reply_to))
        self._drain()

    # internals --------------------------------------------------------------------

    def _drain(self) -> None:
        if self._draining:  # an entity posted locally: the running loop will get to it
            return
        self._draining = True
        try:
            durability = self._durability
            handled = durability.handled if durability is not None else None
            while self._mailbox:
                item = self._mailbox.popleft()
                if durability is not None and handled is not None:  # see actors.durability
                    if durability.journal.failure is not None and not durability.admit(item):
                        continue
                    handled.append(item)
                entity_id, payload, reply_to = item
                entity = self.entities.get(entity_id)
                if entity is None:
                    if not self._create(entity_id, payload, reply_to):
                        self._not_here(entity_id, payload, reply_to)
                    continue
                try:
                    entity.receive(payload, reply_to, self)
                except Exception as error:
                    log.exception(
                        "entity_failed",
                        host=self.host_id,
                        entity=entity_id,
                        payload=type(payload).__name__,
                    )
                    if reply_to is not None:
                        self.fail(
                            reply_to,
                            Failure(
                                reply_to.call_id, ErrorKind.INTERNAL, f"internal error: {error!r}"
                            ),
                        )
        finally:
            self._draining = False

    def _create(self, entity_id: str, payload: Any, reply_to: ReplyTo | None) -> bool:
        """Entities come into being by their first message; False if this is not one."""
        if isinstance(payload, OpenConversation):
            first, now = payload.first, self.now()  # one instant: the journal replays it
            try:
                machine, effects = ConversationMachine.open(
                    conversation_id=payload.conversation_id,
                    room_id=payload.room_id,
                    customer_id=payload.customer_id,
                    first=first,
                    policy=replace(self._policy(), advisors=payload.advisors),
                    now=now,
                    direction=payload.direction,
                )
            except Refused as refusal:
                if reply_to is not None:
                    self.fail(reply_to, failure_of(reply_to.call_id, refusal))
                return True
            conversation = ConversationEntity(machine, bounded=self.journal_holds_events)
            self.spawn(conversation)
            self.spawn(ChannelSessionEntity(first.session_id, machine.id))
            self.journal(machine.id, open_record(machine, first, now))
            conversation.perform(effects, self)
            self.reply(reply_to, conversation.session_ref(first))
            return True
        if isinstance(payload, RestoreConversation):
            self._restore(payload)
            return True
        if isinstance(payload, AgentLogin):
            self.spawn(AgentEntity(payload.agent_id, payload.queues, payload.max_conversations))
            log.info("agent_logged_in", agent_id=payload.agent_id, queues=list(payload.queues))
            self.reply(reply_to, None)
            return True
        return False

    def _restore(self, payload: RestoreConversation) -> None:
        """Rebuild a conversation from journal records (after a restart or a host crash)."""
        conversation_id = conversation_of(payload.opened)
        try:
            rebuilt = self.reinstate(payload.opened, list(payload.commands), journal_again=True)
        except (CodecError, KeyError, TypeError, ValueError) as error:
            log.error("restore_failed", conversation_id=conversation_id, error=str(error))
            self.post(
                Ref(self.wired().monitor, ""), Restored(conversation_id, False, (str(error),))
            )
            return
        self.post(
            Ref(self.wired().monitor, ""), Restored(conversation_id, True, tuple(rebuilt.problems))
        )

    def reinstate(
        self,
        opened: Record,
        commands: list[Record],
        *,
        journal_again: bool,
        previous: tuple[Entity | None, list[Entity]] | None = None,
    ) -> Rebuilt:
        """Put a conversation on this host as its journal records have it, and resume it.
        ``journal_again``: the records come from elsewhere (this host's journal must hold the
        whole history); ``previous``: the entities it replaces here, whose subscribers it keeps."""
        conversation_id = conversation_of(opened)
        rebuilt = rebuild(opened, commands)
        if journal_again:
            for record in rebuilt.records:
                self.journal(conversation_id, record)
        conversation = ConversationEntity(
            rebuilt.machine, rebuilt.log, bounded=self.journal_holds_events
        )
        self.spawn(conversation)
        old_sessions: dict[str, ChannelSessionEntity] = {}
        if previous is not None:
            old_conversation, sessions = previous
            if isinstance(old_conversation, ConversationEntity):
                subscribed = set(rebuilt.machine.subscribed_agents())
                conversation.agents = {
                    a: ref for a, ref in old_conversation.agents.items() if a in subscribed
                }
            old_sessions = {s.id: s for s in sessions if isinstance(s, ChannelSessionEntity)}
        for session_id in rebuilt.machine.session_ids():
            session = ChannelSessionEntity(session_id, conversation_id)
            session.remember(rebuilt.log)
            old = old_sessions.get(session.id)
            if old is not None:
                session.subscriber, session.subscription = old.subscriber, old.subscription
            self.spawn(session)
        conversation.resume(self)
        for problem in rebuilt.problems:
            log.warning("restore_problem", conversation_id=conversation_id, problem=problem)
        log.info(
            "conversation_restored",
            conversation_id=conversation_id,
            state=rebuilt.machine.state,
            seq=rebuilt.machine.seq,
            host=self.host_id,
        )
        return rebuilt

    def _policy(self) -> Policy:
        if self._cached_policy is None:
            self._cached_policy = conversation_policy(self.wired().settings)
        return self._cached_policy

    def _not_here(self, entity_id: str, payload: Any, reply_to: ReplyTo | None) -> None:
        if isinstance(payload, JoinSession):
            # The conversation closed and left: the TopicMonitor must open a new one.
            conversation_id = conversation_id_of(entity_id)
            self.post(
                Ref(self.wired().monitor, ""), Bounced(payload.origin, conversation_id), reply_to
            )
            return
        if isinstance(payload, Alarm):
            return
        log.debug(
            "no_such_entity", host=self.host_id, entity=entity_id, payload=type(payload).__name__
        )
        if reply_to is not None:
            self.fail(
                reply_to,
                Failure(reply_to.call_id, ErrorKind.NOT_HERE, f"{entity_id} is not on this host"),
            )

    def on_alarm(self, key: Hashable, payload: Any) -> None:
        assert isinstance(key, tuple) and isinstance(payload, Alarm)
        if key == PROBE_KEY:
            if self._durability is not None:
                self._durability.probe()
            return
        entity_id = key[0]
        if payload.percent >= 100:
            self.disarm(entity_id, key[1])  # an expiry is the last alarm of its timer
        self._mailbox.append((entity_id, payload, None))
        self._drain()
