"""Demonstrations: how retrieved solutions are chosen and how they are put into the prompt."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ecocascade.exceptions import ConfigError
from ecocascade.types import Demonstration

__all__ = ["DEFAULT_DEMO_TEMPLATE", "DemoSettings", "DemoTemplate"]


@dataclass(frozen=True, slots=True)
class DemoSettings:
    """How the cascade uses its solution store.

    ``threshold`` is a **cosine similarity** between query embeddings, in [-1, 1] (1 = same
    direction), not Chroma's distance. With the default all-MiniLM-L6-v2, paraphrases of a
    short question usually score 0.8-0.95, questions of the same kind about another entity
    ("weather in Paris" / "weather in Rome") 0.6-0.8, and unrelated questions below 0.3. The
    default 0.6 retrieves same-kind questions — which is what a demonstration is for.
    """

    namespace: str = "default"
    k: int = 1
    threshold: float = 0.6
    retrieve: bool = True
    record: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.k, int) or self.k < 0:
            raise ConfigError(f"must be an integer >= 0, got {self.k!r}", where="demos.k")
        if not (isinstance(self.threshold, int | float) and math.isfinite(self.threshold)):
            raise ConfigError("must be a finite number", where="demos.threshold")
        if not -1.0 <= self.threshold <= 1.0:
            raise ConfigError(
                f"a cosine similarity is in [-1, 1], got {self.threshold}", where="demos.threshold"
            )
        if not self.namespace:
            raise ConfigError("must be a non-empty string", where="demos.namespace")


@dataclass(frozen=True, slots=True)
class DemoTemplate:
    """Renders the user message: solved examples first, then the query (as EcoAssistant did).

    ``example`` is filled per demonstration with ``{query}`` and ``{solution}``; ``text`` with
    ``{examples}`` (the examples joined by blank lines) and ``{query}``.
    """

    text: str = (
        "Here are solved examples of similar queries. Use them as a guide where they help.\n\n"
        "{examples}\n\n"
        "Now solve this query:\n{query}"
    )
    example: str = "Query: {query}\nSolution: {solution}"

    def __post_init__(self) -> None:
        for field_name, needed in (("text", ("{examples}", "{query}")), ("example", ("{query}",))):
            value = getattr(self, field_name)
            missing = [n for n in needed if n not in value]
            if missing:
                raise ConfigError(
                    f"must contain {', '.join(missing)}", where=f"template.{field_name}"
                )

    def render(self, query: str, demonstrations: Sequence[Demonstration]) -> str:
        if not demonstrations:
            return query
        examples = "\n\n".join(
            _fill(self.example, query=d.query, solution=d.solution) for d in demonstrations
        )
        return _fill(self.text, examples=examples, query=query)


def _fill(template: str, **values: str) -> str:
    """Substitute ``{name}`` placeholders in one pass (braces in the values stay as they are)."""
    import re

    return re.sub(r"\{(" + "|".join(values) + r")\}", lambda m: values[m.group(1)], template)


DEFAULT_DEMO_TEMPLATE = DemoTemplate()
