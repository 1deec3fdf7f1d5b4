"""The fuzz suite's Hypothesis settings, as named profiles (applied per test, never globally,
so the rest of the suite keeps its own settings).

- `payretry-fuzz` (default): 100 examples per property, no deadline (the machine is shared).
- `payretry-fuzz-ci` (under CI): the same fixed number, derandomized, no example database;
  the whole suite runs in well under a minute on a loaded 2-core machine.
- `payretry-fuzz-long`: 2,000 examples, for a search by hand:
  `PAYRETRY_FUZZ_PROFILE=payretry-fuzz-long .venv/bin/pytest tests/fuzz`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import typer.main
import typer.testing
from hypothesis import HealthCheck, settings

from payretry.cli import app

_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
settings.register_profile(
    "payretry-fuzz", max_examples=100, deadline=None, suppress_health_check=_QUIET
)
settings.register_profile(
    "payretry-fuzz-ci",
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=_QUIET,
)
settings.register_profile(
    "payretry-fuzz-long", max_examples=2000, deadline=None, suppress_health_check=_QUIET
)
PROFILE = os.environ.get("PAYRETRY_FUZZ_PROFILE") or (
    "payretry-fuzz-ci" if os.environ.get("CI") else "payretry-fuzz"
)
FUZZ = settings(settings.get_profile(PROFILE))
# Through the whole CLI (a database per example): half as many.
FUZZ_CLI = settings(FUZZ, max_examples=max(10, (FUZZ.max_examples or 100) // 2))

_COMMAND = typer.main.get_command(app)


@pytest.fixture(autouse=True, scope="module")
def _build_the_command_once() -> Iterator[None]:
    """As in tests/cli: the click command built once, not on every CliRunner.invoke."""
    real = getattr(typer.testing, "_get_command", None)
    if real is None:  # a typer without this seam: just slower
        yield
        return

    def get_command(given: typer.Typer) -> Any:
        return _COMMAND if given is app else real(given)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(typer.testing, "_get_command", get_command)
        yield
