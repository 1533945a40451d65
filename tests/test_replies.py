"""Answers to several calls of one caller, handled in one message, leave as one message."""

from __future__ import annotations

from actors.messages import Batch, Deliver, Reply, ReplyTo, StatusQuery
from runtime import testing
from runtime.gateway import Gateway
from tests.conftest import MakeGateway


def _status_calls(gw: Gateway, *call_ids: str) -> Batch:
    return Batch(
        gw.now_ms,
        tuple(Deliver("", StatusQuery(), ReplyTo(testing.address(gw), call_id)) for call_id in call_ids),
    )


def test_answers_to_one_caller_leave_as_one_batch_in_order(make_gateway: MakeGateway) -> None:
    gw = make_gateway()
    system, monitor = testing.system(gw), testing.addresses(gw).monitor
    system.tell(monitor, _status_calls(gw, "call-a", "call-b", "call-c"))
    answers = []
    while (message := system.listen(0)) is not None:
        answers.append(message)
    batches = [m for m in answers if isinstance(m, Batch)]
    assert len(batches) == 1 and not [m for m in answers if isinstance(m, Reply)]
    replies = [item.payload for item in batches[0].items]
    assert [r.call_id for r in replies] == ["call-a", "call-b", "call-c"]
    assert all(isinstance(r, Reply) and r.value.conversations == {} for r in replies)
    assert {item.entity for item in batches[0].items} == {""}


def test_a_lone_answer_leaves_as_itself(make_gateway: MakeGateway) -> None:
    gw = make_gateway()
    system = testing.system(gw)
    system.tell(testing.addresses(gw).monitor, _status_calls(gw, "call-a"))
    message = system.listen(0)
    assert isinstance(message, Reply) and message.call_id == "call-a"


def test_the_gateway_finds_its_answer_among_answers_sent_together(
    make_gateway: MakeGateway,
) -> None:
    gw = make_gateway()
    testing.system(gw).tell(testing.addresses(gw).monitor, _status_calls(gw, "call-a", "call-b"))
    assert testing.answer(gw, "call-b").call_id == "call-b"
    assert testing.answer(gw, "call-a").call_id == "call-a"  # kept meanwhile, not dropped
    assert gw.status()["conversations"] == {}  # and the gateway goes on as usual
