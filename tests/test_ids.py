"""The id schemes of domain.ids: made one way, read back the same, malformed ones refused."""

from __future__ import annotations

import pickle

import pytest

from domain.ids import (
    EntityKind,
    MalformedIdError,
    SubscriptionKind,
    agent_entity_id,
    agent_request_id,
    agent_subscription,
    conversation_entity_id,
    conversation_id_of,
    entity_kind,
    event_id,
    parse_entity_id,
    parse_subscription,
    session_entity_id,
    session_subscription,
)


def test_entity_ids_read_back_as_their_kind_and_id() -> None:
    assert parse_entity_id(conversation_entity_id("conv-1")) == (EntityKind.CONVERSATION, "conv-1")
    assert parse_entity_id(session_entity_id("cs-1")) == (EntityKind.SESSION, "cs-1")
    assert parse_entity_id(agent_entity_id("alice:2")) == (EntityKind.AGENT, "alice:2")


def test_entity_ids_keep_their_stored_spelling() -> None:
    assert [conversation_entity_id("x"), session_entity_id("x"), agent_entity_id("x")] == [
        "c:x",
        "s:x",
        "a:x",
    ]


@pytest.mark.parametrize("bad", ["conv-1", "x:conv-1", "c:", "", "c-conv-1"])
def test_a_malformed_entity_id_is_refused_naming_it(bad: str) -> None:
    with pytest.raises(MalformedIdError, match="not an entity id"):
        parse_entity_id(bad)
    assert entity_kind(bad) is None


def test_conversation_id_of_refuses_another_kind_of_entity() -> None:
    assert conversation_id_of("c:conv-1") == "conv-1"
    with pytest.raises(MalformedIdError, match="'s:cs-1' is not a conversation entity id"):
        conversation_id_of("s:cs-1")


def test_subscriptions_read_back_as_their_kind_and_id() -> None:
    assert parse_subscription(session_subscription("cs-1")) == (SubscriptionKind.SESSION, "cs-1")
    assert parse_subscription(agent_subscription("bob")) == (SubscriptionKind.AGENT, "bob")
    assert session_subscription("cs-1") == "session:cs-1"


@pytest.mark.parametrize("bad", ["bogus", "agent:", "session", "room:r-1", ":x", 7])
def test_a_malformed_subscription_is_refused_with_the_forms_expected(bad: object) -> None:
    with pytest.raises(MalformedIdError, match="expected session:<id> or agent:<id>"):
        parse_subscription(bad)


def test_a_malformed_id_error_survives_pickling() -> None:
    error = MalformedIdError("a subscription", "bogus", "session:<id> or agent:<id>")
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), str(copy)) == (MalformedIdError, str(error))


def test_event_and_request_ids() -> None:
    assert event_id("conv-1", 7) == "conv-1:7"
    assert agent_request_id("conv-1", 2) == "conv-1/r2"
