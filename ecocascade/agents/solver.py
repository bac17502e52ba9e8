"""Agents as solvers: run an AutoGen agent or team on one tier of the cascade.

:class:`AutoGenSolver` takes your ``factory(model_client) -> agent or team`` and, for each tier
the cascade tries, builds it afresh around a new :class:`LiteLLMChatCompletionClient` for that
tier (as in EcoAssistant, a stronger tier starts from scratch: no state, no messages carried
over), sends the query with the retrieved demonstrations as the initial message, and returns the
final answer with the whole transcript and what every model call cost::

    def team(client):
        assistant = AssistantAgent("assistant", model_client=client)
        critic = AssistantAgent("critic", model_client=client, system_message="...")
        return RoundRobinGroupChat([assistant, critic], max_turns=4)

    cascade = Cascade(tiers, judge, solver=AutoGenSolver(team))
"""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import Awaitable, Callable
from copy import deepcopy
from typing import Any, TypeAlias

import structlog
from autogen_agentchat.base import ChatAgent, TaskResult, Team, TerminationCondition
from autogen_agentchat.messages import (
    BaseAgentEvent,
    BaseChatMessage,
    ModelClientStreamingChunkEvent,
)
from autogen_core import CancellationToken
from autogen_core.models import CreateResult

from ecocascade.agents.client import LiteLLMChatCompletionClient
from ecocascade.controller.demos import DEFAULT_DEMO_TEMPLATE, DemoTemplate
from ecocascade.exceptions import ConfigError, ProviderError, SolverError
from ecocascade.types import ChatModel, Message, Solution, Task, Usage

__all__ = ["AgentFactory", "AnswerFn", "AutoGenSolver", "final_text"]

log = structlog.get_logger(__name__)

Runner: TypeAlias = ChatAgent | Team
AgentFactory: TypeAlias = Callable[[LiteLLMChatCompletionClient], Runner | Awaitable[Runner]]
"""Builds the agent or team for one tier around that tier's model client (may be async)."""
AnswerFn: TypeAlias = Callable[[TaskResult], str]
"""Turns a finished run into the answer the judge sees (default: :func:`final_text`)."""

_TERMINATE = re.compile(r"\s*\bTERMINATE\b[.!]?\s*$")


def final_text(result: TaskResult) -> str:
    """The last thing an agent said, without AutoGen's closing ``TERMINATE`` keyword.

    Messages from ``user`` (the task itself) are skipped, and so is a final message that says
    nothing but ``TERMINATE``: the answer is then the message before it.
    """
    for message in reversed(result.messages):
        if isinstance(message, BaseChatMessage) and message.source != "user":
            text = _TERMINATE.sub("", message.to_text()).strip()
            if text:
                return text
    return ""


class _TrackedClient(LiteLLMChatCompletionClient):
    """Remembers the last provider error: AutoGen teams re-raise an agent's error as a bare
    ``RuntimeError(str(error))``, and the cascade needs the typed error to report it."""

    last_error: ProviderError | None = None

    async def create(self, *args: Any, **kwargs: Any) -> CreateResult:
        try:
            return await super().create(*args, **kwargs)
        except ProviderError as error:
            self.last_error = error
            raise

    async def create_stream(self, *args: Any, **kwargs: Any) -> Any:
        try:
            async for item in super().create_stream(*args, **kwargs):
                yield item
        except ProviderError as error:
            self.last_error = error
            raise


