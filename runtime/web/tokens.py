"""Access tokens of the web gateway: who may do what, signed by the engine's key.

A token is a JWT (RFC 7519) signed with HS256 under ``web.token_key`` (or the environment
variable ``CX_WEB_TOKEN_KEY``), made by ``cx token``. Its claims: ``sub`` (the subject: an
agent's or supervisor's agent id, a connector's or operator's name), ``role`` (one of
:class:`AccessRole`), ``channels`` (a connector's channels), ``iat`` and ``exp`` (required),
``aud`` ``cx-web``. PyJWT checks the signature (``hmac.compare_digest``: constant time), the
expiry and the audience; anything wrong is one ``AuthError`` that names what, never the token.
"""

from __future__ import annotations

import enum
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

import jwt

from domain.enums import Channel
from domain.errors import AuthError, BadArgumentError
from infra.config import ConfigError, Settings
from infra.config.schema import MIN_TOKEN_KEY_CHARS
from runtime.gateway_args import enum as enum_arg
from runtime.gateway_args import text

__all__ = [
    "AUDIENCE",
    "KEY_VARIABLE",
    "AccessRole",
    "Claims",
    "issue",
    "resolve_key",
    "verify",
]

#: Where the signing key comes from when ``web.token_key`` is null.
KEY_VARIABLE: Final = "CX_WEB_TOKEN_KEY"
AUDIENCE: Final = "cx-web"
_ALGORITHM: Final = "HS256"
#: A token is accepted up to this long after its ``exp`` (clocks of two machines differ).
_LEEWAY_S: Final = 5
#: The shortest key accepted from the environment (the configuration checks its own).
MIN_KEY_CHARS: Final = MIN_TOKEN_KEY_CHARS


class AccessRole(enum.StrEnum):
    """What a token allows (docs/WEB.md, "Roles")."""

    #: starts sessions and sends for the customers of its ``channels``
    CONNECTOR = "connector"
    #: acts as the agent its subject names, and reads the conversations it takes part in
    AGENT = "agent"
    #: acts as itself (its subject, an agent id): monitors, whispers, barges in; reads any
    #: conversation
    SUPERVISOR = "supervisor"
    #: ends conversations, reads conversations, history and status
    OPERATOR = "operator"


@dataclass(frozen=True, slots=True)
class Claims:
    role: AccessRole
    subject: str
    channels: frozenset[Channel]
    expires: int


def resolve_key(settings: Settings) -> str:
    """``web.token_key``, else the environment variable; ConfigError when neither is set or
    the variable's is too short."""
    key = settings.web.token_key or os.environ.get(KEY_VARIABLE, "")
    if not key:
        raise ConfigError(
            settings.source, "web.token_key",
            f"the web gateway needs a signing key: set web.token_key or the environment"
            f" variable {KEY_VARIABLE} (at least {MIN_KEY_CHARS} random characters)",
        )  # fmt: skip
    if len(key) < MIN_KEY_CHARS:
        raise ConfigError(
            settings.source, f"web.token_key ({KEY_VARIABLE})",
            f"a key of {len(key)} characters is too short: use at least {MIN_KEY_CHARS}",
        )  # fmt: skip
    return key


def issue(
    key: str, role: str, subject: str, *, ttl_s: int,
    channels: Iterable[str] = (), now: float | None = None,
) -> str:  # fmt: skip
    """A signed token for ``subject`` in ``role``, valid ``ttl_s`` seconds. A connector needs
    at least one channel; other roles take none. Bad values raise BadArgumentError."""
    try:
        kind = AccessRole(role)
    except ValueError:
        roles = ", ".join(r.value for r in AccessRole)
        raise BadArgumentError(f"role must be one of {roles}, got {role!r:.40}") from None
    text("subject", subject)
    named = sorted({enum_arg(Channel, "channel", c).value for c in channels})
    if (kind is AccessRole.CONNECTOR) != bool(named):
        raise BadArgumentError("a connector token names its channels; other roles name none")
    if ttl_s <= 0:
        raise BadArgumentError(f"a token's lifetime must be positive, got {ttl_s}")
    issued = int(time.time() if now is None else now)
    claims = {
        "sub": subject, "role": kind.value, "channels": named, "aud": AUDIENCE,
        "iat": issued, "exp": issued + ttl_s,
    }  # fmt: skip
    return jwt.encode(claims, key, algorithm=_ALGORITHM)


def verify(key: str, token: str) -> Claims:
    """The claims of a valid token; AuthError naming what is wrong otherwise."""
    try:
        found = jwt.decode(
            token, key, algorithms=[_ALGORITHM], audience=AUDIENCE, leeway=_LEEWAY_S,
            options={"require": ["exp", "iat", "sub", "aud"]},
        )  # fmt: skip
    except jwt.ExpiredSignatureError:
        raise AuthError("the token has expired") from None
    except jwt.InvalidSignatureError:
        raise AuthError("the token's signature does not match") from None
    except jwt.InvalidTokenError as error:
        raise AuthError(f"the token is not valid: {type(error).__name__}") from None
    try:
        role = AccessRole(str(found.get("role")))
        channels = frozenset(Channel(c) for c in found.get("channels", []))
    except (ValueError, TypeError):
        raise AuthError("the token's role or channels are not valid") from None
    subject = found["sub"]
    if not isinstance(subject, str) or not subject:
        raise AuthError("the token's subject is not valid")
    return Claims(role, subject, channels, int(found["exp"]))
