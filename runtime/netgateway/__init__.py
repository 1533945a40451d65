"""The network gateway (``cx gateway``): the Gateway operations over TCP for connectors written
in any language. Length-prefixed msgpack frames; the protocol is docs/PROTOCOL.md.

``serve(gateway, listen, token, max_frame_bytes)`` runs one in a background thread (tests);
``run_gateway(config_path)`` is ``cx gateway``.
"""

from runtime.netgateway.codec import DISCONNECT_REASONS, ERROR_TYPES, ProtocolError
from runtime.netgateway.command import TOKEN_VARIABLE, admin_probe, resolve_token, run_gateway
from runtime.netgateway.limits import Limits, limits_of
from runtime.netgateway.ops import OPS
from runtime.netgateway.pool import PROTOCOL_VERSION
from runtime.netgateway.server import NetGateway, serve

__all__ = [
    "DISCONNECT_REASONS",
    "ERROR_TYPES",
    "OPS",
    "PROTOCOL_VERSION",
    "TOKEN_VARIABLE",
    "Limits",
    "NetGateway",
    "ProtocolError",
    "admin_probe",
    "limits_of",
    "resolve_token",
    "run_gateway",
    "serve",
]
