"""``cx gateway``: the network gateway in front of the running engine, from ``config.yaml``.

The token comes from ``gateway.token`` or the ``CX_GATEWAY_TOKEN`` environment variable; the
engine's health is probed on the actor system's admin port, and the Gateway is built again
(``Gateway.connect``) when the engine comes back after being unreachable.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable
from typing import Final

from infra import proctitle
from infra.config import ConfigError, Settings, load_config, token_problem
from infra.logs import configure_logging
from runtime.gateway import Gateway
from runtime.netgateway.limits import limits_of
from runtime.netgateway.server import ListenError, NetGateway, split_listen

__all__ = ["TOKEN_VARIABLE", "admin_probe", "resolve_token", "run_gateway"]

#: Where the token comes from when ``gateway.token`` is null.
TOKEN_VARIABLE: Final = "CX_GATEWAY_TOKEN"


def resolve_token(settings: Settings) -> str:
    """``gateway.token``, else the environment variable; ConfigError when there is neither,
    or when it is too short (the configuration refuses a short ``gateway.token`` already)."""
    token = settings.gateway.token or os.environ.get(TOKEN_VARIABLE, "")
    if not token.strip():
        raise ConfigError(
            settings.source,
            "gateway.token",
            f"the network gateway needs a shared token: set gateway.token or the environment"
            f" variable {TOKEN_VARIABLE}",
        )
    problem = token_problem(token)
    if problem is not None:
        raise ConfigError(settings.source, f"gateway.token ({TOKEN_VARIABLE})", problem)
    return token


def admin_probe(settings: Settings, timeout: float = 0.5) -> Callable[[], str | None]:
    """None while the actor system's admin port accepts a connection, else why not."""
    address = (settings.system.bind, settings.system.admin_port)

    def probe() -> str | None:
        try:
            with socket.create_connection(address, timeout=timeout):
                return None
        except OSError as error:
            return (
                f"the actor system at {address[0]}:{address[1]} cannot be reached:"
                f" {error.strerror or error}"
            )

    return probe


def run_gateway(
    config_path: str | os.PathLike[str],
    *,
    connect: Callable[[str], Gateway] | None = None,
) -> int:
    """``cx gateway``: serve the running engine over TCP until SIGINT or SIGTERM.

    ``connect(config_path)`` builds the Gateway (default :meth:`Gateway.connect`); it is
    called again to reconnect after the engine was unreachable. Raises ConfigError without a
    token, and whatever ``connect`` raises when no engine runs.
    """
    path = os.fspath(config_path)
    settings = load_config(path)
    configure_logging(settings.logging)
    token = resolve_token(settings)
    split_listen(settings.gateway.listen)
    builder = connect if connect is not None else Gateway.connect
    proctitle.set_title(proctitle.with_config(f"gateway {settings.gateway.listen}", path))

    def build() -> Gateway:  # on the worker thread: name it for ps -T and top -H
        proctitle.set_thread_title("cx-gw-worker")
        return builder(path)

    server = NetGateway(
        build,
        listen=settings.gateway.listen,
        token=token,
        limits=limits_of(settings),
        probe=admin_probe(settings),
    )

    def ready(running: NetGateway) -> None:
        print(
            f"cx gateway: serving on {running.host}:{running.port} (engine admin"
            f" {settings.system.bind}:{settings.system.admin_port}); Ctrl-C to stop",
            file=sys.stderr,
            flush=True,
        )

    try:
        server.run(ready)
    except ListenError as error:
        raise ConfigError(settings.source, "gateway.listen", error.strerror or str(error)) from None
    return 0
