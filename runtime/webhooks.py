"""Webhooks: conversation events POSTed to the URLs of ``webhooks:``, signed, at least once,
in sequence order per conversation, while the conversation is live and after it closes.

Where the events come from. An event leaves only once it is durable: a conversation host
journals what a command did before anything of it leaves the host, so the events a live
conversation answers with (``Gateway.events``) are journaled, and once the conversation
closes they are in the archive. A :class:`WebhookDispatcher` follows both:

- **live**: each look (:class:`LiveLook`) lists the engine's live conversations with their
  latest sequence number (``Gateway.conversations``); of each one with events after the
  webhook's cursor, it reads those (``Gateway.events(after_seq=...)``) and delivers them;
- **archived**: then it reads the archive for what closed meanwhile, late activities, and
  everything while the engine does not answer.

Both move one durable cursor per webhook and conversation, the last sequence number delivered
(``webhook_cursors``, :mod:`infra.archive_upkeep`), so each event is sent by whichever path
sees it first and never again by the other, a restart resumes where delivery stopped, and a
receiver that is down loses nothing: its events wait in the engine's journal and then in the
archive.

One POST per event; the body is JSON::

    {"webhook": "crm", "conversation_id": "...", "room_id": "...", "seq": 7,
     "event": {"seq": 7, "name": "CUSTOMER_MESSAGE", "timestamp": "...", ...}}

with the headers ``Content-Type: application/json``, ``X-Cx-Conversation``, ``X-Cx-Seq`` (the
receiver de-duplicates on the pair) and ``X-Cx-Signature: t=<ms>,v1=<hex>``: HMAC-SHA256 with
the webhook's secret over ``"<ms>." + body`` (:func:`sign`, checked by :func:`verify`).

A 2xx answer acknowledges the event and moves the cursor past it; anything else (another
status, a refused connection, a timeout) is a failure: the webhook waits ``backoff_seconds``,
doubled at each consecutive failure up to ``max_backoff_seconds``, then retries the same event.
Events of one conversation therefore arrive in order; a receiver may see an event twice (a
crash between its answer and the cursor's write), never a gap.

Each look at the archive reads only the conversations written (``conversations.touched``)
since a few minutes before the last look that found nothing left, so its cost follows the rate
of closings, not the size of the archive (the first look after a start reads them all once).

Filters: ``events`` names the events delivered (none: every one), and the events marked for
the agents and supervisors alone (``data.audience`` ``AGENTS``: whispers, a supervisor's read
receipts, :func:`domain.events.for_customer`) are left out unless ``include_agent_only``. An
event passed over moves the cursor as if it had been delivered.

Bound: when more than ``max_backlog`` archived conversations wait for one webhook, the oldest
are passed over (their cursors moved to their end, ``webhooks.skipped`` counting them) and a
``webhook_backlog_over_bound`` warning names how many: the archive still holds them, for
``cx export``. Live conversations are not counted: the engine keeps their events anyway.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from actors.snapshots import event_dict
from domain.records import Event
from infra.archive_rows import json_default
from infra.archive_store import ArchiveStore
from infra.config.webhooks import WebhookSettings
from infra.logs import get_logger
from runtime.gateway_types import UnknownIdError

log = get_logger("cx.webhooks")

#: Conversations read from the archive per step.
BATCH = 100
#: Milliseconds between two looks at the archive when nothing is waiting.
POLL_MS = 1000
#: How far before the latest write a look goes back (a transaction stamped earlier may commit
#: later); the cursors make looking at a conversation again harmless.
RESCAN_MS = 300_000
SIGNATURE_HEADER = "X-Cx-Signature"

#: ``post(url, body, headers, timeout_seconds)`` -> the HTTP status; raises OSError when no
#: answer came (refused, reset, timed out).
Post = Callable[[str, bytes, Mapping[str, str], float], int]


def sign(secret: str, timestamp_ms: int, body: bytes) -> str:
    """The ``X-Cx-Signature`` value of ``body`` sent at ``timestamp_ms``."""
    mac = hmac.new(secret.encode(), f"{timestamp_ms}.".encode() + body, hashlib.sha256)
    return f"t={timestamp_ms},v1={mac.hexdigest()}"


def verify(secret: str, header: str, body: bytes) -> bool:
    """Whether ``header`` is a valid signature of ``body`` with ``secret`` (what a receiver
    checks; it should also refuse a ``t`` too far from its own clock, against replays)."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    return hmac.compare_digest(
        sign(secret, timestamp, body), f"t={timestamp},v1={fields.get('v1', '')}"
    )


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer, not a delivery: following it would turn the POST into a GET
    without the body, and its 200 would count the event as delivered."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def post_http(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> int:
    """POST with the standard library; the status, also of an error answer (a redirect's
    too: it is not followed, and fails the delivery)."""
    request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")
    try:
        # The URL's scheme is http or https: infra.config.webhooks checked it.
        with _OPENER.open(request, timeout=timeout) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except urllib.error.URLError as error:
        raise OSError(str(error.reason)) from error


