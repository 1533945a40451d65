"""The engine's errors: one tree under :class:`CxError`, and the kinds a refusal carries.

Every exception the engine defines derives from :class:`CxError`, and each class knows its
:class:`ErrorKind` (the class attribute ``kind``, inherited unless a class says otherwise). A
refusal keeps its kind all the way out: an actor answers a ``Failure`` carrying the kind of
the exception (``actors.base.failure_of``), the gateway raises ``error_for(kind, message)``,
and the network gateway writes ``kind.value`` as the answer's ``error.type``, which a client
over TCP maps back with the same :func:`error_for`. Nothing on the way turns a kind into
another.

The tree (kind in brackets; the module that defines a class where it is not this one)::

    CxError [internal]
    ├── Refused [illegal_transition]: a command a conversation will not carry out
    │   ├── IllegalTransition [illegal_transition]
    │   ├── UnknownParticipant [unknown_id]
    │   └── InvalidArgument [bad_argument]
    ├── GatewayError [internal]: what a caller of the engine sees
    │   ├── UnknownIdError [unknown_id]
    │   ├── IllegalTransitionError [illegal_transition]
    │   ├── BadArgumentError [bad_argument]
    │   ├── UnavailableError [unavailable]
    │   └── NetworkProtocolError [bad_frame]: a frame the network gateway refuses
    │       ├── AuthError [auth]
    │       ├── FrameTooLargeError [frame_too_large]
    │       ├── BadMsgpackError [bad_msgpack]
    │       ├── BadFrameError [bad_frame]
    │       └── UnknownOpError [unknown_op]
    ├── MalformedIdError [bad_argument] (domain.ids; also a ValueError)
    ├── MissingTransition [internal] (domain.transitions; also a LookupError)
    ├── MembershipError [bad_argument] (domain.membership; also a ValueError)
    ├── EventsUnavailable [internal] (actors.event_window)
    ├── IdTaken [id_taken]: between the engine and its gateway only
    ├── NotHere [not_here]: between the engine and its gateway only
    ├── CodecError [internal] (infra.codec; also a ValueError)
    │   └── RecordError [internal] (infra.journal_records)
    ├── ConfigError [bad_argument] (infra.config.loader)
    │   └── ScenarioError [bad_argument] (runtime.simulation.scenario)
    ├── SweepError [bad_argument] (runtime.simulation.sweep_spec; also a ValueError)
    ├── InvalidValue [bad_argument] (infra.config.checks)
    ├── EnvironmentProblem [bad_argument] (infra.config.environment)
    ├── YamlProblem [bad_argument] (infra.yamlfile)
    ├── PayloadError [internal] (infra.archive_rows; also a ValueError)
    ├── StorageError [unavailable] (infra.archive_errors)
    │   ├── ArchiveUnavailable [unavailable] (infra.archive_errors)
    │   ├── ArchiveSchemaError [unavailable] (infra.archive_pg_schema)
    │   ├── JournalWriteFailed [unavailable] (infra.journal)
    │   │   └── WriterFenced [unavailable] (infra.journal_pg)
    │   └── JournalError [unavailable] (infra.journal_segment)
    │       ├── JournalDamagedError [unavailable] (infra.journal_read)
    │       ├── JournalUnreadable [unavailable] (infra.journal_segment)
    │       └── JournalSchemaError [unavailable] (infra.journal_pg_schema)
    ├── _Poisoned [internal] (actors.conversation)
    ├── ProtocolError [per instance] (runtime.netgateway.codec)
    ├── ListenError [unavailable] (runtime.netgateway.server; also an OSError)
    ├── Unreachable [unavailable] (runtime.gateway_transport)
    ├── UsageError [bad_argument] (runtime.cli_send)
    ├── DegradedError [unavailable] (runtime.cli_status)
    ├── RestartError [unavailable] (runtime.supervise)
    ├── NotRunningError [unavailable] (runtime.control)
    ├── AlreadyRunningError [illegal_transition] (runtime.daemon)
    ├── StartError [unavailable] (runtime.control)
    ├── WebError [bad_argument] (runtime.web.errors)
    │   └── Forbidden [auth] (runtime.web.access)
    ├── Overflow [unavailable] (runtime.web.hub)
    └── StopError [internal] (runtime.control)

``ProtocolError`` is the network gateway's own refusal of a frame or request: its checks
refuse with several kinds (``bad_frame``, ``bad_argument``, ``auth``, ...), so its kind is
given per instance. ``tests/test_errors.py`` holds this drawing to the classes defined.

A domain refusal is raised before anything changes ("look up, then mutate"): the conversation
is exactly as it was. Each names the conversation, its state and what was refused, so that
the gateway can pass the message on unchanged.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class ErrorKind(StrEnum):
    """What went wrong, as a caller can act on it; the value is the spelling on the wire."""

    AUTH = "auth"
    FRAME_TOO_LARGE = "frame_too_large"
    BAD_MSGPACK = "bad_msgpack"
    BAD_FRAME = "bad_frame"
    UNKNOWN_OP = "unknown_op"
    BAD_ARGUMENT = "bad_argument"
    UNKNOWN_ID = "unknown_id"
    ILLEGAL_TRANSITION = "illegal_transition"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"
    #: The id a caller chose for a new session, conversation or room is in use (the gateway
    #: draws another); never sent to a client.
    ID_TAKEN = "id_taken"
    #: The entity is not on the host that was asked (the gateway locates it again); never
    #: sent to a client.
    NOT_HERE = "not_here"


#: The kinds an answer of the network gateway may carry as ``error.type``, in the order
#: docs/PROTOCOL.md lists them.
WIRE_KINDS: Final = tuple(
    kind for kind in ErrorKind if kind not in (ErrorKind.ID_TAKEN, ErrorKind.NOT_HERE)
)


class CxError(Exception):
    """The root of every exception the engine defines; ``kind`` says what went wrong."""

    kind: ErrorKind = ErrorKind.INTERNAL


# ------------------------------------------------------------------ refusals of the domain


class Refused(CxError):
    """A command the conversation will not carry out in its current state."""

    kind = ErrorKind.ILLEGAL_TRANSITION

    def __init__(self, conversation_id: str, state: str, what: str, problem: str) -> None:
        self.conversation_id = conversation_id
        self.state = state
        self.what = what
        self.problem = problem
        super().__init__(
            f"{what} refused on conversation {conversation_id} in state {state}: {problem}"
        )

    def __reduce__(self) -> tuple[type[Refused], tuple[str, str, str, str]]:
        # Refusals cross process boundaries inside replies: keep them picklable.
        return (type(self), (self.conversation_id, self.state, self.what, self.problem))


class IllegalTransition(Refused):
    """The command is not allowed in the conversation's state (or for that participant)."""

    kind = ErrorKind.ILLEGAL_TRANSITION


