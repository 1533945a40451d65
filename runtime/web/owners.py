"""What the engine confirms for an access rule: whose channel a session is on, who takes part
in a conversation, who is a member of a room (:class:`~runtime.web.access.Need`).

A channel session's conversation and channel never change, so they are kept (bounded, the
oldest dropped first) once known: from ``start_session`` through this gateway, or read from the
conversation's snapshot. Participation is read from the snapshot each time it is needed (for a
read by an agent that takes no part, the offers the agent holds now), and a room's members from
the room each time.
"""

from __future__ import annotations

import collections
from typing import Any, Final

from actors.messages import AgentQuery
from domain.enums import Channel
from domain.errors import UnknownIdError
from runtime.aio import AsyncGateway
from runtime.gateway import Gateway
from runtime.web.access import Forbidden, Need
from runtime.web.tokens import Claims

__all__ = ["Owners"]

#: Channel sessions whose conversation and channel are kept at most.
MAX_SESSIONS: Final = 100_000


class Owners:
    def __init__(self, gateway: AsyncGateway, size: int = MAX_SESSIONS) -> None:
        self._gateway = gateway
        self._size = size
        self._sessions: collections.OrderedDict[str, tuple[str, Channel]] = (
            collections.OrderedDict()
        )

    def started(self, channel_session_id: str, conversation_id: str, channel: Channel) -> None:
        """A session this gateway started."""
        self._sessions[channel_session_id] = (conversation_id, channel)
        if len(self._sessions) > self._size:
            self._sessions.popitem(last=False)

    async def session(self, channel_session_id: str) -> tuple[str, Channel]:
        """The conversation and channel of a channel session (UnknownIdError if none)."""
        known = self._sessions.get(channel_session_id)
        if known is not None:
            return known

        def find(gateway: Gateway) -> tuple[str, Channel]:
            conversation_id = gateway.engine.conversation_of(channel_session_id)
            for each in gateway.conversation(conversation_id)["channel_sessions"]:
                if each["id"] == channel_session_id:
                    return conversation_id, Channel(each["channel"])
            raise UnknownIdError(f"no channel session {channel_session_id}")

        found = await self._gateway.run("session lookup", find)
        self.started(channel_session_id, *found)
        return found

    async def confirm(self, claims: Claims, need: Need) -> None:
        """Forbidden unless the engine confirms ``need`` for ``claims``."""
        if need.session_on_channels is not None:
            _, channel = await self.session(need.session_on_channels)
            if channel not in claims.channels:
                raise Forbidden(
                    f"channel session {need.session_on_channels} is not on a channel of"
                    f" {claims.role.value} {claims.subject!r}"
                )
        if need.conversation_on_channels is not None:
            snapshot = await self._gateway.conversation(need.conversation_on_channels)
            if not _on_channels(snapshot, claims):
                raise Forbidden(
                    f"conversation {need.conversation_on_channels} has no channel session on a"
                    f" channel of {claims.role.value} {claims.subject!r}"
                )
        if need.participant_in is not None:
            snapshot = await self._gateway.conversation(need.participant_in)
            taking_part = claims.subject in {p["id"] for p in snapshot["participants"]}
            if not taking_part and not (
                need.or_offered and need.participant_in in await self._offers(claims.subject)
            ):
                raise Forbidden(
                    f"{claims.role.value} {claims.subject!r} takes no part in conversation"
                    f" {need.participant_in}"
                )
        if need.member_of is not None:
            members = await self._gateway.call("room_members", room_id=need.member_of)
            if claims.subject not in members:
                raise Forbidden(
                    f"{claims.role.value} {claims.subject!r} is not a member of room"
                    f" {need.member_of}"
                )

    async def _offers(self, agent_id: str) -> dict[str, str]:
        """The conversations offered to the agent now (none when it is not logged in)."""

        def offers(gateway: Gateway) -> dict[str, str]:
            try:
                held: dict[str, Any] = gateway.engine.engine("agents", AgentQuery(agent_id))
            except UnknownIdError:
                return {}
            found: dict[str, str] = held["offers"]
            return found

        return await self._gateway.run("offer lookup", offers)


def _on_channels(snapshot: dict[str, Any], claims: Claims) -> bool:
    mine = {c.value for c in claims.channels}
    return any(each["channel"] in mine for each in snapshot["channel_sessions"])
