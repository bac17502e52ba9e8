"""The contracts between ecocascade's replaceable parts, and the small values they exchange.

Pluggable parts are Protocols with one async method, so anything with the right shape plugs in
(no base class to inherit). Values are frozen dataclasses.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ecocascade.text import mask_secrets

if TYPE_CHECKING:
    from ecocascade.models.tier import Tier
    from ecocascade.store.records import SolutionRecord

__all__ = [
    "ChatModel",
    "ChatRequest",
    "Completion",
    "Demonstration",
    "Embedder",
    "Judge",
    "JudgeContext",
    "Message",
    "Solution",
    "SolutionStoreProtocol",
    "Solver",
    "Task",
    "ToolCallDelta",
    "Usage",
    "Verdict",
    "add_costs",
    "message_text",
]

Message = Mapping[str, Any]
"""One chat message in OpenAI/LiteLLM shape: ``{"role": "user", "content": "..."}``."""


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens spent by one or more model calls."""

    input_tokens: int = 0
    output_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens
        )


def add_costs(*costs: float | None) -> float | None:
    """Sum USD costs where ``None`` means *unknown*: any unknown part makes the sum unknown."""
    total = 0.0
    for cost in costs:
        if cost is None:
            return None
        total += cost
    return total


@dataclass(frozen=True, slots=True)
class Completion:
    """One successful model call (after any retries)."""

    text: str
    model: str
    usage: Usage
    cost_usd: float | None
    latency_s: float
    retries: int = 0
    finish_reason: str | None = None
    tool_calls: Sequence[Any] = ()
    raw: Any = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Verdict:
    """A judge's decision on one answer.

    ``cost_usd`` is what reaching the verdict cost (an LLM judge's own tokens); ``None`` when the
    judge used a model with no known price.
    """

    accepted: bool
    reason: str = ""
    judge: str = ""
    cost_usd: float | None = 0.0
    usage: Usage = field(default_factory=Usage)

    def __post_init__(self) -> None:
        # Judges quote what they saw (program output, a model's critique): never a key.
        object.__setattr__(self, "reason", mask_secrets(self.reason))


@dataclass(frozen=True, slots=True)
class Demonstration:
    """A prior query and its verified solution, retrieved to guide the model on a similar query.

    ``similarity`` is the cosine similarity of the two queries' embeddings (1.0 = same direction).
    """

    id: str
    query: str
    solution: str
    similarity: float
    model: str | None = None


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """One chat request: the unit of work of a cascade (and of the OpenAI-compatible gateway).

    ``messages`` are OpenAI-shaped and include the system prompt and the whole history; the
    last one is normally the user's turn. ``tools``/``tool_choice``/``response_format`` are
    passed to every tier as OpenAI defines them; ``params`` holds sampling parameters
    (``temperature``, ``max_tokens``, ``seed``, ``top_p``, ``stop``, ...). A plain question is
    ``ChatRequest.from_query("...")``.
    """

    messages: tuple[Message, ...]
    tools: tuple[Mapping[str, Any], ...] = ()
    tool_choice: str | Mapping[str, Any] | None = None
    response_format: Mapping[str, Any] | None = None
    params: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_query(cls, query: str, *, system_prompt: str | None = None) -> ChatRequest:
        messages: list[Message] = []
        if system_prompt:
            messages.append({"role": "system", "content": system_prompt})
        messages.append({"role": "user", "content": query})
        return cls(messages=tuple(messages))

    @property
    def query(self) -> str:
        """The text of the last user message: what demonstrations, routers and semantic reuse
        key on ("" when there is none, e.g. a request ending in a tool result)."""
        for message in reversed(self.messages):
            if message.get("role") == "user":
                return message_text(message)
        return ""

    @property
    def system_prompt(self) -> str | None:
        texts = [message_text(m) for m in self.messages if m.get("role") == "system"]
        return "\n\n".join(texts) if texts else None

    @property
    def is_first_turn(self) -> bool:
        """True when the request holds no earlier assistant or tool turn."""
        return not any(m.get("role") in ("assistant", "tool") for m in self.messages)


