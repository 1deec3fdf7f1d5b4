"""The row parser: JSON Lines and CSV read strictly, every problem a row error or an
InvalidInput naming the file and line, never an internal error; fields bounded and checked."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from payretry.domain.validation import MAX_MESSAGE_INPUT, MAX_MESSAGE_LENGTH
from payretry.errors import InvalidInput
from payretry.service.intake import MAX_LINE, new_job, read_rows
from tests.conftest import NOW

GOOD = {
    "transaction_id": "t1",
    "user_id": "u1",
    "amount": "10.00",
    "currency": "USD",
    "error_code": "processing_error",
}


def rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    return list(read_rows(path))


def field_of(**changes: Any) -> str | None:
    with pytest.raises(InvalidInput) as caught:
        new_job({**GOOD, **changes}, now=NOW)
    return caught.value.field


# --- JSON Lines ---------------------------------------------------------------------------


def test_a_line_that_is_not_utf8_is_a_row_error_naming_its_line(tmp_path: Path) -> None:
    path = tmp_path / "jobs.jsonl"
    path.write_bytes(json.dumps(GOOD).encode() + b'\n{"transaction_id": "t\xff"}\n')
    found = rows(path)
    assert found[0] == (1, GOOD)
    assert found[1][0] == 2 and "not UTF-8" in found[1][1]["__error__"]
    assert "0xff" in found[1][1]["__error__"]


def test_a_byte_order_mark_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "jobs.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(GOOD).encode() + b"\n")
    assert rows(path) == [(1, GOOD)]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("[" * 100_000 + "]" * 100_000, "longer than"),  # beyond one line's limit
        ("[" * 30_000 + "]" * 30_000, "nested too deeply"),  # was a RecursionError
        ('{"a": ' * 5000 + "1" + "}" * 5000, "nested too deeply"),
        ('{"transaction_id": "a", "transaction_id": "b"}', "key 'transaction_id' appears twice"),
        ('{"metadata": {"k": 1, "k": 2}}', "key 'k' appears twice"),
        ('{"priority": ' + "9" * 5000 + "}", "a number too long"),  # was a ValueError
        ('{"amount_minor": NaN}', "NaN is not a JSON number"),
        ('{"priority": Infinity}', "Infinity is not a JSON number"),
        ('{"a": "b"', "not valid JSON"),
        ('"just a string"', "not a JSON object"),
    ],
)
def test_hostile_json_lines_are_row_errors(tmp_path: Path, line: str, problem: str) -> None:
    path = tmp_path / "jobs.jsonl"
    path.write_text(line + "\n" + json.dumps(GOOD) + "\n", encoding="utf-8")
    found = rows(path)
    assert problem in found[0][1]["__error__"], found[0]
    assert found[1] == (2, GOOD)  # the next line is still read


def test_a_card_number_as_a_duplicate_key_is_not_echoed(tmp_path: Path) -> None:
    path = tmp_path / "jobs.jsonl"
    path.write_text('{"4242424242424242": 1, "4242424242424242": 2}\n', encoding="utf-8")
    assert "4242" not in rows(path)[0][1]["__error__"]


def test_an_endless_line_stops_the_reading(tmp_path: Path) -> None:
    path = tmp_path / "zero.jsonl"
    path.write_bytes(b"\0" * (MAX_LINE * 3))  # no newline: skipped, reported, not parsed
    found = rows(path)
    assert found == [(1, {"__error__": f"longer than {MAX_LINE:,} bytes"})]


# --- CSV ----------------------------------------------------------------------------------


def _csv(path: Path, text: str | bytes) -> Path:
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    return path


def test_a_csv_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    path = _csv(
        tmp_path / "jobs.csv",
        "\ufefftransaction_id,user_id,amount,currency,error_code\nt1,u1,10.00,USD,processing_error\n",
    )
    assert rows(path) == [(2, GOOD)]


def test_a_csv_line_not_utf8_names_the_file_and_line(tmp_path: Path) -> None:
    path = _csv(
        tmp_path / "jobs.csv",
        b"transaction_id,user_id,amount,currency,error_code\nt1,u\xe9,1.00,USD,x\n",
    )
    with pytest.raises(InvalidInput, match=r"jobs.csv, line 2: not UTF-8") as caught:
        rows(path)
    assert caught.value.field == "--from-file"


def test_csv_duplicate_or_extra_columns(tmp_path: Path) -> None:
    path = _csv(tmp_path / "a.csv", "transaction_id,transaction_id\nt1,t2\n")
    with pytest.raises(InvalidInput, match="column 'transaction_id' appears twice"):
        rows(path)
    path = _csv(tmp_path / "b.csv", "transaction_id,user_id\nt1,u1,extra\n")
    assert "3 values for 2 columns" in rows(path)[0][1]["__error__"]


def test_a_csv_field_beyond_the_csv_limit_names_the_file_and_line(tmp_path: Path) -> None:
    big = '"' + ("x" * 60_000 + "\n") * 3 + '"'  # one quoted field over several lines
    path = _csv(tmp_path / "c.csv", f"transaction_id,user_id\n{big},u1\nt2,u2\n")
    with pytest.raises(InvalidInput, match=r"c.csv, line \d+: not valid CSV") as caught:
        rows(path)
    assert caught.value.field == "--from-file"


def test_an_unknown_csv_column_that_looks_like_a_card_is_not_echoed(tmp_path: Path) -> None:
    path = _csv(tmp_path / "d.csv", "transaction_id,4242 4242 4242 4242\nt1,x\n")
    with pytest.raises(InvalidInput, match="unknown column") as caught:
        rows(path)
    assert "4242" not in str(caught.value)


# --- fields -------------------------------------------------------------------------------


@pytest.mark.parametrize("priority", ["1_000", "+5", " 7 ", "\u0667", "\uff17", "5.0", "1e3", ""])
def test_priority_is_digits_only_as_amount_is(priority: str) -> None:
    if priority == "":
        assert new_job({**GOOD, "priority": priority}, now=NOW).priority is None
        return
    assert field_of(priority=priority) == "priority"


def test_priority_forms_accepted() -> None:
    assert new_job({**GOOD, "priority": "-5"}, now=NOW).priority == -5
    assert new_job({**GOOD, "priority": 7}, now=NOW).priority == 7
    assert field_of(priority=4242424242424242) == "priority"  # a card number as a priority
    assert field_of(priority=True) == "priority"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"error_message": "x" * (MAX_MESSAGE_INPUT + 1)}, "error_message"),
        ({"transaction_id": "t" * 1_000_000}, "transaction_id"),  # refused unread
        ({"metadata": "{" * 20_000}, "metadata"),
        ({"metadata": '{"k": "a", "k": "b"}'}, "metadata"),
        ({"metadata": "[" * 5_000 + "]" * 5_000}, "metadata"),
        ({"amount": None, "amount_minor": "9" * 5000}, "amount_minor"),
        ({"amount": None, "amount_minor": "\u0661\u0662"}, "amount_minor"),
        ({"amount": "\u0661\u0662"}, "amount"),
        ({"currency": "u\u017fd"}, "currency"),  # upper-cases to USD
        ({"expires_at": "0001-01-01T00:00:00+14:00"}, "expires_at"),  # was an OverflowError
        ({"expires_at": "9999-12-31T23:59:59-14:00"}, "expires_at"),
        ({"expires_at": "2500-01-01T00:00:00Z"}, "expires_at"),  # more than 10 years ahead
        ({"expires_at": "\u0662026-11-22T10:00:00Z"}, "expires_at"),
        ({"window": "\u0665m"}, "window"),
        ({"error_code": "4242 4242 4242 4242"}, "error_code"),
        ({"decline_code": "4242424242424242"}, "decline_code"),
        ({"transaction_id": "txn\u200b1"}, "transaction_id"),
        ({"customer": "cus_\u202e1"}, "customer"),
        ({"metadata": {"4242.4242.4242.4242": "x"}}, "metadata"),
        ({"metadata": {"note": "4242\u00a04242\u00a04242\u00a04242"}}, "metadata.note"),
        ({"metadata": {"owner": "bob@b\u00fccher.de"}}, "metadata.owner"),
    ],
)
def test_hostile_fields_name_the_field(changes: dict[str, Any], field: str) -> None:
    assert field_of(**changes) == field


def test_an_unknown_field_that_looks_like_a_card_is_not_echoed_nor_named() -> None:
    with pytest.raises(InvalidInput) as caught:
        new_job({**GOOD, "4242424242424242": "x"}, now=NOW)
    assert "4242" not in str(caught.value)
    assert caught.value.field is None


def test_an_error_message_is_stored_redacted_and_shortened() -> None:
    job = new_job(
        {**GOOD, "error_message": "card 4242.4242.4242.4242 of o'neil@example.com declined"},
        now=NOW,
    )
    assert job.error_message == "card [redacted-number] of [redacted-email] declined"
    long = new_job({**GOOD, "error_message": "y" * MAX_MESSAGE_INPUT}, now=NOW)
    assert long.error_message is not None and len(long.error_message) == MAX_MESSAGE_LENGTH


def test_a_megabyte_field_is_refused_at_once() -> None:
    for name in ("error_message", "transaction_id", "metadata", "amount", "window"):
        started = time.perf_counter()
        assert field_of(**{name: "4" * 1_000_000}) == name
        assert time.perf_counter() - started < 1.0


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero")
def test_an_endless_file_is_refused_not_read_forever() -> None:
    started = time.perf_counter()
    with pytest.raises(InvalidInput, match="stopped reading") as caught:
        rows(Path("/dev/zero"))
    assert caught.value.field == "--from-file"
    assert time.perf_counter() - started < 10
