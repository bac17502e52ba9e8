"""CodeSolver: real AutoGen agents write code, the real sandbox runs it, real LiteLLM and Chroma."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from autogen_core import CancellationToken
from autogen_core.code_executor import CodeBlock
from structlog.testing import capture_logs

from ecocascade import (
    AllOf,
    Cascade,
    ConfigError,
    ContainsJudge,
    LLMJudge,
    Price,
    ResponseCache,
    RetryPolicy,
    SolutionStore,
    Task,
    Tier,
    TierClient,
)
from ecocascade.agents.code import CodeSolver, SandboxCodeExecutor
from ecocascade.judges.execution import CodeRunJudge
from ecocascade.testing import FakeLLMServer
from ecocascade.text import extract_python_code

PRICE = Price(input_per_mtok=1.0, output_per_mtok=2.0)
SECRET = "sk-test-0123456789abcdef"

FAILING = "Let me compute it.\n```python\nprint(6 * 7 / 0)\n```"
WORKING = "Fixed.\n```python\nresult = 6 * 7\nprint(f'answer: {result}')\n```"
WORKING_CODE = "result = 6 * 7\nprint(f'answer: {result}')\n"


def tiers(server: FakeLLMServer, *names: str) -> list[Tier]:
    return [
        Tier(
            f"openai/{name}",
            api_base=server.api_base,
            price=PRICE,
            retry=RetryPolicy(max_retries=0),
            timeout_s=10,
        )
        for name in names
    ]


def client(server: FakeLLMServer, name: str = "m") -> TierClient:
    return TierClient(tiers(server, name)[0])


class HashingEmbedder:
    """A real (tiny) embedder: words hashed into 64 dimensions, so similar queries are close."""

    name = "test/hashed-bag-of-words-64"

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors = []
        for text in texts:
            vector = [0.0] * 64
            for word in re.findall(r"\w+", text.lower()):
                vector[int(hashlib.sha256(word.encode()).hexdigest(), 16) % 64] += 1.0
            norm = math.sqrt(sum(x * x for x in vector)) or 1.0
            vectors.append([x / norm for x in vector])
        return vectors


# --- the cascade around the code-writing team -------------------------------------------------


async def test_tier_0_code_raises_tier_1_code_succeeds_and_is_recorded(
    server: FakeLLMServer, tmp_path: Path
) -> None:
    """Tier 0's code fails twice, the cascade escalates, and tier 1's code is what gets stored."""
    server.script("small", FAILING, FAILING, "I could not fix it. TERMINATE")
    server.script("large", WORKING, "The answer is 42. TERMINATE")
    store = SolutionStore(tmp_path / "db", embedder=HashingEmbedder())
    cascade = Cascade(
        tiers(server, "small", "large"),
        CodeRunJudge(),
        solver=CodeSolver(max_turns=2, timeout_s=5),
        store=store,
    )
    result = await cascade.run("What is 6 times 7?")

    assert [(a.tier, a.verdict) for a in result.attempts] == [(0, "reject"), (1, "accept")]
    assert result.attempts[0].reason == "the last run failed: exit code 1"
    assert "ZeroDivisionError" in (result.attempts[0].answer or "")
    assert len(server.requests_for("small")) == 3  # two scripts, then a last word
    # Tier 1 starts fresh: nothing of tier 0's conversation reaches it.
    assert "6 * 7 / 0" not in json.dumps(server.requests_for("large")[0].messages)

    record = store.get(result.recorded_id or "")
    assert record is not None
    assert record.code == WORKING_CODE
    assert record.model == "openai/large" and record.tier == 1
    assert "answer: 42" in record.solution
    assert result.answer is not None and extract_python_code(result.answer) == WORKING_CODE
    assert result.answer.startswith("The answer is 42.")


async def test_demonstrations_reach_tier_1s_initial_message(
    server: FakeLLMServer, tmp_path: Path
) -> None:
    """A recorded solution of a similar query is in the first message each tier's team gets."""
    store = SolutionStore(tmp_path / "db", embedder=HashingEmbedder())
    cascade = Cascade(
        tiers(server, "small", "large"),
        CodeRunJudge(),
        solver=CodeSolver(max_turns=1, timeout_s=5),
        store=store,
    )
    server.script("small", FAILING, "Sorry. TERMINATE")
    server.script("large", WORKING, "42. TERMINATE")
    first = await cascade.run("What is 6 times 7?")
    assert first.recorded_id is not None

    server.script("small", FAILING, "Sorry. TERMINATE")
    server.script("large", "```python\nprint(6 * 8)\n```", "48. TERMINATE")
    second = await cascade.run("What is 6 times 8?")
    assert second.success and second.tier == 1
    assert [d.query for d in second.demonstrations] == ["What is 6 times 7?"]
    initial = server.requests_for("large")[-2].messages[1]["content"]
    # The demonstration shows the words and the code that ran, not its output or status line.
    assert f"Query: What is 6 times 7?\nSolution: 42.\n```python\n{WORKING_CODE}```" in initial
    assert "[execution:" not in initial and "Output:" not in initial
    assert initial.endswith("Now solve this query:\nWhat is 6 times 8?")
    # The demonstration's code is for reading: only the assistant's own code runs.
    assert "answer: 42" not in (second.answer or "")
    assert extract_python_code(second.answer or "") == "print(6 * 8)\n"


