"""What an AutoGen agent may ask of a tier (``ModelInfo``: tools, vision, JSON) and how long a
prompt it takes, from LiteLLM's bundled model table or the local catalogue."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from autogen_core.models import ModelFamily, ModelInfo

from ecocascade._env import import_litellm
from ecocascade.models.tier import Tier

__all__ = ["context_window", "derive_model_info", "table_info"]

_DEFAULT_CONTEXT_WINDOW = 8192
_LOCAL_CONTEXT_WINDOW = 2048  # the local servers' default n_ctx
# Substring of the model name → AutoGen family; first match wins, so longer names come first.
_FAMILIES: tuple[tuple[str, str], ...] = (
    ("gpt-5", ModelFamily.GPT_5),
    ("gpt-4.1", ModelFamily.GPT_41),
    ("gpt-4.5", ModelFamily.GPT_45),
    ("gpt-4o", ModelFamily.GPT_4O),
    ("gpt-4", ModelFamily.GPT_4),
    ("gpt-3.5", ModelFamily.GPT_35),
    ("o1", ModelFamily.O1),
    ("o3", ModelFamily.O3),
    ("o4", ModelFamily.O4),
    ("claude-3-5-haiku", ModelFamily.CLAUDE_3_5_HAIKU),
    ("claude-3-5-sonnet", ModelFamily.CLAUDE_3_5_SONNET),
    ("claude-3-7-sonnet", ModelFamily.CLAUDE_3_7_SONNET),
    ("claude-3-haiku", ModelFamily.CLAUDE_3_HAIKU),
    ("claude-3-sonnet", ModelFamily.CLAUDE_3_SONNET),
    ("claude-3-opus", ModelFamily.CLAUDE_3_OPUS),
    ("claude-opus-4", ModelFamily.CLAUDE_4_OPUS),
    ("claude-sonnet-4", ModelFamily.CLAUDE_4_SONNET),
    ("gemini-2.5-pro", ModelFamily.GEMINI_2_5_PRO),
    ("gemini-2.5-flash", ModelFamily.GEMINI_2_5_FLASH),
    ("gemini-2.0-flash", ModelFamily.GEMINI_2_0_FLASH),
    ("gemini-1.5-pro", ModelFamily.GEMINI_1_5_PRO),
    ("gemini-1.5-flash", ModelFamily.GEMINI_1_5_FLASH),
    ("codestral", ModelFamily.CODESRAL),
    ("ministral", ModelFamily.MINISTRAL),
    ("mistral", ModelFamily.MISTRAL),
)


def derive_model_info(tier: Tier) -> ModelInfo:
    """AutoGen's ``ModelInfo`` for a tier.

    From LiteLLM's bundled model table when it knows the model; a ``local/<name>`` chat model
    calls functions (llama.cpp parses tool calls from its chat template) and a completion-style
    one does not; any other model is assumed to be an OpenAI-compatible chat model with function
    calling and without vision or JSON mode. Pass ``model_info=`` to say otherwise.
    """
    name = tier.model.rsplit("/", 1)[-1].lower()
    family = next((f for key, f in _FAMILIES if key in name), ModelFamily.UNKNOWN)
    if tier.is_local:
        from ecocascade.models.local.catalogue import CATALOGUE

        entry = CATALOGUE.get(tier.model.removeprefix("local/"))
        chat = entry is None or entry.style == "chat"
        return ModelInfo(
            vision=False,
            function_calling=chat,
            json_output=chat,
            family=ModelFamily.UNKNOWN,
            structured_output=False,
            multiple_system_messages=False,
        )
    info = table_info(tier.model)
    if not info:
        return ModelInfo(
            vision=False,
            function_calling=True,
            json_output=False,
            family=family,
            structured_output=False,
            multiple_system_messages=True,
        )
    schema = bool(info.get("supports_response_schema"))
    return ModelInfo(
        vision=bool(info.get("supports_vision")),
        function_calling=bool(info.get("supports_function_calling")),
        json_output=schema or bool(info.get("supports_function_calling")),
        family=family,
        structured_output=schema,
        multiple_system_messages=info.get("supports_system_messages") is not False,
    )


def table_info(model: str) -> Mapping[str, Any]:
    litellm = import_litellm()
    try:
        return cast(Mapping[str, Any], litellm.get_model_info(model))
    except Exception:  # LiteLLM raises several types for "not in the table"; all mean unknown
        return {}


def context_window(tier: Tier) -> int:
    """Prompt tokens the tier's model accepts: a local server's ``n_ctx``, LiteLLM's table, or
    a default."""
    if tier.is_local:
        return int(tier.params.get("n_ctx") or _LOCAL_CONTEXT_WINDOW)
    info = table_info(tier.model)
    value = info.get("max_input_tokens") or info.get("max_tokens")
    return int(value) if value else _DEFAULT_CONTEXT_WINDOW
