"""AutoGen messages, tools and results ⇄ the OpenAI/LiteLLM shapes a ``ChatRequest`` holds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, Literal

from autogen_core import FunctionCall, Image
from autogen_core.models import (
    AssistantMessage,
    CreateResult,
    FinishReasons,
    FunctionExecutionResultMessage,
    LLMMessage,
    RequestUsage,
    SystemMessage,
    UserMessage,
)
from autogen_core.tools import Tool, ToolSchema

from ecocascade.controller.solvers import assistant_message
from ecocascade.exceptions import ConfigError
from ecocascade.types import Completion, Message

__all__ = [
    "FINISH_REASONS",
    "NO_ARGS",
    "RESERVED_ARGS",
    "ToolChoice",
    "add_usage",
    "create_result",
    "openai_tool_choice",
    "to_create_result",
    "to_openai_messages",
    "to_openai_tools",
    "tool_schema",
]

ToolChoice = Tool | Literal["auto", "required", "none"]


NO_ARGS: Mapping[str, Any] = MappingProxyType({})
# Set by the client itself: a caller passing them in extra_create_args is a mistake.
RESERVED_ARGS = frozenset(
    # The tier decides where its key goes: extra_create_args may not send it to another host.
    {"model", "messages", "stream", "stream_options", "tools", "api_key", "api_base", "base_url"}
    | {"client", "custom_llm_provider"}
)
FINISH_REASONS: Mapping[str, FinishReasons] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "function_calls",
    "function_call": "function_calls",
    "content_filter": "content_filter",
}


def to_openai_messages(messages: Sequence[LLMMessage]) -> list[Message]:
    """AutoGen messages → OpenAI/LiteLLM chat messages (one ``tool`` message per result)."""
    converted: list[Message] = []
    for message in messages:
        if isinstance(message, SystemMessage):
            converted.append({"role": "system", "content": message.content})
        elif isinstance(message, UserMessage):
            converted.append({"role": "user", "content": _user_content(message.content)})
        elif isinstance(message, AssistantMessage):
            if isinstance(message.content, str):
                converted.append({"role": "assistant", "content": message.content})
            else:
                converted.append(
                    {
                        "role": "assistant",
                        "content": message.thought,
                        "tool_calls": [
                            {
                                "id": call.id,
                                "type": "function",
                                "function": {"name": call.name, "arguments": call.arguments},
                            }
                            for call in message.content
                        ],
                    }
                )
        elif isinstance(message, FunctionExecutionResultMessage):
            converted.extend(
                {"role": "tool", "tool_call_id": result.call_id, "content": result.content}
                for result in message.content
            )
        else:
            raise ConfigError(
                f"unsupported message type {type(message).__name__}", where="messages"
            )
    return converted


def _user_content(content: str | list[str | Image]) -> Any:
    if isinstance(content, str):
        return content
    parts: list[dict[str, Any]] = []
    for part in content:
        if isinstance(part, str):
            parts.append({"type": "text", "text": part})
        else:
            parts.append({"type": "image_url", "image_url": {"url": part.data_uri}})
    return parts


def to_openai_tools(tools: Sequence[Tool | ToolSchema]) -> list[dict[str, Any]]:
    """AutoGen tools or tool schemas → OpenAI ``{"type": "function", ...}`` tool definitions."""
    converted = []
    for tool in tools:
        schema = tool_schema(tool)
        function: dict[str, Any] = {
            "name": schema["name"],
            "parameters": dict(schema.get("parameters") or {"type": "object", "properties": {}}),
        }
        if schema.get("description"):
            function["description"] = schema["description"]
        if "strict" in schema:
            function["strict"] = schema["strict"]
        converted.append({"type": "function", "function": function})
    return converted


def tool_schema(tool: Tool | ToolSchema) -> ToolSchema:
    return tool.schema if isinstance(tool, Tool) else tool


def openai_tool_choice(choice: ToolChoice, tools: Sequence[Tool | ToolSchema]) -> Any:
    if isinstance(choice, str):
        if choice not in ("auto", "required", "none"):
            raise ConfigError(
                f"expected a Tool, 'auto', 'required' or 'none', got {choice!r}",
                where="tool_choice",
            )
        return choice
    names = {tool_schema(t)["name"] for t in tools}
    if choice.name not in names:
        raise ConfigError(
            f"tool_choice names {choice.name!r}, which is not among the tools passed",
            where="tool_choice",
        )
    return {"type": "function", "function": {"name": choice.name}}


def to_create_result(completion: Completion, usage: RequestUsage) -> CreateResult:
    """A LiteLLM completion → AutoGen's ``CreateResult`` (tool calls become FunctionCalls)."""
    return create_result(assistant_message(completion), completion.finish_reason, usage)


def create_result(
    message: Mapping[str, Any],
    finish_reason: str | None,
    usage: RequestUsage,
    *,
    cached: bool = False,
) -> CreateResult:
    """An OpenAI assistant message → AutoGen's ``CreateResult`` (tool calls become
    FunctionCalls; text beside them, and a reasoning model's ``reasoning_content``, the
    ``thought``)."""
    calls = message.get("tool_calls") or ()
    text = message.get("content") if isinstance(message.get("content"), str) else None
    reasoning = message.get("reasoning_content") or None
    if calls:
        return CreateResult(
            finish_reason="function_calls",
            content=[
                FunctionCall(
                    id=str(c.get("id") or ""),
                    name=str(c["function"]["name"]),
                    arguments=str(c["function"]["arguments"]),
                )
                for c in calls
            ],
            usage=usage,
            cached=cached,
            thought="\n".join(t for t in (reasoning, text) if t) or None,
        )
    return CreateResult(
        finish_reason=FINISH_REASONS.get(finish_reason or "", "unknown"),
        content=text or "",
        usage=usage,
        cached=cached,
        thought=reasoning,
    )


def add_usage(a: RequestUsage, b: RequestUsage) -> RequestUsage:
    return RequestUsage(
        prompt_tokens=a.prompt_tokens + b.prompt_tokens,
        completion_tokens=a.completion_tokens + b.completion_tokens,
    )
