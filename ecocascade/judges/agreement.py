"""A judge that asks other (cheap) models and accepts when their extracted answers agree.

No ground truth needed at run time: two independent models giving the same final answer (the
same choice letter, the same number, the same code up to formatting — compared by its syntax tree,
not by running it) is evidence the answer is right.
The references' calls go through :class:`~ecocascade.models.client.TierClient` like any tier's,
and their cost is this judge's cost.
"""

from __future__ import annotations

import ast
import asyncio
import hashlib
import re
from collections.abc import Sequence
from typing import Literal

from ecocascade.exceptions import ConfigError, ProviderError
from ecocascade.judging import current_attempt
from ecocascade.models.client import TierClient
from ecocascade.models.tier import Tier
from ecocascade.routing import recorded_model_name
from ecocascade.text import extract_python_code
from ecocascade.types import JudgeContext, Usage, Verdict, add_costs

__all__ = ["AgreementJudge", "AnswerKind", "extract_answer"]

AnswerKind = Literal["auto", "choice", "number", "code", "text"]
_KINDS = ("auto", "choice", "number", "code", "text")

_CHOICE_ALONE = re.compile(r"^\W{0,3}([A-Ea-e])(?:\W{0,3}$|[).:]\s)")
_CHOICE_STATED = re.compile(
    r"\b(?:answer|option|choice)\s*(?:is|:)?\s*(?:option\s*)?\(?\**([A-E])\b\)?", re.IGNORECASE
)
_CHOICE_LINE = re.compile(r"^\s*\(?([A-E])\)(?:\s|$)", re.MULTILINE)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?")
_MAX_TEXT_KEY = 200
_PYTHON_TAG_BLOCK = re.compile(r"\[PYTHON\]\s*\n?(.*?)(?:\[/PYTHON\]|\Z)", re.DOTALL)


def extract_answer(answer: str, kind: AnswerKind = "auto") -> str | None:
    """The answer's comparable core, or ``None`` when there is none.

    ``choice``: a multiple-choice letter (``"B"``, ``"B) wet palms"``, ``"The answer is (B)"``);
    ``number``: the last number, normalised (``"1,000.0"`` → ``1000``); ``code``: the last Python
    block (fenced, or code-llama's ``[PYTHON]...[/PYTHON]``) as its AST with docstrings and
    comments dropped; ``text``: lower-cased words. ``auto`` tries code, then choice, then number,
    then text.

    Code is compared by *form*, not behaviour: two programs agree only when they parse to the
    same tree (formatting, comments and docstrings aside), so equivalent programs written
    differently disagree (a missed saving, never a wrong acceptance by accident). Nothing is run.
    """
    if kind not in _KINDS:
        raise ConfigError(f"unknown answer kind {kind!r}; expected one of {_KINDS}", where="kind")
    text = answer.strip()
    if not text:
        return None
    if kind in ("auto", "code"):
        code = _code_key(text)
        if code is not None or kind == "code":
            return code
    if kind in ("auto", "choice"):
        choice = _choice_key(text)
        if choice is not None or kind == "choice":
            return choice
    if kind in ("auto", "number"):
        number = _number_key(text)
        if number is not None or kind == "number":
            return number
    words = " ".join(re.findall(r"\w+", text.lower()))[:_MAX_TEXT_KEY]
    return f"text:{words}" if words else None


def _choice_key(text: str) -> str | None:
    for pattern in (_CHOICE_ALONE, _CHOICE_STATED, _CHOICE_LINE):
        match = pattern.search(text)
        if match is not None:
            return f"choice:{match.group(1).upper()}"
    return None


def _number_key(text: str) -> str | None:
    numbers = _NUMBER.findall(text)
    if not numbers:
        return None
    try:
        value = float(numbers[-1].replace(",", ""))
    except ValueError:
        return None
    return f"number:{value:.10g}"


def _code_key(text: str) -> str | None:
    tagged = _PYTHON_TAG_BLOCK.findall(text)  # code-llama's ``[PYTHON] ... [/PYTHON]``
    code = tagged[-1] if tagged else extract_python_code(text)
    if code is None or not code.strip():
        return None
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError):
        return "code:unparseable:" + hashlib.sha256(code.strip().encode()).hexdigest()[:16]
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]  # type: ignore[attr-defined]
    return "code:" + hashlib.sha256(ast.dump(tree).encode()).hexdigest()[:16]


class AgreementJudge:
    """Accepts an answer when ``min_agree`` reference models give the same extracted answer.

    The references answer the bare query (concurrently); a reference that is the model being
    judged is skipped (read from :func:`~ecocascade.judging.current_attempt`), and a reference
    whose call fails counts as not agreeing. With ``accept_last_tier`` the cascade's last tier is
    accepted without asking anyone (there is nowhere left to escalate). An answer with nothing to
    extract is rejected for free.
    """

    def __init__(
        self,
        references: Sequence[Tier | str],
        *,
        min_agree: int = 1,
        kind: AnswerKind = "auto",
        accept_last_tier: bool = True,
        name: str = "agreement",
    ) -> None:
        if isinstance(references, str) or not references:
            raise ConfigError("needs a list of at least one reference model", where="references")
        if min_agree < 1 or min_agree > len(references):
            raise ConfigError(
                f"must be between 1 and the number of references ({len(references)})",
                where="min_agree",
            )
        if kind not in _KINDS:
            raise ConfigError(
                f"unknown answer kind {kind!r}; expected one of {_KINDS}", where="kind"
            )
        self.references = tuple(r if isinstance(r, Tier) else Tier(r) for r in references)
        self.min_agree = min_agree
        self.kind: AnswerKind = kind
        self.accept_last_tier = accept_last_tier
        self._name = name
        self._clients = tuple(TierClient(t) for t in self.references)

    @property
    def name(self) -> str:
        return self._name

    async def judge(self, query: str, answer: str, context: JudgeContext | None = None) -> Verdict:
        attempt = context if context is not None else current_attempt()
        if self.accept_last_tier and attempt is not None and attempt.is_last:
            return Verdict(True, "the last tier: nothing left to escalate to", self._name, 0.0)
        key = extract_answer(answer, self.kind)
        if key is None:
            return Verdict(False, "no answer could be extracted", self._name, 0.0)
        own = recorded_model_name(attempt.model) if attempt is not None else None
        clients = [c for c in self._clients if recorded_model_name(c.label) != own]
        if not clients:
            return Verdict(False, "no reference other than the answering model", self._name, 0.0)
        replies = await asyncio.gather(*(ask_reference(c, query) for c in clients))
        cost: float | None = 0.0
        usage = Usage()
        agreeing: list[str] = []
        for client, (text, reply_cost, reply_usage) in zip(clients, replies, strict=True):
            cost = add_costs(cost, reply_cost)
            usage = usage + reply_usage
            if text is not None and extract_answer(text, self.kind) == key:
                agreeing.append(client.label)
        accepted = len(agreeing) >= self.min_agree
        reason = (
            f"{len(agreeing)}/{len(clients)} references agree on {key[:60]!r}"
            f" (need {self.min_agree})"
        )
        return Verdict(accepted, reason, self._name, cost, usage)


async def ask_reference(client: TierClient, query: str) -> tuple[str | None, float | None, Usage]:
    """A reference model's answer to ``query`` with its cost and usage: ``(None, 0, ...)`` when
    the call fails for good (a missing reference counts as no agreement, never as an error)."""
    try:
        completion = await client.complete([{"role": "user", "content": query}])
    except ProviderError:
        return None, 0.0, Usage()
    return completion.text, completion.cost_usd, completion.usage
