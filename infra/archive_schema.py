"""The archive's SQLite schema, its version and the sync level per fsync policy.

Schema (``PRAGMA user_version = 3``; a version-1 or version-2 file is migrated by the writer
that opens it, :mod:`infra.archive_migrate`; a file with another non-zero version is
refused)::

    rooms(id PK, type, mode, customer_id, created_at)
        at most one CUSTOMER/CONTACT_CENTER room per customer (a partial unique index);
        a TEAM room's customer_id is '' (it has no customer)
    room_members(room_id, agent_id, position)                 PK: (room_id, agent_id)
    room_messages(room_id, seq, message_id, author_id, text, timestamp)
                                                              PK: (room_id, seq), unique
                                                              (room_id, message_id)
    customers(id PK, name NULL)
    identities(customer_id, channel, identifier)              PK: all three
    conversations(id PK, room_id, customer_id, state, direction, created_at, ended_at,
                  data JSON, seq, touched)                    indexed by (room_id, created_at, id),
                                                              created_at, ended_at, customer_id,
                                                              touched
    channel_sessions(id PK, conversation_id, position, channel, identifier, state, end_reason,
                     started_at, ended_at, data JSON)        indexed by conversation_id
    participants(conversation_id, id, position, type, role, state, joined_at, left_at)
                                                              PK: (conversation_id, id)
    events(conversation_id, seq, name, type, timestamp, emitter_id, emitter_type,
           channel_session_id, data JSON)                     PK: (conversation_id, seq)
    webhooks(name PK, since, skipped)                         one row per configured webhook
    webhook_cursors(webhook, conversation_id, seq)            PK: (webhook, conversation_id)

Times are int milliseconds since the epoch; enums are stored as their string values; payloads
(``data``) are JSON objects as text, so ``json_extract(data, '$.text')`` reads them.
``position`` keeps the order of a record's sessions and participants so that a record read
back equals the record written. An event's ``room_id`` is not repeated per event: it is its
conversation's. ``touched`` is the wall-clock time of the conversation's last write (stored or
events appended), which bounds what the webhook dispatcher looks at. ``webhooks`` and
``webhook_cursors`` are the webhook dispatcher's durable state (:mod:`infra.archive_upkeep`).
"""

from __future__ import annotations

#: ``PRAGMA user_version`` of an archive of this schema.
SCHEMA_VERSION = 3

#: Each table's definition, by name (the migration rebuilds some of them from these).
TABLES = {
    "rooms": """CREATE TABLE rooms (
        id TEXT PRIMARY KEY, type TEXT NOT NULL, mode TEXT NOT NULL,
        customer_id TEXT NOT NULL, created_at INTEGER NOT NULL)""",
    "room_members": """CREATE TABLE room_members (
        room_id TEXT NOT NULL, agent_id TEXT NOT NULL, position INTEGER NOT NULL,
        PRIMARY KEY (room_id, agent_id))""",
    "room_messages": """CREATE TABLE room_messages (
        room_id TEXT NOT NULL, seq INTEGER NOT NULL, message_id TEXT NOT NULL,
        author_id TEXT NOT NULL, text TEXT NOT NULL, timestamp INTEGER NOT NULL,
        PRIMARY KEY (room_id, seq), UNIQUE (room_id, message_id))""",
    "customers": "CREATE TABLE customers (id TEXT PRIMARY KEY, name TEXT)",
    "identities": """CREATE TABLE identities (
        customer_id TEXT NOT NULL, channel TEXT NOT NULL, identifier TEXT NOT NULL,
        PRIMARY KEY (customer_id, channel, identifier))""",
    "conversations": """CREATE TABLE conversations (
        id TEXT PRIMARY KEY, room_id TEXT NOT NULL, customer_id TEXT NOT NULL,
        state TEXT NOT NULL, direction TEXT NOT NULL, created_at INTEGER NOT NULL,
        ended_at INTEGER, data TEXT NOT NULL, seq INTEGER NOT NULL,
        touched INTEGER NOT NULL DEFAULT 0)""",
    "channel_sessions": """CREATE TABLE channel_sessions (
        id TEXT PRIMARY KEY, conversation_id TEXT NOT NULL, position INTEGER NOT NULL,
        channel TEXT NOT NULL, identifier TEXT NOT NULL, state TEXT NOT NULL, end_reason TEXT,
        started_at INTEGER NOT NULL, ended_at INTEGER, data TEXT NOT NULL)""",
    "participants": """CREATE TABLE participants (
        conversation_id TEXT NOT NULL, id TEXT NOT NULL, position INTEGER NOT NULL,
        type TEXT NOT NULL, role TEXT NOT NULL, state TEXT NOT NULL,
        joined_at INTEGER NOT NULL, left_at INTEGER,
        PRIMARY KEY (conversation_id, id))""",
    "events": """CREATE TABLE events (
        conversation_id TEXT NOT NULL, seq INTEGER NOT NULL, name TEXT NOT NULL,
        type TEXT NOT NULL, timestamp INTEGER NOT NULL, emitter_id TEXT NOT NULL,
        emitter_type TEXT NOT NULL, channel_session_id TEXT, data TEXT NOT NULL,
        PRIMARY KEY (conversation_id, seq))""",
    "webhooks": """CREATE TABLE webhooks (
        name TEXT PRIMARY KEY, since INTEGER NOT NULL, skipped INTEGER NOT NULL DEFAULT 0)""",
    "webhook_cursors": """CREATE TABLE webhook_cursors (
        webhook TEXT NOT NULL, conversation_id TEXT NOT NULL, seq INTEGER NOT NULL,
        PRIMARY KEY (webhook, conversation_id))""",
}

#: Each table's indexes, by table.
INDEXES = {
    # One contact-center room per customer, enforced by the file itself so that two racing
    # creators cannot both succeed.
    "rooms": (
        """CREATE UNIQUE INDEX rooms_contact_center ON rooms(customer_id)
        WHERE type = 'CUSTOMER' AND mode = 'CONTACT_CENTER'""",
        "CREATE INDEX rooms_customer ON rooms(customer_id)",
    ),
    "conversations": (
        "CREATE INDEX conversations_room ON conversations(room_id, created_at, id)",
        "CREATE INDEX conversations_created ON conversations(created_at)",
        "CREATE INDEX conversations_ended ON conversations(ended_at)",
        "CREATE INDEX conversations_customer ON conversations(customer_id)",
        "CREATE INDEX conversations_touched ON conversations(touched)",
    ),
    "channel_sessions": (
        "CREATE INDEX channel_sessions_conversation ON channel_sessions(conversation_id, position)",
    ),
    "webhook_cursors": (
        "CREATE INDEX webhook_cursors_conversation ON webhook_cursors(conversation_id)",
    ),
}

#: Tables that version 2 added (the migration creates them as they are).
NEW_IN_2 = ("webhooks", "webhook_cursors")
#: Tables that version 3 added: members and messages of rooms.
NEW_IN_3 = ("room_members", "room_messages")

SCHEMA = tuple(TABLES.values()) + tuple(i for group in INDEXES.values() for i in group)


#: ``PRAGMA synchronous`` per ``storage.fsync`` policy.
SYNCHRONOUS = {"always": "FULL", "interval": "NORMAL", "never": "OFF"}
