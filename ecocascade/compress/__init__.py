"""Prompt compression: a small local model scores tokens, the uninformative ones are dropped.

LLMLingua-style (Jiang et al., 2023): a token the small LM predicts easily (low surprisal) carries
little information for a large LM either, so dropping it shortens the prompt a paid tier bills for
without losing what the answer needs. Opt-in per tier (``compress:`` in a tier's config); applied
to demonstrations, earlier turns, long system prompts, tool results and long context in the last
user message — never to its final paragraph (the question), to code, or to short texts.

Conversation memory (:mod:`ecocascade.compress.memory`): past a token budget, a chat's older
turns are replaced by a summary the cheapest tier writes, cached per conversation prefix.
"""

from ecocascade.compress.lingua import (
    CompressionSettings,
    Compressor,
    compress_text,
)
from ecocascade.compress.memory import ConversationMemory, MemoryReport, MemorySettings
from ecocascade.compress.scorers import FrequencyScorer, SmolLMScorer, TokenScorer

__all__ = [
    "CompressionSettings",
    "Compressor",
    "ConversationMemory",
    "FrequencyScorer",
    "MemoryReport",
    "MemorySettings",
    "SmolLMScorer",
    "TokenScorer",
    "compress_text",
]
