"""Where a gateway's live conversations are: host addresses and channel sessions, bounded.

A gateway sends each call straight to the host of the conversation it is about, so it keeps
the host's address after the first lookup; and it keeps which conversation each channel session
it has seen belongs to. Both are only worth keeping while the conversation is live: an entry
goes when the gateway learns that its conversation closed (a pushed ``TOPIC_STATE_CHANGED`` to
CLOSED, a lookup answering that it has no host, or its host refusing it), when its host dies
(every entry of that host), and in any case the least recently used entries go beyond
``limit`` conversations, so that a gateway that lives for months (``cx gateway``) holds at most
``limit`` entries whatever the traffic. A dropped entry costs one lookup at the TopicMonitor.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

#: Conversations whose places a gateway keeps (about 850 bytes each with their sessions).
LOCATION_CACHE_SIZE = 4096


class LocationCache:
    def __init__(self, limit: int = LOCATION_CACHE_SIZE) -> None:
        if limit < 1:
            raise ValueError(f"the location cache needs room for one conversation, got {limit}")
        self.limit = limit
        self._hosts: OrderedDict[str, Any] = OrderedDict()  # conversation id -> host address
        self._sessions: OrderedDict[str, str] = OrderedDict()  # session id -> conversation id
        self._of: dict[str, set[str]] = {}  # conversation id -> its sessions kept here

    def __len__(self) -> int:
        """Conversations with an entry (a host, or sessions, or both)."""
        return len(self._hosts.keys() | self._of.keys())

    def as_dict(self) -> dict[str, Any]:
        """Conversation id -> host address, as kept now."""
        return dict(self._hosts)

    def host(self, conversation_id: str) -> Any | None:
        host = self._hosts.get(conversation_id)
        if host is not None:
            self._hosts.move_to_end(conversation_id)
        return host

    def put_host(self, conversation_id: str, host: Any) -> None:
        self._hosts[conversation_id] = host
        self._hosts.move_to_end(conversation_id)
        self._bound()

    def conversation_of(self, session_id: str) -> str | None:
        conversation_id = self._sessions.get(session_id)
        if conversation_id is not None:
            self._sessions.move_to_end(session_id)
        return conversation_id

    def put_session(self, session_id: str, conversation_id: str) -> None:
        self._sessions[session_id] = conversation_id
        self._sessions.move_to_end(session_id)
        self._of.setdefault(conversation_id, set()).add(session_id)
        self._bound()

    def forget_host(self, conversation_id: str) -> None:
        """Its host is no longer known to be where it is (moved, or closed and left)."""
        self._hosts.pop(conversation_id, None)

    def closed(self, conversation_id: str) -> None:
        """It closed: nothing of it is worth keeping."""
        self._hosts.pop(conversation_id, None)
        for session_id in self._of.pop(conversation_id, ()):
            self._sessions.pop(session_id, None)

    def host_lost(self, address: Any) -> list[str]:
        """A host died: forget every conversation placed there. Returns them."""
        gone = [c for c, h in self._hosts.items() if h == address]
        for conversation_id in gone:
            del self._hosts[conversation_id]
        return gone

    def clear(self) -> None:
        self._hosts.clear()
        self._sessions.clear()
        self._of.clear()

    def _bound(self) -> None:
        while len(self._hosts) > self.limit:
            self._hosts.popitem(last=False)
        while len(self._of) > self.limit:
            session_id, conversation_id = self._sessions.popitem(last=False)
            sessions = self._of.get(conversation_id)
            if sessions is not None:
                sessions.discard(session_id)
                if not sessions:
                    del self._of[conversation_id]
