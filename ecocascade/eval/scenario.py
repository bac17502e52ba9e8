"""Scenario files: the tasks, how each answer is scored, and the cascade the strategies share.

.. code-block:: yaml

    name: capitals
    tiers:
      - model: local/smollm2-135m
      - model: local/gemma3-270m
    judge: {type: regex, pattern: '^\\W*[A-Z][a-z]+'}   # what the cascade sees at run time
    tasks:
      - id: fr
        query: What is the capital of France?
        check: {contains: Paris}                      # ground truth: used only for scoring
      - {id: fr-again, query: "France's capital city?", check: {contains: Paris}}

Tasks run in the order given (``order: shuffle`` shuffles them with ``seed``): order matters,
because the solution store and the cache grow as tasks are processed. Tasks may come from a JSONL
file next to the scenario instead (``tasks_file``), one task object per line.

The runtime judge never sees the ground truth. A task picks its judge from, in order: its own
``judge``, its ``group``'s judge, the scenario's ``judge``.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    NonNegativeFloat,
    PositiveFloat,
    Tag,
    ValidationError,
    model_validator,
)

from ecocascade.config.schema import JudgeSpec, TierSpec
from ecocascade.exceptions import ConfigError, format_validation_error

__all__ = [
    "CheckSpec",
    "CodeSolverSpec",
    "CustomStrategySpec",
    "Scenario",
    "ScenarioTask",
    "load_scenario",
    "parse_scenario",
]


class _Strict(BaseModel):
    # `exact: 42` or `id: 7` in YAML means the text "42" / "7"
    model_config = ConfigDict(
        extra="forbid", frozen=True, allow_inf_nan=False, coerce_numbers_to_str=True
    )


# --- ground-truth checks: one key names the kind ------------------------------------------------


class ExactCheck(_Strict):
    """The whole answer equals the expected text (trimmed; case and end punctuation ignored
    unless ``case_sensitive``)."""

    exact: str
    case_sensitive: bool = False


class ContainsCheck(_Strict):
    """The answer contains the text — or any of the texts, when given a list — as a whole word
    or phrase (``word: false`` for a plain substring)."""

    contains: str | Annotated[list[str], Field(min_length=1)]
    case_sensitive: bool = False
    word: bool = True


class RegexCheck(_Strict):
    """The pattern matches somewhere in the answer (``re.search``)."""

    regex: str
    flags: Literal["", "i"] = "i"

    @model_validator(mode="after")
    def _compiles(self) -> Self:
        try:
            re.compile(self.regex)
        except re.error as error:
            raise ValueError(f"not a valid regular expression: {error}") from None
        return self


class NumberCheck(_Strict):
    """A number in the answer is within ``tolerance`` (absolute) of ``number``. ``pick`` says
    which number counts: the ``last`` one (default), the ``first``, or ``any``."""

    number: float
    tolerance: NonNegativeFloat = 1e-6
    pick: Literal["first", "last", "any"] = "last"


class PythonCheck(_Strict):
    """Python source defining ``check(answer: str) -> bool``; it runs in the eval process (a
    scenario file is trusted code, like a test file), never on the model's code."""

    python: str

    @model_validator(mode="after")
    def _defines_check(self) -> Self:
        try:
            compile(self.python, "<check>", "exec")
        except SyntaxError as error:
            raise ValueError(f"not valid Python: {error.msg} (line {error.lineno})") from None
        if not re.search(r"^def check\s*\(", self.python, re.MULTILINE):
            raise ValueError("must define a function `def check(answer): ...`")
        return self


class TestsCheck(_Strict):
    """Unit tests for code: the answer's Python code block, followed by ``tests`` (asserts), runs
    in the sandbox; the check passes when it exits 0."""

    tests: str
    timeout_s: PositiveFloat = 10.0
    network: bool = False


def _check_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        for kind in ("exact", "contains", "regex", "number", "python", "tests"):
            if kind in value:
                return kind
    if isinstance(value, BaseModel):
        return {
            ExactCheck: "exact",
            ContainsCheck: "contains",
            RegexCheck: "regex",
            NumberCheck: "number",
            PythonCheck: "python",
            TestsCheck: "tests",
        }.get(type(value))
    return None


