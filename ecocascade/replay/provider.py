"""``replay/<model>``: a LiteLLM custom provider that answers with what a real model once answered.

The real cascade — controller, judges, logging, cost accounting — runs unchanged over recorded
data: a tier ``replay/gpt-4-1106-preview`` gets, for the query in the request's last user
message, the recorded answer of ``gpt-4-1106-preview`` and reports its recorded USD cost.
Demonstrations may precede the query in that message (the query is matched as its suffix).

Where the answers come from: the tier's ``api_base`` names recorded files (RouterBench ``.csv``
or an eval's ``tasks.jsonl``; several joined by ``os.pathsep``), each read once per process; or
datasets registered in code with :func:`register_dataset`. A query with no recorded answer fails
the call with a ``NotFoundError`` (the cascade records an error attempt and escalates).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ecocascade._env import import_litellm
from ecocascade.exceptions import ConfigError
from ecocascade.models.tier import Tier
from ecocascade.replay.data import RecordedAnswer, RecordedDataset, read_recorded

__all__ = [
    "RECORDED_COST_KEY",
    "REPLAY_PREFIX",
    "ensure_replay_provider",
    "prepare_replay_tiers",
    "register_dataset",
    "replay_tier",
]

REPLAY_PREFIX = "replay/"
RECORDED_COST_KEY = "recorded_cost_usd"
"""The key in a response's ``_hidden_params`` holding the recorded cost (read by TierClient)."""

_SUFFIX_KEY_CHARS = 48
_lock = threading.Lock()
_registered: list[_Index] = []
_by_path: dict[tuple[str, float], _Index] = {}
_provider: Any = None


class _Index:
    """Recorded items by query: exact text, or a suffix of the message (after demonstrations)."""

    def __init__(self, dataset: RecordedDataset) -> None:
        self.dataset = dataset
        self.exact: dict[str, int] = {}
        self.by_tail: dict[str, list[int]] = {}
        for i, item in enumerate(dataset.items):
            query = item.query.strip()
            self.exact.setdefault(query, i)
            self.by_tail.setdefault(query[-_SUFFIX_KEY_CHARS:], []).append(i)
        self.tail_lengths = sorted({len(tail) for tail in self.by_tail}, reverse=True)

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
    """Serve ``dataset``'s answers to ``replay/...`` tiers that name no ``api_base`` file."""
    ensure_replay_provider()
    with _lock:
        _registered.insert(0, _Index(dataset))


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


def lookup(model: str, messages: list[Any], api_base: str | None) -> RecordedAnswer | None:
    content = _last_user_text(messages)
    indexes = (
        [_index_for_path(p) for p in api_base.split(os.pathsep) if p]
        if api_base
        else list(_registered)
    )
    for index in indexes:
        i = index.find(content)
        if i is not None:
            answer = index.dataset.items[i].answers.get(model)
            if answer is not None:
                return answer
    return None


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
            if answer is None:
                raise litellm.NotFoundError(
                    message=f"replay: no recorded answer of {model} for this query",
                    model=model,
                    llm_provider="replay",
                )
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
