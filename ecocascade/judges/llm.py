"""EcoAssistant's judge: a (usually strong) model reads query and answer, and says yes or no."""

from __future__ import annotations

import re

from ecocascade.exceptions import ConfigError, JudgeError, ProviderError
from ecocascade.models.client import TierClient
from ecocascade.models.tier import Tier
from ecocascade.types import JudgeContext, Verdict

__all__ = ["DEFAULT_JUDGE_PROMPT", "LLMJudge", "check_prompt"]

DEFAULT_JUDGE_PROMPT = """\
You are checking whether an assistant's answer resolves a user's query.

Query:
{query}

Answer:
{answer}

Does the answer correctly and completely resolve the query? Reply with one word: yes or no."""

_PLACEHOLDER = re.compile(r"\{(query|answer)\}")
_YES_NO = re.compile(r"\b(yes|no)\b", re.IGNORECASE)


def check_prompt(prompt: str) -> None:
    """Raise :class:`ConfigError` unless ``prompt`` has both ``{query}`` and ``{answer}``."""
    if "{query}" not in prompt or "{answer}" not in prompt:
        raise ConfigError("the judge prompt must contain {query} and {answer}", where="prompt")


class LLMJudge:
    """Asks a model whether the answer resolves the query; its own tokens are counted as cost.

    The reply's first standalone ``yes``/``no`` decides. A reply with neither, or a failed call,
    raises :class:`JudgeError` (the cascade then does not accept the answer). ``prompt`` must
    contain ``{query}`` and ``{answer}``.
    """

    def __init__(
        self,
        model: str | Tier,
        *,
        prompt: str = DEFAULT_JUDGE_PROMPT,
        max_answer_chars: int = 12_000,
    ) -> None:
        tier = model if isinstance(model, Tier) else Tier(model)
        check_prompt(prompt)
        self.tier = tier
        self.prompt = prompt
        self.max_answer_chars = max_answer_chars
        self._client = TierClient(tier)

    @property
    def name(self) -> str:
        return f"llm:{self.tier.label}"

    async def judge(self, query: str, answer: str, context: JudgeContext | None = None) -> Verdict:
        if len(answer) > self.max_answer_chars:
            answer = answer[: self.max_answer_chars] + "\n[… answer truncated for judging]"
        # One pass, so a literal "{answer}" inside the query is not itself replaced.
        values = {"query": query, "answer": answer}
        content = _PLACEHOLDER.sub(lambda m: values[m.group(1)], self.prompt)
        try:
            completion = await self._client.complete([{"role": "user", "content": content}])
        except ProviderError as error:
            raise JudgeError(f"judge model failed: {error}", judge=self.name) from error
        reply = completion.text.strip()
        match = _YES_NO.search(reply)
        if match is None:
            raise JudgeError(
                f"judge replied neither yes nor no: {reply[:120]!r}",
                judge=self.name,
                cost_usd=completion.cost_usd,
            )
        return Verdict(
            accepted=match.group(1).lower() == "yes",
            reason=f"judge said {reply[:200]!r}",
            judge=self.name,
            cost_usd=completion.cost_usd,
            usage=completion.usage,
        )