async def test_an_llm_style_judge_combines_with_the_run_outcome(server: FakeLLMServer) -> None:
    """``AllOf(CodeRunJudge(), ...)``: a clean run with the wrong output is still rejected."""
    server.script("small", "```python\nprint(41)\n```", "41 TERMINATE")
    server.script("large", "```python\nprint(42)\n```", "42 TERMINATE")
    cascade = Cascade(
        tiers(server, "small", "large"),
        AllOf(CodeRunJudge(), ContainsJudge("42")),
        solver=CodeSolver(max_turns=1, timeout_s=5),
    )
    result = await cascade.run("Print the answer.")
    assert [a.verdict for a in result.attempts] == ["reject", "accept"]
    assert "code-run: the last run exited 0" in (result.attempts[0].reason or "")


async def test_an_llm_judge_reads_the_code_and_its_output(server: FakeLLMServer) -> None:
    """``AllOf(CodeRunJudge(), LLMJudge(...))``: the model judge sees the code that ran and what
    it printed, and its no escalates a run that exited 0."""
    server.script("small", "```python\nprint(6 + 7)\n```", "13 TERMINATE")
    server.script("large", WORKING, "42 TERMINATE")
    server.script("judge", "no", "yes")
    judge_tier = tiers(server, "judge")[0]
    cascade = Cascade(
        tiers(server, "small", "large"),
        AllOf(CodeRunJudge(), LLMJudge(judge_tier)),
        solver=CodeSolver(max_turns=1, timeout_s=5),
    )
    result = await cascade.run("What is 6 times 7?")
    assert [a.verdict for a in result.attempts] == ["reject", "accept"]
    asked = server.requests_for("judge")[0].messages[0]["content"]
    assert "print(6 + 7)" in asked and "```text\n13\n```" in asked
    assert result.cost_usd is not None and result.attempts[1].judge_cost_usd


# --- secrets ----------------------------------------------------------------------------------

SECRET_CODE = (
    "```python\n"
    "import hashlib, os\n"
    "key = os.environ['WEATHER_KEY']\n"
    "inline = '{{WEATHER_KEY}}'\n"
    "print('using', key, 'and', inline)\n"
    "print(hashlib.sha256(inline.encode()).hexdigest())\n"
    "raise RuntimeError('bad key ' + key)\n"
    "```"
)


