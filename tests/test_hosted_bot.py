"""The conversation bot runs inside each conversation host: no Bot actor, one policy per host."""

from __future__ import annotations

from typing import Any, ClassVar

from actors.messages import Directory
from domain.bot import BotScript, DefaultBot
from domain.commands import Command
from domain.records import Event
from runtime import testing
from tests.conftest import MakeGateway


class CountingBot(DefaultBot):
    """The default bot, counting how many times it is constructed (embedded: one process)."""

    built: ClassVar[int] = 0

    def __init__(self, script: BotScript) -> None:
        super().__init__(script)
        CountingBot.built += 1

    def react(self, event: Event, *view: Any) -> list[Command]:
        return super().react(event, *view)  # type: ignore[call-arg]


def test_bot_answers_from_the_conversation_host_with_no_bot_actor(
    make_gateway: MakeGateway,
) -> None:
    gw = make_gateway(bot={"answer": "Thanks, noted."})
    ref = gw.start_session("cust-1", "WEB", "v")
    gw.customer_message(ref.channel_session_id, "hello")

    said = [(e["name"], e["data"].get("text")) for e in gw.events(ref.conversation_id)]
    asked = said.index(("CUSTOMER_MESSAGE", "hello"))
    assert [s for s in said[asked:] if s[0] == "BOT_MESSAGE"] == [("BOT_MESSAGE", "Thanks, noted.")]
    directory = testing.ask(gw, testing.addresses(gw).monitor, Directory("call-directory"))
    assert "bot" not in directory and set(directory) == {"router", "routers", "desks"}


def test_replacement_bot_is_constructed_once_per_conversation_host(
    make_gateway: MakeGateway,
) -> None:
    CountingBot.built = 0
    gw = make_gateway(
        bot={"class_path": "tests.test_hosted_bot:CountingBot"},
        placement={"hosts": 2, "per_host": 2},
    )
    refs = [gw.start_session(f"cust-{n}", "WEB", f"v-{n}") for n in range(4)]
    for ref in refs:
        gw.customer_message(ref.channel_session_id, "hello")

    hosts = {str(testing.host_of(gw, ref.conversation_id)) for ref in refs}
    assert len(hosts) == 2
    assert CountingBot.built == len(hosts)
    for ref in refs:
        assert [e["name"] for e in gw.events(ref.conversation_id)].count("BOT_MESSAGE") == 2
