"""Conversation memory before/after: prompt tokens and cost of a long chat, with and without it.

    .venv/bin/python evals/bench_memory.py [--turns 16] [--budget 1500] [--keep-recent 4]

A 16-turn trip-planning chat (synthetic: user turns of ~40 words, assistant replies of ~90
words, as a support or assistant chat has) is sent turn by turn, the whole history each time, as
a chat app does. Without memory the strong tier bills every old turn again; with it, past
``--budget`` tokens the older turns become a summary by the cheap tier (a ~100-word summary,
scripted on ``FakeLLMServer``: this measures tokens and cost, not answer quality — that needs
real models, which this machine does not have). Costs use LiteLLM's list prices of
``--strong`` (input) and ``--cheap`` (summary input + output).
"""

from __future__ import annotations

import argparse
import asyncio

from ecocascade import Tier, TierClient
from ecocascade._env import import_litellm
from ecocascade.compress.memory import ConversationMemory, MemorySettings, count_tokens
from ecocascade.testing import FakeLLMServer
from ecocascade.types import Message

TOPICS = [
    "flights to Lisbon", "a hotel near the river", "the tram to the castle", "day trips",
    "restaurants for fish", "the weather in May", "museum tickets", "a train to Porto",
]  # fmt: skip


def user_turn(i: int) -> str:
    topic = TOPICS[i % len(TOPICS)]
    return (f"Turn {i}: I am still planning the trip for my family of four in May. Could you tell "
            f"me more about {topic}? We prefer quiet places, we do not want to spend more than "
            f"about 150 euros a day, and my daughter is vegetarian.")  # fmt: skip


def reply(i: int) -> str:
    topic = TOPICS[i % len(TOPICS)]
    return (
        f"About {topic}: " + "Here are some options that fit a family of four on your budget, "
        "with quiet surroundings and vegetarian choices nearby. " * 5
    ).strip()


def price(model: str) -> tuple[float, float]:
    info = import_litellm().model_cost[model]
    return float(info["input_cost_per_token"]), float(info["output_cost_per_token"])


async def main(turns: int, budget: int, keep_recent: int, strong: str, cheap: str) -> None:
    strong_in, _ = price(strong)
    cheap_in, cheap_out = price(cheap)
    summary = (
        "Family of four, Lisbon in May, quiet places, <=150 EUR/day, daughter vegetarian; " * 4
    )
    with FakeLLMServer() as server:
        server.always("cheap", summary.strip())
        memory = ConversationMemory(
            TierClient(Tier("openai/cheap", api_base=server.api_base)),
            MemorySettings(budget_tokens=budget, keep_recent=keep_recent),
        )
        history: list[Message] = [{"role": "system", "content": "You are a careful travel agent."}]
        plain_tokens = kept_tokens = 0
        for i in range(turns):
            history.append({"role": "user", "content": user_turn(i)})
            plain_tokens += count_tokens(history, strong)
            compacted, _ = await memory.compact(history)
            kept_tokens += count_tokens(compacted, strong)
            history.append({"role": "assistant", "content": reply(i)})
        calls = server.requests_for("cheap")
        summary_in = sum(count_tokens(list(r.messages), cheap) for r in calls)
        summary_out = len(calls) * count_tokens([{"role": "assistant", "content": summary}], cheap)
    before = plain_tokens * strong_in
    after = kept_tokens * strong_in + summary_in * cheap_in + summary_out * cheap_out
    print(
        f"{turns} turns, budget {budget} tokens, keep_recent {keep_recent}; {strong} input"
        f" ${strong_in * 1e6:.2f}/M, {cheap} ${cheap_in * 1e6:.2f}/${cheap_out * 1e6:.2f}/M"
    )
    print(
        f"  strong-tier prompt tokens   {plain_tokens:>8} -> {kept_tokens:>8}"
        f"  ({1 - kept_tokens / plain_tokens:.0%} fewer)"
    )
    print(
        f"  summary calls               {0:>8} -> {len(calls):>8}"
        f"  ({summary_in} in / {summary_out} out tokens on {cheap})"
    )
    print(
        f"  input cost (USD)            {before:>8.5f} -> {after:>8.5f}"
        f"  ({1 - after / before:.0%} less)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=16)
    parser.add_argument("--budget", type=int, default=1500)
    parser.add_argument("--keep-recent", type=int, default=4)
    parser.add_argument("--strong", default="gpt-4o")
    parser.add_argument("--cheap", default="gpt-4o-mini")
    args = parser.parse_args()
    asyncio.run(main(args.turns, args.budget, args.keep_recent, args.strong, args.cheap))
