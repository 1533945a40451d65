"""Process titles: what each process of the engine is, as ``ps``, ``top`` and ``pgrep`` show.

Every title starts with ``cx: ``, names the process's role and, where known, the configuration
file of its system (several engines on one machine are told apart by it): ``cx: daemon --config
/etc/cx/config.yaml``, ``cx: gateway 127.0.0.1:7700 --config ...``, ``cx: topic-monitor
--config ...``, ``cx: router ...``, ``cx: bot ...``, ``cx: agent-supervisor ...``, ``cx: host
conversations host-18c2f-1 --config ...``. Thespian's admin and logger processes keep the titles
Thespian gives them (``MultiProcAdmin ActorAddr-(T|:1900)``, ``logger ActorAddr-...``).

Titles are set with ``setproctitle``; without it (or on a platform where it fails) nothing
happens: a title is a convenience, never a reason to fail.
"""

from __future__ import annotations

import importlib
import re
from typing import Any, Final

__all__ = [
    "PREFIX",
    "actor_role",
    "get_title",
    "is_engine_title",
    "set_actor_title",
    "set_thread_title",
    "set_title",
    "with_config",
]

#: How every title of the engine's processes starts.
PREFIX: Final = "cx: "

_spt: Any
try:  # whether it is installed is the environment's business
    _spt = importlib.import_module("setproctitle")
except ImportError:
    _spt = None


def with_config(role: str, source: str | None) -> str:
    """``role --config SOURCE`` when the configuration came from a file, else ``role``."""
    if not source or source.startswith("<"):  # <dict>, <defaults>
        return role
    return f"{role} --config {source}"


def is_engine_title(line: list[str]) -> bool:
    """Whether a command line (as :func:`runtime.procs.cmdline` reads it) is the title of a
    process of an engine: one of ours, or one Thespian gave (which holds an actor address)."""
    text = " ".join(line)
    return text.startswith(PREFIX) or "ActorAddr-" in text


def set_title(role: str) -> None:
    """Title this process ``cx: <role>``."""
    if _spt is None:
        return
    try:
        _spt.setproctitle(PREFIX + role)
    except Exception:  # a title is never worth a failure
        return


def get_title() -> str:
    """This process's title ('' without setproctitle)."""
    if _spt is None:
        return ""
    try:
        return str(_spt.getproctitle())
    except Exception:
        return ""


def set_thread_title(name: str) -> None:
    """Name the current thread (``ps -T``, ``top -H``; the kernel keeps 15 characters)."""
    if _spt is None:
        return
    try:
        _spt.setthreadtitle(name)
    except Exception:
        return


def _kebab(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", name).lower()


def actor_role(actor: Any) -> str:
    """``topic-monitor``, ``router``, ``bot``, ``agent-supervisor``, ``host conversations
    host-...``: the class name, then a host's kind and id when it has them."""
    parts = [_kebab(type(actor).__name__)]
    for attribute in ("kind", "host_id"):
        value = getattr(actor, attribute, None)
        if isinstance(value, str) and value:
            parts.append(value)
    return " ".join(parts)


def set_actor_title(actor: Any, source: str | None) -> None:
    """Title the process of ``actor`` with its role (and ``source``, the configuration file),
    if it is the actor's own process: one Thespian started for it, whose title Thespian set to
    the actor's address. An actor that shares its process (the embedded engine's
    simpleSystemBase) leaves the title alone."""
    address = str(getattr(actor, "myAddress", "") or "")
    if not address or address not in get_title():
        return
    set_title(with_config(actor_role(actor), source))
