"""Settings of the engine: ``config.yaml`` read, checked and turned into frozen dataclasses.

``load_config`` takes a YAML file, a dict of the same shape, or nothing (the built-in defaults
alone; ``./config.yaml`` is never read by accident), merges it over the defaults (nested
mappings key by key; lists and scalars replace) and validates the result strictly in one pass
before any settings object is built. Every mistake is the operator's and is reported as a
``ConfigError`` that names the file and the dotted key path, e.g.::

    config.yaml: timers.agent_sal: unknown key (did you mean timers.agent_sla?)
    config.yaml: timers.agent_sla.thresholds[1].percent: expected an integer from 1 to 99 ...

The package, one purpose a module:

- :mod:`infra.config.settings`: the frozen settings dataclasses;
- :mod:`infra.config.checks`: checks of YAML values and how errors show values and keys;
- :mod:`infra.config.schema`: every key with its default and its check (``DEFAULTS`` is derived
  from it, and the shipped ``config.yaml`` repeats it for operators; a test keeps the two equal);
- :mod:`infra.config.environment`: the ``CX_SECTION__KEY`` variables, typed by the schema;
- :mod:`infra.config.loader`: read, merge over the defaults, then the environment, validate,
  build.

Precedence: the environment over the file over the defaults. Relative paths (storage, log
file) resolve against the directory of the configuration file (the current directory for a
mapping or the defaults alone) and are returned absolute; no directory is created here.
"""

from domain.policy import Threshold
from infra.config.loader import ConfigError, load_config
from infra.config.schema import CHANNEL_TYPES, DEFAULTS, MIN_TOKEN_CHARS, token_problem
from infra.config.settings import (
    BotSettings,
    GatewaySettings,
    LoggingSettings,
    MetricsSettings,
    PlacementSettings,
    QueueSettings,
    RoutingSettings,
    Settings,
    StorageSettings,
    SystemSettings,
    TimerSettings,
    WebSettings,
)

__all__ = [
    "CHANNEL_TYPES",
    "DEFAULTS",
    "MIN_TOKEN_CHARS",
    "BotSettings",
    "ConfigError",
    "GatewaySettings",
    "LoggingSettings",
    "MetricsSettings",
    "PlacementSettings",
    "QueueSettings",
    "RoutingSettings",
    "Settings",
    "StorageSettings",
    "SystemSettings",
    "Threshold",
    "TimerSettings",
    "WebSettings",
    "load_config",
    "token_problem",
]
