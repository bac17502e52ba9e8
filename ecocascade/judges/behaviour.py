"""Judging code answers without ground truth: run their own examples, and compare behaviour.

An answer that writes a function usually shows how to call it — ``assert f(x) == y`` or
``print(f(x))  # y``. :func:`analyse_code` finds the answer's main function (the one its
examples call, else the last one defined), its arity, and those examples; :func:`run_code` runs
the function in the sandbox (:func:`ecocascade.sandbox.run_python`) on its own examples
(counting passes) and on a shared pool of inputs, returning a **behaviour signature**: what it
returned on each input. Two models whose functions return the same on the same inputs agree by
behaviour, however differently they are written. Results are cached on disk by content hash
(under ``$ECOCASCADE_HOME/exec`` or ``~/.cache/ecocascade/exec``), so a rerun executes nothing.

:class:`BehaviourJudge` puts this together at run time: it asks its reference models (real
:class:`~ecocascade.models.client.TierClient` calls, their cost the judge's), harvests inputs from
every answer's examples, runs each function on the inputs of its arity, and accepts when the
answer passes its own examples and at least ``min_agree`` references behave the same.
"""

from __future__ import annotations

import ast
import asyncio
import hashlib
import json
import os
import re
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecocascade.exceptions import ConfigError
from ecocascade.judges.agreement import ask_reference
from ecocascade.models.client import TierClient
from ecocascade.models.tier import Tier
from ecocascade.routing import current_attempt, recorded_model_name
from ecocascade.sandbox import run_python
from ecocascade.text import _fenced_blocks, extract_python_code
from ecocascade.types import JudgeContext, Usage, Verdict, add_costs

__all__ = [
    "BehaviourJudge",
    "CodeAnalysis",
    "CodeRun",
    "Example",
    "analyse_code",
    "answer_code",
    "behaviour_key",
    "harvest_inputs",
    "run_code",
]

MAX_INPUTS = 12
CALL_TIMEOUT_S = 1
RUN_TIMEOUT_S = 8.0
_FORMAT = 1
_PYTHON_TAG_BLOCK = re.compile(r"\[PYTHON\]\s*\n?(.*?)(?:\[/PYTHON\]|\Z)", re.DOTALL)
_TESTS_BLOCK = re.compile(r"\[TESTS\]\s*\n?(.*?)(?:\[/TESTS\]|\Z)", re.DOTALL)
_PYTHON_TAGS = frozenset({"python", "py", "python3"})
_OUTPUT_PREFIX = re.compile(r"^\s*(?:output|returns?|result|expected|prints?)\s*[:=]?\s*", re.I)
_KEPT = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


@dataclass(frozen=True, slots=True)
class Example:
    """A call the answer shows: the arguments (a Python literal tuple, as source) and what it
    should return (a literal's source; ``None`` for a bare ``assert f(x)``: truthy)."""

    args: str
    expected: str | None = None
    truthy: bool = False


@dataclass(frozen=True, slots=True)
class CodeAnalysis:
    """What the static checks see in an answer's code."""

    program: str  # the code without its top-level examples (imports, defs, classes, constants)
    parses: bool
    function: str | None
    arity: tuple[int, int] | None  # (required, total) positional parameters
    examples: tuple[Example, ...] = ()

    @property
    def has_function(self) -> bool:
        return self.function is not None


@dataclass(frozen=True, slots=True)
class CodeRun:
    """What running the function gave: own examples passed (of those run) and one output per
    pool input (``!Error`` when it raised or timed out)."""

    passed: int
    examples: int
    outputs: tuple[str, ...]

    @property
    def pass_rate(self) -> float | None:
        return self.passed / self.examples if self.examples else None


def answer_code(text: str) -> str | None:
    """The answer's Python: every Python block that parses, joined in order (a definition and
    its examples often sit in separate blocks); code-llama's ``[PYTHON]`` and ``[TESTS]``
    blocks; failing all, the last fenced block (even one that does not parse)."""
    blocks = [b for b in _PYTHON_TAG_BLOCK.findall(text) + _TESTS_BLOCK.findall(text)]
    if not blocks:
        blocks = [code for tag, code in _fenced_blocks(text) if tag in _PYTHON_TAGS or not tag]
    blocks = [b for b in blocks if b.strip()]
    good = [b for b in blocks if _parses(b)]
    if good:
        return "\n\n".join(good)
    last = extract_python_code(text) or (blocks[-1] if blocks else None)
    return last if last and last.strip() else None


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def _literal(node: ast.expr) -> str | None:
    try:
        source = ast.unparse(node)
        ast.literal_eval(source)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
    return source