async def test_secrets_reach_the_code_but_never_the_model_store_cache_or_logs(
    server: FakeLLMServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The key works inside the sandbox (env var and {{NAME}}), and is masked everywhere else."""
    server.script("small", SECRET_CODE, "TERMINATE")
    server.script("large", SECRET_CODE.replace("raise RuntimeError", "# "), "Done. TERMINATE")
    store = SolutionStore(tmp_path / "db", embedder=HashingEmbedder())
    cache = ResponseCache(tmp_path / "cache.sqlite3", embedder=HashingEmbedder())
    cascade = Cascade(
        tiers(server, "small", "large"),
        CodeRunJudge(),
        solver=CodeSolver(max_turns=1, timeout_s=5, secrets={"WEATHER_KEY": SECRET}),
        store=store,
        cache=cache,
    )
    caplog.set_level(logging.DEBUG)
    with capture_logs() as logs:
        result = await cascade.run("What is the weather in Rome?")
    assert result.success and result.tier == 1

    # The code really had the value: the hash of the substituted placeholder is the secret's.
    digest = hashlib.sha256(SECRET.encode()).hexdigest()
    assert digest in (result.answer or "")
    assert "using <WEATHER_KEY> and <WEATHER_KEY>" in (result.answer or "")
    assert "RuntimeError: bad key <WEATHER_KEY>" in (result.attempts[0].answer or "")

    # The model was told the name, never the value.
    everything_sent = json.dumps([r.body for r in server.requests])
    assert "WEATHER_KEY" in everything_sent
    assert SECRET not in everything_sent
    # Not in answers, the store, the cache or any log line.
    assert SECRET not in json.dumps([a.answer for a in result.attempts])
    exported = tmp_path / "export.jsonl"
    store.export(exported)
    assert "{{WEATHER_KEY}}" in exported.read_text()
    assert SECRET not in exported.read_text()
    assert SECRET not in (tmp_path / "cache.sqlite3").read_bytes().decode("latin-1")
    assert SECRET not in json.dumps(logs, default=str)
    assert SECRET not in caplog.text
    await cache.close()


async def test_secrets_are_masked_in_the_transcript(server: FakeLLMServer) -> None:
    """The executor's reply in the transcript shows the placeholder, not the value."""
    server.script("m", SECRET_CODE, "TERMINATE")
    solver = CodeSolver(max_turns=1, timeout_s=5, secrets={"WEATHER_KEY": SECRET})
    solution = await solver.solve(Task("Weather?"), client(server))
    executor_says = [m["content"] for m in solution.transcript if m["name"] == "executor"]
    assert executor_says and "bad key <WEATHER_KEY>" in executor_says[0]
    assert SECRET not in json.dumps(list(solution.transcript))


def test_the_prompt_names_secrets_and_files_without_values() -> None:
    """The assistant's system message lists the secret names and support files."""
    solver = CodeSolver(secrets={"WEATHER_KEY": SECRET}, files={"weather_api.py": "X = 1"})
    prompt = solver.prompt()
    assert 'os.environ["WEATHER_KEY"]' in prompt and "{{WEATHER_KEY}}" in prompt
    assert "weather_api.py" in prompt
    assert SECRET not in prompt and SECRET not in repr(solver)


# --- the loop ---------------------------------------------------------------------------------


async def test_support_files_can_be_imported_by_the_code(
    server: FakeLLMServer, tmp_path: Path
) -> None:
    """A tool module shipped as a file is importable by the model's script."""
    tool = tmp_path / "weather_api.py"
    tool.write_text("def forecast(city):\n    return f'{city}: sunny'\n")
    server.script(
        "m",
        "```python\nimport weather_api\nprint(weather_api.forecast('Rome'))\n```",
        "Sunny. TERMINATE",
    )
    solver = CodeSolver(max_turns=2, timeout_s=5, files=[tool])
    solution = await solver.solve(Task("Weather in Rome?"), client(server))
    assert "Rome: sunny" in solution.answer
    assert solution.answer.endswith("[execution: exit code 0]")


async def test_code_sent_with_terminate_still_runs_before_the_end(server: FakeLLMServer) -> None:
    """A final message carrying both code and TERMINATE ends the run only after that code ran."""
    server.script("m", "```python\nprint('ran it')\n```\nTERMINATE")
    solution = await CodeSolver(timeout_s=5).solve(Task("Run."), client(server))
    assert "ran it" in solution.answer
    assert solution.answer.endswith("[execution: exit code 0]")
    assert len(server.requests_for("m")) == 1


async def test_an_assistant_that_never_finishes_stops_at_max_turns(server: FakeLLMServer) -> None:
    """Without TERMINATE the loop ends after ``max_turns`` runs and one last word; the last run
    is reported and the code in that last word is not run."""
    server.script("m", *(f"```python\nprint('run {i}')\n```" for i in range(1, 5)))
    solution = await CodeSolver(max_turns=3, timeout_s=5).solve(Task("Loop."), client(server))
    assert len(server.requests_for("m")) == 4
    assert solution.model_calls == 4
    assert "run 3" in solution.answer and "run 4" not in solution.answer
    assert extract_python_code(solution.answer) == "print('run 3')\n"
    assert solution.answer.endswith("[execution: exit code 0]")


async def test_a_last_word_cut_inside_a_code_block_does_not_change_the_recorded_code(
    server: FakeLLMServer,
) -> None:
    """A last message with an unclosed fence (cut at max_tokens) or another language's block:
    the answer's code is still exactly the code that ran."""
    server.script(
        "m",
        WORKING,
        "It is 42.\n```bash\necho no\n```\nNext I would try:\n```python\nprint('never ran')",
    )
    solution = await CodeSolver(max_turns=1, timeout_s=5).solve(Task("6*7?"), client(server))
    assert extract_python_code(solution.answer) == WORKING_CODE
    assert "never ran" not in solution.answer and "echo no" not in solution.answer
    assert solution.answer.startswith("It is 42.\nNext I would try:")
    assert solution.answer.endswith("[execution: exit code 0]")


@pytest.mark.parametrize("tag", ["python", "py", "python3", "Python"])
async def test_blocks_tagged_with_any_python_name_are_run(server: FakeLLMServer, tag: str) -> None:
    """```py and ```python3 blocks run like ```python ones."""
    server.script("m", f"```{tag}\nprint(41 + 1)\n```", "It is 42. TERMINATE")
    solution = await CodeSolver(timeout_s=5).solve(Task("6*7?"), client(server))
    assert extract_python_code(solution.answer) == "print(41 + 1)\n"
    assert solution.answer.endswith("[execution: exit code 0]")


async def test_terminate_inside_the_code_does_not_end_the_run(server: FakeLLMServer) -> None:
    """Code that prints TERMINATE is run and its output read; only the words can end the run."""
    server.script(
        "m",
        "```python\nprint('TERMINATE')\n```",
        "```python\nprint(6 * 7)\n```",
        "It is 42. TERMINATE",
    )
    solution = await CodeSolver(max_turns=3, timeout_s=5).solve(Task("6*7?"), client(server))
    assert len(server.requests_for("m")) == 3
    assert extract_python_code(solution.answer) == "print(6 * 7)\n"
    assert solution.answer.startswith("It is 42.")


async def test_an_answer_without_code_is_rejected(server: FakeLLMServer) -> None:
    """An assistant that answers in words only ran no code: the run judge rejects it."""
    server.script("m", "It is 42. TERMINATE")
    solution = await CodeSolver(timeout_s=5).solve(Task("6*7?"), client(server))
    assert solution.answer == "It is 42.\n\n[execution: no code ran]"
    verdict = await CodeRunJudge().judge("6*7?", solution.answer)
    assert not verdict.accepted and verdict.reason == "no code ran"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_turns": 0},
        {"timeout_s": 0},
        {"memory_mb": -1},
        {"max_file_mb": 0},
        {"secrets": {"BAD NAME": "x"}},
        {"secrets": {"KEY": ""}},
        {"files": {"../up.py": "x"}},
    ],
)
def test_bad_settings_are_config_errors(kwargs: dict[str, object]) -> None:
    """Settings that could never run are rejected at construction."""
    with pytest.raises(ConfigError):
        CodeSolver(**kwargs)  # type: ignore[arg-type]


