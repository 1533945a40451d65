"""Refusals of the domain: the caller's fault, never the engine's.

A refusal is raised before anything changes ("look up, then mutate"): the conversation is
exactly as it was. Each names the conversation, its state and what was refused, so that the
gateway can pass the message on unchanged.
"""

from __future__ import annotations


class Refused(Exception):
    """A command the conversation will not carry out in its current state."""

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


class UnknownParticipant(Refused):
    """The command names a channel session or agent the conversation does not have."""


class InvalidArgument(Refused):
    """A value of the command is out of range or malformed."""