def _call_args(call: ast.Call) -> str | None:
    if call.keywords or any(isinstance(a, ast.Starred) for a in call.args):
        return None
    parts = [_literal(a) for a in call.args]
    if any(p is None for p in parts):
        return None
    return "(" + "".join(f"{p}, " for p in parts) + ")"


def _comment_value(line: str) -> str | None:
    if "#" not in line:
        return None
    comment = _OUTPUT_PREFIX.sub("", line.rsplit("#", 1)[1]).strip()
    try:
        ast.literal_eval(comment)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
    return comment


def analyse_code(text: str) -> CodeAnalysis | None:
    """Static checks and examples of the code in ``text`` (``None``: no code at all)."""
    code = answer_code(text)
    if code is None:
        return None
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return CodeAnalysis(code, False, None, None)
    functions = {
        n.name: n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    lines = code.splitlines()
    found: list[tuple[str, Example]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assert):
            test = node.test
            if (
                isinstance(test, ast.Compare)
                and len(test.ops) == 1
                and isinstance(test.ops[0], ast.Eq)
                and isinstance(test.left, ast.Call)
                and isinstance(test.left.func, ast.Name)
            ):
                args, expected = _call_args(test.left), _literal(test.comparators[0])
                if args is not None and expected is not None:
                    found.append((test.left.func.id, Example(args, expected)))
            elif isinstance(test, ast.Call) and isinstance(test.func, ast.Name):
                args = _call_args(test)
                if args is not None:
                    found.append((test.func.id, Example(args, None, truthy=True)))
        elif (
            isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Name)
            and node.value.func.id != "print"
        ):
            args = _call_args(node.value)
            if args is not None:
                line = lines[node.end_lineno - 1] if node.end_lineno else ""
                found.append((node.value.func.id, Example(args, _comment_value(line))))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "print"
            and len(node.args) == 1
            and isinstance(node.args[0], ast.Call)
            and isinstance(node.args[0].func, ast.Name)
        ):
            inner = node.args[0]
            assert isinstance(inner.func, ast.Name)
            args = _call_args(inner)
            if args is not None:
                line = lines[node.end_lineno - 1] if node.end_lineno else ""
                found.append((inner.func.id, Example(args, _comment_value(line))))
    called = [name for name, _ in found if name in functions]
    if called:
        main = max(set(called), key=called.count)
    elif functions:
        main = list(functions)[-1]
    else:
        main = None
    arity = None
    if main is not None:
        spec = functions[main].args
        total = len(spec.posonlyargs) + len(spec.args)
        arity = (total - len(spec.defaults), total)
    kept = [n for n in tree.body if isinstance(n, _KEPT) or _constant_assign(n)]
    program = ast.unparse(ast.Module(body=kept, type_ignores=[]))
    examples = tuple(dict.fromkeys(e for name, e in found if name == main))
    return CodeAnalysis(program, True, main, arity, examples)


def _constant_assign(node: ast.stmt) -> bool:
    return isinstance(node, ast.Assign | ast.AnnAssign) and not any(
        isinstance(n, ast.Call) for n in ast.walk(node)
    )


def _args_count(args: str) -> int:
    value = ast.literal_eval(args)
    return len(value) if isinstance(value, tuple) else -1


def harvest_inputs(analyses: Sequence[CodeAnalysis | None]) -> tuple[str, ...]:
    """The shared pool: every distinct example input of every answer, in order of appearance."""
    pool: dict[str, None] = {}
    for a in analyses:
        if a is not None:
            for e in a.examples:
                pool.setdefault(e.args, None)
    return tuple(pool)


def inputs_for(analysis: CodeAnalysis, pool: Sequence[str]) -> tuple[str, ...]:
    """The pool inputs that fit the function's arity (at most ``MAX_INPUTS``)."""
    if analysis.arity is None:
        return ()
    low, high = analysis.arity
    return tuple(a for a in pool if low <= _args_count(a) <= high)[:MAX_INPUTS]


