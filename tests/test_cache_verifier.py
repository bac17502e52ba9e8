"""The semantic cache's verifier: alignment of two requests and the fitted decision.

No embedder here: the similarity stage-one would have measured is given, so each test shows what
the verifier alone decides (``test_cache.py`` runs both stages on the real embedder)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ecocascade.cache import AlignmentVerifier, PairVerifier, exact_key_text
from ecocascade.cache.align import align, analyse, embedding_text
from ecocascade.cache.verifier import FEATURES
from ecocascade.exceptions import ConfigError

VERIFIER = AlignmentVerifier.default()
HIGH = 0.97  # a candidate as similar as reversals and near-misses usually are


@pytest.mark.parametrize(
    ("cached", "query", "reason"),
    [
        ("How do I move files from my tablet to my desktop?",
         "How do I move files from my desktop to my tablet?", "roles changed"),
        ("Is a square a rhombus?", "Is a rhombus a square?", "order swapped"),
        ("Convert kilograms to pounds", "Convert pounds to kilograms", "roles changed"),
        ("Who did France beat in 1998?", "Who beat France in 1998?", "roles changed"),
        ("What was built in 1990?", "What has been built since 1990?", "roles changed"),
        ("Write a function that keeps the odd numbers of a list",
         "Write a function that keeps the even numbers of a list", "words"),
        ("Sort the names in ascending order", "Sort the names in descending order", "words"),
        ("What is the hottest month in Rome?", "What is the coldest month in Rome?", "words"),
        ("Name the countries of Europe", "Name the countries of Europe except Spain", "except"),
        ("What is forty-two times three?", "What is 42 times 4?", "numbers differ"),
        ("How many inches is 30 cm?", "How many feet is 30 cm?", "words"),
        ("Give me a rhyme for orange", "Give me several rhymes for orange", "several"),
        ("Which birds can fly?", "Which birds cannot fly?", "negation differs"),
        ("Is it legal to park here?", "Is it illegal to park here?", "negation differs"),
        ("When was the bridge built?", "Why was the bridge built?", "asks why vs when"),
        ("What is my account number?", "What is your account number?", "only one says"),
        ("Which numbers divide 12 and 18?", "Which numbers divide 12 or 18?", "only one says"),
        ("What happened in World War II?", "What happened in World War I?", "numbers differ"),
        ("Wie rechnet man Meilen in Kilometer um?", "Wie rechnet man Kilometer in Meilen um?",
         "order swapped"),
    ],
)  # fmt: skip
def test_a_near_miss_is_refused_with_the_reason(cached: str, query: str, reason: str) -> None:
    decision = VERIFIER.decide(query, cached, HIGH)
    assert not decision.same
    assert decision.reason is not None and reason in decision.reason


@pytest.mark.parametrize(
    ("cached", "query"),
    [
        ("What is the capital of Japan?", "capital of japan?"),  # case-insensitive entities
        ("I'm wondering how old the Colosseum is.", "How old is the Colosseum?"),  # I'm
        ("How many legs does a spider have?", "How many legs do spiders have?"),  # lemmas
        ("What is forty-two divided by seven?", "What is 42 divided by 7?"),  # number words
        ("Compare Python and Ruby.", "Compare Ruby and Python."),  # coordination is symmetric
        ("What is the longest river in Asia?", "Which river is the longest in Asia?"),
        ("What is Peru's capital?", "What is the capital of Peru?"),  # possessive
        ("Translate 'cat' to French", "Translate 'cat' into French"),
        ("Can you please explain gravity?", "Explain gravity."),
    ],
)
def test_a_paraphrase_is_accepted(cached: str, query: str) -> None:
    decision = VERIFIER.decide(query, cached, HIGH)
    assert decision.same, decision.reason
    assert decision.reason is None and decision.probability >= VERIFIER.threshold


def test_a_low_similarity_alone_is_a_refusal_that_says_so() -> None:
    decision = VERIFIER.decide("capital of japan?", "What is the capital of Japan?", 0.5)
    assert not decision.same and decision.reason is not None and "p=" in decision.reason


def test_tokens_are_unicode_words_and_their_lemmas_fold_case_and_accents() -> None:
    a = analyse("Où se trouve l'Élysée ?")
    assert a.language == "fr"
    assert [t.lemma for t in a.content] == ["trouver", "elysee"]
    assert [t.lemma for t in analyse("Who wrote ÉMILE?").content] == ["write", "emile"]


def test_number_words_become_digits_for_the_embedder_too() -> None:
    assert embedding_text("What is forty-two plus seven?") == "What is 42 plus 7?"
    al = align("Who was the sixteenth president?", "Who was the 16th president?")
    assert al.numbers_a == al.numbers_b == ("16#",)


def test_roles_and_order_are_read_from_prepositions_and_positions() -> None:
    al = align("Send the file from Ana to Bo", "Send the file from Bo to Ana")
    assert {w for w, _, _ in al.role_changes} == {"ana", "bo"}
    assert al.inversions == (("ana", "bo"),) and al.swapped


def test_the_shipped_parameters_only_let_differences_lower_the_probability() -> None:
    assert 0.0 < VERIFIER.threshold < 1.0
    assert VERIFIER.weights["cosine"] > 0
    assert all(VERIFIER.weights[f] <= 0 for f in FEATURES if f != "cosine")


def test_bad_parameters_are_a_config_error(tmp_path: Path) -> None:
    broken = tmp_path / "params.json"
    broken.write_text("{not json")
    with pytest.raises(ConfigError, match="cannot read verifier parameters"):
        AlignmentVerifier.from_file(broken)
    broken.write_text(json.dumps({"weights": {"shoe_size": 1.0}, "bias": 0, "threshold": 0.5}))
    with pytest.raises(ConfigError, match="unknown verifier features"):
        AlignmentVerifier.from_file(broken)
    with pytest.raises(ConfigError, match="probability"):
        AlignmentVerifier({}, 0.0, 1.5)


async def test_the_verifier_is_a_pair_verifier_with_an_async_verify() -> None:
    assert isinstance(VERIFIER, PairVerifier)
    decision = await VERIFIER.verify("Is a cat a mammal?", "Is a mammal a cat?", HIGH)
    assert not decision.same


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("  Compute   5! ", "Compute 5!"),
        ("Cafe\u0301?\n", "Café?"),
        ("What is NaN?", "What is NaN?"),
    ],
)
def test_the_exact_key_text_normalises_only_nfc_and_whitespace(text: str, key: str) -> None:
    assert exact_key_text(text) == key
