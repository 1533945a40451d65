"""systemd's readiness protocol (``sd_notify``) with the standard library alone.

Under a unit with ``Type=notify``, systemd passes ``NOTIFY_SOCKET`` (a datagram socket's path,
or ``@name`` in the abstract namespace); the service sends ``READY=1`` once it serves and
``STOPPING=1`` when it begins to stop. Without the variable nothing is sent, and a socket that
cannot be reached is ignored: a notification is never a reason to fail.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

READY = "READY=1"
STOPPING = "STOPPING=1"


def notify(state: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send ``state`` to systemd; whether it was sent."""
    path = (os.environ if environ is None else environ).get("NOTIFY_SOCKET", "")
    if not path:
        return False
    address = "\0" + path[1:] if path.startswith("@") else path
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(state.encode(), address)
    except OSError:
        return False
    return True
