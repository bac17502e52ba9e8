"""The cascade config file: pydantic models for the YAML, and how they become live objects.

.. code-block:: yaml

    tiers:
      - model: openai/small
        api_base: http://127.0.0.1:8001/v1
        price: {input_per_mtok: 0.15, output_per_mtok: 0.6}
      - model: openai/gpt-4o
        api_key_env: OPENAI_API_KEY
    judge: {type: llm, model: openai/gpt-4o, api_key_env: OPENAI_API_KEY}
    budget_usd: 0.05
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, PositiveFloat, model_validator

from ecocascade.exceptions import ConfigError
from ecocascade.models.tier import Price, RetryPolicy, Tier

if TYPE_CHECKING:
    from ecocascade.cache.cache import ResponseCache
    from ecocascade.controller.cascade import Cascade
    from ecocascade.controller.demos import DemoSettings
    from ecocascade.routing import Router
    from ecocascade.store.chroma import SolutionStore
    from ecocascade.types import Judge

__all__ = ["CacheSpec", "CascadeConfig", "JudgeSpec", "RouterSpec", "SolutionsSpec", "TierSpec"]


class _Strict(BaseModel):
    # inf/nan are never a sensible price, timeout or budget
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class PriceSpec(_Strict):
    input_per_mtok: NonNegativeFloat
    output_per_mtok: NonNegativeFloat


class RetrySpec(_Strict):
    max_retries: Annotated[int, Field(ge=0, le=20)] = 2
    base_delay_s: NonNegativeFloat = 0.5
    max_delay_s: NonNegativeFloat = 10.0


class TierSpec(_Strict):
    model: Annotated[str, Field(min_length=1)]
    api_base: str | None = None
    api_key_env: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    price: PriceSpec | None = None
    timeout_s: PositiveFloat = 60.0
    retry: RetrySpec = Field(default_factory=RetrySpec)
    name: str | None = None

    @model_validator(mode="after")
    def _buildable(self) -> Self:
        """Run the live object's own checks now, so their errors point at this field."""
        try:
            self.to_tier()
        except ConfigError as error:
            raise ValueError(str(error)) from None
        return self

    def to_tier(self) -> Tier:
        return Tier(
            model=self.model,
            api_base=self.api_base,
            api_key_env=self.api_key_env,
            params=self.params,
            price=Price(**self.price.model_dump()) if self.price else None,
            timeout_s=self.timeout_s,
            retry=RetryPolicy(**self.retry.model_dump()),
            name=self.name,
        )


class LLMJudgeSpec(TierSpec):
    type: Literal["llm"]
    prompt: str | None = None

    @model_validator(mode="after")
    def _valid_prompt(self) -> Self:
        from ecocascade.judges.llm import check_prompt

        if self.prompt is not None:
            try:
                check_prompt(self.prompt)
            except ConfigError as error:
                raise ValueError(str(error)) from None
        return self

    def build(self) -> Judge:
        from ecocascade.judges.llm import DEFAULT_JUDGE_PROMPT, LLMJudge

        return LLMJudge(self.to_tier(), prompt=self.prompt or DEFAULT_JUDGE_PROMPT)


class ExecJudgeSpec(_Strict):
    type: Literal["exec"]
    timeout_s: PositiveFloat = 10.0
    expected_output: str | None = None
    memory_mb: Annotated[int, Field(gt=0)] | None = 512
    network: bool = False

    def build(self) -> Judge:
        from ecocascade.judges.execution import ExecutionJudge

        return ExecutionJudge(
            timeout_s=self.timeout_s,
            expected_output=self.expected_output,
            memory_mb=self.memory_mb,
            network=self.network,
        )


class CodeRunJudgeSpec(_Strict):
    """For code-writing solvers: accept when the answer's recorded last code run exited 0."""

    type: Literal["code_run"]

    def build(self) -> Judge:
        from ecocascade.judges.execution import CodeRunJudge

        return CodeRunJudge()


