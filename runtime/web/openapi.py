"""The OpenAPI description the web gateway serves at ``/openapi.json``, read off the operations.

Each HTTP operation (:data:`~runtime.web.access.RULES`) is ``POST /v1/<op>`` with a JSON body of
its arguments, described from the same table the TCP protocol checks arguments against
(``runtime.netgateway.ops.OPS``), with the roles that may call it and every error status.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from runtime.netgateway.ops import OPS, Kind, OpSpec
from runtime.web.access import RULES
from runtime.web.errors import STATUS

__all__ = ["openapi"]

_SCHEMAS: Final[Mapping[Kind, dict[str, Any]]] = {
    Kind.STR: {"type": "string"},
    Kind.INT: {"type": "integer"},
    Kind.NUMBER: {"type": "number"},
    Kind.MAP: {"type": "object"},
    Kind.STR_LIST: {"type": "array", "items": {"type": "string"}},
    Kind.SCALAR: {"type": ["string", "number", "boolean", "null"]},
}
_ERROR: Final = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "properties": {
                "type": {"type": "string", "enum": sorted(STATUS)},
                "message": {"type": "string"},
            },
        }
    },
}


def _arguments(spec: OpSpec) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    for param in spec.params:
        schema = dict(_SCHEMAS[param.kind])
        if param.nullable and param.kind is not Kind.SCALAR:
            schema = {"type": [schema["type"], "null"], **{k: v for k, v in schema.items() if k != "type"}}
        properties[param.name] = schema
    required = [p.name for p in spec.params if p.required]
    return {
        "type": "object", "additionalProperties": False, "properties": properties,
        **({"required": required} if required else {}),
    }  # fmt: skip


def _operation(op: str) -> dict[str, Any]:
    roles = ", ".join(sorted(role.value for role in RULES[op]))
    responses: dict[str, Any] = {
        "200": {
            "description": "done; `result` is what the Gateway method returns",
            "content": {"application/json": {"schema": {"type": "object", "required": ["result"]}}},
        }
    }
    for status in sorted(set(STATUS.values())):
        names = ", ".join(sorted(t for t, s in STATUS.items() if s == status))
        responses[str(status)] = {
            "description": names,
            "content": {"application/json": {"schema": _ERROR}},
        }
    return {
        "operationId": op,
        "summary": f"{op} (roles: {roles})",
        "security": [{"bearer": []}],
        "requestBody": {
            "required": False,
            "content": {"application/json": {"schema": _arguments(OPS[op])}},
        },
        "responses": responses,
    }


def openapi() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "cx-engine web gateway",
            "version": "1",
            "description": (
                "Every gateway operation as JSON over HTTP; pushed events over WebSockets at"
                " /v1/sessions/{channel_session_id}/events?after_seq=N and"
                " /v1/agents/{agent_id}/events (docs/WEB.md)."
            ),
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}
        },
        "paths": {f"/v1/{op}": {"post": _operation(op)} for op in sorted(RULES)},
    }
