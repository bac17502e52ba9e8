"""Prompt compression: uninformative words dropped from long prompt parts, never the question."""

from __future__ import annotations

import pytest

from ecocascade import Tier, TierClient
from ecocascade.compress import CompressionSettings, Compressor, FrequencyScorer, compress_text
from ecocascade.config.schema import TierSpec
from ecocascade.exceptions import ConfigError
from ecocascade.testing import FakeLLMServer

CONTEXT = (
    "The museum of the town was opened in 1897 by the mayor, and it is known for the collection"
    " of old clocks that the founder had gathered over the course of his very long life. In the"
    " main hall there is a clock that was built by Anna Verhoeven in 1742, and it is the oldest"
    " one that still runs. The museum is open from 9 to 17 on every day of the week except"
    " Monday, and the entry fee for an adult is 12 euros, while children get in for free."
)
QUESTION = "Who built the oldest clock that still runs?"


def test_half_the_words_go_and_the_surprising_ones_and_every_number_stay() -> None:
    short = compress_text(CONTEXT, FrequencyScorer(), rate=0.5)

    before, after = CONTEXT.split(), short.split()
    assert len(after) <= 0.6 * len(before)
    assert all(n in short for n in ("1897", "1742", "9", "17", "12"))
    assert "Verhoeven" in short and "Anna" in short
    remaining = iter(before)  # words are dropped, never invented or reordered
    assert all(word in remaining for word in after)


def test_the_question_in_the_last_user_message_is_kept_whole_and_its_context_shrinks() -> None:
    compressor = Compressor(CompressionSettings(rate=0.5, min_words=20), FrequencyScorer())
    messages = [{"role": "user", "content": f"{CONTEXT}\n\n{QUESTION}"}]

    (out,), report = compressor.compress_sync(messages)

    assert str(out["content"]).endswith(f"\n\n{QUESTION}")
    assert report.texts == 1 and report.words_after < 0.6 * report.words_before


def test_short_texts_code_and_tool_calls_are_left_alone() -> None:
    compressor = Compressor(CompressionSettings(min_words=20), FrequencyScorer())
    code = (
        "```python\n" + "\n".join(f"x{i} = compute({i})  # the step" for i in range(20)) + "\n```"
    )
    messages = [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Write the code."},
        {"role": "assistant", "content": code},
        {"role": "assistant", "content": CONTEXT, "tool_calls": [{"id": "1"}]},
        {"role": "user", "content": QUESTION},
    ]

    out, report = compressor.compress_sync(messages)

    assert out == messages and report.texts == 0


def test_compression_settings_from_config() -> None:
    assert CompressionSettings.from_config(True, where="x") == CompressionSettings()
    assert CompressionSettings.from_config(False, where="x") is None
    assert CompressionSettings.from_config({"rate": 0.3}, where="x") == CompressionSettings(0.3)
    with pytest.raises(ConfigError, match=r"compress\.rate"):
        CompressionSettings(rate=0)
    with pytest.raises(ConfigError, match="scorer"):
        CompressionSettings(scorer="gpt")
    with pytest.raises(ConfigError, match="unknown keys"):
        CompressionSettings.from_config({"ratio": 0.3}, where="x")
    spec = TierSpec(model="openai/x", compress={"rate": 0.4, "scorer": "frequency"})
    assert spec.to_tier().compress == CompressionSettings(rate=0.4, scorer="frequency")
    assert TierSpec(model="openai/x").to_tier().compress is None


async def test_a_compressing_tier_sends_its_demonstrations_shortened_and_the_query_whole(
    server: FakeLLMServer,
) -> None:
    server.script("paid", "Anna Verhoeven")
    settings = CompressionSettings(rate=0.5, min_words=20, scorer="frequency")
    client = TierClient(Tier("openai/paid", api_base=server.api_base, compress=settings))
    messages = [
        {"role": "user", "content": f"{CONTEXT}\n\nWhen was the museum opened?"},
        {"role": "assistant", "content": "In 1897, by the mayor."},
        {"role": "user", "content": QUESTION},
    ]

    completion = await client.complete(messages)

    (sent,) = server.requests_for("paid")
    assert completion.text == "Anna Verhoeven"
    assert len(str(sent.messages[0]["content"]).split()) < 0.6 * len(CONTEXT.split()) + 6
    assert sent.messages[1:] == messages[1:]


@pytest.mark.slow
def test_smollm2_scores_every_token_and_finds_the_predictable_ones() -> None:
    """The real scorer: SmolLM2-135M log-probs in one forward pass (converts the GGUF once)."""
    from ecocascade.compress import SmolLMScorer

    text = "The capital of France is Paris. Zyxwv quonk blorft."
    pieces = SmolLMScorer(threads=1).score(text)

    assert "".join(p for p, _ in pieces) == text
    surprisal = dict(pieces)
    assert (
        max(surprisal[" of"], surprisal[" Paris"]) < 2.0 < min(surprisal[" qu"], surprisal[" bl"])
    )
