"""Required tool calls for local chat models whose chat template has no tools.

SmolLM2's template cannot show tools to the model, so llama.cpp drops ``tools`` and ignores
``tool_choice``. When a call *requires* a tool call (``tool_choice="required"`` or a named
function), the tools are described in a system message instead and the reply is constrained, by
llama.cpp's JSON-schema grammar, to ``{"name": <an offered tool>, "arguments": {...}}`` valid
against that tool's parameters; the JSON the model writes becomes the reply's tool call. The model
still chooses the tool and writes the arguments; a reply cut off before the JSON closes stays text,
which a judge rejects. With ``tool_choice="auto"`` nothing changes: the model answers in text.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from ecocascade.types import Message

__all__ = ["forced_tool_call", "tool_calls_from_text"]

_INSTRUCTIONS = (
    "You can call these functions:\n{tools}\n"
    'Call one now: reply with only a JSON object {{"name": <function name>, '
    '"arguments": <the arguments as an object>}}.'
)


def forced_tool_call(
    messages: Sequence[Message], kwargs: Mapping[str, Any]
) -> tuple[list[Message], dict[str, Any]] | None:
    """The messages and call arguments that make a local chat model write the required tool
    call as JSON, or ``None`` when the call requires none (no tools, or a choice left to the
    model)."""
    tools = [t.get("function") or t for t in kwargs.get("tools") or ()]
    choice = kwargs.get("tool_choice")
    if not tools or choice in (None, "auto", "none"):
        return None
    if isinstance(choice, Mapping):  # {"type": "function", "function": {"name": ...}}
        wanted = (choice.get("function") or {}).get("name")
        tools = [t for t in tools if t.get("name") == wanted] or tools
    options = [
        {
            "type": "object",
            "properties": {
                "name": {"const": t["name"]},
                "arguments": t.get("parameters") or {"type": "object"},
            },
            "required": ["name", "arguments"],
        }
        for t in tools
    ]
    schema = options[0] if len(options) == 1 else {"anyOf": options}
    listing = "\n".join(
        json.dumps({k: t[k] for k in ("name", "description", "parameters") if k in t})
        for t in tools
    )
    system: Message = {"role": "system", "content": _INSTRUCTIONS.format(tools=listing)}
    given = list(messages)
    if given and given[0].get("role") == "system":
        first = given[0]
        system = {**first, "content": f"{first.get('content') or ''}\n\n{system['content']}"}
        given = given[1:]
    rest = {k: v for k, v in kwargs.items() if k not in ("tools", "tool_choice")}
    rest.pop("parallel_tool_calls", None)
    rest["response_format"] = {
        "type": "json_schema",
        "json_schema": {"name": "tool_call", "schema": schema},
    }
    return [system, *given], rest


def tool_calls_from_text(text: str) -> list[dict[str, Any]] | None:
    """The OpenAI tool call a forced reply's JSON is, or ``None`` when it is not one (a reply
    cut off at the token limit)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        return None
    arguments = value.get("arguments")
    return [
        {
            "id": f"call_{uuid.uuid4().hex[:12]}",
            "type": "function",
            "function": {"name": value["name"], "arguments": json.dumps(arguments)},
        }
    ]
