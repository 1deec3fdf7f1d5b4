"""Hostile input at the command line (issue 11): every case exits as the README says, names
what was typed, stores nothing, and prints no card data, address or secret."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import (
    Invoke,
    assert_error,
    assert_json_error,
    doc,
    jobs,
    ok,
    queue_args,
    queued,
    run,
)

CARD = "4242424242424242"


def stored_text(db_path: Path) -> str:
    """Every text column of every row payretry stored, read back from the file."""
    with closing(sqlite3.connect(db_path)) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        values: list[str] = []
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"'):
                values += [str(v) for v in row if isinstance(v, str)]
    return "\n".join(values)


def one_line(result: Any) -> str:
    assert result.stderr.count("\n") == 1, result.stderr
    return str(result.stderr)


# --- card data and addresses ------------------------------------------------------------------


def test_an_error_message_is_stored_and_shown_redacted(invoke: Invoke, db_path: Path) -> None:
    message = (
        "card 4242.4242.4242.4242 / 4242\u00a04242\u00a04242\u00a04242 / "
        "4242  4242  4242  4242 of o'neil@example.com and bob@b\u00fccher.de declined"
    )
    job = queued(invoke, "t1", error_message=message)
    assert job["error_message"] == (
        "card [redacted-number] of [redacted-email] and [redacted-email] declined"
    )
    shown = ok(invoke("status", "t1")).stdout
    assert "4242" not in shown and "neil" not in shown and "bob" not in shown
    text = stored_text(db_path)
    assert "4242" not in text and "neil@" not in text and "bücher" not in text


def test_a_card_typed_into_any_field_is_never_echoed(invoke: Invoke, db_path: Path) -> None:
    mistyped = "4242 4242 4242 4241"  # Luhn-invalid: still card data, still not echoed
    for options in (
        {"amount": mistyped},
        {"currency": mistyped},
        {"window": mistyped},
        {"expires_at": mistyped},
        {"priority": mistyped},
        {"error_code": mistyped},
        {"decline_code": mistyped},
    ):
        result = invoke(*queue_args("t1", **options))
        assert result.exit_code == 2, (options, result.stderr)
        assert "4242" not in result.stderr and "4241" not in result.stderr, result.stderr
    assert not db_path.exists()
    result = invoke("status", CARD)
    assert_error(result, 4, "[redacted-number]")
    assert "4242" not in result.stderr


def test_stats_never_lists_a_card_as_a_failure_reason(invoke: Invoke) -> None:
    assert_error(invoke(*queue_args("t1", error_code=CARD)), 2, "error_code")
    queued(invoke, "t2")
    assert CARD not in ok(invoke("stats", "--json")).stdout


def test_an_argument_that_is_not_utf8_is_refused_naming_its_option(invoke: Invoke) -> None:
    bad = os.fsdecode(b"usr_\xff")  # what Python makes of a non-UTF-8 byte in argv
    result = invoke(*queue_args("t1", user_id=bad))
    assert_error(result, 2, "--user-id", "UTF-8")
    assert_error(invoke("status", os.fsdecode(b"t\xfe")), 2, "argument")


# --- --from-file --------------------------------------------------------------------------------


ROW = {
    "transaction_id": "f1",
    "user_id": "u1",
    "amount": "10.00",
    "currency": "USD",
    "error_code": "processing_error",
}


def _file(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("bad.jsonl", json.dumps(ROW).encode() + b'\n{"user_id": "\xff"}\n', "line 2: not UTF-8"),
        ("deep.jsonl", b"[" * 20_000 + b"]" * 20_000 + b"\n", "line 1: nested too deeply"),
        ("twice.jsonl", b'{"transaction_id": "a", "transaction_id": "b"}\n', "appears twice"),
        ("huge.jsonl", b'{"error_message": "' + b"x" * 200_000 + b'"}\n', "line 1: longer than"),
        ("nan.jsonl", b'{"amount_minor": NaN}\n', "NaN is not a JSON number"),
        ("long.jsonl", json.dumps({**ROW, "error_message": "m" * 3000}).encode(), "2,000"),
        (
            "card.jsonl",
            json.dumps({**ROW, "metadata": {"n": "4242.4242.4242.4242"}}).encode(),
            "card",
        ),
        ("bad.csv", b"transaction_id,user_id\nt1,u\xe9\n", "bad.csv, line 2: not UTF-8"),
        ("dup.csv", b"transaction_id,transaction_id\nt1,t2\n", "appears twice"),
    ],
)
def test_a_bad_file_exits_2_naming_the_line_and_creates_no_database(
    invoke: Invoke, db_path: Path, tmp_path: Path, name: str, content: bytes, needle: str
) -> None:
    path = _file(tmp_path / name, content)
    result = invoke("queue", "--from-file", str(path))
    assert_error(result, 2, needle)
    assert "internal error" not in result.stderr
    assert "4242" not in result.stderr
    assert_json_error(invoke("queue", "--from-file", str(path), "--json"), 2, "invalid_input")
    assert not db_path.exists(), "nothing written: not even an empty database"


def test_a_refused_file_on_a_fresh_path_creates_no_database(
    invoke: Invoke, db_path: Path, tmp_path: Path
) -> None:
    stolen = {**ROW, "error_code": "card_declined", "decline_code": "stolen_card"}
    path = _file(tmp_path / "r.jsonl", json.dumps(stolen).encode() + b"\n")
    assert_error(invoke("queue", "--from-file", str(path)), 3, "line 1", "stolen_card")
    assert_error(invoke(*queue_args("t1", error_code="card_declined")), 3, "not retryable")
    assert not db_path.exists()


def test_a_csv_with_a_byte_order_mark_is_read(invoke: Invoke, tmp_path: Path) -> None:
    header = ",".join(ROW)
    path = _file(
        tmp_path / "bom.csv", b"\xef\xbb\xbf" + f"{header}\n{','.join(ROW.values())}\n".encode()
    )
    assert doc(ok(invoke("queue", "--from-file", str(path), "--json")))["created"] == 1
    assert [j["transaction_id"] for j in jobs(invoke)] == ["f1"]


def test_a_fifty_megabyte_line_is_refused_at_once(
    invoke: Invoke, db_path: Path, tmp_path: Path
) -> None:
    path = tmp_path / "big.jsonl"
    with path.open("wb") as out:
        out.write(b'{"error_message": "')
        for _ in range(50):
            out.write(b"4242 " * 200_000)
        out.write(b'"}\n' + json.dumps(ROW).encode() + b"\n")
    started = time.perf_counter()
    result = invoke("queue", "--from-file", str(path))
    elapsed = time.perf_counter() - started
    assert_error(result, 2, "line 1: longer than")
    assert elapsed < 10, f"{elapsed:.1f}s: the line is skipped, not parsed"
    assert not db_path.exists()


# --- settings -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("RETRY_PROCESSING_INTERVAL", "99999999999999999999"),
        ("RETRY_LOCK_TIMEOUT", "99999999999999999999"),
        ("RETRY_LOCK_TIMEOUT", "0"),
        ("RETRY_LOCK_TIMEOUT", "999999999999"),
        ("PAYRETRY_RUNNER_PROCESSING_INTERVAL", "0"),
        ("PAYRETRY_RUNNER_RATE", "0/s"),
        ("PAYRETRY_DATABASE_URL", "sqlite:///"),
        ("PAYRETRY_DATABASE_URL", "sqlite:///:memory:"),
        ("PAYRETRY_DATABASE_URL", "postgresql://u:hunter2@db:abc/pay"),
    ],
)
def test_a_bad_variable_exits_2_naming_it_on_any_command(
    tmp_path: Path, variable: str, value: str
) -> None:
    for command in (queue_args("t1"), ["list"], ["config", "--json"]):
        result = run(*command, env={variable: value})
        assert_error(result, 2, f"environment variable {variable}")
        assert "internal error" not in result.stderr and "hunter2" not in result.stderr
    assert list(tmp_path.iterdir()) == [], "no database file anywhere"


def test_an_empty_or_in_memory_database_flag_is_refused_naming_db(tmp_path: Path) -> None:
    for url in ("sqlite:///", "sqlite://", "sqlite:///:memory:"):
        result = run("--db", url, *queue_args("t1", "--json"))
        error = assert_json_error(result, 2, "invalid_input", "--db")
        assert "lost" in error["message"]
    assert list(tmp_path.iterdir()) == []


def test_an_in_memory_database_when_explicitly_asked_for() -> None:
    env = {"PAYRETRY_DATABASE_ALLOW_MEMORY": "true"}
    result = run("--db", "sqlite:///:memory:", *queue_args("t1", "--json"), env=env)
    assert doc(ok(result))["created"] is True


def test_a_postgresql_url_with_a_non_numeric_port(tmp_path: Path) -> None:
    result = run("--db", "postgresql://app:hunter2@db.example:abc/pay", "list", "--json")
    error = assert_json_error(result, 2, "invalid_input", "--db")
    assert "port must be a number" in error["message"]
    assert "hunter2" not in result.stdout + result.stderr
    assert "internal error" not in result.stderr


def test_a_password_in_the_query_is_never_printed(tmp_path: Path) -> None:
    url = "postgresql+psycopg://nobody@127.0.0.1:1/test?password=hunter2&sslpassword=k3y"
    result = run("--db", url, "list", "--json")  # port 1: refused at once
    assert_json_error(result, 1, "store_error")
    assert "password=***" in result.stderr
    for secret in ("hunter2", "k3y"):
        assert secret not in result.stdout + result.stderr
    shown = run("config", "--json", env={"PAYRETRY_DATABASE_URL": url})
    rows = {r["key"]: r["value"] for r in doc(ok(shown))["settings"]}
    assert rows["database.url"] == (
        "postgresql+psycopg://nobody@127.0.0.1:1/test?password=***&sslpassword=***"
    )
    assert "hunter2" not in shown.stdout and "k3y" not in shown.stdout


def test_config_masks_show_no_character_of_a_secret() -> None:
    env = {"STRIPE_API_KEY": "sk_live_abcdefgh12345678", "PAYRETRY_WEBHOOK_SECRET": "w" * 40}
    shown = ok(run("config", "--json", env=env)).stdout
    rows = {r["key"]: r["value"] for r in json.loads(shown)["settings"]}
    assert rows["stripe.api_key"] == "***" and rows["webhook.secret"] == "***"
    assert "sk_" not in shown and "www" not in shown


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["purge", "--older-than", "-1d"], "--older-than"),
        (["purge", "--older-than", "4242424242424242s"], "--older-than"),
        (["serve", "--interval", "abc"], "--interval"),
        (["serve", "--interval", "0"], "--interval"),
        (["serve", "--interval", "0.01s"], "--interval"),
        (["run-due", "--rate", "0/s"], "--rate"),
        (["run-due", "--rate", "-5/s"], "--rate"),
        (["run-due", "--rate", "1_000/s"], "--rate"),
        (["health", "--max-due-age", "0s"], "--max-due-age"),
        (["top", "--interval", "0"], "--interval"),
        (["list", "--limit", "99999999999999999999"], "--limit"),
        (["run-due", "--metrics-textfile", "x\x1b.prom"], "--metrics-textfile"),
    ],
)
def test_a_bad_flag_is_named_as_typed_and_nothing_happens(
    invoke: Invoke, db_path: Path, args: list[str], flag: str
) -> None:
    result = invoke(*args)
    assert_error(result, 2, flag)
    assert "4242" not in result.stderr
    assert not db_path.exists()


def test_a_stripe_key_with_a_line_break_shows_none_of_it(tmp_path: Path) -> None:
    key = "sk_test_abcdef\nTAILSECRET"
    result = run("stripe", "check", "--json", env={"STRIPE_API_KEY": key})
    assert_json_error(result, 2, "config_error")
    assert "TAILSECRET" not in result.stdout + result.stderr
    assert "abcdef" not in result.stdout + result.stderr
    key_file = tmp_path / "stripe.key"
    key_file.write_text("sk_test_abcdef TAILSECRET\n")
    key_file.chmod(0o600)
    result = run("stripe", "check", env={"PAYRETRY_STRIPE_API_KEY_FILE": str(key_file)})
    assert_error(result, 2, "whitespace")
    assert "TAILSECRET" not in result.stdout + result.stderr


# --- parser errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["list", "--json", "--bogus"], "--bogus"),
        (["--bogus", "list", "--json"], "--bogus"),
        (["list", "--json", "--limit", "0"], "--limit"),
        (["list", "--json", "--limit", "many"], "--limit"),
        (["status", "--json"], "transaction_id"),
        (["run-due", "--json", "--concurrency", "999"], "--concurrency"),
        (["list", "--json", "extra"], None),
    ],
)
def test_a_parser_error_under_json_is_one_document(
    invoke: Invoke, args: list[str], field: str | None
) -> None:
    result = invoke(*args)
    error = assert_json_error(result, 2, "usage", field)
    assert error["field"] == field
    assert result.stdout.count('"error"') == 1
    line = one_line(result)
    assert line.startswith("error: ") and "Usage:" not in line


@pytest.mark.parametrize(
    ("args", "hint"),
    [
        (["list", "--bogus"], "Try 'payretry list --help' for help."),
        (["--bogus"], "Try 'payretry --help' for help."),
        (["events", "list", "--limit", "x"], "Try 'payretry events list --help' for help."),
        (["queue", "--amount"], "Try 'payretry queue --help' for help."),
    ],
)
def test_a_parser_error_is_one_line_and_the_hint(
    invoke: Invoke, args: list[str], hint: str
) -> None:
    result = invoke(*args)
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 2, result.stderr
    assert lines[0].startswith("error: ") and lines[1] == hint
    assert result.stdout == ""


def test_json_mode_does_not_leak_into_the_next_command(invoke: Invoke) -> None:
    ok(invoke("list", "--json"))
    result = invoke("list", "--bogus")
    assert result.stdout == "" and "Try 'payretry list --help'" in result.stderr


def test_a_valid_job_survives_a_hostile_repeat(invoke: Invoke) -> None:
    before = queued(invoke, "t1")
    for options in ({"priority": "+5"}, {"error_message": "x" * 2001}, {"user_id": "u\u200b1"}):
        assert invoke(*queue_args("t1", **options)).exit_code == 2
    assert [j["job_id"] for j in jobs(invoke)] == [before["job_id"]]