class AutoGenSolver:
    """Runs an AutoGen agent or team, built fresh for each tier, as the cascade's solver.

    ``factory(model_client)`` returns a ``ChatAgent`` (e.g. ``AssistantAgent``) or a ``Team``
    (e.g. ``RoundRobinGroupChat``); it may be async. It is called once per attempt with a new
    :class:`~ecocascade.agents.LiteLLMChatCompletionClient` for the tier being tried, so give
    every agent that client. The initial message is the query preceded by the demonstrations,
    rendered with ``demo_template`` (and the cascade's ``system_prompt``, if any, before both).

    ``max_turns`` (agent messages) and ``termination`` (any AutoGen ``TerminationCondition``,
    checked after each agent message) are a safety net on top of the team's own limits: when
    either fires, the run is cancelled and what was said so far is the result. Each run checks a
    fresh, reset copy of ``termination`` (runs on several tiers, queries and tasks at once never
    share its state), so a handle such as ``ExternalTermination`` set from outside does not reach
    a run: put that one in the team itself. ``answer`` turns the run into the answer the judge
    sees (default: :func:`final_text`).

    The solution's usage, cost, model calls and retries are the client's totals over the run.
    A provider error that ends the run is re-raised as its typed
    :class:`~ecocascade.exceptions.ProviderError`, so the cascade records and escalates it; any
    other error after a model call is raised as :class:`~ecocascade.exceptions.SolverError`.
    Either carries what the run had spent (``spent_usd``, ``spent_usage``), and the team's
    pending calls are cancelled first.
    """

    def __init__(
        self,
        factory: AgentFactory,
        *,
        max_turns: int | None = 20,
        termination: TerminationCondition | None = None,
        answer: AnswerFn | None = None,
        demo_template: DemoTemplate = DEFAULT_DEMO_TEMPLATE,
    ) -> None:
        if not callable(factory):
            raise ConfigError(
                f"expected a function model_client -> agent or team, got {factory!r}",
                where="AutoGenSolver.factory",
            )
        if max_turns is not None and (not isinstance(max_turns, int) or max_turns < 1):
            raise ConfigError(
                f"must be an integer >= 1 or None, got {max_turns!r}", where="max_turns"
            )
        if termination is not None and not isinstance(termination, TerminationCondition):
            raise ConfigError(
                f"expected an AutoGen TerminationCondition, got {termination!r}",
                where="termination",
            )
        if answer is not None and not callable(answer):
            raise ConfigError(
                f"expected a function TaskResult -> str, got {answer!r}", where="answer"
            )
        self.factory = factory
        self.max_turns = max_turns
        self.termination = termination
        self.answer = answer or final_text
        self.demo_template = demo_template

    def __repr__(self) -> str:
        name = getattr(self.factory, "__qualname__", type(self.factory).__name__)
        return f"AutoGenSolver({name}, max_turns={self.max_turns})"

    def initial_message(self, task: Task) -> str:
        """The task message the agent or team starts from: demonstrations, then the query."""
        content = self.demo_template.render(task.query, task.demonstrations)
        return f"{task.system_prompt}\n\n{content}" if task.system_prompt else content

    def messages(self, task: Task) -> list[Message]:
        """The first prompt, as the cascade's budget estimate sees it (agents add their own
        system messages, and later turns cost more)."""
        return [{"role": "user", "content": self.initial_message(task)}]

    async def solve(self, task: Task, model: ChatModel) -> Solution:
        client = _TrackedClient(model)
        try:
            runner = await self._build(client)
            try:
                result = await self._run(runner, self.initial_message(task))
            finally:
                if isinstance(runner, ChatAgent):
                    await runner.close()
        except ProviderError as error:
            self._log_spent(client, "provider_error")
            _add_spend(error, client)
            raise
        except ConfigError:
            raise
        except Exception as error:
            if client.last_error is not None:  # the typed error an AutoGen team flattened
                self._log_spent(client, "provider_error")
                _add_spend(client.last_error, client)
                raise client.last_error from error
            self._log_spent(client, type(error).__name__)
            if client.calls == 0:
                raise
            usage = client.total_usage()
            raise SolverError(
                f"{type(error).__name__}: {error}",
                kind=type(error).__name__,
                spent_usd=client.total_cost_usd,
                spent_usage=Usage(usage.prompt_tokens, usage.completion_tokens),
                retries=client.retries,
            ) from error
        finally:
            await client.close()
        usage = client.total_usage()
        return Solution(
            answer=self.answer(result),
            usage=Usage(usage.prompt_tokens, usage.completion_tokens),
            cost_usd=client.total_cost_usd,
            model_calls=client.calls,
            retries=client.retries,
            transcript=transcript(result),
        )

    async def _build(self, client: LiteLLMChatCompletionClient) -> Runner:
        built: Any = self.factory(client)
        if inspect.isawaitable(built):
            built = await built
        if not isinstance(built, ChatAgent | Team):
            raise ConfigError(
                "the factory must return an AutoGen agent (a ChatAgent such as AssistantAgent)"
                f" or team (a Team such as RoundRobinGroupChat), got {type(built).__name__}",
                where="AutoGenSolver.factory",
            )
        return built

    async def _run(self, runner: Runner, message: str) -> TaskResult:
        token = CancellationToken()
        said: list[BaseAgentEvent | BaseChatMessage] = []
        turns = 0
        termination = await _fresh(self.termination)
        stream = runner.run_stream(task=message, cancellation_token=token)
        try:
            async for item in stream:
                if isinstance(item, TaskResult):
                    return item
                if isinstance(item, ModelClientStreamingChunkEvent):
                    continue
                said.append(item)
                if not isinstance(item, BaseChatMessage) or item.source == "user":
                    continue
                turns += 1
                stop = await termination([item]) if termination is not None else None
                if stop is not None or (self.max_turns is not None and turns >= self.max_turns):
                    reason = stop.content if stop is not None else f"max_turns={self.max_turns}"
                    log.info("agents.stopped", reason=reason, turns=turns)
                    # The team is thrown away after this run: nothing to keep consistent.
                    token.cancel()
                    return TaskResult(messages=said, stop_reason=reason)
        except BaseException:
            token.cancel()  # stop the team's pending calls: nothing will read their results
            raise
        finally:
            await _close(stream, token)
        raise RuntimeError("the agent's stream ended without a result")

    @staticmethod
    def _log_spent(client: LiteLLMChatCompletionClient, error: str) -> None:
        usage = client.total_usage()
        log.warning(
            "agents.run_failed",
            model=client.label,
            error=error,
            model_calls=client.calls,
            tokens_in=usage.prompt_tokens,
            tokens_out=usage.completion_tokens,
            cost_usd=client.total_cost_usd,
        )


