"""``ecocascade demo``: the cascade end to end, offline.

- :func:`run_local_demo` — real local models (SmolLM2-135M, then Gemma-3-270M) on short questions
  with known answers. The judge checks the expected answer: this is a demo of escalation on real
  (weak) models, not a benchmark (``ecocascade eval`` is).
- :func:`run_scripted_demo` — scripted models on the built-in fake server, to show deterministically
  what the controller does on a rate limit, an outage or a wrong answer. Everything but the
  models is the real code path: LiteLLM over HTTP, retries, the judge, prices.
"""

from __future__ import annotations

import re
from typing import Any

from ecocascade.controller.cascade import Cascade
from ecocascade.controller.result import CascadeResult
from ecocascade.judges.check import CheckJudge
from ecocascade.models.tier import Price, RetryPolicy, Tier
from ecocascade.testing import FakeLLMServer, Fault

__all__ = ["LOCAL_QUESTIONS", "LOCAL_TIERS", "run_local_demo", "run_scripted_demo"]

LOCAL_TIERS = ("local/smollm2-135m", "local/gemma3-270m")

# (question, a pattern the right answer matches)
LOCAL_QUESTIONS: list[tuple[str, str]] = [
    ("What is the capital of France?", r"\bParis\b"),
    ("Which planet is the largest in our solar system?", r"\bJupiter\b"),
    ("How many legs does a spider have?", r"\b(8|eight)\b"),
    ("What is the opposite of hot?", r"\bcold\b"),
    ("What gas do plants absorb from the air for photosynthesis?", r"carbon dioxide|\bCO2\b"),
    ("What is 7 times 8?", r"\b56\b"),
    ("Who wrote Romeo and Juliet?", r"\bShakespeare\b"),
    ("What is the chemical symbol for gold?", r"\bAu\b"),
    ("What is the freezing point of water in degrees Celsius?", r"(?<![-\d])0\s*(°|degrees)"),
    ("What is the capital of Australia?", r"\bCanberra\b"),
    ("What is 17 times 23?", r"\b391\b"),
    ("How many days are in a leap year?", r"\b366\b"),
    ("Which element has the atomic number 1?", r"\bhydrogen\b"),
    ("What is the square root of 144?", r"\b12\b"),
]


def run_local_demo() -> list[CascadeResult]:
    """The cheapest local model first; the next one when the answer is wrong."""
    from ecocascade.models.local import shutdown

    expected = {q: re.compile(pattern, re.IGNORECASE) for q, pattern in LOCAL_QUESTIONS}
    judge = CheckJudge(lambda q, a: bool(expected[q].search(a)), name="expected-answer")
    cascade = Cascade(list(LOCAL_TIERS), judge)
    try:
        return [cascade.run_sync(question) for question, _ in LOCAL_QUESTIONS]
    finally:
        shutdown()


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


def run_scripted_demo() -> list[CascadeResult]:
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
