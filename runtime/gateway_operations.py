"""What an operator asks of a running engine through a gateway: a drain and a reload of its
configuration. The part of :class:`runtime.gateway.Gateway`'s public API that
``cx drain`` and ``cx reload`` (and the network gateway's operations of the same names) use;
the engine's side is :mod:`actors.operations_desk`."""

from __future__ import annotations

from typing import Any

from actors.messages import DrainEngine, ReloadConfig
from infra.config import ConfigError, Settings, load_config
from infra.config.loader import DEFAULTS_SOURCE, MAPPING_SOURCE
from runtime.gateway_core import EngineLink
from runtime.gateway_types import BadArgumentError

#: ``Settings.source`` of a configuration that was not read from a file (a mapping, defaults).
_NOT_A_FILE = (MAPPING_SOURCE, DEFAULTS_SOURCE)


class Operations:
    engine: EngineLink
    settings: Settings

    def drain_engine(self) -> dict[str, Any]:
        """Stop the engine opening new conversations; live ones go on until they are CLOSED
        and archived. Returns ``{"draining": True, "live": N}`` (N: the conversations not yet
        archived). Asking again changes nothing."""
        state: dict[str, Any] = self.engine.engine("monitor", DrainEngine(start=True))
        return state

    def drain_status(self) -> dict[str, Any]:
        """``{"draining": bool, "live": N}``, changing nothing."""
        state: dict[str, Any] = self.engine.engine("monitor", DrainEngine(start=False))
        return state

    def reload_config(self) -> list[str]:
        """Read the configuration file again and apply its bot texts, timers, thresholds and
        queues without a restart; returns the keys that changed. Refused (BadArgumentError,
        naming the key) when a key that only a restart changes differs, and nothing changes."""
        source = self.settings.source
        if source in _NOT_A_FILE:
            raise BadArgumentError(
                "reload_config refused: this engine's configuration was not read from a file"
            )
        try:
            settings = load_config(source)
        except ConfigError as error:
            raise BadArgumentError(f"reload_config refused: {error}; nothing changed") from None
        changed: list[str] = self.engine.engine("monitor", ReloadConfig(settings))
        self.settings = settings
        return changed