async def _fresh(condition: TerminationCondition | None) -> TerminationCondition | None:
    """A reset copy of ``condition`` for one run: the instance the caller gave is shared by every
    tier and query, and AutoGen's conditions raise ``TerminatedException`` once they have fired."""
    if condition is None:
        return None
    try:
        copy = type(condition).load_component(condition.dump_component())
    except Exception:  # a condition that is not a serialisable component
        copy = deepcopy(condition)
    await copy.reset()
    return copy


def _add_spend(error: ProviderError, client: LiteLLMChatCompletionClient) -> None:
    """Put on ``error`` what the run spent before it (the failed call itself cost nothing)."""
    usage = client.total_usage()
    error.spent_usd = client.total_cost_usd
    error.spent_usage = Usage(usage.prompt_tokens, usage.completion_tokens)


async def _close(stream: Any, token: CancellationToken) -> None:
    """Close the run's stream. After our own cancellation AutoGen raises ``CancelledError``
    from it (and logs the interrupted turn as an error); that one is expected. A cancellation
    of the task awaiting us is not, and propagates."""
    try:
        await stream.aclose()
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if not token.is_cancelled() or (current is not None and current.cancelling()):
            raise


def transcript(result: TaskResult) -> list[Message]:
    """The run as chat message dicts: ``role`` (``user`` for the task, else ``assistant``),
    ``name`` (the agent), ``content`` (its text) and ``type`` (AutoGen's message type)."""
    messages: list[Message] = []
    for item in result.messages:
        if isinstance(item, ModelClientStreamingChunkEvent):
            continue
        messages.append(
            {
                "role": "user" if item.source == "user" else "assistant",
                "name": item.source,
                "content": item.to_text(),
                "type": type(item).__name__,
            }
        )
    return messages
