"""Guards against the two ways semantic caches go wrong: near-misses and stale answers.

Embeddings put "weather in Paris" next to "weather in London", and "can I" next to "can I not".
A semantic hit is only served when both queries agree on their *salient tokens*, in the same
order — numbers, named entities (capitalised or all-caps words past the first word), qualifiers
(superlatives, comparatives, directions: "longest" vs "shortest", "north of"), negation — and
never for a time-sensitive query (the answer depends on when it is asked). Order matters because
"Convert 10 USD to EUR" and "Convert 10 EUR to USD" embed almost identically (0.98).
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
_QUALIFIERS = {
    "biggest", "largest", "smallest", "tallest", "shortest", "longest", "highest", "lowest",
    "heaviest", "lightest", "fastest", "slowest", "oldest", "youngest", "newest", "cheapest",
    "most", "least", "best", "worst", "first", "last", "maximum", "minimum", "max", "min",
    "more", "less", "greater", "fewer", "higher", "lower", "bigger", "smaller", "larger",
    "longer", "older", "younger", "cheaper", "faster", "slower", "before", "after", "above",
    "below", "north", "south", "east", "west", "northern", "southern", "eastern", "western",
    "increase", "decrease", "buy", "sell", "import", "export", "from", "to", "into",
}  # fmt: skip
_SAME_QUALIFIER = {"into": "to", "onto": "to"}
_TIME_SENSITIVE = re.compile(
    r"\b(today|tonight|tomorrow|yesterday|now|currently|current|latest|recent|recently|"
    r"this (?:morning|afternoon|evening|week|weekend|month|quarter|year)|next (?:week|month|year)|"
    r"last (?:night|week|month|year)|right now|at the moment|live|breaking|news|weather|"
    r"forecast|stock|stocks|share price|exchange rate|price of|score|newest|most recent|"
    r"up to date|up-to-date|nowadays|these days|as of|still|anymore|upcoming|trending)\b",
    re.IGNORECASE,
)


def salient_tokens(query: str) -> dict[str, tuple[str, ...]]:
    """The tokens two queries must share, in order, for one's answer to serve the other."""
    text = unicodedata.normalize("NFKC", query).replace("’", "'")
    words = _WORD.findall(text)
    lowered = [w.lower() for w in words]
    numbers = [
        w.replace(",", "") if w[0].isdigit() else low
        for w, low in zip(words, lowered, strict=True)
        if w[0].isdigit() or low in _NUMBER_WORDS
    ]
    negated = any(low in _NEGATIONS or low.endswith("n't") for low in lowered)
    entities = [
        low.strip("'").removesuffix("'s")  # France's = France
        for i, (w, low) in enumerate(zip(words, lowered, strict=True))
        if not w[0].isdigit()
        and ((w.isupper() and len(w) > 1) or (i > 0 and w[0].isupper()))
        and low not in _NOT_ENTITIES
    ]
    qualifiers = [_SAME_QUALIFIER.get(low, low) for low in lowered if low in _QUALIFIERS]
    return {
        "numbers": tuple(numbers),
        "entities": tuple(dict.fromkeys(entities)),  # first occurrences, in order
        "qualifiers": tuple(qualifiers),
        "negation": ("negated",) if negated else (),
    }


def guard_mismatch(query: str, cached_query: str) -> str | None:
    """Why ``cached_query``'s answer must not serve ``query``, or ``None`` if it may."""
    mine, theirs = salient_tokens(query), salient_tokens(cached_query)
    for kind in ("numbers", "entities", "qualifiers", "negation"):
        if mine[kind] != theirs[kind]:
            return f"{kind} differ: {list(mine[kind])} vs {list(theirs[kind])}"
    opposite = _negated_by_prefix(query, cached_query)
    if opposite is not None:
        return f"negation differs: {opposite}"
    return None


_NEGATING_PREFIXES = ("un", "in", "im", "il", "ir", "non", "non-", "dis", "a")


def _negated_by_prefix(a: str, b: str) -> str | None:
    """``legal`` vs ``illegal``, ``safe`` vs ``unsafe``: one query has a word the other negates."""
    words_a = {w.lower() for w in _WORD.findall(a)}
    words_b = {w.lower() for w in _WORD.findall(b)}
    for mine, theirs in ((words_a - words_b, words_b), (words_b - words_a, words_a)):
        for word in mine:
            for prefix in _NEGATING_PREFIXES:
                if len(word) > 3 and prefix + word in theirs:
                    return f"{word!r} vs {prefix + word!r}"
    return None


def is_time_sensitive(query: str) -> bool:
    """Heuristic: the answer depends on when the query is asked (today, latest, weather, …)."""
    return _TIME_SENSITIVE.search(query) is not None