class HumanJudgeSpec(_Strict):
    type: Literal["human"]

    def build(self) -> Judge:
        from ecocascade.judges.human import HumanJudge

        return HumanJudge()


class ContainsJudgeSpec(_Strict):
    type: Literal["contains"]
    text: Annotated[str, Field(min_length=1)]
    case_sensitive: bool = False

    def build(self) -> Judge:
        from ecocascade.judges.check import ContainsJudge

        return ContainsJudge(self.text, case_sensitive=self.case_sensitive)


class RegexJudgeSpec(_Strict):
    type: Literal["regex"]
    pattern: Annotated[str, Field(min_length=1)]

    @model_validator(mode="after")
    def _compiles(self) -> Self:
        try:
            self.build()
        except ConfigError as error:
            raise ValueError(str(error)) from None
        return self

    def build(self) -> Judge:
        from ecocascade.judges.check import RegexJudge

        return RegexJudge(self.pattern)


class LearnedJudgeSpec(_Strict):
    """A judge learned from logs (``ecocascade tune`` writes one): P(correct) >= threshold."""

    type: Literal["learned"]
    path: Annotated[str, Field(min_length=1)]
    embedder: str = "sentence-transformers"
    threshold: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5
    thresholds: dict[str, Annotated[float, Field(ge=0.0, le=1.0)]] = Field(default_factory=dict)

    def build(self) -> Judge:
        from ecocascade.judges.learned import LearnedJudge
        from ecocascade.store.embedders import embedder_from_spec

        return LearnedJudge.load(
            self.path,
            embedder_from_spec(self.embedder),
            threshold=self.threshold,
            thresholds=self.thresholds,
        )


class AgreementJudgeSpec(_Strict):
    """Accept when reference models give the same extracted answer."""

    type: Literal["agreement"]
    references: Annotated[list[TierSpec], Field(min_length=1)]
    min_agree: Annotated[int, Field(ge=1)] = 1
    kind: Literal["auto", "choice", "number", "code", "text"] = "auto"
    accept_last_tier: bool = True

    @model_validator(mode="after")
    def _enough_references(self) -> Self:
        if self.min_agree > len(self.references):
            raise ValueError(f"min_agree {self.min_agree} > {len(self.references)} references")
        return self

    def build(self) -> Judge:
        from ecocascade.judges.agreement import AgreementJudge

        return AgreementJudge(
            [t.to_tier() for t in self.references],
            min_agree=self.min_agree,
            kind=self.kind,
            accept_last_tier=self.accept_last_tier,
        )


class AllJudgeSpec(_Strict):
    type: Literal["all"]
    judges: Annotated[list[JudgeSpec], Field(min_length=1)]

    def build(self) -> Judge:
        from ecocascade.judges.combinators import AllOf

        return AllOf(*(j.build() for j in self.judges))


class AnyJudgeSpec(_Strict):
    type: Literal["any"]
    judges: Annotated[list[JudgeSpec], Field(min_length=1)]

    def build(self) -> Judge:
        from ecocascade.judges.combinators import AnyOf

        return AnyOf(*(j.build() for j in self.judges))


JudgeSpec = Annotated[
    LLMJudgeSpec
    | ExecJudgeSpec
    | CodeRunJudgeSpec
    | HumanJudgeSpec
    | ContainsJudgeSpec
    | RegexJudgeSpec
    | LearnedJudgeSpec
    | AgreementJudgeSpec
    | AllJudgeSpec
    | AnyJudgeSpec,
    Field(discriminator="type"),
]
AllJudgeSpec.model_rebuild()
AnyJudgeSpec.model_rebuild()