CheckSpec = Annotated[
    Annotated[ExactCheck, Tag("exact")]
    | Annotated[ContainsCheck, Tag("contains")]
    | Annotated[RegexCheck, Tag("regex")]
    | Annotated[NumberCheck, Tag("number")]
    | Annotated[PythonCheck, Tag("python")]
    | Annotated[TestsCheck, Tag("tests")],
    Discriminator(
        _check_kind,
        custom_error_type="unknown_check",
        custom_error_message=(
            "a check needs one of the keys exact, contains, regex, number, python, tests"
        ),
    ),
]


# --- tasks, groups, solvers, strategies ------------------------------------------------------


class ScenarioTask(_Strict):
    id: Annotated[str, Field(min_length=1)]
    query: Annotated[str, Field(min_length=1)]
    check: CheckSpec
    group: str | None = None
    judge: JudgeSpec | None = None
    time_sensitive: bool | None = None


class GroupSpec(_Strict):
    """Settings shared by the tasks that name this group."""

    judge: JudgeSpec | None = None
    description: str = ""


class ChatSolverSpec(_Strict):
    """One chat completion; demonstrations as prior exchanges (``turns``) or in the message."""

    type: Literal["chat"] = "chat"
    demo_style: Literal["turns", "inline"] = "turns"


class CodeSolverSpec(_Strict):
    """The EcoAssistant-style code-writing agent: writes Python, runs it in the sandbox, loops.

    ``files`` are copied next to the code (paths relative to the scenario file), so it can
    import a tool API the scenario ships. ``secrets`` name environment variables whose values
    the code may use: the model only ever sees placeholders.
    """

    type: Literal["code"]
    files: list[str] = Field(default_factory=list)
    max_turns: Annotated[int, Field(ge=1, le=20)] = 4
    timeout_s: PositiveFloat = 10.0
    memory_mb: Annotated[int, Field(gt=0)] | None = 512
    secrets: list[str] = Field(default_factory=list)
    network: bool = False
    """Whether the code may use the network (off by default: see :mod:`ecocascade.sandbox`)."""


SolverSpec = Annotated[ChatSolverSpec | CodeSolverSpec, Field(discriminator="type")]


class DemosSpec(_Strict):
    """How the demonstration strategies use a solution store (fresh per strategy unless
    ``location`` names one to reuse)."""

    k: Annotated[int, Field(ge=1, le=20)] = 1
    threshold: Annotated[float, Field(ge=-1.0, le=1.0)] = 0.6
    namespace: Annotated[str, Field(min_length=1)] = "eval"
    location: str | None = None


class EvalCacheSpec(_Strict):
    """How the cache strategies use a response cache (fresh per strategy unless ``location``)."""

    semantic: bool = True
    threshold: Annotated[float, Field(ge=-1.0, le=1.0)] = 0.9
    ttl_s: PositiveFloat = 7 * 86_400.0
    location: str | None = None


class CustomStrategySpec(_Strict):
    """A ladder of your own: tiers by name, model or position in ``tiers`` — or inline."""

    name: Annotated[str, Field(min_length=1, pattern=r"^[\w.+:/-]+$")]
    tiers: Annotated[list[int | str | TierSpec], Field(min_length=1)]
    demos: bool = False
    cache: bool = False
    judge: JudgeSpec | None = None


BUILTIN_STRATEGIES = ("singles", "hierarchy", "hierarchy+demos", "hierarchy+demos+cache")