class LiveSource(Protocol):
    """What delivery needs of the engine (a :class:`~runtime.gateway.Gateway`)."""

    def conversations(self, *, limit: int = ...) -> list[dict[str, Any]]: ...
    def events(self, conversation_id: str, *, after_seq: int = 0) -> list[dict[str, Any]]: ...
    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class LiveLook:
    """One look at the engine: its live conversations (``Gateway.conversations()``: ``id``,
    ``room_id``, ``events``, the latest sequence number) and where to read their events."""

    conversations: Sequence[Mapping[str, Any]]
    source: LiveSource


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One event to deliver: its conversation, room and the event as ``cx send events`` shows
    it."""

    conversation_id: str
    room_id: str
    event: Mapping[str, Any]

    @classmethod
    def archived(cls, event: Event) -> Outgoing:
        return cls(event.conversation_id, event.room_id, event_dict(event))

    @property
    def seq(self) -> int:
        return int(self.event["seq"])

    @property
    def name(self) -> str:
        return str(self.event["name"])


def body_of(webhook: str, outgoing: Outgoing) -> bytes:
    document = {
        "webhook": webhook,
        "conversation_id": outgoing.conversation_id,
        "room_id": outgoing.room_id,
        "seq": outgoing.seq,
        "event": outgoing.event,
    }
    return json.dumps(document, ensure_ascii=False, default=json_default).encode()


class WebhookDispatcher:
    """Delivers one webhook's events, of live conversations and from ``archive``; :meth:`step`
    does what is due at ``now_ms`` and says when to call it again (the caller owns the
    clock)."""

    def __init__(self, archive: ArchiveStore, webhook: WebhookSettings, *, post: Post = post_http):
        self._archive, self.webhook, self._post = archive, webhook, post
        #: Where it posts, as the logs name it: the URL's host (its path, query and user
        #: information may hold credentials).
        self.host = urlsplit(webhook.url).hostname or "?"
        self._since: int | None = None
        # Conversations written before this were all delivered: only later ones are looked at.
        self._touched_from = 0
        self._retry_at = 0
        # The cursors of the live conversations of the last look (read once from the archive).
        self._live: dict[str, int] = {}
        #: Consecutive failed POSTs (0 while the receiver answers).
        self.failures = 0
        #: POSTs tried and events acknowledged by this dispatcher since it started.
        self.attempts = 0
        self.delivered = 0

    @property
    def skipped(self) -> int:
        """Conversations passed over because the backlog was over its bound (durable)."""
        return self._archive.webhook_skipped(self.webhook.name)

    def step(self, now_ms: int, live: LiveLook | None = None) -> int:
        """Deliver what waits, unless a retry is not due yet: the events of ``live``
        conversations first, then the archive's; milliseconds until the next step is due.
        UnavailableError when the engine stops answering (the caller looks at it again
        later)."""
        if now_ms < self._retry_at:
            return self._retry_at - now_ms
        if live is not None and not self._follow(live, now_ms):
            return self._retry_at - now_ms
        name = self.webhook.name
        if self._since is None:
            self._since = self._archive.webhook_since(name, now_ms)
        top = self._archive.last_touched()
        self._bound(self._since)
        pending = self._archive.webhook_pending(
            name, self._since, BATCH, touched_from=self._touched_from
        )
        for conversation in pending:
            for event in self._archive.events(conversation.conversation_id, conversation.delivered):
                if not self._deliver(Outgoing.archived(event), now_ms):
                    return self._retry_at - now_ms
            self._advance(conversation.conversation_id, conversation.seq)
        if len(pending) == BATCH:
            return 0
        # Everything written up to ``top`` is delivered, but a write stamped before ``top``
        # may commit after this look: the next looks go back RESCAN_MS before it.
        self._touched_from = max(self._touched_from, top - RESCAN_MS)
        return POLL_MS

    def _follow(self, live: LiveLook, now_ms: int) -> bool:
        """Deliver the events of the live conversations after their cursors; False when a
        POST failed (the same event is retried first)."""
        name = self.webhook.name
        listed = {str(c["id"]): c for c in live.conversations}
        unknown = [c for c in listed if c not in self._live]
        known = self._archive.webhook_delivered(name, unknown) if unknown else {}
        self._live = {c: self._live[c] if c in self._live else known[c] for c in listed}
        for conversation_id, conversation in listed.items():
            delivered = self._live[conversation_id]
            if int(conversation["events"]) <= delivered:
                continue
            try:
                events = live.source.events(conversation_id, after_seq=delivered)
            except UnknownIdError:  # gone meanwhile (forgotten): nothing left to deliver
                continue
            room_id = str(conversation["room_id"])
            for event in events:
                if not self._deliver(Outgoing(conversation_id, room_id, event), now_ms):
                    return False
            if events and not self._wanted(Outgoing(conversation_id, room_id, events[-1])):
                self._advance(conversation_id, int(events[-1]["seq"]))  # passed over: done
        return True

    def _wanted(self, outgoing: Outgoing) -> bool:
        return self.webhook.delivers(outgoing.name, outgoing.event.get("data") or {})

    def _deliver(self, outgoing: Outgoing, now_ms: int) -> bool:
        """Send one event (unless the filters pass it over) and move the cursor past it."""
        if self._wanted(outgoing):
            if not self._send(outgoing, now_ms):
                return False
            self._advance(outgoing.conversation_id, outgoing.seq)
        return True

    def _advance(self, conversation_id: str, seq: int) -> None:
        """Move the durable cursor (never back), and the live one with it."""
        self._archive.webhook_advance(self.webhook.name, conversation_id, seq)
        if self._live.get(conversation_id, seq) < seq:
            self._live[conversation_id] = seq

    def _send(self, event: Outgoing, now_ms: int) -> bool:
        body = body_of(self.webhook.name, event)
        headers = {
            "Content-Type": "application/json",
            "X-Cx-Conversation": event.conversation_id,
            "X-Cx-Seq": str(event.seq),
            SIGNATURE_HEADER: sign(self.webhook.secret, now_ms, body),
        }
        self.attempts += 1
        try:
            status = self._post(self.webhook.url, body, headers, self.webhook.timeout_seconds)
            problem = None if 200 <= status < 300 else f"HTTP {status}"
        except OSError as error:
            problem = str(error) or type(error).__name__
        if problem is None:
            self.failures = 0
            self.delivered += 1
            return True
        self.failures += 1
        wait = min(
            self.webhook.backoff_seconds * 2 ** (self.failures - 1),
            self.webhook.max_backoff_seconds,
        )
        self._retry_at = now_ms + round(wait * 1000)
        log.warning(
            "webhook_delivery_failed", webhook=self.webhook.name, host=self.host,
            conversation_id=event.conversation_id, seq=event.seq, problem=problem,
            failures=self.failures, retry_in_s=wait,
        )  # fmt: skip
        return False

    def _bound(self, since: int) -> None:
        name = self.webhook.name
        touched_from = self._touched_from
        over = self._archive.webhook_backlog(name, since, touched_from=touched_from)
        over -= self.webhook.max_backlog
        if over <= 0:
            return
        passed = self._archive.webhook_pending(name, since, over, touched_from=touched_from)
        self._archive.webhook_skip(name, passed)
        log.warning(
            "webhook_backlog_over_bound", webhook=name, max_backlog=self.webhook.max_backlog,
            skipped=len(passed), skipped_total=self.skipped,
            conversation_id=passed[0].conversation_id if passed else None,
        )  # fmt: skip