class SolutionsSpec(_Strict):
    """The solution store: where it lives and how the cascade uses it."""

    enabled: bool = True
    location: Annotated[str, Field(min_length=1)] = "solutions_db"
    embedder: str = "sentence-transformers"
    namespace: Annotated[str, Field(min_length=1)] = "default"
    k: Annotated[int, Field(ge=0, le=20)] = 1
    threshold: Annotated[float, Field(ge=-1.0, le=1.0)] = 0.6
    retrieve: bool = True
    record: bool = True
    max_solution_chars: Annotated[int, Field(gt=0)] = 20_000

    def settings(self) -> DemoSettings:
        from ecocascade.controller.demos import DemoSettings

        return DemoSettings(
            namespace=self.namespace,
            k=self.k,
            threshold=self.threshold,
            retrieve=self.retrieve,
            record=self.record,
        )

    def open_store(self) -> SolutionStore | None:
        if not self.enabled:
            return None
        from ecocascade.store.chroma import SolutionStore
        from ecocascade.store.embedders import embedder_from_spec

        return SolutionStore(
            self.location,
            embedder=embedder_from_spec(self.embedder),
            max_solution_chars=self.max_solution_chars,
        )


class CacheSpec(_Strict):
    """The response cache: a SQLite file or a Redis URL, TTLs, and semantic reuse."""

    enabled: bool = True
    location: Annotated[str, Field(min_length=1)] = "~/.cache/ecocascade/cache.sqlite3"
    ttl_s: PositiveFloat = 7 * 86_400.0
    namespace_ttl_s: dict[str, PositiveFloat] = Field(default_factory=dict)
    time_sensitive_ttl_s: PositiveFloat = 3600.0
    semantic_namespaces: list[str] = Field(default_factory=list)
    semantic_threshold: Annotated[float, Field(ge=-1.0, le=1.0)] = 0.9

    def open_cache(self) -> ResponseCache | None:
        if not self.enabled:
            return None
        from ecocascade.cache.cache import ResponseCache

        return ResponseCache(
            self.location,
            ttl_s=self.ttl_s,
            namespace_ttl_s=self.namespace_ttl_s,
            time_sensitive_ttl_s=self.time_sensitive_ttl_s,
            semantic_namespaces=self.semantic_namespaces,
            semantic_threshold=self.semantic_threshold,
        )


class RouterSpec(_Strict):
    """The history router: start at the cheapest tier that solved similar past queries."""

    type: Literal["history"]
    path: Annotated[str, Field(min_length=1)]
    embedder: str = "sentence-transformers"
    k: Annotated[int, Field(ge=1)] = 10
    skip_below: Annotated[float, Field(ge=0.0, le=1.0)] = 0.4

    def build(self) -> Router:
        from ecocascade.routing import HistoryRouter
        from ecocascade.store.embedders import embedder_from_spec

        return HistoryRouter.load(
            self.path, embedder_from_spec(self.embedder), k=self.k, skip_below=self.skip_below
        )


def _judge_references(spec: Any) -> list[TierSpec]:
    """The tiers an agreement judge asks, however deeply it is nested in all/any."""
    found: list[TierSpec] = list(getattr(spec, "references", []))
    for inner in getattr(spec, "judges", []):
        found += _judge_references(inner)
    return found


class CascadeConfig(_Strict):
    tiers: Annotated[list[TierSpec], Field(min_length=1)]
    judge: JudgeSpec
    system_prompt: str | None = None
    budget_usd: NonNegativeFloat | None = None
    solutions: SolutionsSpec | None = None
    cache: CacheSpec | None = None
    router: RouterSpec | None = None

    def build(self) -> Cascade:
        from ecocascade.controller.cascade import Cascade

        solutions = self.solutions or SolutionsSpec(enabled=False)
        references = _judge_references(self.judge)
        if any(t.model.startswith("replay/") for t in [*self.tiers, *references]):
            from ecocascade.replay.provider import prepare_replay_tiers

            # replay/<model> tiers answer from recorded data: check it is there
            prepare_replay_tiers([t.to_tier() for t in [*self.tiers, *references]])
        return Cascade(
            [t.to_tier() for t in self.tiers],
            self.judge.build(),
            system_prompt=self.system_prompt,
            budget_usd=self.budget_usd,
            store=solutions.open_store(),
            demos=solutions.settings(),
            cache=(self.cache or CacheSpec(enabled=False)).open_cache(),
            router=self.router.build() if self.router else None,
        )
