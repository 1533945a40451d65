"""Pushed events handed over in sequence order per subscription and conversation, with no gap.

The engine pushes each subscription's events of one conversation in seq order, but the actor
system's transport does not keep the order of two messages between the same pair of processes
(a send that is retried after a refused connection is overtaken by later ones), and it may give
one up. So the gateway puts them back in order here before anyone sees them:

- A channel session's events follow each other (seq n+1 after n) from the ``after_seq`` it was
  subscribed with, but where the session left out an event for the agents alone (a whisper):
  the next one names the seq pushed before it as ``previous``. An agent's desk gets only the
  events of conversations the agent is in, so each event it is pushed names the seq of the
  previous one pushed to it for that conversation (``previous``; 0 when it is the first, or the
  agent's entity forgot the conversation).
- An event that follows the last one handed over is handed over, with any held ones that follow
  it; one already handed over (at or below the last) is dropped; any other is held.
- Held events older than ``gap_wait_s`` are a gap: :meth:`PushOrder.gaps` names it, the gateway
  reads the missing events (``events(after_seq)``) and :meth:`PushOrder.fill` hands them over,
  then the held ones. Nothing is skipped.

Pure bookkeeping: no IO, time is passed in.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from domain.sequence import BEFORE_FIRST, previous_seq
from runtime.gateway_types import PushedEvent

#: How long an event waits for the one before it before that one is read from the conversation.
GAP_WAIT_S = 0.25
#: Streams (subscription, conversation) kept; the least recently used with nothing held go first.
MAX_STREAMS = 10_000

Key = tuple[str, str]  # (subscription, conversation id)


@dataclass(slots=True)
class _Stream:
    last: int | None  # seq of the last event handed over (None: not known yet)
    held: dict[int, tuple[int, PushedEvent]] = field(
        default_factory=dict
    )  # seq -> (previous, event)
    since: float | None = None  # when the oldest held event came


@dataclass(frozen=True, slots=True)
class Gap:
    subscription: str
    conversation_id: str
    after_seq: int  # the last seq handed over
    through_seq: int  # the previous of the first held event: what is missing is (after, through]

    @property
    def missing(self) -> bool:
        return self.through_seq > self.after_seq


class PushOrder:
    def __init__(self, gap_wait_s: float = GAP_WAIT_S, max_streams: int = MAX_STREAMS) -> None:
        self.gap_wait_s = gap_wait_s
        self.max_streams = max_streams
        self._streams: OrderedDict[Key, _Stream] = OrderedDict()
        self._waiting: set[Key] = set()  # streams holding events

    def __len__(self) -> int:
        return len(self._streams)

    def held(self) -> int:
        return sum(len(self._streams[k].held) for k in self._waiting)

    def waiting(self) -> bool:
        """Are events held, waiting for the ones before them?"""
        return bool(self._waiting)

    def start(self, subscription: str, conversation_id: str, after_seq: int) -> None:
        """A channel session subscribed from ``after_seq``: its replay starts after it (events
        already held that follow it are handed over when it comes)."""
        stream = self._streams.get((subscription, conversation_id))
        if stream is None:
            self._streams[(subscription, conversation_id)] = _Stream(after_seq)
            self._bound()
        else:
            stream.last = after_seq
            for seq in [s for s in stream.held if s <= after_seq]:
                del stream.held[seq]

    def last(self, subscription: str, conversation_id: str) -> int | None:
        """The seq of the last event handed over (None: not known)."""
        stream = self._streams.get((subscription, conversation_id))
        return None if stream is None else stream.last

    def stop(self, subscription: str) -> None:
        """The subscription ended (or starts afresh): forget its streams."""
        for key in [k for k in self._streams if k[0] == subscription]:
            del self._streams[key]
            self._waiting.discard(key)

    def closed(self, conversation_id: str) -> None:
        for key in [k for k, s in self._streams.items() if k[1] == conversation_id and not s.held]:
            del self._streams[key]

    def add(self, pushed: PushedEvent, previous: int | None, now: float) -> list[PushedEvent]:
        """Take one pushed event (``previous``: None for a channel session's, seq - 1); return
        what can be handed over now, in order."""
        seq = pushed.event.get("seq")
        if not isinstance(seq, int):
            return [pushed]
        before = previous_seq(seq) if previous is None else previous
        key = (pushed.subscription, pushed.conversation_id)
        stream = self._streams.get(key)
        if stream is None:
            stream = self._streams[key] = _Stream(None)
            self._bound()
        else:
            self._streams.move_to_end(key)
        if stream.last is not None and seq <= stream.last:
            return []  # handed over already
        if before == BEFORE_FIRST or (before <= stream.last if stream.last is not None else previous is None):
            stream.last = seq
            return [pushed, *self._release(key, stream, now)]
        if seq not in stream.held:
            stream.held[seq] = (before, pushed)
            self._waiting.add(key)
            if stream.since is None:
                stream.since = now
        return []

    def gaps(self, now: float) -> list[Gap]:
        """Streams whose held events have waited ``gap_wait_s`` for the one before them."""
        found = []
        for subscription, conversation_id in sorted(self._waiting):
            stream = self._streams[(subscription, conversation_id)]
            if stream.since is not None and now - stream.since >= self.gap_wait_s:
                stream.since = now  # if it cannot be read now: again after another wait
                through = stream.held[min(stream.held)][0]
                if stream.last is None:  # where it started is not known: start at the first held
                    stream.last = through
                found.append(Gap(subscription, conversation_id, stream.last, through))
        return found

    def fill(self, gap: Gap, events: list[dict[str, Any]], now: float) -> list[PushedEvent]:
        """The conversation's events after ``gap.after_seq`` (as ``events`` returns them): hand
        over the missing ones, then every held one that follows."""
        stream = self._streams.get((gap.subscription, gap.conversation_id))
        if stream is None or stream.last is None or stream.last != gap.after_seq:
            return []  # it moved on meanwhile
        last = stream.last
        out = []
        for event in events:
            seq = event.get("seq")
            if isinstance(seq, int) and last < seq <= gap.through_seq:
                out.append(PushedEvent(gap.subscription, gap.conversation_id, event))
                last = seq
                stream.held.pop(seq, None)
        stream.last = last = max(last, gap.through_seq)  # what is missing is not there to read
        for seq in [s for s in stream.held if s <= last]:
            del stream.held[seq]
        return out + self._release((gap.subscription, gap.conversation_id), stream, now)

    def _release(self, key: Key, stream: _Stream, now: float) -> list[PushedEvent]:
        out = []
        while stream.held:  # the next in order is the lowest held: ready once its previous is
            nxt = min(stream.held)
            if stream.last is not None and nxt <= stream.last:
                del stream.held[nxt]  # overtaken: a fresh start came after it
                continue
            if stream.last is None or stream.held[nxt][0] > stream.last:
                break
            _, pushed = stream.held.pop(nxt)
            stream.last = nxt
            out.append(pushed)
        if stream.held:
            stream.since = now
        else:
            stream.since = None
            self._waiting.discard(key)
        return out

    def _bound(self) -> None:
        if len(self._streams) <= self.max_streams:
            return
        for key in [k for k, s in self._streams.items() if not s.held]:
            del self._streams[key]
            if len(self._streams) <= self.max_streams:
                return
