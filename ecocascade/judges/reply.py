"""Judges of a reply's form: a usable reply, valid tool calls, the JSON the request asked for.

They judge what a tier returned against what the request asked, reading ``context.request``
(tools offered, ``response_format``) and ``context.solution`` (the assistant message, its
finish reason). Called without a context they judge the answer text alone. The OpenAI-compatible
gateway and :class:`~ecocascade.agents.CascadeChatCompletionClient` use :class:`WellFormedReply`
by default; each check is also a judge of its own, to combine with
:class:`~ecocascade.judges.AllOf`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from ecocascade.exceptions import ConfigError
from ecocascade.judging import ask_judge
from ecocascade.types import Judge, JudgeContext, Verdict

__all__ = [
    "JsonReply",
    "NonEmptyReply",
    "PydanticReply",
    "ValidToolCalls",
    "WellFormedReply",
    "json_problem",
    "schema_problem",
    "tool_call_problem",
]


def _message(answer: str, context: JudgeContext | None) -> Mapping[str, Any]:
    solution = context.solution if context is not None else None
    if solution is not None and solution.message is not None:
        return solution.message
    return {"role": "assistant", "content": answer}


def _finish_reason(context: JudgeContext | None) -> str | None:
    solution = context.solution if context is not None else None
    return solution.finish_reason if solution is not None else None


def _calls(message: Mapping[str, Any]) -> Sequence[Mapping[str, Any]]:
    return message.get("tool_calls") or ()


def _text(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    return content if isinstance(content, str) else ""


class NonEmptyReply:
    """Accepts tool calls, or text that is non-empty and not cut off at the token limit."""

    name = "non_empty"

    async def judge(self, query: str, answer: str, context: JudgeContext | None = None) -> Verdict:
        message = _message(answer, context)
        if _calls(message):
            return Verdict(True, "tool calls", judge=self.name)
        problem = text_problem(_text(message), _finish_reason(context))
        return Verdict(problem is None, problem or "a non-empty reply", judge=self.name)


class ValidToolCalls:
    """Accepts a reply whose every tool call names a tool the request offered, with arguments
    that are a JSON object valid against that tool's JSON schema (a reply without tool calls
    passes)."""

    name = "valid_tool_calls"

    async def judge(self, query: str, answer: str, context: JudgeContext | None = None) -> Verdict:
        calls = _calls(_message(answer, context))
        if not calls:
            return Verdict(True, "no tool calls", judge=self.name)
        request = context.request if context is not None else None
        problem = tool_call_problem(calls, request.tools if request is not None else ())
        return Verdict(problem is None, problem or "well-formed tool calls", judge=self.name)


class JsonReply:
    """Accepts a text reply that is the JSON the request's ``response_format`` asks for
    (``json_object``: any JSON; ``json_schema``: valid against the schema). A request that asks
    for no JSON, or a tool-call reply, passes."""

    name = "json_reply"

    async def judge(self, query: str, answer: str, context: JudgeContext | None = None) -> Verdict:
        message = _message(answer, context)
        request = context.request if context is not None else None
        if _calls(message) or request is None or request.response_format is None:
            return Verdict(True, "no JSON asked for", judge=self.name)
        problem = response_format_problem(_text(message), request.response_format)
        return Verdict(problem is None, problem or "the JSON asked for", judge=self.name)


class PydanticReply:
    """Accepts a text reply that validates as ``model`` (a pydantic model class)."""

    def __init__(self, model: type[BaseModel]) -> None:
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise ConfigError(f"expected a pydantic model class, got {model!r}", where="model")
        self.model = model

    @property
    def name(self) -> str:
        return f"pydantic:{self.model.__name__}"

    async def judge(self, query: str, answer: str, context: JudgeContext | None = None) -> Verdict:
        problem = json_problem(_text(_message(answer, context)), self.model)
        return Verdict(problem is None, problem or f"a valid {self.model.__name__}", self.name)


class WellFormedReply:
    """The default judge of a chat reply: accept a usable one, reject a malformed one.

    A text reply must be non-empty and not cut off at the token limit, and be the JSON the
    request's ``response_format`` asks for (valid against its schema) — or, with
    ``output_type``, validate as that pydantic model; with ``text_judge`` (any judge) it must
    also satisfy that judge, asked with the same context. Tool calls must name a tool that was
    offered, with arguments that are a JSON object valid against the tool's schema.
    """

    def __init__(
        self, text_judge: Judge | None = None, *, output_type: type[BaseModel] | None = None
    ) -> None:
        if text_judge is not None and not isinstance(text_judge, Judge):
            raise ConfigError(
                f"expected a judge (an object with .name and async .judge()), got {text_judge!r}",
                where="judge",
            )
        self.text_judge = text_judge
        self.output_type = output_type

    @property
    def name(self) -> str:
        inner = f"+{self.text_judge.name}" if self.text_judge is not None else ""
        return f"well_formed{inner}"

    async def judge(self, query: str, answer: str, context: JudgeContext | None = None) -> Verdict:
        message = _message(answer, context)
        request = context.request if context is not None else None
        calls = _calls(message)
        if calls:
            problem = tool_call_problem(calls, request.tools if request is not None else ())
            return Verdict(problem is None, problem or "well-formed tool calls", judge=self.name)
        text = _text(message)
        if not text.strip() and message.get("tool_calls") is not None:
            return Verdict(False, "the reply has neither text nor tool calls", judge=self.name)
        problem = text_problem(text, _finish_reason(context))
        if problem is None and self.output_type is not None:
            problem = json_problem(text, self.output_type)
        elif problem is None and request is not None and request.response_format is not None:
            problem = response_format_problem(text, request.response_format)
        if problem is not None:
            return Verdict(False, problem, judge=self.name)
        if self.text_judge is None:
            return Verdict(True, "a non-empty reply", judge=self.name)
        return await ask_judge(self.text_judge, query, text, context)


def text_problem(text: str, finish_reason: str | None) -> str | None:
    if not text.strip():
        return "the reply is empty"
    if finish_reason == "length":
        return "the reply was cut off at the token limit"
    return None


def json_problem(text: str, json_output: bool | type[BaseModel] | None) -> str | None:
    """What is wrong with ``text`` as the JSON a call asked for (``True``: any JSON; a pydantic
    model: valid as that model), or ``None`` (also when the call asked for no JSON)."""
    if isinstance(json_output, type) and issubclass(json_output, BaseModel):
        try:
            json_output.model_validate_json(text)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "the reply"
            return f"the reply does not match {json_output.__name__}: {where}: {first['msg']}"
        return None
    if json_output:
        try:
            json.loads(text)
        except json.JSONDecodeError as error:
            return f"the reply is not valid JSON ({error.msg})"
    return None


def response_format_problem(text: str, response_format: Mapping[str, Any]) -> str | None:
    """What is wrong with ``text`` as the JSON an OpenAI ``response_format`` asks for."""
    kind = response_format.get("type")
    if kind not in ("json_object", "json_schema"):
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        return f"the reply is not valid JSON ({error.msg})"
    spec = response_format.get("json_schema") or {}
    schema = spec.get("schema") if kind == "json_schema" else None
    if schema:
        problem = schema_problem(value, schema)
        if problem is not None:
            return f"the reply does not match {spec.get('name') or 'the schema'}: {problem}"
    return None


def schema_problem(value: Any, schema: Mapping[str, Any]) -> str | None:
    """The first way ``value`` breaks the JSON ``schema`` (``where: message``), or ``None``."""
    import jsonschema

    validator_class = jsonschema.validators.validator_for(schema)
    try:
        validator_class.check_schema(schema)
    except jsonschema.SchemaError as error:
        return f"the schema itself is invalid ({error.message})"
    errors = sorted(validator_class(schema).iter_errors(value), key=lambda e: list(e.path))
    if not errors:
        return None
    first = errors[0]
    where = ".".join(str(part) for part in first.path) or "(top level)"
    return f"{where}: {first.message}"


def tool_call_problem(
    calls: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]]
) -> str | None:
    """What is wrong with these OpenAI-shaped tool calls given the tools offered (OpenAI
    ``{"type": "function", "function": {...}}`` definitions), or ``None``."""
    schemas: dict[str, Mapping[str, Any]] = {}
    for tool in tools:
        function = tool.get("function") or tool
        schemas[str(function.get("name"))] = function
    for call in calls:
        function = call.get("function") or {}
        name = str(function.get("name") or "")
        schema = schemas.get(name)
        if schema is None:
            offered = ", ".join(sorted(schemas)) or "none"
            return f"calls unknown tool {name!r} (offered: {offered})"
        try:
            arguments = json.loads(function.get("arguments") or "{}")
        except json.JSONDecodeError as error:
            return f"the arguments of {name} are not valid JSON ({error.msg})"
        if not isinstance(arguments, dict):
            return f"the arguments of {name} are not a JSON object"
        parameters: Mapping[str, Any] = schema.get("parameters") or {}
        missing = [k for k in parameters.get("required", ()) if k not in arguments]
        if missing:
            return f"{name} misses required argument(s) {', '.join(missing)}"
        if parameters.get("additionalProperties") is False:
            known = set(parameters.get("properties") or {})
            extra = sorted(set(arguments) - known)
            if extra:
                return f"{name} got unknown argument(s) {', '.join(extra)}"
        if parameters:
            problem = schema_problem(arguments, parameters)
            if problem is not None:
                return f"the arguments of {name} do not match its schema: {problem}"
    return None
