"""The gateway's conversation-memory hook: long chats reach the cascade with old turns summarised.

Opt-in per cascade in the gateway config::

    memory:
      support: {budget_tokens: 1500, keep_recent: 4, summary_words: 150, tier: 0}

Past ``budget_tokens`` the request's older turns become a summary written by the cascade's tier
``tier`` (the cheapest by default), cached per conversation prefix
(:class:`~ecocascade.compress.memory.ConversationMemory`). The sticky tier is looked up on the
original history, before compaction; a compacted request still carries an assistant turn, so it
is never mistaken for a first turn (no semantic reuse on conversations).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, ConfigDict, Field

from ecocascade.types import ChatRequest

if TYPE_CHECKING:
    from ecocascade.compress.memory import ConversationMemory, MemoryReport
    from ecocascade.controller.cascade import Cascade

__all__ = ["MemorySpec", "build_memory", "compact_request"]


class MemorySpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    budget_tokens: Annotated[int, Field(gt=0)] = 1500
    keep_recent: Annotated[int, Field(ge=2)] = 4
    summary_words: Annotated[int, Field(ge=10)] = 150
    tier: Annotated[int, Field(ge=0)] = 0


def build_memory(spec: MemorySpec, cascade: Cascade) -> ConversationMemory:
    from ecocascade.compress.memory import ConversationMemory, MemorySettings
    from ecocascade.models.client import TierClient

    tier = cascade.tiers[min(spec.tier, len(cascade.tiers) - 1)]
    settings = MemorySettings(spec.budget_tokens, spec.keep_recent, spec.summary_words)
    return ConversationMemory(TierClient(tier), settings)


async def compact_request(
    memory: ConversationMemory, request: ChatRequest
) -> tuple[ChatRequest, MemoryReport | None]:
    """``request`` with its older turns summarised when over budget (else unchanged, ``None``)."""
    if request.is_first_turn:
        return request, None
    messages, report = await memory.compact(request.messages)
    if report.summarised_messages == 0:
        return request, None
    compacted = ChatRequest(
        messages=tuple(messages),
        tools=request.tools,
        tool_choice=request.tool_choice,
        response_format=request.response_format,
        params=request.params,
    )
    if compacted.is_first_turn:  # the recent turns held no assistant turn: keep the history
        return request, None
    return compacted, report
