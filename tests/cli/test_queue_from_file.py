"""payretry queue --from-file: JSON Lines or CSV, all rows or none."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.cli.conftest import (
    Clock,
    Invoke,
    assert_error,
    assert_json_error,
    doc,
    jobs,
    ok,
    queued,
)


def _row(txn: str, **changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "transaction_id": txn,
        "user_id": "user_1",
        "amount": "10.00",
        "currency": "USD",
        "error_code": "processing_error",
    }
    row.update(changes)
    return row


def _jsonl(path: Path, *rows: dict[str, Any] | str) -> Path:
    lines = [row if isinstance(row, str) else json.dumps(row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_jsonl_inserts_every_row(invoke: Invoke, tmp_path: Path, clock: Clock) -> None:
    path = _jsonl(
        tmp_path / "jobs.jsonl",
        _row("t1"),
        _row("t2", amount="1000", currency="JPY", window="2h"),
        _row("t3", metadata={"order": "7"}, decline_code="insufficient_funds"),
        "",  # blank lines are skipped
        _row("t4", amount_minor=250, amount=None, priority=9),
    )
    result = ok(invoke("queue", "--from-file", str(path), "--json"))
    assert doc(result) == {"rows": 4, "created": 4, "existing": 0}
    stored = {j["transaction_id"]: j for j in jobs(invoke)}
    assert set(stored) == {"t1", "t2", "t3", "t4"}
    assert stored["t2"]["amount_minor"] == 1000
    assert stored["t2"]["expires_at"] == "2026-11-22T14:00:00Z"
    assert stored["t3"]["metadata"] == {"order": "7"}
    assert stored["t3"]["next_retry_at"] == "2026-11-23T12:00:00Z"
    assert stored["t4"]["amount_minor"] == 250
    assert stored["t4"]["priority"] == 9


def test_jsonl_human_output_and_rerun_is_idempotent(invoke: Invoke, tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "jobs.jsonl", _row("t1"), _row("t2"))
    first = ok(invoke("queue", "--from-file", str(path)))
    assert "Queued 2 job(s)" in first.stdout
    again = ok(invoke("queue", "--from-file", str(path), "--json"))
    assert doc(again) == {"rows": 2, "created": 0, "existing": 2}
    assert len(jobs(invoke)) == 2


def test_csv_inserts_every_row(invoke: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "jobs.csv"
    path.write_text(
        "transaction_id,user_id,amount,currency,error_code,decline_code,metadata\n"
        "c1,u1,5.00,USD,network_error,,\n"
        'c2,u2,12.5,EUR,card_declined,insufficient_funds,"{""order"": ""9""}"\n'
        "c3,u3,300,JPY,service_unavailable,,\n",
        encoding="utf-8",
    )
    result = ok(invoke("queue", "--from-file", str(path), "--json"))
    assert doc(result)["created"] == 3
    stored = {j["transaction_id"]: j for j in jobs(invoke)}
    assert stored["c2"]["amount_minor"] == 1250
    assert stored["c2"]["decline_code"] == "insufficient_funds"
    assert stored["c2"]["metadata"] == {"order": "9"}
    assert stored["c3"]["currency"] == "JPY"
    assert stored["c1"]["decline_code"] is None


def test_jsonl_bad_rows_are_each_reported_and_nothing_written(
    invoke: Invoke, tmp_path: Path
) -> None:
    path = _jsonl(
        tmp_path / "jobs.jsonl",
        _row("good1"),
        _row("bad_amount", amount="-1"),
        "{not json",
        _row("bad_currency", currency="ZZZ"),
        _row("good2"),
        _row("bad_meta", metadata={"card": "4242 4242 4242 4242"}),
        '["a", "list"]',
        _row("bad_number", amount=12.5),  # a JSON number loses precision: refused
    )
    result = invoke("queue", "--from-file", str(path))
    assert_error(result, 2, "line 2", "line 3", "line 4", "line 6", "line 7", "line 8")
    for needle in ("amount", "currency", "metadata.card", "nothing written"):
        assert needle in result.stderr
    assert "line 1:" not in result.stderr and "line 5:" not in result.stderr
    error = assert_json_error(
        invoke("queue", "--from-file", str(path), "--json"), 2, "invalid_input"
    )
    assert "line 2" in error["message"] and "line 8" in error["message"]
    assert jobs(invoke) == []


def test_csv_bad_row_reported_with_its_file_line(invoke: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "jobs.csv"
    path.write_text(
        "transaction_id,user_id,amount,currency,error_code\n"
        "c1,u1,5.00,USD,network_error\n"
        "c2,u2,5.001,USD,network_error\n"
        "c3,u3,5.00,USD,network_error\n",
        encoding="utf-8",
    )
    result = invoke("queue", "--from-file", str(path))
    assert_error(result, 2, "line 3", "amount")
    assert "line 2:" not in result.stderr and "line 4:" not in result.stderr
    assert jobs(invoke) == []


def test_csv_unknown_column_is_invalid(invoke: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "jobs.csv"
    path.write_text(
        "transaction_id,user_id,amount,currency,error_code,card_number\n"
        "c1,u1,5.00,USD,network_error,4242\n",
        encoding="utf-8",
    )
    assert_error(invoke("queue", "--from-file", str(path)), 2, "card_number")
    assert jobs(invoke) == []


def test_jsonl_unknown_field_is_invalid(invoke: Invoke, tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "jobs.jsonl", _row("t1", email="x"))
    assert_error(invoke("queue", "--from-file", str(path)), 2, "line 1", "email")
    assert jobs(invoke) == []


def test_refused_row_alone_is_exit_3_and_nothing_written(invoke: Invoke, tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path / "jobs.jsonl",
        _row("good1"),
        _row("stolen", error_code="card_declined", decline_code="stolen_card"),
        _row("good2"),
    )
    result = invoke("queue", "--from-file", str(path))
    assert_error(result, 3, "line 2", "stolen_card")
    assert "line 1:" not in result.stderr
    assert_json_error(invoke("queue", "--from-file", str(path), "--json"), 3, "refused")
    assert jobs(invoke) == []


def test_refused_row_next_to_an_invalid_row_is_exit_2(invoke: Invoke, tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path / "jobs.jsonl",
        _row("stolen", error_code="card_declined"),
        _row("bad", amount="abc"),
    )
    assert_error(invoke("queue", "--from-file", str(path)), 2, "line 1", "line 2")
    assert jobs(invoke) == []


def test_row_conflicting_with_an_active_job_writes_nothing(invoke: Invoke, tmp_path: Path) -> None:
    queued(invoke, "t1", amount="10.00")
    path = _jsonl(tmp_path / "jobs.jsonl", _row("t0"), _row("t1", amount="11.00"))
    assert_error(invoke("queue", "--from-file", str(path)), 3, "line 2", "t1")
    assert [j["transaction_id"] for j in jobs(invoke)] == ["t1"]


def test_same_transaction_twice_in_a_file_with_different_parameters(
    invoke: Invoke, tmp_path: Path
) -> None:
    path = _jsonl(tmp_path / "jobs.jsonl", _row("t1"), _row("t1", amount="20.00"))
    result = invoke("queue", "--from-file", str(path))
    assert result.exit_code in (2, 3)
    assert "line 2" in result.stderr and "line 1" in result.stderr
    assert jobs(invoke) == []


def test_same_transaction_twice_in_a_file_with_same_parameters(
    invoke: Invoke, tmp_path: Path
) -> None:
    path = _jsonl(tmp_path / "jobs.jsonl", _row("t1"), _row("t1"))
    assert doc(ok(invoke("queue", "--from-file", str(path), "--json")))["created"] == 1
    assert len(jobs(invoke)) == 1


def test_missing_file_is_invalid(invoke: Invoke, tmp_path: Path) -> None:
    missing = tmp_path / "nope.jsonl"
    assert_error(invoke("queue", "--from-file", str(missing)), 2, "nope.jsonl")


def test_from_file_and_transaction_id_together_is_invalid(invoke: Invoke, tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "jobs.jsonl", _row("t1"))
    assert_error(invoke("queue", "t9", "--from-file", str(path)), 2, "--from-file")
    assert jobs(invoke) == []


def test_wrongly_typed_values_are_bad_rows_not_internal_errors(
    invoke: Invoke, tmp_path: Path
) -> None:
    path = _jsonl(
        tmp_path / "jobs.jsonl",
        _row("j1", amount=None, amount_minor="²"),  # str.isdigit() is true for "²"
        _row("j2", amount=None, amount_minor=12.5),
        _row("j3", currency=5),
        _row("j4", window=[1]),
        _row("j5", metadata=["not", "a", "map"]),
        _row("j6", priority=True),
    )
    result = invoke("queue", "--from-file", str(path))
    assert_error(result, 2, *(f"line {n}:" for n in range(1, 7)))
    assert "internal error" not in result.stderr
    csv_path = tmp_path / "jobs.csv"
    csv_path.write_text(
        "transaction_id,user_id,amount_minor,currency,error_code\nc1,u1,²,USD,network_error\n",
        encoding="utf-8",
    )
    assert_error(invoke("queue", "--from-file", str(csv_path)), 2, "line 2", "amount_minor")
    assert jobs(invoke) == []
