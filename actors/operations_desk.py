"""The TopicMonitor's part that carries out an operator's drain and reload.

**Drain** (``cx drain``): from then on the engine opens no new conversation. A session that
would open one is refused ``unavailable`` (by :class:`~actors.room_desk.RoomDesk`, naming the
drain); a session that joins its room's live conversation still joins, and everything a live
conversation does (messages, agents, timers, wrap-up, the archive) goes on until it is CLOSED
and archived. The drain is held here, so the actors of an engine the daemon restarts are not
draining; the daemon's health endpoint (:mod:`runtime.metrics_server`) drains them again once a
survey finds them not draining after one had found the engine draining, so a drain lasts until
the daemon stops (without the endpoint, ``cx drain`` again after a restart).

**Reload** (``cx reload``): the configuration read again is compared with the engine's
(:func:`infra.reload.changes_of`). A differing key that cannot change at run time refuses the
whole reload, naming the key, and nothing changes; otherwise the TopicMonitor keeps the new
settings (hosts and Routers it starts from now on get them) and sends
:class:`~actors.messages.Reload` to every actor that holds settings: the Routers, the
Archivists, the room desks, the conversation hosts and the AgentSupervisor (which passes it
on to the agent hosts). Receiving it twice is receiving it once.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import structlog

from actors.messages import DrainEngine, Reload, ReloadConfig, ReplyTo
from actors.recovery_desk import RecoveryDesk
from domain.errors import ErrorKind
from infra.reload import changes_of, reloaded

log = structlog.get_logger("cx.monitor")


class OperationsDesk(RecoveryDesk):
    def operation(self, payload: Any, reply_to: ReplyTo | None) -> bool:
        """Carry out a drain or reload request; False if ``payload`` is neither."""
        if isinstance(payload, DrainEngine):
            self._drain(payload, reply_to)
        elif isinstance(payload, ReloadConfig):
            self._reload_config(payload, reply_to)
        else:
            return False
        return True

    def _drain(self, request: DrainEngine, reply_to: ReplyTo | None) -> None:
        if request.start and not self.draining:
            self.draining = True
            log.info("engine_draining", live=len(self.live))
        self.reply(reply_to, {"draining": self.draining, "live": len(self.live)})

    def _reload_config(self, request: ReloadConfig, reply_to: ReplyTo | None) -> None:
        wiring = self.wired()
        changes = changes_of(wiring.settings, request.settings)
        refusal = changes.refusal()
        if refusal is not None:
            log.warning("config_reload_refused", keys=list(changes.fixed))
            self.refuse(reply_to, ErrorKind.BAD_ARGUMENT, refusal)
            return
        self.wiring = wiring = replace(wiring, settings=reloaded(wiring.settings, request.settings))
        reload = Reload(wiring.settings)
        for target in (
            *wiring.every_router(),
            wiring.agents,
            *self.archivists,
            *wiring.desks,
            *self.placement.addresses(),
        ):
            self.send(target, reload)
        if changes.reloadable:
            log.info("config_reloaded", keys=list(changes.reloadable))
        self.reply(reply_to, list(changes.reloadable))