# --- the executor on its own ------------------------------------------------------------------


async def test_the_executor_refuses_other_languages() -> None:
    """A shell block is not run: only Python goes into the sandbox."""
    executor = SandboxCodeExecutor(timeout_s=5)
    result = await executor.execute_code_blocks(
        [CodeBlock(code="echo hi", language="sh")], CancellationToken()
    )
    assert result.exit_code == 1 and "Only Python" in result.output
    assert executor.runs == []


async def test_the_executor_joins_a_messages_blocks_into_one_script() -> None:
    """Two Python blocks of one message share one process, so the second sees the first."""
    executor = SandboxCodeExecutor(timeout_s=5)
    result = await executor.execute_code_blocks(
        [CodeBlock("x = 20", "python"), CodeBlock("print(x + 22)", "python")],
        CancellationToken(),
    )
    assert (result.exit_code, result.output) == (0, "42\n")
    assert executor.last_run is not None and executor.last_run.code == "x = 20\n\nprint(x + 22)\n"


async def test_a_secret_cut_by_the_output_cap_is_not_shown_in_part() -> None:
    """Output truncated in the middle of a secret's value shows no piece of that value."""
    secret = "sk-live-0123456789abcdef"
    executor = SandboxCodeExecutor(timeout_s=5, max_output_bytes=100, secrets={"KEY": secret})
    for cut_at in (1, 5, len(secret) - 1):
        code = f"import os; print('x' * {100 - cut_at} + os.environ['KEY'])"
        result = await executor.execute_code_blocks(
            [CodeBlock(code, "python")], CancellationToken()
        )
        shown = result.output.split("\n[output truncated")[0]
        assert "[output truncated at 100 bytes]" in result.output
        assert shown == "x" * (100 - cut_at), cut_at
        assert secret[:3] not in result.output


