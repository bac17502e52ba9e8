"""The learned judge, the agreement judge and the history router, alone and inside a Cascade."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from structlog.testing import capture_logs

from ecocascade.controller.cascade import Cascade
from ecocascade.exceptions import ConfigError
from ecocascade.judges.agreement import AgreementJudge, extract_answer
from ecocascade.judges.learned import LearnedJudge, Record
from ecocascade.replay.data import RecordedDataset
from ecocascade.replay.provider import replay_tier
from ecocascade.routing import HistoryRouter, SolutionStoreRouter

from .conftest import Serve, WordsEmbedder, synthetic_dataset


def records(ds: RecordedDataset, rows: range) -> list[Record]:
    return [
        Record(ds.items[i].query, a.text, model, bool(a.correct))
        for i in rows
        for model, a in ds.items[i].answers.items()
    ]


async def test_learned_judge_learns_a_separable_signal(embedder: WordsEmbedder) -> None:
    ds = synthetic_dataset(80)
    judge = await LearnedJudge.fit(records(ds, range(60)), embedder)
    held_out = [ds.items[i] for i in range(60, 80)]
    easy = [
        await judge.probability(it.query, it.answers["small"].text, "small")
        for it in held_out
        if "easy" in it.query
    ]
    hard = [
        await judge.probability(it.query, it.answers["small"].text, "small")
        for it in held_out
        if "hard" in it.query
    ]
    assert min(easy) > 0.5 > max(hard)
    # the large model is always right: its P(correct) is high even on hard items
    large = [
        await judge.probability(it.query, it.answers["large"].text, "large") for it in held_out
    ]
    assert min(large) > 0.5


async def test_learned_judge_saves_and_loads_the_same_model(
    embedder: WordsEmbedder, tmp_path: Path
) -> None:
    ds = synthetic_dataset(40)
    judge = await LearnedJudge.fit(records(ds, range(40)), embedder)
    judge.save(tmp_path / "judge.npz")
    loaded = LearnedJudge.load(tmp_path / "judge.npz", embedder)
    item = ds.items[7]
    for model in ds.models:
        text = item.answers[model].text
        assert await loaded.probability(item.query, text, model) == pytest.approx(
            await judge.probability(item.query, text, model)
        )
    with pytest.raises(ConfigError, match="embedder"):
        LearnedJudge.load(tmp_path / "judge.npz", WordsEmbedder.__new__(_OtherEmbedder))
    with pytest.raises(ConfigError, match="no such"):
        LearnedJudge.load(tmp_path / "missing.npz", embedder)


class _OtherEmbedder(WordsEmbedder):
    name = "test/other"


async def test_learned_judge_in_a_cascade_uses_the_answering_models_threshold(
    embedder: WordsEmbedder, serve: Serve
) -> None:
    ds = synthetic_dataset(60)
    serve(ds)
    judge = await LearnedJudge.fit(
        records(ds, range(60)), embedder, thresholds={"small": 0.5, "large": 0.0}
    )
    cascade = Cascade([replay_tier("small"), replay_tier("large")], judge)
    easy, hard = ds.items[10], ds.items[11]
    result = await cascade.run(easy.query, use_cache=False)
    assert [a.model for a in result.attempts] == ["replay/small"]
    result = await cascade.run(hard.query, use_cache=False)
    assert [(a.model, a.verdict) for a in result.attempts] == [
        ("replay/small", "reject"),
        ("replay/large", "accept"),
    ]
    assert "(small)" in result.attempts[0].reason and "(large)" in result.attempts[1].reason


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("B", "choice:B"),
        ("C\n", "choice:C"),
        ("(D) palms covered with lotion", "choice:D"),
        ("The answer is (A).", "choice:A"),
        ("Answer: B", "choice:B"),
        ("It costs 1,000.0 dollars", "number:1000"),
        ("```python\ndef f(x):\n    '''Doc.'''\n    return x + 1\n```", None),
        ("", None),
        ("Paris", "text:paris"),
    ],
)
def test_extract_answer_finds_the_comparable_core(text: str, key: str | None) -> None:
    found = extract_answer(text)
    if key is None and text:
        assert found is not None and found.startswith("code:")
    else:
        assert found == key


def test_code_answers_agree_regardless_of_formatting_comments_and_docstrings() -> None:
    a = "Here:\n```python\ndef add(a, b):\n    '''Add.'''\n    return a + b  # sum\n```"
    b = "```python\ndef add(a,b):\n\n    return (a + b)\n```\nDone."
    c = "```python\ndef add(a, b):\n    return b - a\n```"
    assert extract_answer(a) == extract_answer(b) != extract_answer(c)


def test_code_llamas_python_tags_are_code_not_their_test_cases_last_number() -> None:
    def tagged(body: str, check: str) -> str:
        return f" \n[PYTHON]\n{body}\n[/PYTHON]\n[TESTS]\n# Test case 1:\n{check}\n[/TESTS]\n"

    right = tagged("def double(x):\n    return x * 2", "assert double(2) == 4")
    wrong = tagged("def double(x):\n    return x + 2", "assert double(2) == 4")
    fenced = "```python\ndef double(x):\n    return x * 2\n```"
    assert (extract_answer(right) or "").startswith("code:")
    assert extract_answer(right) != extract_answer(wrong)  # both ended with "4" before
    assert extract_answer(right) == extract_answer(fenced)
    unclosed = " [PYTHON]\ndef double(x):\n    return x * 2\n"
    assert extract_answer(unclosed) == extract_answer(fenced)


async def test_agreement_judge_accepts_agreeing_answers_and_pays_for_its_references(
    serve: Serve,
) -> None:
    ds = synthetic_dataset(12)
    serve(ds)
    judge = AgreementJudge([replay_tier("medium")])
    cascade = Cascade([replay_tier("small"), replay_tier("large")], judge)
    easy = ds.items[4]  # small and medium both right
    result = await cascade.run(easy.query, use_cache=False)
    assert [a.verdict for a in result.attempts] == ["accept"]
    assert result.attempts[0].judge_cost_usd == pytest.approx(1e-3)
    assert result.cost_usd == pytest.approx(1e-4 + 1e-3)
    split = ds.items[5]  # i % 4 == 1: medium right, small wrong → disagree → escalate
    result = await cascade.run(split.query, use_cache=False)
    assert [(a.model, a.verdict) for a in result.attempts] == [
        ("replay/small", "reject"),
        ("replay/large", "accept"),
    ]
    assert result.attempts[1].judge_cost_usd == 0.0  # the last tier is accepted outright
    assert result.cost_usd == pytest.approx(1e-4 + 1e-3 + 1e-2)


async def test_agreement_judge_never_asks_the_model_it_is_judging(serve: Serve) -> None:
    ds = synthetic_dataset(12)
    serve(ds)
    judge = AgreementJudge([replay_tier("small"), replay_tier("medium")], min_agree=1)
    cascade = Cascade([replay_tier("small"), replay_tier("large")], judge)
    result = await cascade.run(ds.items[4].query, use_cache=False)
    assert result.attempts[0].reason.startswith("1/1 references agree")
    assert result.attempts[0].judge_cost_usd == pytest.approx(1e-3)


async def test_agreement_judge_rejects_an_answer_with_nothing_to_extract_for_free() -> None:
    judge = AgreementJudge(["replay/medium"])
    verdict = await judge.judge("anything", "   ")
    assert not verdict.accepted and verdict.cost_usd == 0.0


def test_agreement_judge_checks_its_settings() -> None:
    with pytest.raises(ConfigError, match="min_agree"):
        AgreementJudge(["replay/a"], min_agree=2)
    with pytest.raises(ConfigError, match="references"):
        AgreementJudge([])


async def test_history_router_skips_tiers_that_failed_on_similar_queries(
    embedder: WordsEmbedder, serve: Serve
) -> None:
    ds = synthetic_dataset(40)
    serve(ds)
    correct = np.nan_to_num(ds.correct)
    router = await HistoryRouter.fit(
        [it.query for it in ds.items], correct, ds.models, embedder, k=5, skip_below=0.5
    )
    tiers = [replay_tier("small"), replay_tier("large")]
    hard_query = "Item 99 (hard tides): which option? A) x B) y C) z D) w"
    easy_query = "Item 98 (easy tides): which option? A) x B) y C) z D) w"
    assert await router.start_tier(hard_query, tiers) == 1
    assert await router.start_tier(easy_query, tiers) == 0
    cascade = Cascade(tiers, AgreementJudge([replay_tier("medium")]), router=router)
    with capture_logs() as logs:
        result = await cascade.run(ds.items[13].query, use_cache=False)  # a hard item
    assert [a.model for a in result.attempts] == ["replay/large"]
    assert any(e["event"] == "router.skipped" and e["start_tier"] == 1 for e in logs)


async def test_history_router_saves_and_loads(embedder: WordsEmbedder, tmp_path: Path) -> None:
    ds = synthetic_dataset(20)
    router = await HistoryRouter.fit(
        [it.query for it in ds.items], np.nan_to_num(ds.correct), ds.models, embedder, k=3
    )
    router.save(tmp_path / "router.npz")
    loaded = HistoryRouter.load(tmp_path / "router.npz", embedder, k=3)
    [vector] = await embedder.embed([ds.items[3].query])
    assert np.array_equal(router.success_rates(vector), loaded.success_rates(vector))


async def test_solution_store_router_starts_where_similar_queries_were_solved(
    embedder: WordsEmbedder, tmp_path: Path
) -> None:
    from ecocascade.store.chroma import SolutionStore
    from ecocascade.store.records import SolutionRecord, record_id

    store = SolutionStore(tmp_path / "store", embedder=embedder)
    for query, model in [
        ("hard tides question about the moon", "replay/large"),
        ("easy plants question about leaves", "replay/small"),
    ]:
        await store.record(
            SolutionRecord(
                id=record_id(query, "default"),
                namespace="default",
                query=query,
                solution="A",
                model=model,
            )
        )
    router = SolutionStoreRouter(store, k=1, threshold=0.5)
    tiers = [replay_tier("small"), replay_tier("medium"), replay_tier("large")]
    assert await router.start_tier("hard tides question about the sea", tiers) == 2
    assert await router.start_tier("easy plants question about roots", tiers) == 0
    assert await router.start_tier("something unrelated entirely", tiers) == 0
