"""Recorded answers of real models, replayed through the real cascade (``replay/<model>`` tiers).

Readers turn a RouterBench CSV or an eval's ``tasks.jsonl`` into a :class:`RecordedDataset`; the
LiteLLM provider serves its answers and recorded costs. Only the light readers are imported
here; the provider (which imports LiteLLM) lives in :mod:`ecocascade.replay.provider`.
"""

from ecocascade.replay.data import (
    RecordedAnswer,
    RecordedDataset,
    RecordedItem,
    read_recorded,
    read_routerbench_csv,
    read_tasks_jsonl,
)

__all__ = [
    "RecordedAnswer",
    "RecordedDataset",
    "RecordedItem",
    "read_recorded",
    "read_routerbench_csv",
    "read_tasks_jsonl",
]
