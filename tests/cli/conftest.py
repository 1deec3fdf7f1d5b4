"""Helpers for the CLI tests: run `payretry` in-process against a SQLite file in tmp."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import pytest
import typer.main
import typer.testing
from freezegun import freeze_time
from typer.testing import CliRunner, Result

from payretry.cli import app

NOW = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
NOW_Z = "2026-11-22T12:00:00Z"

# The fields every job in --json output carries (issue 2, "CLI").
JOB_KEYS = {
    "transaction_id",
    "user_id",
    "state",
    "amount_minor",
    "currency",
    "error_code",
    "decline_code",
    "attempt_count",
    "max_attempts",
    "attempts_remaining",
    "retry_available",
    "next_retry_at",
    "expires_at",
    "priority",
    "attempts",
}
ATTEMPT_KEYS = {"number", "outcome", "error_code", "started_at", "idempotency_key"}


_COMMAND = typer.main.get_command(app)


@pytest.fixture(autouse=True)
def _build_the_command_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Typer rebuilds the click command from the app's signatures on every CliRunner.invoke,
    about two thirds of an invocation's time here. Build it once for the whole CLI suite."""
    real = getattr(typer.testing, "_get_command", None)
    if real is None:  # a typer without this seam: just slower
        return

    def get_command(given: typer.Typer) -> Any:
        return _COMMAND if given is app else real(given)

    monkeypatch.setattr(typer.testing, "_get_command", get_command)


class Invoke(Protocol):
    def __call__(self, *args: str, env: Mapping[str, str | None] | None = None) -> Result: ...


class Clock(Protocol):
    """freezegun's frozen clock, as far as these tests use it."""

    def tick(self, delta: float = ...) -> Any: ...

    def move_to(self, target_datetime: Any) -> None: ...


def run(*args: str, env: Mapping[str, str | None] | None = None, db: str | None = None) -> Result:
    """`payretry [--db DB] ARGS...` in-process; stdout and stderr come back separately."""
    argv = (["--db", db] if db else []) + list(args)
    return CliRunner().invoke(app, argv, env=env)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "p.db"


@pytest.fixture
def invoke(db_path: Path) -> Invoke:
    """`invoke("queue", ...)` runs payretry with `--db sqlite:///<tmp>/p.db`."""
    url = f"sqlite:///{db_path}"

    def call(*args: str, env: Mapping[str, str | None] | None = None) -> Result:
        return run(*args, env=env, db=url)

    return call


@pytest.fixture
def clock() -> Iterator[Clock]:
    """Time frozen at NOW (2026-11-22T12:00:00Z) for the whole test; tick() moves it on."""
    with freeze_time(NOW) as frozen:
        yield frozen


def queue_args(txn: str = "txn_1", *extra: str, **options: str) -> list[str]:
    """Arguments of a valid `queue` call; keyword options override the defaults
    (`decline_code="x"` becomes `--decline-code x`); `extra` is appended as is."""
    values = {
        "error_code": "processing_error",
        "user_id": "user_1",
        "amount": "99.99",
        "currency": "USD",
        **options,
    }
    args = ["queue", txn]
    for name, value in values.items():
        args += [f"--{name.replace('_', '-')}", value]
    return args + list(extra)


def doc(result: Result) -> Any:
    """The JSON document on stdout (fails the test with stderr shown if it is not JSON)."""
    try:
        return json.loads(result.stdout)
    except json.JSONDecodeError as exc:  # pragma: no cover - a failure report
        raise AssertionError(
            f"stdout is not one JSON document ({exc}); exit {result.exit_code}\n"
            f"stdout: {result.stdout!r}\nstderr: {result.stderr!r}"
        ) from None


def ok(result: Result) -> Result:
    """Assert exit 0 (showing both streams if not) and return the result."""
    assert result.exit_code == 0, (
        f"exit {result.exit_code}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    )
    return result


def jobs(invoke: Invoke, *args: str) -> list[dict[str, Any]]:
    """Every stored job (`list --json`), newest first."""
    listed: list[dict[str, Any]] = doc(ok(invoke("list", "--json", *args)))["jobs"]
    return listed


def queued(invoke: Invoke, txn: str = "txn_1", *extra: str, **options: str) -> dict[str, Any]:
    """Queue a job that must be accepted; its --json document."""
    document: dict[str, Any] = doc(ok(invoke(*queue_args(txn, *extra, "--json", **options))))
    return document


def assert_error(result: Result, exit_code: int, *needles: str) -> None:
    """A failure: the exit code, a one-line message on stderr naming each needle, no traceback."""
    assert result.exit_code == exit_code, (
        f"expected exit {exit_code}, got {result.exit_code}\n"
        f"stdout: {result.stdout}\nstderr: {result.stderr}"
    )
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stderr.strip(), "the error message belongs on stderr"
    for needle in needles:
        assert needle in result.stderr, f"{needle!r} not in stderr: {result.stderr!r}"


def assert_json_error(
    result: Result, exit_code: int, kind: str, field: str | None = None
) -> dict[str, Any]:
    """The --json error document: {"error": {"kind", "message", "field", "exit_code"}}."""
    assert result.exit_code == exit_code, (result.stdout, result.stderr)
    document = doc(result)
    assert set(document) == {"error"}
    error: dict[str, Any] = document["error"]
    assert {"kind", "message", "field", "exit_code"} <= set(error)
    assert error["kind"] == kind
    assert error["exit_code"] == exit_code
    assert isinstance(error["message"], str) and error["message"]
    if field is not None:
        assert error["field"] == field
    return error
