"""The root: databases that cannot be used, --help and --version, help texts, colour."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
import typer.main
from typer.testing import CliRunner

from payretry import __version__
from payretry.cli import COMMANDS, app
from payretry.cli._lazy import LazyCommands, build, first_sentence
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

# databases that cannot be used


@pytest.mark.parametrize("command", [("list",), ("status", "t1"), ("stats",), ("run-due",)])
def test_database_in_a_missing_folder(command: tuple[str, ...]) -> None:
    result = run("--db", "sqlite:////nonexistent/dir/x.db", *command)
    assert_error(result, 1, "/nonexistent/dir")
    assert result.stderr.count("\n") == 1
    assert not Path("/nonexistent/dir").exists()


def test_database_in_a_missing_folder_json() -> None:
    result = run("--db", "sqlite:////nonexistent/dir/x.db", *queue_args("t1", "--json"))
    error = assert_json_error(result, 1, "store_error")
    assert "/nonexistent/dir" in error["message"]


def test_database_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not a database, just some bytes " * 100)
    assert_error(run("--db", f"sqlite:///{path}", "list"), 1, "junk.db")
    assert path.read_bytes().startswith(b"this is not a database")


def test_database_path_that_is_a_folder(tmp_path: Path) -> None:
    folder = tmp_path / "folder.db"
    folder.mkdir()
    assert_error(run("--db", f"sqlite:///{folder}", "list"), 1, "folder.db")


def test_database_url_that_is_not_a_url() -> None:
    assert_error(run("--db", "not a url", "list"), 2, "not a url")


def test_unreachable_server_hides_the_password() -> None:
    secret = "hunter2-Secret"
    result = run("--db", f"postgresql://bob:{secret}@127.0.0.1:1/pay", "list")
    assert_error(result, 1, "127.0.0.1")
    assert secret not in result.stderr + result.stdout
    assert result.stderr.count("\n") == 1, "one line on stderr"


FUTURE = "9999_from_the_future"


def test_database_written_by_a_newer_payretry_is_refused(invoke: Invoke, db_path: Path) -> None:
    queued(invoke, "t1")
    with sqlite3.connect(db_path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = ?", (FUTURE,))
    conn.close()
    for args in (("list",), ("status", "t1"), tuple(queue_args("t2")), ("db", "upgrade")):
        result = invoke(*args)
        assert_error(result, 1, "newer payretry", FUTURE, "upgrade")
        assert result.stdout == ""
    with sqlite3.connect(db_path) as conn:
        (count,) = conn.execute("SELECT count(*) FROM retry_jobs").fetchone()
        (version,) = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    conn.close()
    assert (count, version) == (1, FUTURE)


def test_debug_is_accepted(invoke: Invoke) -> None:
    queued(invoke, "t1")
    assert [j["transaction_id"] for j in jobs(invoke, "--state", "scheduled")] == ["t1"]
    ok(invoke("--debug", "status", "t1"))


# --help, --version, help texts


# What a command imports, counted as modules (not timed: a count does not depend on the load
# of the machine). The budgets are today's counts plus a little room; the wall-clock figures
# come from scripts/bench.py --sections cli.
_IMPORTS = (
    "import json, sys\n"
    "before = set(sys.modules)\n"
    "from payretry.cli import main\n"
    "try:\n"
    "    main(sys.argv[1:])\n"
    "except SystemExit as exc:\n"
    "    assert exc.code in (0, None), exc.code\n"
    "sys.stderr.write(json.dumps(sorted(set(sys.modules) - before)))\n"
)
# Never on these paths: the display library for --json and --help, the ORM layer, the
# migration tool (the schema version is read with one SELECT), the cloud and processor SDKs,
# the daemon's scheduler, the web and chart libraries.
NEVER = (
    "sqlmodel",
    "alembic",
    "stripe",
    "boto3",
    "botocore",
    "apscheduler",
    "fastapi",
    "starlette",
    "jinja2",
    "matplotlib",
    "segment",
    "datadog",
    "prometheus_client",
    "sqlalchemy.orm",
)
# --help needs the parser and the command table, nothing of the store, the settings, the
# domain or the output library.
HELP_MODULES = {
    "payretry",
    "payretry.errors",
    "payretry.cli",
    "payretry.cli._context",
    "payretry.cli._group",
    "payretry.cli._lazy",
    "payretry.cli._output",
    "payretry.cli._text",
}
HELP_BUDGET = 100  # modules imported beyond the interpreter's own (was 209)
STATUS_BUDGET = 215  # status --json on SQLite (was 548, then 429 with pydantic and SQLAlchemy's
# PostgreSQL dialect, then 370 with SQLAlchemy; it reads through sqlite3 now)
PAYRETRY_STATUS_BUDGET = 48  # payretry's own modules for status (was 79, then 65 with the store)


def _imported(*argv: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", _IMPORTS, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stderr.strip().splitlines()[-1]))


def _loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(n for n in names if any(m == n or m.startswith(n + ".") for m in modules))


def test_help_imports_only_the_command_table() -> None:
    modules = _imported("--help")
    assert _loaded(modules, (*NEVER, "rich", "pydantic", "sqlalchemy", "psycopg")) == []
    assert {m for m in modules if m.startswith("payretry")} == HELP_MODULES
    assert len(modules) <= HELP_BUDGET, len(modules)


def test_status_json_imports_no_display_orm_or_migration_library(db_path: Path) -> None:
    db = f"sqlite:///{db_path}"
    assert run("--db", db, *queue_args("t1")).exit_code == 0
    modules = _imported("--db", db, "status", "t1", "--json")
    # pydantic: typer's coercion, which text parameters skip (payretry/cli/_text.py);
    # SQLAlchemy and the tables: a SQLite file at this schema is read through sqlite3 alone
    # (payretry/store/sqlite_read.py; tests/contract/test_sqlite_reader.py).
    never = ("rich", "psycopg", "pydantic", "sqlalchemy", "payretry.store.tables")
    assert _loaded(modules, (*NEVER, *never)) == []
    assert "payretry.cli.status" in modules and "payretry.cli.queue" not in modules
    assert "payretry.store.sqlite_read" in modules
    assert len([m for m in modules if m.startswith("payretry")]) <= PAYRETRY_STATUS_BUDGET
    assert len(modules) <= STATUS_BUDGET, len(modules)


def test_queue_imports_no_pydantic(db_path: Path, tmp_path: Path) -> None:
    """Its parameters are texts, repeatable texts and flags (`--from-file` a text made a Path):
    typer's pydantic coercion (the import of pydantic and pydantic-core) is skipped."""
    db = f"sqlite:///{db_path}"
    assert run("--db", db, "list").exit_code == 0  # the schema, no job
    one = _imported("--db", db, *queue_args("t1"), "--metadata", "a=b", "--metadata", "c=d")
    rows = tmp_path / "rows.jsonl"
    rows.write_text(
        '{"transaction_id": "t2", "user_id": "u", "amount": "5.00", "currency": "USD", '
        '"error_code": "insufficient_funds"}\n'
    )
    many = _imported("--db", db, "queue", "--from-file", str(rows), "--json")
    for modules in (one, many):
        assert _loaded(modules, (*NEVER, "pydantic", "psycopg")) == []
    shown = run("--db", db, "status", "t1", "--json")
    assert json.loads(shown.stdout)["metadata"] == {"a": "b", "c": "d"}
    assert run("--db", db, "status", "t2").exit_code == 0


