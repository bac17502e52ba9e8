"""Distillation data: verified pairs written as chat fine-tuning examples, filtered and masked."""

from __future__ import annotations

from pathlib import Path

import pytest

from ecocascade.cli import main
from ecocascade.store.distill import ExportFilter, chat_examples, parse_when, write_chat_jsonl
from ecocascade.store.records import SolutionRecord, record_id

DAY = 86400.0
JAN_1 = parse_when("2026-01-01", where="test")


def pair(query: str, solution: str, **fields: object) -> SolutionRecord:
    namespace = str(fields.pop("namespace", "default"))
    return SolutionRecord(id=record_id(query, namespace), namespace=namespace, query=query,
                          solution=solution, **fields)  # type: ignore[arg-type]  # fmt: skip


RECORDS = [
    pair(
        "What is the capital of France?",
        "Paris",
        model="openai/large",
        tier=1,
        updated_at=JAN_1 + DAY,
    ),
    pair("Who wrote Hamlet?", "Shakespeare", model="openai/small", tier=0, updated_at=JAN_1 - DAY),
    pair(
        "What is 12 squared?",
        "144",
        model="openai/large",
        tier=1,
        namespace="maths",
        updated_at=JAN_1 + 2 * DAY,
    ),
]


def test_each_pair_becomes_a_user_then_assistant_chat_example() -> None:
    (example, *_) = chat_examples(RECORDS, system_prompt="Be brief.")
    assert example == {"messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "Paris"},
    ]}  # fmt: skip


@pytest.mark.parametrize(
    ("keep", "queries"),
    [
        (ExportFilter(models=frozenset({"openai/large"})), ["France", "12 squared"]),
        (ExportFilter(tiers=frozenset({0})), ["Hamlet"]),
        (ExportFilter(namespace="maths"), ["12 squared"]),
        (ExportFilter(since=JAN_1), ["France", "12 squared"]),
        (ExportFilter(until=JAN_1 + 2 * DAY), ["France", "Hamlet"]),
        (ExportFilter(models=frozenset({"openai/large"}), namespace="default"), ["France"]),
    ],
)
def test_filters_keep_only_the_pairs_they_name(keep: ExportFilter, queries: list[str]) -> None:
    users = [e["messages"][0]["content"] for e in chat_examples(RECORDS, keep=keep)]
    assert len(users) == len(queries) and all(q in u for q, u in zip(queries, users, strict=True))


def test_a_secret_left_in_a_record_is_masked_on_the_way_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEATHER_API_KEY", "s3cr3t-value-123")
    leaky = pair("Call the weather API with key s3cr3t-value-123", "curl ...?k=s3cr3t-value-123")
    out = tmp_path / "train.jsonl"
    assert write_chat_jsonl([leaky], out) == 1
    text = out.read_text()
    assert "s3cr3t" not in text and text.count("<WEATHER_API_KEY>") == 2


def test_a_bad_date_is_a_config_error_naming_the_option() -> None:
    from ecocascade.exceptions import ConfigError

    with pytest.raises(ConfigError, match=r"--since.*2026-01-31"):
        parse_when("last tuesday", where="--since")


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exited:
        main(list(argv))
    return int(exited.value.code or 0), capsys.readouterr().err


def test_the_cli_rejects_filters_on_a_plain_export_in_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, err = run_cli(capsys, "solutions", "export", str(tmp_path / "x.jsonl"),
                        "--store", str(tmp_path / "db"), "--model", "openai/large")  # fmt: skip
    assert code == 2 and "need --format chat-jsonl" in err and len(err.strip().splitlines()) == 1
