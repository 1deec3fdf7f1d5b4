"""`payretry cancel` of a job waiting on the customer, from the command line: exit 0 once its
Checkout Session is expired, 3 when it was already paid (the job succeeds instead), 1 when
Stripe cannot be reached (nothing changes); the simulated processor's own sessions too."""

from __future__ import annotations

import json
from pathlib import Path

from tests.stripe.conftest import stripe_env
from tests.stripe.emulator import Emulator, Fault
from tests.stripe.test_cli import _queue, cli


def _waiting(db: Path, emulator: Emulator, txn: str, env: dict[str, str]) -> str:
    _queue(db, txn, "--checkout-session", emulator.session({}), "--window", "3h")
    done = cli(db, "run-due", "--processor", "stripe", "--json", env=env)
    assert json.loads(done.stdout)["awaiting_payer"] == 1, done.stderr
    status = json.loads(cli(db, "status", txn, "--json").stdout)
    return str(status["customer_action"]["checkout_session"])


def _state(db: Path, txn: str) -> str:
    return str(json.loads(cli(db, "status", txn, "--json").stdout)["state"])


def test_cancel_exit_codes_against_stripe(emulator: Emulator, tmp_path: Path) -> None:
    db, env = tmp_path / "p.db", stripe_env(emulator.url)
    open_one = _waiting(db, emulator, "t-open", env)
    paid = _waiting(db, emulator, "t-paid", env)
    down = _waiting(db, emulator, "t-down", env)

    done = cli(db, "cancel", "t-open", "--processor", "stripe", env=env)
    assert done.exit_code == 0, done.stderr
    assert emulator.state.sessions[open_one]["status"] == "expired"

    intent = emulator.complete(paid)
    done = cli(db, "cancel", "t-paid", "--processor", "stripe", "--json", env=env)
    assert done.exit_code == 3
    error = json.loads(done.stdout)["error"]
    assert error["kind"] == "refused" and intent in error["message"]
    assert "already paid" in done.stderr
    assert _state(db, "t-paid") == "succeeded"

    emulator.fault(f"POST /v1/checkout/sessions/{down}/expire", Fault(status=500))
    done = cli(db, "cancel", "t-down", "--processor", "stripe", env=env)
    assert done.exit_code == 1 and "nothing was cancelled" in done.stderr
    assert _state(db, "t-down") == "awaiting_payer"
    assert emulator.state.sessions[down]["status"] == "open"


def test_cancel_of_a_simulated_checkout(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    _queue(db, "t-sim", "--metadata", "simulate=checkout")
    done = cli(db, "run-due", "--json")
    assert json.loads(done.stdout)["awaiting_payer"] == 1, done.stderr
    status = json.loads(cli(db, "status", "t-sim", "--json").stdout)
    assert status["customer_action"]["checkout_session"].startswith("sim_cs_")
    done = cli(db, "cancel", "t-sim")
    assert done.exit_code == 0, done.stderr
    assert _state(db, "t-sim") == "cancelled"