def test_run_due_with_nothing_due_stays_light(db_path: Path) -> None:
    db = f"sqlite:///{db_path}"
    assert run("--db", db, "list").exit_code == 0  # the schema, no job
    modules = _imported("--db", db, "run-due", "--json")
    assert _loaded(modules, (*NEVER, "rich", "psycopg", "sqlalchemy.dialects.postgresql")) == []
    assert "payretry.processors.simulated" in modules


def test_every_command_summary_is_its_help_first_sentence() -> None:
    """The root --help lists the summaries written in payretry/cli/__init__.py's COMMANDS
    (so that listing imports no command module): each must be what the command's own help
    begins with, as click would cut it."""
    root = typer.main.get_command(app)
    for entry in COMMANDS:
        built = build(entry.module, entry.name)
        assert entry.summary == first_sentence(built.help), (
            f"COMMANDS[{entry.name!r}].summary should be {first_sentence(built.help)!r}"
        )
    assert [e.name for e in COMMANDS] == list(getattr(root, "commands", {}))


def test_the_root_help_lists_a_command_no_module_was_imported_for() -> None:
    """Unknown-command suggestions and the listing see every command before any is built."""
    fresh = typer.main.get_command(app)
    commands = getattr(fresh, "commands", None)
    assert isinstance(commands, LazyCommands)
    result = CliRunner().invoke(app, ["requeue"])
    assert result.exit_code == 2
    assert "Did you mean 'queue'?" in result.stderr


def test_python_m_payretry_version() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "payretry", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"payretry {__version__}"


def test_version_in_process() -> None:
    result = ok(run("--version"))
    assert result.stdout.strip() == f"payretry {__version__}"


