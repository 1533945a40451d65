"""``cx web`` and ``cx token``: the web gateway in front of the running engine, and the tokens
it accepts.

``cx web`` serves on ``web.listen`` (loopback by default) with uvicorn, natively over TLS when
``web.tls_certfile`` and ``web.tls_keyfile`` are set. Requests are logged through structlog by
the gateway itself (operation, outcome, role and subject, never a token or a message's text);
uvicorn's access log, which would print every path, is off.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence

import uvicorn

from infra import proctitle
from infra.config import ConfigError, Settings, load_config
from infra.logs import configure_logging, get_logger, route_stdlib
from runtime.control import NotRunningError
from runtime.gateway import Gateway
from runtime.netgateway.command import admin_probe
from runtime.netgateway.server import split_listen
from runtime.web.app import WebOptions, create_app
from runtime.web.tokens import issue, resolve_key

__all__ = ["run_web", "token_command"]

log = get_logger("cx.web")

_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


def tls_files(settings: Settings) -> tuple[str, str] | None:
    """The certificate and key files, or None for plain HTTP; ConfigError with one alone."""
    cert, key = settings.web.tls_certfile, settings.web.tls_keyfile
    if (cert is None) != (key is None):
        raise ConfigError(
            settings.source, "web.tls_certfile" if cert is None else "web.tls_keyfile",
            "TLS needs both web.tls_certfile and web.tls_keyfile",
        )  # fmt: skip
    return None if cert is None or key is None else (str(cert), str(key))


def run_web(
    config_path: str | os.PathLike[str], *, connect: Callable[[str], Gateway] | None = None
) -> int:
    """``cx web``: serve the running engine over HTTP and WebSockets until SIGINT or SIGTERM."""
    path = os.fspath(config_path)
    settings = load_config(path)
    configure_logging(settings.logging)
    key = resolve_key(settings)
    tls = tls_files(settings)
    try:
        host, port = split_listen(settings.web.listen)
    except ValueError as error:
        raise ConfigError(settings.source, "web.listen", str(error)) from None
    if host not in _LOOPBACK and tls is None:
        log.warning(
            "the web gateway listens beyond loopback without TLS: tokens travel in clear text;"
            " set web.tls_certfile and web.tls_keyfile or put a TLS terminator in front",
            listen=settings.web.listen,
        )
    problem = admin_probe(settings)()
    if problem is not None:  # before serving: uvicorn would only log a failed start-up
        raise NotRunningError(f"{problem}; start the engine with `cx start`")
    builder = connect if connect is not None else Gateway.connect
    proctitle.set_title(proctitle.with_config(f"web {settings.web.listen}", path))
    options = WebOptions(key, max_body_bytes=settings.web.max_body_bytes)

    def build() -> Gateway:  # on the pump thread: name it for ps -T and top -H
        proctitle.set_thread_title("cx-aio-pump")
        return builder(path)

    app = create_app(build, options)
    scheme = "https" if tls else "http"
    print(f"cx web: serving on {scheme}://{settings.web.listen}; Ctrl-C to stop", file=sys.stderr)
    route_stdlib("uvicorn")  # its start-up and error lines in the engine's format
    uvicorn.run(
        app, host=host, port=port, access_log=False, log_config=None, lifespan="on",
        ssl_certfile=tls[0] if tls else None, ssl_keyfile=tls[1] if tls else None,
    )  # fmt: skip
    return 0


def token_command(
    config_path: str | os.PathLike[str], role: str, subject: str, *,
    channels: Sequence[str] = (), ttl_s: int | None = None,
) -> int:  # fmt: skip
    """``cx token``: print a signed token for ``subject`` in ``role``."""
    settings = load_config(os.fspath(config_path))
    key = resolve_key(settings)
    lifetime = ttl_s if ttl_s is not None else settings.web.token_ttl_seconds
    print(issue(key, role, subject, ttl_s=lifetime, channels=channels))
    return 0