class UnknownParticipant(Refused):
    """The command names a channel session or agent the conversation does not have."""

    kind = ErrorKind.UNKNOWN_ID


class InvalidArgument(Refused):
    """A value of the command is out of range or malformed."""

    kind = ErrorKind.BAD_ARGUMENT


# ------------------------------------------------------------------ what a caller sees


class GatewayError(CxError):
    """A request the engine refused or could not carry out."""


class UnknownIdError(GatewayError):
    """No such conversation, channel session, room or agent."""

    kind = ErrorKind.UNKNOWN_ID


class IllegalTransitionError(GatewayError):
    """Not allowed in the current state (of the conversation, session or agent)."""

    kind = ErrorKind.ILLEGAL_TRANSITION


class BadArgumentError(GatewayError):
    """A value out of range or of the wrong type."""

    kind = ErrorKind.BAD_ARGUMENT


class UnavailableError(GatewayError):
    """The engine cannot do it now (e.g. the archive cannot be written, or the engine is not
    running): retry later."""

    kind = ErrorKind.UNAVAILABLE


class NetworkProtocolError(GatewayError):
    """A frame or request the network gateway refused before it reached the engine (a client
    over TCP sees these; the Python gateway never raises them)."""

    kind = ErrorKind.BAD_FRAME


class AuthError(NetworkProtocolError):
    """Not authenticated: no or a wrong token, or none in time."""

    kind = ErrorKind.AUTH


class FrameTooLargeError(NetworkProtocolError):
    """A frame longer than the gateway accepts."""

    kind = ErrorKind.FRAME_TOO_LARGE


class BadMsgpackError(NetworkProtocolError):
    """A frame body that is not exactly one valid msgpack value."""

    kind = ErrorKind.BAD_MSGPACK


class BadFrameError(NetworkProtocolError):
    """A frame that is not a request ``{op, args, id}``."""

    kind = ErrorKind.BAD_FRAME


class UnknownOpError(NetworkProtocolError):
    """A request naming no operation."""

    kind = ErrorKind.UNKNOWN_OP


class IdTaken(CxError):
    """The id chosen for a new session, conversation or room is in use."""

    kind = ErrorKind.ID_TAKEN


class NotHere(CxError):
    """The entity is not on the host that was asked (it closed and left, or moved)."""

    kind = ErrorKind.NOT_HERE


#: The exception a caller gets for each kind: one class per kind, and its ``kind`` is that kind.
ERROR_CLASSES: Final[dict[ErrorKind, type[CxError]]] = {
    cls.kind: cls
    for cls in (
        AuthError,
        FrameTooLargeError,
        BadMsgpackError,
        BadFrameError,
        UnknownOpError,
        BadArgumentError,
        UnknownIdError,
        IllegalTransitionError,
        UnavailableError,
        GatewayError,
        IdTaken,
        NotHere,
    )
}


def error_for(kind: ErrorKind | str, message: str) -> CxError:
    """The exception for a refusal of ``kind`` (an ``ErrorKind`` or its wire spelling); a
    kind this engine does not know is an internal error that names it."""
    try:
        known = ErrorKind(kind)
    except ValueError:
        return GatewayError(f"{message} (error type {kind!r})")
    return ERROR_CLASSES[known](message)