def test_no_command_shows_help() -> None:
    result = run()
    assert result.exit_code == 2  # usage: a command is required
    assert "Usage" in result.stdout + result.stderr
    assert "queue" in result.stdout + result.stderr


def test_unknown_command_and_option_are_usage_errors(invoke: Invoke) -> None:
    assert invoke("requeue").exit_code == 2
    result = invoke("list", "--colour")
    assert result.exit_code == 2
    assert "--colour" in result.stderr


def _walk(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """The root and every registered command, sub-groups included."""
    yield path, command
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        if not sub.hidden:
            yield from _walk(sub, (*path, name))


ALL_COMMANDS = dict(_walk(typer.main.get_command(app)))

DOCUMENTED_COMMANDS = {
    ("queue",),
    ("status",),
    ("list",),
    ("cancel",),
    ("retry",),
    ("run-due",),
    ("stats",),
    ("policy",),
    ("config",),
}


def test_every_documented_command_is_registered() -> None:
    assert DOCUMENTED_COMMANDS <= set(ALL_COMMANDS)


def test_root_help_lists_commands_and_options() -> None:
    result = ok(run("--help"))
    for path in ALL_COMMANDS:
        if len(path) == 1:
            assert path[0] in result.stdout
    for option in ("--db", "--config", "--version", "--debug"):
        assert option in result.stdout


@pytest.mark.parametrize("path", sorted(ALL_COMMANDS), ids=lambda p: " ".join(p) or "root")
def test_every_command_has_help_text(path: tuple[str, ...]) -> None:
    command = ALL_COMMANDS[path]
    summary = (command.help or "").strip()
    assert summary, f"payretry {' '.join(path)} has no help text"
    result = ok(run(*path, "--help"))
    assert result.stdout.startswith(" ".join(("Usage: payretry", *path)) + " ")
    # The docstring is what --help shows (compared without the wrapping).
    assert "".join(summary.split()) in "".join(result.stdout.split())


# colour


ANSI = re.compile(r"\x1b\[")
COLOUR_SGR = re.compile(r"\x1b\[[0-9;]*(?:3[0-9]|4[0-9]|9[0-7]|10[0-7])m")


def _outputs(invoke: Invoke, env: dict[str, str | None]) -> list[str]:
    results = [
        invoke(*args, env=env)
        for args in (
            ("status", "t1"),
            ("list",),
            ("policy",),
            ("status", "missing"),
            tuple(queue_args("t1", amount="1.00")),
        )
    ]
    return [result.stdout + result.stderr for result in results]


@pytest.mark.parametrize(
    "env",
    [
        pytest.param({"NO_COLOR": "1", "FORCE_COLOR": None}, id="no-color"),
        pytest.param(
            {"NO_COLOR": None, "FORCE_COLOR": None, "TERM": "xterm-256color"}, id="not-a-tty"
        ),
    ],
)
def test_no_escape_codes_when_not_a_terminal(invoke: Invoke, env: dict[str, str | None]) -> None:
    queued(invoke, "t1", "--metadata", "simulate=processing_error")
    ok(invoke("retry", "t1"))
    for output in _outputs(invoke, env):
        assert output.strip()
        assert not ANSI.search(output), repr(output[:200])


def test_no_colour_with_no_color_even_when_forced(invoke: Invoke) -> None:
    queued(invoke, "t1")
    env: dict[str, str | None] = {"NO_COLOR": "1", "FORCE_COLOR": "1", "TERM": "xterm-256color"}
    for output in _outputs(invoke, env):
        assert not COLOUR_SGR.search(output), repr(output[:200])


# internal errors


def test_internal_error_is_one_line_exit_1_and_debug_shows_it(
    invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    from payretry.cli import status

    def broken(jobs: object, transaction_id: str) -> None:
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(status, "job_status", broken)
    result = invoke("status", "t1")
    assert_error(result, 1, "internal error", "RuntimeError", "boom", "--debug")
    assert result.stderr.count("\n") == 1
    as_json = assert_json_error(invoke("status", "t1", "--json"), 1, "error")
    assert "RuntimeError" in as_json["message"]
    debug = invoke("--debug", "status", "t1")
    assert isinstance(debug.exception, RuntimeError)
    assert debug.exit_code == 1


def test_usage_errors_with_json_are_a_json_document(invoke: Invoke) -> None:
    result = invoke("list", "--json", "--limit", "0")
    assert result.exit_code == 2
    error = doc(result)["error"]
    assert error["kind"] == "usage" and error["exit_code"] == 2 and "--limit" in error["message"]
