"""A code-writing team in the cascade, recording what works into the solution store.

EcoAssistant in a few lines: on each tier an AutoGen assistant writes Python, an executor runs it
in ecocascade's sandbox, and the cascade judges the last run. A solution that works is recorded,
and comes back as a demonstration for the next similar query, so a cheap tier can imitate it::

    python examples/code_team.py --test-server   # offline, scripted: tier 0's code raises,
                                                 # tier 1's works; then tier 0 gets it as a
                                                 # demonstration (its reply is scripted)
    python examples/code_team.py                 # the local tiers (scripts/setup.sh pulls them)

With the local tiers the store starts with one verified neighbour (as `ecocascade solutions
import` would bring from a strong tier), so the 135M/270M models have a script to imitate. The
judge checks that the last run exited 0 and printed a number — not that the number is right:
these tiny models do get the range wrong (a run on 2026-12-03 answered 165 for 1..10, where 385
is right), so with real tiers add ``LLMJudge`` or a check of your own to the ``AllOf``.

``--store DIR`` keeps the solution store (default: a temporary one, removed at exit).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
from collections.abc import Sequence

import structlog

from ecocascade import AllOf, Cascade, CascadeResult, RegexJudge, SolutionStore, Tier
from ecocascade.agents import CodeRunJudge, CodeSolver
from ecocascade.store.records import SolutionRecord, record_id
from ecocascade.testing import FakeLLMServer

QUERIES = (
    "What is the sum of the squares of the integers from 1 to 10?",
    "What is the sum of the squares of the integers from 1 to 20?",
)
LOCAL_TIERS = ("local/smollm2-135m", "local/gemma3-270m")
SEEDED = SolutionRecord(
    id=record_id("What is the sum of the squares of the integers from 1 to 5?", "default"),
    namespace="default",
    query="What is the sum of the squares of the integers from 1 to 5?",
    solution="```python\nprint(sum(i ** 2 for i in range(1, 6)))\n```",
    code="print(sum(i ** 2 for i in range(1, 6)))",
    model="verified earlier",
    judge="code-run",
)
# the run's output block (CodeSolver's answer) starts with a number
PRINTED_A_NUMBER = r"Output:\n(`{3,})text\n\s*-?\d[\d.,]*\s*\n\1"

# What the scripted models say, in order. Tier 0 ("cheap") gets the first query wrong: its code
# raises, it gives up. Tier 1 ("strong") writes working code. On the second query tier 0 has
# tier 1's recorded solution in its prompt and writes working code itself.
CHEAP_SCRIPT = (
    "```python\nprint(sum(i ** 2 for i in range(1, 11)) / zero)\n```",
    "I cannot fix this. TERMINATE",
    "```python\nprint(sum(i * i for i in range(1, 21)))\n```",
    "The sum is 2870. TERMINATE",
)
STRONG_SCRIPT = (
    "```python\nprint(sum(i * i for i in range(1, 11)))\n```",
    "The sum is 385. TERMINATE",
)


async def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--test-server", action="store_true", help="scripted models on a loopback server"
    )
    parser.add_argument("--store", help="solution store directory (default: a temporary one)")
    args = parser.parse_args(argv)
    # The report below says what happened; show only warnings from the library's event log.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

    with tempfile.TemporaryDirectory(prefix="code-team-") as scratch:
        store = SolutionStore(args.store or scratch)
        if args.test_server:
            with FakeLLMServer() as server:
                server.script("cheap", *CHEAP_SCRIPT)
                server.script("strong", *STRONG_SCRIPT)
                tiers = [
                    Tier("openai/cheap", api_base=server.api_base, name="cheap"),
                    Tier("openai/strong", api_base=server.api_base, name="strong"),
                ]
                return await solve_all(tiers, store)
        # The tiny local models can't write this script unaided. Like a team that imports
        # solutions a strong API tier verified earlier (`ecocascade solutions import`), start
        # the store with one verified neighbour: the cheap tier gets it as a demonstration.
        await store.record(SEEDED)
        print(f"store starts with one verified solution: {SEEDED.query!r}")
        return await solve_all([Tier(model) for model in LOCAL_TIERS], store)


async def solve_all(tiers: list[Tier], store: SolutionStore) -> int:
    cascade = Cascade(
        tiers,
        # the last run exited 0 and printed a number (AllOf(..., LLMJudge(...)) to check more):
        # a script that runs but prints nothing is not an answer, and is never recorded
        judge=AllOf(CodeRunJudge(), RegexJudge(PRINTED_A_NUMBER)),
        solver=CodeSolver(max_turns=2, timeout_s=10),
        store=store,
    )
    failures = 0
    for query in QUERIES:
        result = await cascade.run(query, use_cache=False)
        report(result)
        failures += not result.success
    return 1 if failures else 0


def report(result: CascadeResult) -> None:
    print(f"\nQ: {result.query}")
    for demo in result.demonstrations:
        print(f"  demonstration: {demo.query!r} (similarity {demo.similarity:.2f})")
    for attempt in result.attempts:
        print(f"  tier {attempt.tier} {attempt.model}: {attempt.verdict} ({attempt.reason})")
    if result.success:
        print(f"  resolved on tier {result.tier}; recorded as {result.recorded_id}")
        print("  " + (result.answer or "").replace("\n", "\n  "))
    else:
        print(f"  unresolved ({result.stop_reason})")


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
