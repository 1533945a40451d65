"""A TEAM room's messages pushed to its members' desks as they are kept (embedded gateway,
virtual clock): each member subscribed to ``agent:<id>`` gets a ROOM_MESSAGE numbered in the
room (its ``seq``), a non-member gets nothing, and a re-sent message comes again with the same
(room_id, seq), which is what a desk de-duplicates by (docs/PROTOCOL.md)."""

from __future__ import annotations

from runtime.gateway import Gateway, PushedEvent
from tests.conftest import MakeGateway


def desks(gw: Gateway, *agent_ids: str) -> None:
    for agent_id in agent_ids:
        gw.agent_login(agent_id)
        gw.subscribe_agent(agent_id)


def room_messages(pushed: list[PushedEvent]) -> list[tuple[str, str, int, str]]:
    """(subscription, room id, seq, text) of each ROOM_MESSAGE pushed."""
    return [
        (p.subscription, p.event["data"]["room_id"], p.event["seq"], p.event["data"]["text"])
        for p in pushed
        if p.event["name"] == "ROOM_MESSAGE"
    ]


def test_a_team_message_is_pushed_to_every_members_desk_and_not_to_a_non_member(
    make_gateway: MakeGateway,
) -> None:
    with make_gateway() as gw:
        desks(gw, "ann", "sue", "bob")
        room = gw.create_room("TEAM", ["ann", "sue"])["room_id"]
        gw.pushed()
        gw.room_message("ann", room, "who takes the 3pm?")
        gw.room_message("sue", room, "I do")
        assert sorted(room_messages(gw.pushed())) == [
            ("agent:ann", room, 1, "who takes the 3pm?"),
            ("agent:ann", room, 2, "I do"),
            ("agent:sue", room, 1, "who takes the 3pm?"),
            ("agent:sue", room, 2, "I do"),
        ]


def test_a_pushed_team_message_names_its_author_and_is_no_conversations(
    make_gateway: MakeGateway,
) -> None:
    with make_gateway() as gw:
        desks(gw, "sue")
        room = gw.create_room("TEAM", ["ann", "sue"])["room_id"]
        gw.room_message("ann", room, "hello", message_id="m-1")
        (pushed,) = [p for p in gw.pushed() if p.event["name"] == "ROOM_MESSAGE"]
        assert pushed.conversation_id == ""
        assert (pushed.event["type"], pushed.event["emitter"]) == (
            "MESSAGE",
            {"id": "ann", "type": "AGENT"},
        )
        assert pushed.event["data"] == {
            "room_id": room,
            "message_id": "m-1",
            "agent_id": "ann",
            "text": "hello",
        }


def test_a_re_sent_team_message_is_pushed_again_with_its_first_number(
    make_gateway: MakeGateway,
) -> None:
    with make_gateway() as gw:
        desks(gw, "ann")
        room = gw.create_room("TEAM", ["ann", "sue"])["room_id"]
        gw.room_message("ann", room, "once", message_id="m-1")
        gw.room_message("ann", room, "once", message_id="m-1")
        assert room_messages(gw.pushed()) == [("agent:ann", room, 1, "once")] * 2
        assert len(gw.room_history(room)) == 1


def test_team_messages_of_two_rooms_are_each_numbered_in_their_room(
    make_gateway: MakeGateway,
) -> None:
    with make_gateway() as gw:
        desks(gw, "ann")
        first = gw.create_room("TEAM", ["ann", "sue"])["room_id"]
        second = gw.create_room("TEAM", ["ann", "bob"])["room_id"]
        gw.room_message("ann", first, "a")
        gw.room_message("ann", first, "b")
        gw.room_message("ann", second, "c")  # seq 1 again, in another room: not a replay
        assert room_messages(gw.pushed()) == [
            ("agent:ann", first, 1, "a"),
            ("agent:ann", first, 2, "b"),
            ("agent:ann", second, 1, "c"),
        ]


def test_a_member_not_logged_in_is_not_pushed_and_the_message_is_kept(
    make_gateway: MakeGateway,
) -> None:
    with make_gateway() as gw:
        desks(gw, "ann")
        room = gw.create_room("TEAM", ["ann", "sue"])["room_id"]  # sue is not logged in
        gw.room_message("ann", room, "anyone?")
        assert [s for s, *_ in room_messages(gw.pushed())] == ["agent:ann"]
        assert [m["text"] for m in gw.room_history(room)] == ["anyone?"]