_HARNESS = r"""
import json, signal, sys

def _norm(v, depth=0):
    if depth > 20:
        return "..."
    if isinstance(v, bool) or v is None:
        return repr(v)
    if isinstance(v, float):
        return repr(round(v, 9))
    if isinstance(v, (set, frozenset)):
        return type(v).__name__ + "{" + ",".join(sorted(_norm(x, depth + 1) for x in v)) + "}"
    if isinstance(v, dict):
        return "{" + ",".join(sorted(_norm(k, depth + 1) + ":" + _norm(x, depth + 1)
                                      for k, x in v.items())) + "}"
    if isinstance(v, (list, tuple)):
        return type(v).__name__ + "[" + ",".join(_norm(x, depth + 1) for x in v) + "]"
    if hasattr(v, "__next__") or type(v).__name__ in ("map", "filter", "zip", "generator"):
        try:
            return "iter[" + ",".join(_norm(x, depth + 1) for x in list(v)[:1000]) + "]"
        except BaseException as e:
            return "!" + type(e).__name__
    return repr(v)[:500]

def _alarm(signum, frame):
    raise TimeoutError()

signal.signal(signal.SIGALRM, _alarm)
_spec = json.loads(sys.stdin.read())
_out = {"passes": [], "outputs": []}
try:
    signal.alarm(%(call)d)
    exec(compile(_spec["program"], "answer.py", "exec"), globals())
    signal.alarm(0)
    _fn = globals()[_spec["function"]]
except BaseException as e:
    signal.alarm(0)
    _fn = None
    _out["load_error"] = type(e).__name__

def _call(args):
    if _fn is None:
        raise RuntimeError("not loaded")
    signal.alarm(%(call)d)
    try:
        return _fn(*eval(args, {}))
    finally:
        signal.alarm(0)

for args, expected, truthy in _spec["examples"]:
    try:
        got = _call(args)
        ok = bool(got) if truthy else (got == eval(expected, {}))
    except BaseException:
        ok = False
    _out["passes"].append(bool(ok))
for args in _spec["inputs"]:
    try:
        _out["outputs"].append(_norm(_call(args)))
    except BaseException as e:
        _out["outputs"].append("!" + type(e).__name__)
sys.stdout.write("\n@@RESULT@@" + json.dumps(_out))
""".replace("%(call)d", str(CALL_TIMEOUT_S))


def _cache_dir() -> Path:
    home = os.environ.get("ECOCASCADE_HOME")
    base = Path(home) if home else Path.home() / ".cache" / "ecocascade"
    return base / "exec"


MAX_CONCURRENT_RUNS = 2
_limits: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


def _limit() -> asyncio.Semaphore:
    """One semaphore per event loop (a semaphore may not outlive the loop it waited in)."""
    loop = asyncio.get_running_loop()
    if loop not in _limits:
        _limits[loop] = asyncio.Semaphore(MAX_CONCURRENT_RUNS)
    return _limits[loop]


async def run_code(
    analysis: CodeAnalysis,
    inputs: Sequence[str] = (),
    *,
    cache_dir: Path | None = None,
    timeout_s: float = RUN_TIMEOUT_S,
) -> CodeRun | None:
    """Run the answer's main function on its own examples and on ``inputs`` (argument tuples as
    source), in the sandbox, at most 2 runs at a time; ``None`` when there is no function."""
    if analysis.function is None or not analysis.parses:
        return None
    spec = {
        "program": analysis.program,
        "function": analysis.function,
        "examples": [[e.args, e.expected, e.truthy] for e in analysis.examples],
        "inputs": list(inputs),
    }
    blob = json.dumps(spec, sort_keys=True)
    digest = hashlib.sha256(f"{_FORMAT}\n{_HARNESS}\n{blob}".encode()).hexdigest()[:32]
    path = (cache_dir or _cache_dir()) / digest[:2] / f"{digest}.json"
    data: dict[str, Any] | None = None
    if path.is_file():
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            data = None
    if data is None:
        async with _limit():
            result = await run_python(
                _HARNESS, stdin=blob, timeout_s=timeout_s, memory_mb=512, max_output_bytes=200_000
            )
        marker = result.stdout.rfind("@@RESULT@@")
        if marker >= 0:
            try:
                data = json.loads(result.stdout[marker + len("@@RESULT@@") :])
            except ValueError:
                data = None
        if data is None:  # killed, timed out, or the output was cut: nothing passed
            data = {
                "passes": [False] * len(analysis.examples),
                "outputs": ["!Killed"] * len(inputs),
            }
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, path)
    passes = [bool(x) for x in data.get("passes", [])]
    return CodeRun(sum(passes), len(passes), tuple(str(x) for x in data.get("outputs", [])))


