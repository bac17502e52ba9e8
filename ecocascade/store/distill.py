"""Distillation data: verified query → solution pairs as chat fine-tuning examples.

Every record in the solution store was accepted by a judge, so the store is a ready training set
for a smaller model ("fine-tune the cheap tier on what the expensive tier got right"). One line
per example, the chat format both OpenAI fine-tuning and Hugging Face ``datasets``/TRL read::

    {"messages": [{"role": "system", ...}, {"role": "user", ...}, {"role": "assistant", ...}]}

Text is masked again on the way out (:func:`mask_secrets`), so a secret that entered the store
before masking existed, or through ``solutions import``, does not reach a training file.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ecocascade.exceptions import ConfigError
from ecocascade.store.records import SolutionRecord
from ecocascade.text import mask_secrets

__all__ = ["ExportFilter", "chat_examples", "parse_when", "write_chat_jsonl"]


@dataclass(frozen=True, slots=True)
class ExportFilter:
    """Which records become examples; ``None`` means "any". Times are Unix seconds, on
    ``updated_at`` (when the pair was last verified); ``since`` inclusive, ``until`` exclusive."""

    models: frozenset[str] | None = None
    tiers: frozenset[int] | None = None
    namespace: str | None = None
    since: float | None = None
    until: float | None = None

    def keeps(self, record: SolutionRecord) -> bool:
        if self.models is not None and record.model not in self.models:
            return False
        if self.tiers is not None and record.tier not in self.tiers:
            return False
        if self.namespace is not None and record.namespace != self.namespace:
            return False
        if self.since is not None and record.updated_at < self.since:
            return False
        return self.until is None or record.updated_at < self.until


def chat_examples(
    records: Iterable[SolutionRecord],
    *,
    keep: ExportFilter | None = None,
    system_prompt: str | None = None,
) -> Iterator[dict[str, Any]]:
    """One ``{"messages": [...]}`` example per kept record, secrets masked."""
    keep = keep or ExportFilter()
    for record in records:
        if not keep.keeps(record):
            continue
        messages: list[dict[str, str]] = []
        if system_prompt:
            messages.append({"role": "system", "content": system_prompt})
        messages.append({"role": "user", "content": mask_secrets(record.query)})
        messages.append({"role": "assistant", "content": mask_secrets(record.solution)})
        yield {"messages": messages}


def write_chat_jsonl(
    records: Iterable[SolutionRecord],
    path: str | Path,
    *,
    keep: ExportFilter | None = None,
    system_prompt: str | None = None,
) -> int:
    """Write :func:`chat_examples` to ``path`` (JSONL, UTF-8); returns how many."""
    n = 0
    with Path(path).open("w", encoding="utf-8") as out:
        for example in chat_examples(records, keep=keep, system_prompt=system_prompt):
            out.write(json.dumps(example, ensure_ascii=False) + "\n")
            n += 1
    return n


def parse_when(text: str, *, where: str) -> float:
    """``2026-01-31`` or an ISO date-time (UTC unless it says otherwise) → Unix seconds."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(
            f"expected a date like 2026-01-31 or 2026-01-31T12:00, got {text!r}", where=where
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
