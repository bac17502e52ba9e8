"""Guards against the two ways semantic caches go wrong: near-misses and stale answers.

Embeddings put "weather in Paris" next to "weather in London", and "can I" next to "can I not".
A semantic hit is only served when both queries agree on their *salient tokens* — numbers,
named entities (capitalised or all-caps words past the first word), negation — and never for a
time-sensitive query (the answer depends on when it is asked).
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["guard_mismatch", "is_time_sensitive", "salient_tokens"]

_WORD = re.compile(r"[A-Za-z][A-Za-z'’\-]*|\d+(?:[.,:/]\d+)*")
_NUMBER_WORDS = {
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
    "hundred", "thousand", "million", "billion", "first", "second", "third", "half", "double",
}  # fmt: skip
_NEGATIONS = {
    "not", "no", "never", "none", "nobody", "nothing", "neither", "nor", "without", "cannot",
    "can't", "won't", "don't", "doesn't", "didn't", "isn't", "aren't", "wasn't", "weren't",
    "shouldn't", "wouldn't", "couldn't", "hasn't", "haven't", "hadn't", "mustn't",
}  # fmt: skip
# Capitalised words that are not entities: question words, pronouns, articles at clause start.
_NOT_ENTITIES = {
    "i", "what", "what's", "who", "who's", "where", "when", "why", "how", "which", "is", "are",
    "was", "were", "do", "does", "did", "can", "could", "should", "would", "will", "the", "a",
    "an", "in", "on", "at", "of", "for", "to", "and", "or", "please", "tell", "give", "show",
    "list", "name", "explain", "describe", "write", "find", "me", "my", "it", "this", "that",
}  # fmt: skip
_TIME_SENSITIVE = re.compile(
    r"\b(today|tonight|tomorrow|yesterday|now|currently|current|latest|recent|recently|"
    r"this (?:morning|afternoon|evening|week|weekend|month|quarter|year)|next (?:week|month|year)|"
    r"last (?:night|week|month|year)|right now|at the moment|live|breaking|news|weather|"
    r"forecast|stock|stocks|share price|exchange rate|price of|score)\b",
    re.IGNORECASE,
)


def salient_tokens(query: str) -> dict[str, frozenset[str]]:
    """The tokens two queries must share for one's answer to serve the other."""
    text = unicodedata.normalize("NFKC", query).replace("’", "'")
    words = _WORD.findall(text)
    numbers = {w.replace(",", "") for w in words if w[0].isdigit()}
    numbers |= {w.lower() for w in words if w.lower() in _NUMBER_WORDS}
    negations = {w.lower() for w in words if w.lower() in _NEGATIONS or w.lower().endswith("n't")}
    entities = {
        w.lower().strip("'’")
        for i, w in enumerate(words)
        if not w[0].isdigit()
        and ((w.isupper() and len(w) > 1) or (i > 0 and w[0].isupper()))
        and w.lower() not in _NOT_ENTITIES
    }
    return {
        "numbers": frozenset(numbers),
        "entities": frozenset(entities),
        "negation": frozenset({"yes"} if negations else set()),
    }


def guard_mismatch(query: str, cached_query: str) -> str | None:
    """Why ``cached_query``'s answer must not serve ``query``, or ``None`` if it may."""
    mine, theirs = salient_tokens(query), salient_tokens(cached_query)
    for kind in ("numbers", "entities", "negation"):
        if mine[kind] != theirs[kind]:
            return f"{kind} differ: {sorted(mine[kind])} vs {sorted(theirs[kind])}"
    return None


def is_time_sensitive(query: str) -> bool:
    """Heuristic: the answer depends on when the query is asked (today, latest, weather, …)."""
    return _TIME_SENSITIVE.search(query) is not None