def behaviour_key(inputs: Sequence[str], run: CodeRun | None) -> str | None:
    """A comparable key of what the function did on ``inputs`` (``None``: nothing to compare —
    no function, no inputs, or it raised on every one)."""
    if run is None or not inputs or all(o.startswith("!") for o in run.outputs):
        return None
    pairs = json.dumps(list(zip(inputs, run.outputs, strict=False)))
    return "behaviour:" + hashlib.sha256(pairs.encode()).hexdigest()[:16]


class BehaviourJudge:
    """Accepts a code answer that passes its own examples (``min_pass_rate`` of them; an answer
    with none passes vacuously unless ``require_examples``) and whose main function behaves like
    at least ``min_agree`` references' functions on the shared input pool.

    With ``min_agree=0`` no reference is asked (execution of the answer's own examples only).
    The answering model (``context`` or :func:`~ecocascade.routing.current_attempt`) is skipped
    as a reference; the last tier is accepted outright with ``accept_last_tier``.
    """

    def __init__(
        self,
        references: Sequence[Tier | str] = (),
        *,
        min_agree: int = 1,
        min_pass_rate: float = 1.0,
        require_examples: bool = False,
        accept_last_tier: bool = True,
        cache_dir: Path | None = None,
        name: str = "behaviour",
    ) -> None:
        if isinstance(references, str):
            raise ConfigError("needs a list of reference models", where="references")
        if min_agree < 0 or min_agree > len(references):
            raise ConfigError(
                f"must be between 0 and the number of references ({len(references)})",
                where="min_agree",
            )
        if not 0.0 <= min_pass_rate <= 1.0:
            raise ConfigError(f"must be in [0, 1], got {min_pass_rate}", where="min_pass_rate")
        self.references = tuple(r if isinstance(r, Tier) else Tier(r) for r in references)
        self.min_agree = min_agree
        self.min_pass_rate = min_pass_rate
        self.require_examples = require_examples
        self.accept_last_tier = accept_last_tier
        self._cache_dir = cache_dir
        self._name = name
        self._clients = tuple(TierClient(t) for t in self.references)

    @property
    def name(self) -> str:
        return self._name

    async def judge(self, query: str, answer: str, context: JudgeContext | None = None) -> Verdict:
        attempt: Any = context if context is not None else current_attempt()
        if self.accept_last_tier and attempt is not None and attempt.is_last:
            return Verdict(True, "the last tier: nothing left to escalate to", self._name, 0.0)
        own = analyse_code(answer)
        if own is None or not own.parses or own.function is None:
            why = (
                "no code" if own is None else "does not parse" if not own.parses else "no function"
            )
            return Verdict(False, why, self._name, 0.0)
        own_model = recorded_model_name(attempt.model) if attempt is not None else None
        clients = (
            [c for c in self._clients if recorded_model_name(c.label) != own_model]
            if self.min_agree
            else []
        )
        replies = await asyncio.gather(*(ask_reference(c, query) for c in clients))
        cost: float | None = 0.0
        usage = Usage()
        others: list[CodeAnalysis | None] = []
        for text, reply_cost, reply_usage in replies:
            cost = add_costs(cost, reply_cost)
            usage = usage + reply_usage
            others.append(analyse_code(text) if text is not None else None)
        pool = harvest_inputs([own, *others])
        own_inputs = inputs_for(own, pool)
        run = await run_code(own, own_inputs, cache_dir=self._cache_dir)
        assert run is not None
        rate = run.pass_rate
        if rate is None and self.require_examples:
            return Verdict(False, "no examples of its own to run", self._name, cost, usage)
        if rate is not None and rate < self.min_pass_rate:
            return Verdict(
                False,
                f"passes {run.passed}/{run.examples} of its examples",
                self._name,
                cost,
                usage,
            )
        key = behaviour_key(own_inputs, run)
        agreeing = 0
        for other in others:
            if other is None or other.function is None or key is None:
                continue
            their_inputs = inputs_for(other, pool)
            if their_inputs != own_inputs:
                continue
            their = await run_code(other, their_inputs, cache_dir=self._cache_dir)
            agreeing += behaviour_key(their_inputs, their) == key
        accepted = agreeing >= self.min_agree
        reason = (
            f"passes {run.passed}/{run.examples} own examples; {agreeing}/{len(clients)} "
            f"references behave the same on {len(own_inputs)} inputs (need {self.min_agree})"
        )
        return Verdict(accepted, reason, self._name, cost, usage)
