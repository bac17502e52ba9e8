"""``replay/<model>``: a LiteLLM custom provider that answers with what a real model once answered.

The real cascade — controller, judges, logging, cost accounting — runs unchanged over recorded
data: a tier ``replay/gpt-4-1106-preview`` gets, for the query in the request's last user
message, the recorded answer of ``gpt-4-1106-preview`` and reports its recorded USD cost.
Demonstrations may precede the query in that message (the query is matched as its suffix).

Where the answers come from: the tier's ``api_base`` names recorded files (RouterBench ``.csv``
or an eval's ``tasks.jsonl``; several joined by ``os.pathsep``), each read once per process; or
datasets registered in code with :func:`register_dataset` (or, scoped, :func:`registered`).
The first file (or the latest registered dataset) whose items contain the query decides: when that
item has no answer of the tier's model, the call fails with a ``NotFoundError`` naming the item —
it never falls through to another item or file with the same text. A query found nowhere fails
the same way (the cascade records an error attempt and escalates). Queries are matched by text
alone: when several items of one file share a query, they are served only if they recorded the
same answer of the model, else the call fails as ambiguous (reading such a file logs
``replay.duplicate_queries``).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import structlog

from ecocascade._env import import_litellm
from ecocascade.exceptions import ConfigError
from ecocascade.models.tier import Tier
from ecocascade.replay.data import RecordedAnswer, RecordedDataset, read_recorded

__all__ = [
    "RECORDED_COST_KEY",
    "REPLAY_PREFIX",
    "MissingAnswer",
    "ensure_replay_provider",
    "prepare_replay_tiers",
    "register_dataset",
    "registered",
    "replay_tier",
    "unregister_dataset",
]

log = structlog.get_logger(__name__)

REPLAY_PREFIX = "replay/"
RECORDED_COST_KEY = "recorded_cost_usd"
"""The key in a response's ``_hidden_params`` holding the recorded cost (read by TierClient)."""

_SUFFIX_KEY_CHARS = 48
_lock = threading.Lock()
_registered: list[_Index] = []
_by_path: dict[tuple[str, float], _Index] = {}
_provider: Any = None


class MissingAnswer(LookupError):
    """No recorded answer to serve (the provider turns it into LiteLLM's ``NotFoundError``)."""


class _Index:
    """Recorded items by query: exact text, or a suffix of the message (after demonstrations)."""

    def __init__(self, dataset: RecordedDataset) -> None:
        self.dataset = dataset
        self.exact: dict[str, int] = {}
        self.same_query: dict[int, list[int]] = {}  # first item -> every item with its query
        self.by_tail: dict[str, list[int]] = {}
        for i, item in enumerate(dataset.items):
            query = item.query.strip()
            first = self.exact.setdefault(query, i)
            if first != i:
                self.same_query.setdefault(first, [first]).append(i)
                continue
            self.by_tail.setdefault(query[-_SUFFIX_KEY_CHARS:], []).append(i)
        self.tail_lengths = sorted({len(tail) for tail in self.by_tail}, reverse=True)
        if self.same_query:
            log.warning(
                "replay.duplicate_queries",
                dataset=dataset.name,
                items=[[dataset.items[i].id for i in group] for group in self.same_query.values()],
                note="served only where they recorded the same answer of the model",
            )

    def answer(self, i: int, model: str) -> RecordedAnswer:
        """Item ``i``'s answer of ``model``; its twins (same query) must agree on it."""
        items = self.dataset.items
        group = self.same_query.get(i, [i])
        answers = {items[j].answers.get(model) for j in group}
        if len(answers) > 1:
            ids = ", ".join(items[j].id for j in group)
            raise MissingAnswer(
                f"items {ids} of {self.dataset.name} share this query but recorded different "
                f"answers of {model}: ambiguous"
            )
        answer = answers.pop()
        if answer is None:
            raise MissingAnswer(
                f"item {items[i].id} of {self.dataset.name} has no recorded answer of {model}"
            )
        return answer

    def find(self, content: str) -> int | None:
        content = content.strip()
        found = self.exact.get(content)
        if found is not None:
            return found
        best: int | None = None
        for length in self.tail_lengths:
            for i in self.by_tail.get(content[-length:], ()):
                query = self.dataset.items[i].query.strip()
                if content.endswith(query) and (
                    best is None or len(query) > len(self.dataset.items[best].query.strip())
                ):
                    best = i
        return best


def register_dataset(dataset: RecordedDataset) -> None:
    """Serve ``dataset``'s answers to ``replay/...`` tiers that name no ``api_base`` file, for the
    rest of the process (until :func:`unregister_dataset`); the latest registered is asked first."""
    ensure_replay_provider()
    index = _Index(dataset)
    with _lock:
        _registered.insert(0, index)


