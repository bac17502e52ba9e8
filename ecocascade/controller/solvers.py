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
        messages: list[Message] = []
        if task.system_prompt:
            messages.append({"role": "system", "content": task.system_prompt})
        if self.demo_style == "inline":
            content = self.demo_template.render(task.query, task.demonstrations)
            messages.append({"role": "user", "content": content})
            return messages
        for demo in reversed(task.demonstrations):  # best match last, nearest the query
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
