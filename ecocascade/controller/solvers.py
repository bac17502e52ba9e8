"""Solvers: what runs on a tier. The default is one chat completion."""

from __future__ import annotations

from typing import Literal

from ecocascade.controller.demos import DEFAULT_DEMO_TEMPLATE, DemoTemplate
from ecocascade.exceptions import ConfigError
from ecocascade.models.client import TierClient
from ecocascade.types import Message, Solution, Task

__all__ = ["ChatSolver"]


class ChatSolver:
    """Answers with a single chat completion: optional system prompt, the task's demonstrations,
    then the query.

    ``demo_style="turns"`` (default) gives each demonstration as a prior exchange — the query as a
    user turn, its verified solution as the assistant's reply — with the most similar one last,
    next to the query: the few-shot form chat models follow best (on the local SmolLM2-135M it
    turned rambling replies into one-line answers). ``"inline"`` puts them in the user message
    with ``demo_template``, as EcoAssistant did.

    The prompt is laid out stable part first — system prompt, demonstrations, then the query — so
    a provider's prompt cache (OpenAI, Anthropic, DeepSeek, llama.cpp) can reuse the common
    prefix; cached input tokens show up in ``Usage.cached_input_tokens`` at their lower price.
    ``demo_order="stable"`` orders demonstrations by record id instead of similarity, so the
    same retrieved set always gives byte-identical prompts (at the cost of the best match no
    longer sitting next to the query; with ``k=1`` the two are the same).
    """

    def __init__(
        self,
        demo_template: DemoTemplate = DEFAULT_DEMO_TEMPLATE,
        *,
        demo_style: Literal["turns", "inline"] = "turns",
        demo_order: Literal["similarity", "stable"] = "similarity",
    ) -> None:
        if demo_style not in ("turns", "inline"):
            raise ConfigError(
                f"expected 'turns' or 'inline', got {demo_style!r}", where="demo_style"
            )
        if demo_order not in ("similarity", "stable"):
            raise ConfigError(
                f"expected 'similarity' or 'stable', got {demo_order!r}", where="demo_order"
            )
        self.demo_template = demo_template
        self.demo_style = demo_style
        self.demo_order = demo_order

    def messages(self, task: Task) -> list[Message]:
        """The prompt ``solve`` sends (also used to estimate cost against a budget)."""
        messages: list[Message] = []
        if task.system_prompt:
            messages.append({"role": "system", "content": task.system_prompt})
        demos = list(task.demonstrations)
        if self.demo_order == "stable":
            demos.sort(key=lambda d: d.id, reverse=True)  # reversed below: ascending ids
        if self.demo_style == "inline":
            content = self.demo_template.render(task.query, demos)
            messages.append({"role": "user", "content": content})
            return messages
        for demo in reversed(demos):  # best match last, nearest the query
            messages.append({"role": "user", "content": demo.query})
            messages.append({"role": "assistant", "content": demo.solution})
        messages.append({"role": "user", "content": task.query})
        return messages

    async def solve(self, task: Task, model: TierClient) -> Solution:
        messages = self.messages(task)
        completion = await model.complete(messages)
        return Solution(
            answer=completion.text,
            usage=completion.usage,
            cost_usd=completion.cost_usd,
            model_calls=1,
            retries=completion.retries,
            transcript=(*messages, {"role": "assistant", "content": completion.text}),
        )
