"""The in-process test models drive a real cascade with no HTTP: no server, no LiteLLM call."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ecocascade import Cascade, ContainsJudge, Price
from ecocascade.exceptions import ProviderUnavailableError
from ecocascade.judges import WellFormedReply
from ecocascade.testing import FunctionModel, Reply, ScriptedModel, ToolCall
from ecocascade.types import ChatModel, ChatRequest, Message, ToolCallDelta

ADD_TOOL = {
    "type": "function",
    "function": {
        "name": "add",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "required": ["a", "b"],
        },
    },
}


def test_the_test_models_are_chat_models() -> None:
    assert isinstance(ScriptedModel(), ChatModel)
    assert isinstance(FunctionModel(lambda messages, params: "x"), ChatModel)


async def test_a_scripted_ladder_escalates_and_keeps_the_calls_it_got() -> None:
    small = ScriptedModel("small", "Lyon", price=Price(1.0, 2.0))
    large = ScriptedModel("large", "Paris", price=Price(10.0, 30.0))
    cascade = Cascade([small, large], ContainsJudge("Paris"), system_prompt="Be brief.")

    result = await cascade.run("Capital of France?")

    assert result.answer == "Paris" and result.model == "test/large"
    assert [a.verdict for a in result.attempts] == ["reject", "accept"]
    assert small.history[0].messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Capital of France?"},
    ]
    # 11 prompt tokens (words + 3 per message) and 1 output token on each tier
    assert result.cost_usd == pytest.approx((11 * 1 + 1 * 2 + 11 * 10 + 1 * 30) / 1e6)
    assert small.pending == 0 and large.pending == 0


async def test_a_provider_error_from_a_scripted_model_escalates() -> None:
    small = ScriptedModel("small", ProviderUnavailableError("down", model="test/small"))
    large = ScriptedModel("large", "Paris")

    result = await Cascade([small, large], ContainsJudge("Paris")).run("Capital of France?")

    assert result.attempts[0].error == "unavailable" and result.tier == 1


async def test_an_empty_queue_is_an_error_not_a_silent_answer() -> None:
    result = await Cascade([ScriptedModel("only")], ContainsJudge("x")).run("Q?")
    assert not result.success and "no scripted reply left" in (
        result.attempts[0].error_message or ""
    )


async def test_a_function_model_sees_the_request_tools_and_its_tool_call_is_judged() -> None:
    def answer(messages: list[Message], params: dict[str, object]) -> Reply:
        assert params["tools"] == [ADD_TOOL]
        return Reply(tool_calls=[ToolCall("add", {"a": 2, "b": 3}, id="c1")])

    model = FunctionModel(answer)
    request = ChatRequest(messages=({"role": "user", "content": "2+3?"},), tools=(ADD_TOOL,))

    result = await Cascade([model], WellFormedReply()).resolve(request)

    assert result.success and result.message is not None
    assert result.message["tool_calls"][0]["function"] == {
        "name": "add",
        "arguments": json.dumps({"a": 2, "b": 3}),
    }
    assert model.history[0].params["tools"] == [ADD_TOOL]


async def test_a_scripted_model_streams_text_and_tool_call_pieces() -> None:
    model = ScriptedModel("m", "one two three", Reply(tool_calls=[ToolCall("add", {"a": 1})]))

    text = [p async for p in model.stream([{"role": "user", "content": "count"}])]
    calls = [p async for p in model.stream([{"role": "user", "content": "add"}])]

    assert "".join(p for p in text if isinstance(p, str)) == "one two three"
    pieces = [p for p in calls if isinstance(p, ToolCallDelta)]
    assert pieces[0].name == "add" and "".join(p.arguments for p in pieces) == '{"a": 1}'
    assert [c.stream for c in model.history] == [True, True]


def test_a_cascade_on_test_models_never_imports_litellm() -> None:
    code = (
        "import asyncio, sys\n"
        "from ecocascade import Cascade, ContainsJudge\n"
        "from ecocascade.testing import ScriptedModel\n"
        "cascade = Cascade([ScriptedModel('a', 'no'), ScriptedModel('b', 'yes')], "
        "ContainsJudge('yes'))\n"
        "result = asyncio.run(cascade.run('q?'))\n"
        "print(result.answer, 'litellm' in sys.modules, 'httpx' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.splitlines()[-1].split() == ["yes", "False", "False"]  # logs come first
