"""A tool-using AutoGen assistant whose every model call goes cheapest tier first.

    python examples/tool_assistant.py                # local tiers: smollm2-135m, then gemma3-270m
    python examples/tool_assistant.py --test-server  # a scripted server: tier 0 calls a tool
                                                     # that does not exist, tier 1 gets it right

The cascade client judges each reply — a call to a tool that was offered, with arguments valid
against its schema, or text that quotes the tool's reading (``ContainsJudge``) — and escalates the
*call*, not the whole conversation, when it is not good enough. The log lines show each attempt
(``cascade.attempt``) and each escalation (``cascade.escalated``).

Offline, SmolLM2 gets ``tool_choice="required"``: on a call that offers tools, llama.cpp's grammar
holds its reply to a JSON tool call (which tool and which arguments are the model's own), the agent
runs the tool, and SmolLM2 answers from its result. Gemma (a base model, no tool calls) is the
fallback for the text answer.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from autogen_agentchat.agents import AssistantAgent
from autogen_core.models import ModelInfo

from ecocascade import CascadeFailedError, ContainsJudge, Price, Tier
from ecocascade.agents import CascadeChatCompletionClient
from ecocascade.testing import FakeLLMServer, Reply, ToolCall

QUESTION = "What is the weather in Paris?"
# Text replies must quote the tool's reading: an answer made up without the tool is rejected.
JUDGE = ContainsJudge("21 C")


def get_weather(city: str) -> str:
    """The current weather in a city."""
    return f"Sunny, 21 C in {city}."


async def ask(client: CascadeChatCompletionClient) -> int:
    agent = AssistantAgent(
        "assistant", model_client=client, tools=[get_weather], reflect_on_tool_use=True
    )
    try:
        result = await agent.run(task=QUESTION)
    except CascadeFailedError as error:
        print("\nNo tier gave a usable reply to one of the agent's calls:")
        for attempt in error.result.attempts:
            print(
                f"  tier {attempt.tier} {attempt.model}: {attempt.error_message or attempt.reason}"
            )
        return 1
    print(f"\nAnswer: {result.messages[-1].to_text()}")
    print(
        f"{client.calls} model calls; the last answered by {client.last_model}; "
        f"cost ${client.total_cost_usd or 0:.6f}"
    )
    return 0


def local_client() -> CascadeChatCompletionClient:
    tiers = [
        # A call that offers tools must be answered with a tool call (the tier's tool_choice
        # replaces the agent's "auto"); the reflection call offers none and gets text. Without
        # the catalogue's frequency penalty SmolLM2 repeats the tool's reading instead of
        # wandering off it.
        Tier(
            "local/smollm2-135m",
            params={"max_tokens": 64, "tool_choice": "required", "frequency_penalty": 0.0},
        ),
        Tier("local/gemma3-270m", params={"max_tokens": 64}),
    ]
    # gemma3-270m is a base model that cannot call tools, so the tiers' common model_info says
    # "no function calling". Claim it anyway: the cascade skips a tier for calls it cannot serve.
    info = ModelInfo(
        vision=False, function_calling=True, json_output=False, family="unknown",
        structured_output=False,
    )  # fmt: skip
    return CascadeChatCompletionClient(tiers, judge=JUDGE, model_info=info)


def scripted_client(server: FakeLLMServer) -> CascadeChatCompletionClient:
    # Tier 0 calls a tool that does not exist, then (for the reflection call) answers in text.
    server.script(
        "small",
        Reply(tool_calls=[ToolCall("weather", {"city": "Paris"})]),
        Reply("It is sunny and 21 C in Paris."),
    )
    server.script("large", Reply(tool_calls=[ToolCall("get_weather", {"city": "Paris"})]))
    tiers = [
        Tier("openai/small", api_base=server.api_base, price=Price(0.15, 0.60)),
        Tier("openai/large", api_base=server.api_base, price=Price(2.50, 10.00)),
    ]
    return CascadeChatCompletionClient(tiers, judge=JUDGE)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--test-server", action="store_true", help="use a scripted local server")
    args = parser.parse_args()
    if not args.test_server:
        return asyncio.run(ask(local_client()))
    with FakeLLMServer() as server:
        return asyncio.run(ask(scripted_client(server)))


if __name__ == "__main__":
    sys.exit(main())
