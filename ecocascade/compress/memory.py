"""Conversation memory compression: past a token budget, older turns become a summary.

A long chat resends its whole history every turn, so a paid tier bills the same old turns again
and again. :class:`ConversationMemory` keeps the system prompt and the last ``keep_recent``
messages verbatim and replaces everything between with a summary written by a cheap tier. The
summary is cached per conversation prefix (a hash chain over the messages), so the next turn of
the same conversation summarises only what is new since the cached prefix: one cheap call per
``keep_recent`` turns, not one per request.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from ecocascade.exceptions import ConfigError
from ecocascade.types import Message, add_costs, message_text

if TYPE_CHECKING:
    from ecocascade.models.client import TierClient

__all__ = ["ConversationMemory", "MemoryReport", "MemorySettings", "count_tokens"]

log = structlog.get_logger(__name__)

SUMMARY_PROMPT = (
    "Summarise the conversation below for the assistant who will continue it. Keep every fact,"
    " number, name, decision, preference and open question; drop greetings and repetition."
    " Write at most {words} words, as plain notes.\n\n{previous}{transcript}"
)
SUMMARY_HEADER = "Summary of the earlier conversation:\n"


@dataclass(frozen=True, slots=True)
class MemorySettings:
    """``budget_tokens``: compress once the prompt is larger. ``keep_recent``: messages kept
    verbatim at the end. ``summary_words``: the summary's length cap."""

    budget_tokens: int = 1500
    keep_recent: int = 4
    summary_words: int = 150
    cache_size: int = 1024

    def __post_init__(self) -> None:
        if self.budget_tokens < 1 or self.keep_recent < 1 or self.summary_words < 10:
            raise ConfigError(
                "budget_tokens >= 1, keep_recent >= 1 and summary_words >= 10 please",
                where="memory",
            )


@dataclass(frozen=True, slots=True)
class MemoryReport:
    tokens_before: int
    tokens_after: int
    summarised_messages: int = 0
    summary_cached: bool = False
    cost_usd: float | None = 0.0


def count_tokens(messages: Sequence[Message], model: str = "gpt-4o-mini") -> int:
    """Prompt tokens as LiteLLM counts them for ``model`` (tiktoken's fallback otherwise)."""
    from ecocascade._env import import_litellm

    try:
        return int(import_litellm().token_counter(model=model, messages=list(messages)))
    except Exception:  # an unknown tokenizer: a character heuristic
        return sum(len(message_text(m)) for m in messages) // 4 + 3 * len(messages)


def _chain(messages: Sequence[Message]) -> list[str]:
    """``keys[i]`` identifies ``messages[: i + 1]``: a hash chain, so prefixes are cheap."""
    keys, digest = [], b""
    for message in messages:
        body = json.dumps(message, sort_keys=True, default=str).encode()
        digest = hashlib.sha256(digest + body).digest()
        keys.append(digest.hex()[:32])
    return keys


class ConversationMemory:
    """Keeps a chat under ``settings.budget_tokens`` by summarising its older turns with
    ``summariser`` (the cheapest tier). Use one instance per gateway or app: its cache is shared
    by every conversation (keys are hashes of their messages)."""

    def __init__(self, summariser: TierClient, settings: MemorySettings | None = None) -> None:
        self.summariser = summariser
        self.settings = settings or MemorySettings()
        self._summaries: OrderedDict[str, str] = OrderedDict()

    def _split(
        self, messages: Sequence[Message]
    ) -> tuple[list[Message], list[Message], list[Message]]:
        """(leading system messages, older turns, recent turns) — a tool result is never cut off
        from the assistant message that called it."""
        head = 0
        while head < len(messages) and messages[head].get("role") == "system":
            head += 1
        body = list(messages[head:])
        cut = max(0, len(body) - self.settings.keep_recent)
        while 0 < cut < len(body) and body[cut].get("role") == "tool":
            cut -= 1
        return list(messages[:head]), body[:cut], body[cut:]

    async def compact(self, messages: Sequence[Message]) -> tuple[list[Message], MemoryReport]:
        """The messages to send instead (unchanged when under budget) and what it saved."""
        model = self.summariser.tier.model
        before = count_tokens(messages, model)
        if before <= self.settings.budget_tokens:
            return list(messages), MemoryReport(before, before)
        system, older, recent = self._split(messages)
        if len(older) < 2:
            return list(messages), MemoryReport(before, before)
        keys = _chain([*system, *older])[len(system) :]
        summary, cost, cached = await self._summary(older, keys)
        note = SUMMARY_HEADER + summary
        if system:
            first = dict(system[0])
            first["content"] = f"{message_text(system[0])}\n\n{note}"
            head: list[Message] = [first, *system[1:]]
        else:
            head = [{"role": "system", "content": note}]
        out = [*head, *recent]
        report = MemoryReport(before, count_tokens(out, model), len(older), cached, cost)
        log.info("memory.compacted", tokens_before=report.tokens_before,
                 tokens_after=report.tokens_after, summarised=len(older), cached=cached,
                 cost_usd=cost)  # fmt: skip
        return out, report

    async def _summary(
        self, older: list[Message], keys: list[str]
    ) -> tuple[str, float | None, bool]:
        """The summary of ``older``: cached, or the longest cached prefix's summary plus the
        messages after it, summarised by one call."""
        if keys[-1] in self._summaries:
            self._summaries.move_to_end(keys[-1])
            return self._summaries[keys[-1]], 0.0, True
        start, previous = 0, ""
        for i in range(len(keys) - 2, -1, -1):
            if keys[i] in self._summaries:
                start, previous = i + 1, self._summaries[keys[i]]
                break
        transcript = "\n".join(
            f"{m.get('role')}: {message_text(m)}" for m in older[start:] if message_text(m)
        )
        prompt = SUMMARY_PROMPT.format(
            words=self.settings.summary_words,
            previous=f"Summary so far:\n{previous}\n\nThen:\n" if previous else "",
            transcript=transcript,
        )
        completion = await self.summariser.complete([{"role": "user", "content": prompt}])
        summary = completion.text.strip()
        self._summaries[keys[-1]] = summary
        while len(self._summaries) > self.settings.cache_size:
            self._summaries.popitem(last=False)
        return summary, add_costs(completion.cost_usd), False
