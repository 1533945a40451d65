"""The bounds on what a caller may put into a conversation, each written once.

The gateway checks them before a call reaches the engine (``runtime.gateway_args``) and the
conversation checks the ones its commands carry again (``domain.conversation``), so both name
the same numbers. The bounds of the network gateway's connections are configuration
(``gateway`` in config.yaml, defaults in ``infra.config``).
"""

from __future__ import annotations

from typing import Final

#: Characters of a message text, a wrap-up note or a string data value.
MAX_TEXT: Final = 64 * 1024
#: Bytes of a data map (a session's start data, an activity's data) packed as msgpack.
MAX_PAYLOAD_BYTES: Final = 64 * 1024
#: Characters of a name: an agent id, a queue, a data key, an activity name, a wrap-up code.
MAX_NAME: Final = 64
#: Characters of an id a caller names a thing by: a customer, a room, a channel session.
MAX_ID: Final = 128
#: Characters of an id from outside the engine: a channel identifier (a phone number, an
#: address), a provider's message id.
MAX_EXTERNAL_ID: Final = 256
#: Conversations one agent may take at once (``agent_login``'s ``max_conversations``).
MAX_AGENT_CONVERSATIONS: Final = 100
#: Milliseconds between two typing indicators of one sender that are pushed: one sooner is
#: accepted and not pushed.
TYPING_INTERVAL_MS: Final = 3000