async def test_the_executors_file_size_limit_reaches_the_sandbox() -> None:
    """``max_file_mb`` bounds what the model's code may write to disk."""
    executor = SandboxCodeExecutor(timeout_s=5, max_file_mb=1)
    code = "open('big.bin', 'wb').write(bytes(2 * 1024 * 1024))"
    result = await executor.execute_code_blocks([CodeBlock(code, "python")], CancellationToken())
    assert result.exit_code != 0 and "File too large" in result.output


async def test_a_timed_out_run_is_reported_as_such() -> None:
    """Code past the wall-clock limit is killed; the model is told, the judge rejects it."""
    executor = SandboxCodeExecutor(timeout_s=0.5)
    result = await executor.execute_code_blocks(
        [CodeBlock("import time; time.sleep(30)", "python")], CancellationToken()
    )
    assert result.exit_code == 124
    assert "timed out after 0.5s" in result.output
    run = executor.last_run
    assert run is not None and run.timed_out and run.exit_code is None


# --- the example ------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_code_team_example_runs_offline_against_the_test_server() -> None:
    """examples/code_team.py --test-server: escalation, recording, then a cheap tier imitating."""
    example = Path(__file__).parents[2] / "examples" / "code_team.py"
    done = subprocess.run(
        [sys.executable, str(example), "--test-server"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    first, second = done.stdout.split("\nQ: ")[1:]
    assert "tier 0 cheap: reject (code-run: the last run failed: exit code 1)" in first
    assert "tier 1 strong: accept (code-run: the last run exited 0; regex:" in first
    assert "resolved on tier 1; recorded as" in first
    assert "demonstration: 'What is the sum of the squares of the integers from 1 to 10?'" in second
    assert "tier 0 cheap: accept" in second and "tier 1" not in second
    assert "2870" in second