class Scenario(_Strict):
    name: Annotated[str, Field(min_length=1, pattern=r"^[\w.-]+$")]
    description: str = ""
    tiers: Annotated[list[TierSpec], Field(min_length=1)]
    judge: JudgeSpec | None = None
    system_prompt: str | None = None
    solver: SolverSpec = Field(default_factory=ChatSolverSpec)
    demos: DemosSpec = Field(default_factory=DemosSpec)
    cache: EvalCacheSpec = Field(default_factory=EvalCacheSpec)
    strategies: list[str] = Field(default_factory=lambda: list(BUILTIN_STRATEGIES))
    custom: list[CustomStrategySpec] = Field(default_factory=list)
    groups: dict[str, GroupSpec] = Field(default_factory=dict)
    order: Literal["given", "shuffle"] = "given"
    seed: int = 0
    tasks: list[ScenarioTask] = Field(default_factory=list)
    tasks_file: str | None = None
    # Where relative paths (tasks_file, solver files) resolve; set by the loader.
    base_dir: Path = Field(default=Path("."), exclude=True)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if not self.tasks and self.tasks_file is None:
            raise ValueError("no tasks: give `tasks` or `tasks_file`")
        if self.tasks and self.tasks_file is not None:
            raise ValueError("give `tasks` or `tasks_file`, not both")
        self._check_tasks(self.tasks)
        check_unique_labels(self.tiers)
        names = {c.name for c in self.custom}
        if len(names) != len(self.custom):
            raise ValueError("custom strategy names must be unique")
        for name in names:
            if name in BUILTIN_STRATEGIES or name.startswith("only:"):
                raise ValueError(f"custom strategy {name!r} would shadow a built-in strategy")
        for name in self.strategies:
            if (
                name not in BUILTIN_STRATEGIES
                and name not in names
                and not name.startswith("only:")
            ):
                raise ValueError(
                    f"unknown strategy {name!r}: expected one of {', '.join(BUILTIN_STRATEGIES)},"
                    " only:<tier>, or a name from `custom`"
                )
        return self

    def _check_tasks(self, tasks: list[ScenarioTask]) -> None:
        seen: set[str] = set()
        for task in tasks:
            if task.id in seen:
                raise ValueError(f"duplicate task id {task.id!r}")
            seen.add(task.id)
            if task.group is not None and task.group not in self.groups:
                raise ValueError(f"task {task.id!r}: unknown group {task.group!r}")
            if self.judge is None and task.judge is None and self._group_judge(task) is None:
                raise ValueError(
                    f"task {task.id!r} has no runtime judge: set `judge` on the scenario,"
                    " its group or the task"
                )

    def _group_judge(self, task: ScenarioTask) -> JudgeSpec | None:
        return self.groups[task.group].judge if task.group in self.groups else None

    def judge_for(self, task: ScenarioTask) -> JudgeSpec:
        spec = task.judge or self._group_judge(task) or self.judge
        assert spec is not None  # checked when the scenario was validated
        return spec

    def load_tasks(self) -> list[ScenarioTask]:
        """The tasks in the order they will run (reads ``tasks_file`` if that is where they are)."""
        tasks = list(self.tasks) if self.tasks else self._read_tasks_file()
        if self.order == "shuffle":
            random.Random(self.seed).shuffle(tasks)
        return tasks

    def _read_tasks_file(self) -> list[ScenarioTask]:
        assert self.tasks_file is not None
        path = self.base_dir / self.tasks_file
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            raise ConfigError("tasks file not found", where=str(path)) from None
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"cannot read the tasks file: {error}", where=str(path)) from None
        tasks = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                tasks.append(ScenarioTask.model_validate(json.loads(line)))
            except json.JSONDecodeError as error:
                raise ConfigError(
                    f"not valid JSON: {error.msg}", where=f"{path}:{number}"
                ) from None
            except ValidationError as error:
                raise ConfigError(
                    format_validation_error(error), where=f"{path}:{number}"
                ) from None
        if not tasks:
            raise ConfigError("the tasks file has no tasks", where=str(path))
        try:
            self._check_tasks(tasks)
        except ValueError as error:
            raise ConfigError(str(error), where=str(path)) from None
        return tasks

    def resolve_path(self, relative: str) -> Path:
        path = (self.base_dir / relative).resolve()
        if not path.is_file():
            raise ConfigError("file not found", where=str(path))
        return path


def check_unique_labels(tiers: list[TierSpec] | tuple[TierSpec, ...]) -> None:
    """Strategies and results name tiers by ``name`` (else ``model``): two must not share one."""
    labels = [t.name or t.model for t in tiers]
    for label in labels:
        if labels.count(label) > 1:
            raise ValueError(f"two tiers are called {label!r}: give them different `name`s")


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file; every problem is a :class:`ConfigError` naming the file
    (and line, or field)."""
    from ecocascade.config.loader import read_yaml

    path = Path(path)
    if path.is_dir():
        raise ConfigError("is a directory: name one of its .yaml scenario files", where=str(path))
    data = read_yaml(path, missing="no such scenario file")
    return parse_scenario(data, base_dir=path.parent, source=str(path))


def parse_scenario(data: Any, *, base_dir: Path | str = ".", source: str = "scenario") -> Scenario:
    if not isinstance(data, dict):
        raise ConfigError(
            f"expected a mapping with 'name', 'tiers' and 'tasks', got {type(data).__name__}",
            where=source,
        )
    try:
        return Scenario.model_validate({**data, "base_dir": Path(base_dir)})
    except ValidationError as error:
        raise ConfigError(format_validation_error(error), where=source) from None
