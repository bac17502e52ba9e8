"""``ecocascade demo``: the controller end to end with scripted models on a loopback server.

The models here are scripted — that is the point: the demo shows the controller's behaviour
(accept on the cheap tier, escalate on a wrong answer, ride out a rate limit, escalate past a
dead tier, account every token) deterministically, offline, with no key. Everything else is
the real code path: LiteLLM over HTTP, retries, the judge, prices.
"""

from __future__ import annotations

from typing import Any

from ecocascade.controller.cascade import Cascade
from ecocascade.controller.result import CascadeResult
from ecocascade.judges.check import CheckJudge
from ecocascade.models.tier import Price, RetryPolicy, Tier
from ecocascade.testing import FakeLLMServer, Fault

__all__ = ["DEMO_QUESTIONS", "run_demo"]

# (question, expected fragment, what the cheap model does on each call, the strong model's answer)
DEMO_QUESTIONS: list[tuple[str, str, list[str | Fault], str]] = [
    # right first time: accepted on tier 0
    (
        "What is the capital of France?",
        "Paris",
        ["The capital of France is Paris."],
        "Paris is the capital of France.",
    ),
    # wrong: the judge rejects it and the cascade escalates
    ("What is 17 * 23?", "391", ["17 * 23 = 381."], "17 * 23 = 391."),
    # rate-limited once: retried on the same tier after Retry-After, then accepted there
    (
        "Which planet is known as the Red Planet?",
        "Mars",
        [Fault.rate_limit(retry_after_s=0.05), "It is Mars."],
        "Mars, because of the iron oxide on its surface.",
    ),
    # a persistent outage: retries run out, the cascade escalates instead of losing the query
    (
        "Who wrote 'Pride and Prejudice'?",
        "Austen",
        [Fault.server_error(503)] * 3,
        "Jane Austen wrote 'Pride and Prejudice' (1813).",
    ),
]


def run_demo() -> list[CascadeResult]:
    expected = {question: fragment for question, fragment, _, _ in DEMO_QUESTIONS}
    cheap_calls = {question: list(calls) for question, _, calls, _ in DEMO_QUESTIONS}
    strong = {question: answer for question, _, _, answer in DEMO_QUESTIONS}
    judge = CheckJudge(lambda q, a: expected[q].lower() in a.lower(), name="expected-answer")

    # Scripted models answer by question (the last user message), so what each tier says does not
    # depend on which tiers earlier questions happened to reach.
    def cheap(body: dict[str, Any]) -> str | Fault:
        return cheap_calls[_question(body)].pop(0)

    def strong_model(body: dict[str, Any]) -> str:
        return strong[_question(body)]

    with FakeLLMServer() as server:
        server.always("cheap", cheap)
        server.always("strong", strong_model)
        retry = RetryPolicy(max_retries=2, base_delay_s=0.05, max_delay_s=1.0)
        cascade = Cascade(
            [
                Tier(
                    "openai/cheap",
                    api_base=server.api_base,
                    retry=retry,
                    price=Price(input_per_mtok=0.15, output_per_mtok=0.60),
                ),
                Tier(
                    "openai/strong",
                    api_base=server.api_base,
                    retry=retry,
                    price=Price(input_per_mtok=2.50, output_per_mtok=10.00),
                ),
            ],
            judge,
        )
        return [cascade.run_sync(question) for question, *_ in DEMO_QUESTIONS]


def _question(body: dict[str, Any]) -> str:
    return str(body["messages"][-1]["content"])
