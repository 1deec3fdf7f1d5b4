"""`payretry queue --from-file` under fuzzing, through the real CLI on a real SQLite file:
never an exception beyond the documented errors, never card data or an address stored (the
database read back), nothing at all written when the file is refused, and a megabyte field
handled at once."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import tempfile
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from typer.testing import CliRunner

from payretry.cli import app
from payretry.domain.validation import looks_like_card, looks_like_email
from payretry.service.intake import FIELDS, new_job, read_rows
from tests.conftest import NOW
from tests.fuzz.conftest import FUZZ_CLI
from tests.fuzz.strategies import addresses, cards, hostile_text

BASE = {
    "user_id": "u1",
    "amount": "10.00",
    "currency": "USD",
    "error_code": "processing_error",
}
_VALUE = st.one_of(
    hostile_text(30),
    cards(),
    addresses(),
    st.sampled_from(["1_000", "+5", " 7 ", "\u0667", "0001-01-01T00:00:00+14:00", "0/s"]),
    st.sampled_from(["stolen_card", "card_declined", "network_error", "24h", "0s", "-5m"]),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.none(),
)


def mostly(usual: st.SearchStrategy[Any], rare: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`usual` nine times in ten."""
    return st.integers(0, 9).flatmap(lambda n: usual if n else rare)


_MESSAGE = st.one_of(
    hostile_text(80), st.tuples(hostile_text(20), cards(), addresses()).map(" ".join)
)
# Mostly rows that are accepted (with card data and addresses in their messages, to be
# redacted), some with one field made hostile.
_ROW = st.builds(
    lambda txn, message, note, hostile: {
        "transaction_id": txn,
        "error_message": message,
        "metadata": {"note": note},
        **hostile,
    },
    mostly(st.sampled_from(["t1", "t2", "t3", "t\u00e9"]), hostile_text(12)),
    _MESSAGE,
    mostly(st.sampled_from(["A-17", "caf\u00e9", "x y"]), hostile_text(20)),
    mostly(
        st.just({}),
        st.dictionaries(st.sampled_from([*FIELDS, "amount_minor"]), _VALUE, min_size=1, max_size=1),
    ),
)


def _stored_texts(db: Path) -> list[str]:
    with closing(sqlite3.connect(db)) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        found: list[str] = []
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"'):
                found += [v for v in row if isinstance(v, str)]
        return found


def _write(folder: Path, rows: list[dict[str, Any]], form: str) -> Path:
    if form == "jsonl":
        path = folder / "rows.jsonl"
        lines = [json.dumps({**BASE, **row}, ensure_ascii=False) for row in rows]
        path.write_bytes("\n".join(lines).encode("utf-8", "surrogatepass"))
        return path
    path = folder / "rows.csv"
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[*FIELDS, "amount_minor"])
    writer.writeheader()
    for row in rows:
        flat = {**BASE, **row}
        if isinstance(flat.get("metadata"), dict):
            flat["metadata"] = json.dumps(flat["metadata"], ensure_ascii=False)
        writer.writerow({k: "" if v is None else v for k, v in flat.items()})
    path.write_bytes(buffer.getvalue().encode("utf-8", "surrogatepass"))
    return path


def _queue(db: Path, path: Path) -> Any:
    return CliRunner().invoke(
        app, ["--db", f"sqlite:///{db}", "queue", "--from-file", str(path), "--json"]
    )


@FUZZ_CLI
@given(rows=st.lists(_ROW, min_size=1, max_size=4), form=st.sampled_from(["jsonl", "csv"]))
def test_queue_from_file_stores_clean_rows_or_nothing(
    rows: list[dict[str, Any]], form: str
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        db = folder / "p.db"
        result = _queue(db, _write(folder, rows, form))
        output = result.stdout + result.stderr
        assert result.exit_code in (0, 2, 3), output
        assert "Traceback" not in output and "internal error" not in output, output
        for text in (result.stdout, result.stderr):
            assert not looks_like_card(text) and not looks_like_email(text), output
        document = json.loads(result.stdout)
        event(f"exit {result.exit_code}")
        if result.exit_code != 0:
            assert set(document) == {"error"}
            assert not db.exists(), "a refused file writes nothing, not even a database"
            return
        stored = _stored_texts(db)
        for text in stored:
            assert not looks_like_card(text) and not looks_like_email(text), text
        with closing(sqlite3.connect(db)) as conn:
            (count,) = conn.execute("SELECT count(*) FROM retry_jobs").fetchone()
        assert count == document["created"] >= 1


@pytest.mark.parametrize(
    "field", ["error_message", "transaction_id", "metadata", "amount", "window"]
)
def test_a_megabyte_field_is_handled_in_under_a_second(tmp_path: Path, field: str) -> None:
    """A bound, generous for a loaded machine: the intake refuses the field before reading it
    (a few milliseconds when idle); through the CLI, with the interpreter's start-up excluded."""
    big = "4242 " * 200_000  # a megabyte of card-like digits: the worst case to scan
    row = {**BASE, "transaction_id": "t1", field: big if field != "metadata" else {"k": big}}
    line = json.dumps(row)
    started = time.perf_counter()
    with pytest.raises(Exception) as caught:
        new_job({**BASE, "transaction_id": "t1", field: big}, now=NOW)
    assert time.perf_counter() - started < 1.0
    assert getattr(caught.value, "field", None) == field

    path = tmp_path / "big.jsonl"
    path.write_text(line + "\n", encoding="utf-8")
    started = time.perf_counter()
    found = list(read_rows(path))
    assert time.perf_counter() - started < 1.0
    assert "longer than" in found[0][1]["__error__"]

    db = tmp_path / "p.db"
    started = time.perf_counter()
    result = _queue(db, path)
    assert time.perf_counter() - started < 3.0
    assert result.exit_code == 2 and not db.exists()
    flag = (
        ["--" + field.replace("_", "-"), big] if field != "metadata" else ["--metadata", f"k={big}"]
    )
    args = ["queue", "t1", "--user-id", "u1", "--amount", "1", "--currency", "USD"]
    args += ["--error-code", "processing_error"] if field != "error_code" else []
    if field == "transaction_id":
        args[1] = big
        flag = []
    elif field == "amount":
        args[args.index("--amount") + 1] = big
        flag = []
    started = time.perf_counter()
    result = CliRunner().invoke(app, ["--db", f"sqlite:///{db}", *args, *flag])
    assert time.perf_counter() - started < 3.0
    assert result.exit_code == 2 and not db.exists()
    assert "4242" not in result.stderr