def message_text(message: Message) -> str:
    """The text of a message whose content is a string or a list of OpenAI content parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        return "".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, Mapping) and part.get("type") == "text"
        )
    return ""


@dataclass(frozen=True, slots=True)
class JudgeContext:
    """What a judge may know about the attempt it judges, passed explicitly by the cascade.

    ``tier`` is the attempt's index on the ladder (0 = cheapest) of ``tiers`` tiers; ``model``
    the tier's label; ``request`` the chat request being resolved; ``attempts`` the earlier
    attempts of this run (:class:`~ecocascade.controller.result.Attempt`), oldest first;
    ``solution`` the solver's full output being judged (its transcript carries tool calls).
    """

    tier: int
    model: str
    tiers: int
    request: ChatRequest | None = None
    attempts: Sequence[Any] = ()
    solution: Solution | None = None

    @property
    def is_last(self) -> bool:
        return self.tier == self.tiers - 1


@dataclass(frozen=True, slots=True)
class Task:
    """What a solver is asked to do on one tier: the query, plus demonstrations to imitate.

    ``request`` is the whole chat request (history, tools, response format, params) when the
    cascade resolves one; ``query`` is then its last user message and ``system_prompt`` its
    system prompt. A solver that only knows plain questions may ignore it.
    """

    query: str
    system_prompt: str | None = None
    demonstrations: Sequence[Demonstration] = ()
    request: ChatRequest | None = None


@dataclass(frozen=True, slots=True)
class Solution:
    """What a solver produced on one tier: the answer plus what producing it cost."""

    answer: str
    usage: Usage = field(default_factory=Usage)
    cost_usd: float | None = 0.0
    model_calls: int = 1
    retries: int = 0
    transcript: Sequence[Message] = ()
    message: Message | None = None
    """The final assistant message in OpenAI shape (``content`` and/or ``tool_calls``); ``None``
    from a solver that only produces text (the cascade then uses ``answer`` as the content)."""
    model: str | None = None
    """The model the provider says answered (may differ from the tier's label), if known."""
    finish_reason: str | None = None


@runtime_checkable
class Judge(Protocol):
    """Decides whether an answer resolves the query: the cascade's success criterion.

    The cascade passes ``context`` (which tier answered, the request, earlier attempts, the full
    solution). A judge written for the older ``judge(query, answer)`` signature still works: the
    cascade calls it without ``context`` and it may read
    :func:`~ecocascade.judging.current_attempt`. A judge called with ``context=None`` (by
    another judge, or outside a cascade) falls back to ``current_attempt()``.

    Raise :class:`~ecocascade.exceptions.JudgeError` when no verdict can be reached; the cascade
    then treats the answer as not accepted (an unverified answer is never passed off as a success).
    """

    @property
    def name(self) -> str: ...

    async def judge(
        self, query: str, answer: str, context: JudgeContext | None = None
    ) -> Verdict: ...


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of a tool call as a model streams it: ``index`` says which call; ``id`` and
    ``name`` come with its first piece, ``arguments`` is the next piece of the JSON text."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@runtime_checkable
class ChatModel(Protocol):
    """One tier's model: what a solver calls. :class:`~ecocascade.models.client.TierClient` is
    the LiteLLM one; :mod:`ecocascade.testing` has in-process ones (``ScriptedModel``,
    ``FunctionModel``).

    ``tier`` describes it (label, params, price: what the cascade's fingerprint and routers
    read). ``complete`` makes one call (raising a
    :class:`~ecocascade.exceptions.ProviderError` when it fails for good); ``stream`` yields text
    (``str``) and :class:`ToolCallDelta` pieces, then the whole :class:`Completion`;
    ``estimate_cost`` prices a call before it is made (``None``: unknown price).
    """

    @property
    def tier(self) -> Tier: ...

    @property
    def label(self) -> str: ...

    @property
    def max_output_tokens(self) -> int | None: ...

    def estimate_cost(self, messages: Sequence[Message], output_tokens: int) -> float | None: ...

    async def complete(self, messages: Sequence[Message], **params: Any) -> Completion: ...

    def stream(
        self, messages: Sequence[Message], **params: Any
    ) -> AsyncGenerator[str | ToolCallDelta | Completion, None]: ...


@runtime_checkable
class Solver(Protocol):
    """Produces an answer for a task using one tier's model.

    The default, :class:`~ecocascade.controller.solvers.ChatSolver`, is a single chat completion;
    agent solvers may call the model many times, summing usage and cost into the Solution.
    """

    async def solve(self, task: Task, model: ChatModel) -> Solution: ...


@runtime_checkable
class SolutionStoreProtocol(Protocol):
    """Where verified solutions are kept and found again as demonstrations:
    :class:`~ecocascade.store.chroma.SolutionStore` (Chroma), or anything of this shape."""

    async def search(
        self, query: str, *, namespace: str = "default", k: int = 1, threshold: float = 0.0
    ) -> list[Demonstration]: ...

    async def record(self, record: SolutionRecord) -> SolutionRecord | None: ...

    async def mark_used(
        self, ids: Sequence[str], *, namespace: str = "default", succeeded: bool
    ) -> None: ...


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into vectors for the solution store and the semantic cache.

    ``name`` identifies the vector space (model and version): vectors from different names are
    not comparable, so a store refuses an embedder other than the one it was built with.
    Vectors should be L2-normalised.
    """

    @property
    def name(self) -> str: ...

    async def embed(self, texts: Sequence[str]) -> list[list[float]]: ...
