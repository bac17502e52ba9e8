"""Solvers: what runs on a tier. The default is one chat completion."""

from __future__ import annotations

from ecocascade.controller.demos import DEFAULT_DEMO_TEMPLATE, DemoTemplate
from ecocascade.models.client import TierClient
from ecocascade.types import Message, Solution, Task

__all__ = ["ChatSolver"]


class ChatSolver:
    """Answers with a single chat completion: optional system prompt, then the query — preceded
    by the task's demonstrations, rendered with ``demo_template``."""

    def __init__(self, demo_template: DemoTemplate = DEFAULT_DEMO_TEMPLATE) -> None:
        self.demo_template = demo_template

    def messages(self, task: Task) -> list[Message]:
        """The prompt ``solve`` sends (also used to estimate cost against a budget)."""
        messages: list[Message] = []
        if task.system_prompt:
            messages.append({"role": "system", "content": task.system_prompt})
        content = self.demo_template.render(task.query, task.demonstrations)
        messages.append({"role": "user", "content": content})
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
