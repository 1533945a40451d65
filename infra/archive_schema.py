"""The archive's SQLite schema, its version and the sync level per fsync policy.

Schema (``PRAGMA user_version = 1``; a file with another non-zero version is refused)::

    rooms(id PK, type, mode, customer_id, created_at)
        at most one CUSTOMER/CONTACT_CENTER room per customer (a partial unique index)
    customers(id PK, name NULL)
    identities(customer_id, channel, identifier)              PK: all three
    conversations(id PK, room_id, customer_id, state, direction, created_at, ended_at,
                  data BLOB, seq)                             indexed by (room_id, created_at, id)
    channel_sessions(id PK, conversation_id, position, channel, identifier, state, end_reason,
                     started_at, ended_at, data BLOB)        indexed by conversation_id
    participants(conversation_id, id, position, type, role, state, joined_at, left_at)
                                                              PK: (conversation_id, id)
    events(conversation_id, seq, name, type, timestamp, emitter_id, emitter_type,
           channel_session_id, data BLOB)                     PK: (conversation_id, seq)

Times are int milliseconds since the epoch; enums are stored as their string values; payloads
(``data``) are msgpack maps, decoded strictly. ``position`` keeps the order of a record's
sessions and participants so that a record read back equals the record written. An event's
``room_id`` is not repeated per event: it is its conversation's.
"""

from __future__ import annotations

#: ``PRAGMA user_version`` of an archive of this schema; a file with another non-zero version
#: is refused.
SCHEMA_VERSION = 1

SCHEMA = (
    """CREATE TABLE rooms (
        id TEXT PRIMARY KEY, type TEXT NOT NULL, mode TEXT NOT NULL,
        customer_id TEXT NOT NULL, created_at INTEGER NOT NULL)""",
    # One contact-center room per customer, enforced by the file itself so that two racing
    # creators cannot both succeed.
    """CREATE UNIQUE INDEX rooms_contact_center ON rooms(customer_id)
        WHERE type = 'CUSTOMER' AND mode = 'CONTACT_CENTER'""",
    "CREATE INDEX rooms_customer ON rooms(customer_id)",
    "CREATE TABLE customers (id TEXT PRIMARY KEY, name TEXT)",
    """CREATE TABLE identities (
        customer_id TEXT NOT NULL, channel TEXT NOT NULL, identifier TEXT NOT NULL,
        PRIMARY KEY (customer_id, channel, identifier))""",
    """CREATE TABLE conversations (
        id TEXT PRIMARY KEY, room_id TEXT NOT NULL, customer_id TEXT NOT NULL,
        state TEXT NOT NULL, direction TEXT NOT NULL, created_at INTEGER NOT NULL,
        ended_at INTEGER, data BLOB NOT NULL, seq INTEGER NOT NULL)""",
    "CREATE INDEX conversations_room ON conversations(room_id, created_at, id)",
    """CREATE TABLE channel_sessions (
        id TEXT PRIMARY KEY, conversation_id TEXT NOT NULL, position INTEGER NOT NULL,
        channel TEXT NOT NULL, identifier TEXT NOT NULL, state TEXT NOT NULL, end_reason TEXT,
        started_at INTEGER NOT NULL, ended_at INTEGER, data BLOB NOT NULL)""",
    "CREATE INDEX channel_sessions_conversation ON channel_sessions(conversation_id, position)",
    """CREATE TABLE participants (
        conversation_id TEXT NOT NULL, id TEXT NOT NULL, position INTEGER NOT NULL,
        type TEXT NOT NULL, role TEXT NOT NULL, state TEXT NOT NULL,
        joined_at INTEGER NOT NULL, left_at INTEGER,
        PRIMARY KEY (conversation_id, id))""",
    """CREATE TABLE events (
        conversation_id TEXT NOT NULL, seq INTEGER NOT NULL, name TEXT NOT NULL,
        type TEXT NOT NULL, timestamp INTEGER NOT NULL, emitter_id TEXT NOT NULL,
        emitter_type TEXT NOT NULL, channel_session_id TEXT, data BLOB NOT NULL,
        PRIMARY KEY (conversation_id, seq))""",
)


#: ``PRAGMA synchronous`` per ``storage.fsync`` policy.
SYNCHRONOUS = {"always": "FULL", "interval": "NORMAL", "never": "OFF"}