def unregister_dataset(dataset: RecordedDataset) -> None:
    """Stop serving ``dataset`` (registered with :func:`register_dataset`); a no-op if it is not."""
    with _lock:
        _registered[:] = [index for index in _registered if index.dataset is not dataset]


@contextmanager
def registered(dataset: RecordedDataset) -> Iterator[RecordedDataset]:
    """``with registered(ds):`` serves ``ds`` inside the block only."""
    register_dataset(dataset)
    try:
        yield dataset
    finally:
        unregister_dataset(dataset)


def replay_tier(model: str, data: str | Path | None = None, *, name: str | None = None) -> Tier:
    """A tier that replays ``model``'s recorded answers (from ``data``, else registered data)."""
    tier = Tier(
        f"{REPLAY_PREFIX}{model}",
        api_base=str(Path(data).resolve()) if data is not None else None,
        name=name,
        timeout_s=30.0,
    )
    prepare_replay_tiers([tier])
    return tier


def prepare_replay_tiers(tiers: Sequence[Tier]) -> None:
    """Register the provider and read the recorded files that ``replay/`` tiers name, so a
    missing or malformed file is a :class:`ConfigError` now, not a failed call later."""
    replaying = [t for t in tiers if t.model.startswith(REPLAY_PREFIX)]
    if not replaying:
        return
    ensure_replay_provider()
    for tier in replaying:
        for path in (tier.api_base or "").split(os.pathsep):
            if path:
                try:
                    _index_for_path(path)
                except ConfigError as error:
                    raise ConfigError(str(error), where=f"tier {tier.label}: api_base") from None


def _index_for_path(path: str) -> _Index:
    resolved = Path(path).expanduser().resolve()
    key = (str(resolved), resolved.stat().st_mtime if resolved.exists() else 0.0)
    with _lock:
        index = _by_path.get(key)
    if index is None:
        index = _Index(read_recorded(resolved))
        with _lock:
            _by_path[key] = index
    return index


def _last_user_text(messages: list[Any]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):  # content parts
                return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
            return str(content or "")
    return ""


def lookup(model: str, messages: list[Any], api_base: str | None) -> RecordedAnswer:
    """The recorded answer of ``model`` to the last user message; :class:`MissingAnswer` if the
    first source holding the query has none (see the module docs)."""
    content = _last_user_text(messages)
    with _lock:
        indexes = None if api_base else list(_registered)
    if indexes is None:
        indexes = [_index_for_path(p) for p in (api_base or "").split(os.pathsep) if p]
    for index in indexes:
        i = index.find(content)
        if i is not None:
            return index.answer(i, model)
    raise MissingAnswer(f"no recorded item has this query (asked for {model})")


def ensure_replay_provider() -> None:
    """Register the ``replay`` provider with LiteLLM (idempotent)."""
    global _provider
    litellm = import_litellm()
    with _lock:
        if _provider is None:
            _provider = _make_provider(litellm)
        entries = litellm.custom_provider_map
        if not any(e.get("provider") == "replay" for e in entries):
            entries.append({"provider": "replay", "custom_handler": _provider})
            litellm.custom_provider_map = entries


def _make_provider(litellm: Any) -> Any:
    from litellm.llms.custom_llm import CustomLLM

    class ReplayLLM(CustomLLM):
        def completion(self, *args: Any, **kwargs: Any) -> Any:
            return self._answer(kwargs)

        async def acompletion(self, *args: Any, **kwargs: Any) -> Any:
            return self._answer(kwargs)

        def _answer(self, kwargs: dict[str, Any]) -> Any:
            model = str(kwargs["model"]).removeprefix(REPLAY_PREFIX)
            messages = list(kwargs.get("messages") or [])
            api_base = kwargs.get("api_base") or None
            started = time.perf_counter()
            try:
                answer = lookup(model, messages, api_base)
            except ConfigError as error:  # the recorded file went missing: not worth a retry
                raise litellm.BadRequestError(
                    message=f"replay: {error}", model=model, llm_provider="replay"
                ) from None
            except MissingAnswer as error:
                raise litellm.NotFoundError(
                    message=f"replay: {error}", model=model, llm_provider="replay"
                ) from None
            response = kwargs.get("model_response") or litellm.ModelResponse()
            response.model = f"{REPLAY_PREFIX}{model}"
            response.choices[0].message.content = answer.text
            response.choices[0].finish_reason = "stop"
            content = _last_user_text(messages)
            prompt_tokens = answer.input_tokens or max(1, len(content) // 4)
            completion_tokens = answer.output_tokens or max(1, len(answer.text) // 4)
            response.usage = litellm.Usage(
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                total_tokens=prompt_tokens + completion_tokens,
            )
            response._hidden_params[RECORDED_COST_KEY] = answer.cost_usd
            response._response_ms = (time.perf_counter() - started) * 1000
            return response

    return ReplayLLM()
