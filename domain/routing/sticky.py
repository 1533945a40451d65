"""The sticky agent's memory: which agent took each room's latest routed request.

A room's entry is its conversation and the agent who accepted that conversation's latest
request routed for the customer (not a consult); only the ``limit`` rooms seen last are kept.
"""

from __future__ import annotations

__all__ = ["RoomAgents"]


class RoomAgents:
    def __init__(self) -> None:
        self._rooms: dict[str, tuple[str, str]] = {}  # room -> (conversation, agent), LRU

    def remember(self, room: str, conversation_id: str, agent_id: str, limit: int) -> None:
        self._rooms.pop(room, None)
        self._rooms[room] = (conversation_id, agent_id)
        while len(self._rooms) > max(limit, 0):
            del self._rooms[next(iter(self._rooms))]

    def last_agent(self, room: str, conversation_id: str) -> str | None:
        """The agent of the room's last conversation, if that is another one than
        ``conversation_id`` (a returning customer); else None."""
        last = self._rooms.get(room)
        if last is None or last[0] == conversation_id:
            return None
        return last[1]
