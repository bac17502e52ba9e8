"""Record model responses to a file and replay them, so a run can be repeated exactly.

Every :class:`~ecocascade.models.client.TierClient` call made while a tape is active (``with
tape:``) goes through it: in ``record`` mode the real call happens and its completion is appended
to the file; in ``replay`` mode the completion comes from the file and no model is called. Calls
are keyed by model, parameters and messages (not ``api_base``, so a recording made against a
server on one port replays anywhere; not the tier's price either: a replay reports the costs
that were recorded). A key seen n times is replayed as its n-th recording (the
last one if it was called more often while recording), so a sampling model replays its
variations in order.

The file is JSON lines, one completion per line, flushed as it goes: an interrupted recording
is still valid up to its last call.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import threading
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Literal, Self

from ecocascade.exceptions import ConfigError, ProviderError, ProviderRejectedError
from ecocascade.text import mask_secrets_in
from ecocascade.types import Completion, Message, Usage

if TYPE_CHECKING:
    from ecocascade.models.tier import Tier

__all__ = ["Tape", "active_tape"]

_ACTIVE: contextvars.ContextVar[Tape | None] = contextvars.ContextVar(
    "ecocascade_tape", default=None
)
# Parameters that change how a local server runs, not what the model answers.
_RUNTIME_PARAMS = frozenset({"n_threads", "n_ctx", "n_parallel", "port", "start_timeout_s"})


def active_tape() -> Tape | None:
    """The tape the current context records to or replays from, if any."""
    return _ACTIVE.get()


class Tape:
    """``Tape(path, "record")`` or ``Tape(path, "replay")``; use as a context manager."""

    def __init__(self, path: str | Path, mode: Literal["record", "replay"]) -> None:
        if mode not in ("record", "replay"):
            raise ConfigError(f"expected 'record' or 'replay', got {mode!r}", where="tape mode")
        self.path = Path(path)
        self.mode = mode
        self.misses = 0
        self._recorded: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._seen: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()
        self._file: IO[str] | None = None
        self._token: contextvars.Token[Tape | None] | None = None
        if mode == "replay":
            self._load()

    def _load(self) -> None:
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            raise ConfigError("no such recording", where=str(self.path)) from None
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"cannot read the recording: {error}", where=str(self.path)) from None
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                self._recorded[entry["key"]].append(entry)
            except (json.JSONDecodeError, KeyError, TypeError):
                raise ConfigError(
                    "not a recording line (expected JSON with a 'key')",
                    where=f"{self.path}:{number}",
                ) from None

    def __enter__(self) -> Self:
        if self.mode == "record":
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = self.path.open("w", encoding="utf-8")
            except OSError as error:
                raise ConfigError(f"cannot write: {error}", where=str(self.path)) from None
        self._token = _ACTIVE.set(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._token is not None:
            _ACTIVE.reset(self._token)
            self._token = None
        if self._file is not None:
            self._file.close()
            self._file = None

    @staticmethod
    def key(tier: Tier, messages: Sequence[Message], params: Mapping[str, Any]) -> str:
        merged = {**tier.params, **params}
        described = {
            "model": tier.model,
            "params": {k: merged[k] for k in sorted(merged) if k not in _RUNTIME_PARAMS},
            "messages": list(messages),
        }
        blob = json.dumps(described, sort_keys=True, default=str, ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()

    def replay(self, label: str, key: str) -> Completion:
        """The recorded completion for this call (with its recorded latency), or the recorded
        provider error raised again; raises ProviderRejectedError when the call was not recorded
        (the run has diverged from the recording)."""
        with self._lock:
            entries = self._recorded.get(key)
            if not entries:
                self.misses += 1
                raise ProviderRejectedError(
                    f"{label}: this call is not in the recording {self.path}", model=label
                )
            entry = entries[min(self._seen[key], len(entries) - 1)]
            self._seen[key] += 1
        if "error" in entry:
            error = _error_class(entry["error"])(entry.get("message", ""), model=label)
            error.status_code = entry.get("status_code")
            raise error
        return Completion(
            text=entry["text"],
            model=label,
            usage=Usage(entry["input_tokens"], entry["output_tokens"]),
            cost_usd=entry["cost_usd"],
            latency_s=float(entry.get("latency_s", 0.0)),
            finish_reason=entry.get("finish_reason"),
        )

    def record_error(self, key: str, error: ProviderError) -> None:
        """Record a call that failed for good, so replay fails it the same way."""
        self._write(
            {
                "key": key,
                "model": error.model,
                "error": error.kind,
                "message": str(error),
                "status_code": error.status_code,
            }
        )

    def record(self, key: str, completion: Completion) -> None:
        entry = {
            "key": key,
            "model": completion.model,
            "text": completion.text,
            "input_tokens": completion.usage.input_tokens,
            "output_tokens": completion.usage.output_tokens,
            "cost_usd": completion.cost_usd,
            "finish_reason": completion.finish_reason,
            "latency_s": round(completion.latency_s, 4),
        }
        self._write(entry)

    def _write(self, entry: dict[str, Any]) -> None:
        with self._lock:
            if self._file is None:
                raise RuntimeError("recording outside `with tape:`")
            # Recorded answers and provider errors may quote a key: the tape keeps none.
            self._file.write(json.dumps(mask_secrets_in(entry), ensure_ascii=False) + "\n")
            self._file.flush()


def _error_class(kind: str) -> type[ProviderError]:
    from ecocascade.exceptions import _KINDS

    for cls, name in _KINDS.items():
        if name == kind:
            return cls
    return ProviderRejectedError
