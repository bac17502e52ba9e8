"""Solvers: what runs on a tier. The default is one chat completion."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any, Literal

from ecocascade.controller.demos import DEFAULT_DEMO_TEMPLATE, DemoTemplate
from ecocascade.exceptions import ConfigError
from ecocascade.types import ChatModel, Completion, Message, Solution, Task, ToolCallDelta

__all__ = ["ChatSolver", "assistant_message", "describe_message", "solution_from_completion"]


class ChatSolver:
    """Answers with a single chat completion: optional system prompt, the task's demonstrations,
    then the query — or, for a chat request, its system messages, the demonstrations, then its
    history and last turn, with the request's tools, tool choice, response format and params.

    ``demo_style="turns"`` (default) gives each demonstration as a prior exchange — the query as a
    user turn, its verified solution as the assistant's reply — with the most similar one last,
    next to the query: the few-shot form chat models follow best (on the local SmolLM2-135M it
    turned rambling replies into one-line answers). ``"inline"`` puts them in the user message
    with ``demo_template``, as EcoAssistant did.
    """

    def __init__(
        self,
        demo_template: DemoTemplate = DEFAULT_DEMO_TEMPLATE,
        *,
        demo_style: Literal["turns", "inline"] = "turns",
    ) -> None:
        if demo_style not in ("turns", "inline"):
            raise ConfigError(
                f"expected 'turns' or 'inline', got {demo_style!r}", where="demo_style"
            )
        self.demo_template = demo_template
        self.demo_style = demo_style

    def messages(self, task: Task) -> list[Message]:
        """The prompt ``solve`` sends (also used to estimate cost against a budget)."""
        if task.request is not None:
            return self._request_messages(task)
        messages: list[Message] = []
        if task.system_prompt:
            messages.append({"role": "system", "content": task.system_prompt})
        if self.demo_style == "inline":
            content = self.demo_template.render(task.query, task.demonstrations)
            messages.append({"role": "user", "content": content})
            return messages
        messages.extend(self._demo_turns(task))
        messages.append({"role": "user", "content": task.query})
        return messages

    def _demo_turns(self, task: Task) -> list[Message]:
        turns: list[Message] = []
        for demo in reversed(task.demonstrations):  # best match last, nearest the query
            turns.append({"role": "user", "content": demo.query})
            turns.append({"role": "assistant", "content": demo.solution})
        return turns

    def _request_messages(self, task: Task) -> list[Message]:
        assert task.request is not None
        given = list(task.request.messages)
        lead = 0
        while lead < len(given) and given[lead].get("role") == "system":
            lead += 1
        if not task.demonstrations:
            return given
        if self.demo_style == "inline":
            last = given[-1]
            if last.get("role") == "user" and isinstance(last.get("content"), str):
                content = self.demo_template.render(task.query, task.demonstrations)
                given[-1] = {**last, "content": content}
            return given
        return [*given[:lead], *self._demo_turns(task), *given[lead:]]

    @staticmethod
    def params(task: Task) -> dict[str, Any]:
        """The request's tools, tool choice, response format and params, as LiteLLM takes them."""
        request = task.request
        if request is None:
            return {}
        params: dict[str, Any] = dict(request.params)
        if request.tools:
            params["tools"] = [dict(t) for t in request.tools]
        if request.tool_choice is not None:
            params["tool_choice"] = request.tool_choice
        if request.response_format is not None:
            params["response_format"] = dict(request.response_format)
        return params

    async def solve(self, task: Task, model: ChatModel) -> Solution:
        messages = self.messages(task)
        completion = await model.complete(messages, **self.params(task))
        return solution_from_completion(completion, messages)

    async def stream(
        self, task: Task, model: ChatModel
    ) -> AsyncIterator[str | ToolCallDelta | Solution]:
        """:meth:`solve`, streamed: text and tool-call pieces as they arrive, then the Solution."""
        messages = self.messages(task)
        async for item in model.stream(messages, **self.params(task)):
            if isinstance(item, Completion):
                yield solution_from_completion(item, messages)
            else:
                yield item


def assistant_message(completion: Completion) -> dict[str, Any]:
    """A completion as the OpenAI assistant message (``content`` and/or ``tool_calls``; a
    reasoning model's ``reasoning_content`` when it sent one)."""
    message: dict[str, Any] = {"role": "assistant", "content": completion.text}
    if completion.tool_calls:
        message["content"] = completion.text or None
        message["tool_calls"] = [_tool_call(call) for call in completion.tool_calls]
    reasoning = _reasoning(completion.raw)
    if reasoning:
        message["reasoning_content"] = reasoning
    return message


def _reasoning(raw: Any) -> str | None:
    try:
        text = raw.choices[0].message.reasoning_content
    except (AttributeError, IndexError, TypeError):
        return None
    return text if isinstance(text, str) and text else None


def _tool_call(call: Any) -> dict[str, Any]:
    if isinstance(call, dict):
        function = call.get("function") or {}
        call_id, name, arguments = call.get("id"), function.get("name"), function.get("arguments")
    else:
        function = getattr(call, "function", None)
        call_id = getattr(call, "id", None)
        name = getattr(function, "name", None)
        arguments = getattr(function, "arguments", None)
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments if arguments is not None else {})
    return {
        "id": call_id or f"call_{uuid.uuid4().hex[:24]}",  # llama.cpp may send none
        "type": "function",
        "function": {"name": name or "", "arguments": arguments},
    }


def describe_message(message: Message) -> str:
    """The text a judge reads: the content, or ``name(arguments); …`` for tool calls."""
    calls: Sequence[Any] = message.get("tool_calls") or ()
    if calls:
        return "; ".join(f"{c['function']['name']}({c['function']['arguments']})" for c in calls)
    content = message.get("content")
    return content if isinstance(content, str) else ""


def solution_from_completion(completion: Completion, messages: Sequence[Message]) -> Solution:
    message = assistant_message(completion)
    return Solution(
        answer=describe_message(message),
        usage=completion.usage,
        cost_usd=completion.cost_usd,
        model_calls=1,
        retries=completion.retries,
        transcript=(*messages, message),
        message=message,
        model=getattr(completion.raw, "model", None) or None,
        finish_reason=completion.finish_reason,
    )
