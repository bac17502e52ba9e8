"""The solution store: verified query → solution pairs, retrieved as demonstrations."""

from ecocascade.store.chroma import DEFAULT_LOCATION, SolutionStore
from ecocascade.store.embedders import LiteLLMEmbedder, SentenceTransformerEmbedder
from ecocascade.store.records import SolutionRecord, record_id
from ecocascade.text import mask_secrets, normalise_query

__all__ = [
    "DEFAULT_LOCATION",
    "LiteLLMEmbedder",
    "SentenceTransformerEmbedder",
    "SolutionRecord",
    "SolutionStore",
    "mask_secrets",
    "normalise_query",
    "record_id",
]
