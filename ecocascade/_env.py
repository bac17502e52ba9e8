"""Offline-safe defaults, applied before LiteLLM or Hugging Face code is imported.

LiteLLM fetches its price table from the network on import unless told to use the bundled copy,
and tiktoken downloads encodings unless pointed at LiteLLM's bundled ones. We default both to the
bundled files so results are reproducible and nothing phones home; a user who sets these variables
keeps their own values.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

__all__ = ["ensure_offline_defaults", "import_litellm"]

_done = False


def ensure_offline_defaults() -> None:
    global _done
    if _done:
        return
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    # Model loading must not paint progress bars over CLI output.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    spec = importlib.util.find_spec("litellm")
    if spec is not None and spec.submodule_search_locations:
        tokenizers = (
            Path(next(iter(spec.submodule_search_locations))) / "litellm_core_utils" / "tokenizers"
        )
        if tokenizers.is_dir():
            os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(tokenizers))
    _done = True


def import_litellm() -> Any:
    """Import LiteLLM with the offline defaults in place and its chatter switched off."""
    ensure_offline_defaults()
    import litellm

    litellm.telemetry = False
    litellm.suppress_debug_info = True
    return litellm
