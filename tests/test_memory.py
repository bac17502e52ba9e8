"""Conversation memory: past the budget, older turns become a cached summary by a cheap tier."""

from __future__ import annotations

from ecocascade import Tier, TierClient
from ecocascade.compress import ConversationMemory, MemorySettings
from ecocascade.compress.memory import SUMMARY_HEADER, count_tokens
from ecocascade.testing import FakeLLMServer
from ecocascade.types import Message

SYSTEM: Message = {"role": "system", "content": "You are a travel agent."}


def chat(turns: int) -> list[Message]:
    messages = [SYSTEM]
    for i in range(turns):
        messages.append({"role": "user", "content": f"Turn {i}: " + "tell me about Lisbon. " * 20})
        messages.append(
            {"role": "assistant", "content": f"Answer {i}: " + "Lisbon is lovely. " * 20}
        )
    return messages


def memory(server: FakeLLMServer, budget: int = 400) -> ConversationMemory:
    cheap = TierClient(Tier("openai/cheap", api_base=server.api_base))
    return ConversationMemory(cheap, MemorySettings(budget_tokens=budget, keep_recent=2))


async def test_a_conversation_under_budget_is_sent_unchanged(server: FakeLLMServer) -> None:
    messages = chat(1)
    out, report = await memory(server, budget=10_000).compact(messages)
    assert out == messages and report.tokens_after == report.tokens_before
    assert server.requests_for("cheap") == []


async def test_older_turns_past_the_budget_become_one_summary_and_recent_ones_stay(
    server: FakeLLMServer,
) -> None:
    server.script("cheap", "User plans a Lisbon trip; wants tram tips.")
    messages = [*chat(4), {"role": "user", "content": "Which tram goes to the castle?"}]

    out, report = await memory(server).compact(messages)

    assert out[0]["role"] == "system"
    assert out[0]["content"] == (
        f"You are a travel agent.\n\n{SUMMARY_HEADER}User plans a Lisbon trip; wants tram tips."
    )
    assert out[1:] == messages[-2:]
    assert report.summarised_messages == 7 and report.tokens_after < report.tokens_before / 3
    assert report.tokens_after == count_tokens(out, "openai/cheap")
    (request,) = server.requests_for("cheap")
    assert "Turn 0:" in str(request.messages[0]["content"])


async def test_the_same_prefix_is_summarised_once_and_the_next_turn_only_adds_what_is_new(
    server: FakeLLMServer,
) -> None:
    server.script("cheap", "Summary A.", "Summary B.")
    keeper = memory(server)
    first = chat(4)

    await keeper.compact(first)
    again, report = await keeper.compact(first)  # a retry of the same request
    longer = [*first, {"role": "user", "content": "And the beaches?"},
              {"role": "assistant", "content": "Cascais."}]  # fmt: skip
    _, later = await keeper.compact(longer)

    assert report.summary_cached and report.cost_usd == 0.0
    assert "Summary A." in str(again[0]["content"])
    requests = server.requests_for("cheap")
    assert len(requests) == 2 and not later.summary_cached
    follow_up = str(requests[1].messages[0]["content"])
    assert "Summary so far:\nSummary A." in follow_up and "Turn 0:" not in follow_up


async def test_a_tool_result_is_never_separated_from_its_call(server: FakeLLMServer) -> None:
    server.script("cheap", "Earlier: weather questions.")
    call: Message = {"role": "assistant", "content": "", "tool_calls": [{"id": "c1"}]}
    result: Message = {"role": "tool", "tool_call_id": "c1", "content": "18C"}
    messages = [*chat(3), call, result]
    keeper = ConversationMemory(
        TierClient(Tier("openai/cheap", api_base=server.api_base)),
        MemorySettings(budget_tokens=300, keep_recent=1),
    )

    out, _ = await keeper.compact(messages)

    assert out[-2:] == [call, result]
