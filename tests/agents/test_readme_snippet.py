"""The README's "Agents in the cascade (AutoGen)" example runs as written, against the fake server.

The only change made to the block: each tier's ``api_key_env="OPENAI_API_KEY"`` becomes
``api_base=<the scripted server>``, so the same model names reach a loopback server instead of
OpenAI. The solution store is real (embedded Chroma with the default embedder) in a temp dir.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ecocascade.testing import FakeLLMServer

README = Path(__file__).parents[2] / "README.md"
SECTION = "## Agents in the cascade (AutoGen)"
FIRST = "Which is larger, 2**100 or 10**30? Answer with the expression."
AGAIN = "Which is larger, 2**90 or 10**28? Answer with the expression."


def snippet() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(SECTION)
    block = re.search(r"```python\n(.*?)```", text[start:], re.DOTALL)
    assert block is not None, f"no python block under {SECTION!r}"
    return block.group(1)


@pytest.mark.slow
def test_the_readme_agents_snippet_escalates_records_and_demonstrates(
    server: FakeLLMServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The team runs cheapest first, escalates on the judge's no, records the accepted answer,
    and the next similar query gets it as a demonstration in the team's first message."""
    code = snippet()
    assert code.count('api_key_env="OPENAI_API_KEY"') == 2
    code = code.replace('api_key_env="OPENAI_API_KEY"', "api_base=API_BASE")
    # Requests per model name are answered in order: the team's writer, then its checker; the
    # judge is gpt-4o, so its verdicts interleave with the gpt-4o team's replies.
    server.script("gpt-4o-mini", "10**30", "10**30 is larger.", "10**28", "10**28 is larger.")
    server.script("gpt-4o", "no", "2**100", "2**100 is larger.", "yes", "yes")
    monkeypatch.chdir(tmp_path)

    namespace: dict[str, object] = {"API_BASE": server.api_base, "__name__": "readme"}
    exec(compile(code, str(README), "exec"), namespace)

    first, again = namespace["first"], namespace["again"]
    assert [(a.model, a.verdict) for a in first.attempts] == [  # type: ignore[attr-defined]
        ("openai/gpt-4o-mini", "reject"),
        ("openai/gpt-4o", "accept"),
    ]
    assert first.answer == "2**100 is larger."  # type: ignore[attr-defined]
    assert first.recorded_id is not None  # type: ignore[attr-defined]
    assert (tmp_path / "solutions_db").is_dir()

    assert again.tier == 0  # type: ignore[attr-defined]
    assert [d.query for d in again.demonstrations] == [FIRST]  # type: ignore[attr-defined]
    opening = server.requests_for("gpt-4o-mini")[2].messages[-1]["content"]
    assert f"Query: {FIRST}\nSolution: 2**100 is larger." in opening
    assert opening.endswith(AGAIN)
    # The checker saw the writer's answer: the team really talked on each tier.
    assert server.requests_for("gpt-4o")[2].messages[-1]["content"] == "2**100"
