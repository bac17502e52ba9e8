"""Drop the least informative words of a text, and decide which parts of a prompt to shorten."""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from ecocascade.compress.scorers import FrequencyScorer, SmolLMScorer, TokenScorer
from ecocascade.exceptions import ConfigError
from ecocascade.types import Message

__all__ = ["CompressionReport", "CompressionSettings", "Compressor", "compress_text"]

log = structlog.get_logger(__name__)

SCORERS = ("smollm2", "frequency")
_KEEP_ALWAYS = re.compile(r"\d|[@/\\=<>{}\[\]#$%]")  # numbers, addresses, paths, markup: kept
_CODE = re.compile(r"```|^\s*(def |class |import |from \S+ import )", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class CompressionSettings:
    """How a tier's prompts are shortened.

    ``rate``: the share of each compressed text's words to keep (0.5 = half). ``min_words``:
    texts shorter than this are left alone (a short prompt has nothing to spare and a cut costs
    more than it saves). ``scorer``: ``smollm2`` (SmolLM2-135M token log-probs, LLMLingua-style)
    or ``frequency`` (no model: word self-information from frequency and a stop-word list).
    """

    rate: float = 0.5
    min_words: int = 60
    scorer: str = "smollm2"

    def __post_init__(self) -> None:
        if not (isinstance(self.rate, int | float) and 0.05 <= self.rate <= 1.0):
            raise ConfigError(f"must be in [0.05, 1], got {self.rate!r}", where="compress.rate")
        if not isinstance(self.min_words, int) or self.min_words < 1:
            raise ConfigError("must be an integer >= 1", where="compress.min_words")
        if self.scorer not in SCORERS:
            raise ConfigError(
                f"expected one of {', '.join(SCORERS)}, got {self.scorer!r}",
                where="compress.scorer",
            )

    def build(self) -> Compressor:
        """The compressor these settings describe. Tiers call this, so the model layer never
        imports the compression package (which itself uses a local model)."""
        return Compressor(self)

    @classmethod
    def from_config(cls, value: Any, *, where: str) -> CompressionSettings | None:
        """``true`` (defaults), ``false``/absent (off), or a mapping of the fields."""
        if value is None or value is False:
            return None
        if value is True:
            return cls()
        if isinstance(value, Mapping):
            unknown = set(value) - {"rate", "min_words", "scorer"}
            if unknown:
                raise ConfigError(f"unknown keys {sorted(unknown)}", where=where)
            return cls(**dict(value))
        raise ConfigError(f"expected true, false or a mapping, got {value!r}", where=where)

    def make_scorer(self) -> TokenScorer:
        return SmolLMScorer() if self.scorer == "smollm2" else FrequencyScorer()


def _words(pieces: Sequence[tuple[str, float]]) -> list[tuple[str, float]]:
    """Join scored pieces into whitespace-led words; a word's surprisal is its pieces' sum."""
    words: list[list[Any]] = []
    for piece, surprisal in pieces:
        starts_word = not words or piece[:1].isspace() or words[-1][0][-1:].isspace()
        if starts_word:
            words.append([piece, surprisal])
        else:
            words[-1][0] += piece
            words[-1][1] += surprisal
    return [(w, float(s)) for w, s in words]


def compress_text(text: str, scorer: TokenScorer, *, rate: float) -> str:
    """Keep the ``rate`` share of ``text``'s words that surprise ``scorer`` most, in order.

    Words with digits or markup are always kept, and so is line structure (a dropped word's
    newline stays).
    """
    words = _words(scorer.score(text))
    if not words:
        return text
    budget = max(1, math.ceil(rate * len(words)))
    forced = {i for i, (w, _) in enumerate(words) if _KEEP_ALWAYS.search(w)}
    ranked = sorted((i for i in range(len(words)) if i not in forced), key=lambda i: -words[i][1])
    keep = forced | set(ranked[: max(0, budget - len(forced))])
    out: list[str] = []
    for i, (word, _) in enumerate(words):
        if i in keep:
            out.append(word)
        elif "\n" in word:
            out.append("\n" * word.count("\n"))
    result = "".join(out)
    if result[:1].isspace() and not text[:1].isspace():
        result = result.lstrip(" ")
    return result


@dataclass(frozen=True, slots=True)
class CompressionReport:
    words_before: int
    words_after: int
    texts: int


class Compressor:
    """Shortens the compressible parts of a chat prompt (see the package docstring)."""

    def __init__(self, settings: CompressionSettings, scorer: TokenScorer | None = None) -> None:
        self.settings = settings
        self.scorer = scorer or settings.make_scorer()

    def _worth_it(self, text: str) -> bool:
        return len(text.split()) >= self.settings.min_words and not _CODE.search(text)

    def compress_sync(self, messages: Sequence[Message]) -> tuple[list[Message], CompressionReport]:
        out: list[Message] = []
        before = after = texts = 0
        last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
        for i, message in enumerate(messages):
            content = message.get("content")
            if not isinstance(content, str) or message.get("tool_calls"):
                out.append(message)
                continue
            head, tail = content, ""
            if i == last_user:  # the question stays whole; only long context before it shrinks
                cut = content.rstrip().rfind("\n\n")
                head, tail = (content[:cut], content[cut:]) if cut > 0 else ("", content)
            if not head or not self._worth_it(head):
                out.append(message)
                continue
            shorter = compress_text(head, self.scorer, rate=self.settings.rate)
            before += len(head.split())
            after += len(shorter.split())
            texts += 1
            out.append({**message, "content": shorter + tail})
        report = CompressionReport(before, after, texts)
        if texts:
            log.info("compress.applied", scorer=self.scorer.name, texts=texts,
                     words_before=before, words_after=after)  # fmt: skip
        return out, report

    async def compress(
        self, messages: Sequence[Message]
    ) -> tuple[list[Message], CompressionReport]:
        return await asyncio.to_thread(self.compress_sync, messages)
