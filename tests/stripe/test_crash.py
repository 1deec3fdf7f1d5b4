"""A `payretry run-due` process killed after its request reached Stripe but before the outcome
was stored: the next run re-sends the attempt with the same key, Stripe replays its first answer,
and the customer is charged exactly once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.stripe.conftest import ROOT, stripe_env
from tests.stripe.emulator import Emulator, Fault

pytestmark = pytest.mark.slow  # payretry processes of their own


def payretry(db: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "payretry", "--db", f"sqlite:///{db}", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=60)
    return process.returncode, out, err


def test_a_crash_mid_attempt_is_replayed_with_the_same_key_and_charges_once(
    emulator: Emulator, tmp_path: Path
) -> None:
    db = tmp_path / "p.db"
    env = stripe_env(
        emulator.url,
        PAYRETRY_DATABASE_LOCK_TIMEOUT="1s",
        PAYRETRY_DATABASE_ALLOW_SHORT_LEASE="true",
        PAYRETRY_STRIPE_READ_TIMEOUT="20s",
    )
    code, _, err = finish(
        payretry(
            db,
            env,
            "queue",
            "t-crash",
            "--error-code",
            "network_error",
            "--user-id",
            "u1",
            "--amount",
            "120.00",
            "--currency",
            "EUR",
            "--customer",
            "cus_9",
            "--payment-method",
            "pm_card",
        )
    )
    assert code == 0, err
    hold = threading.Event()
    emulator.fault("POST /v1/payment_intents", Fault(hold=hold))  # Stripe charges, then stalls
    runner = payretry(db, env, "run-due", "--processor", "stripe", "--json")
    deadline = time.monotonic() + 30
    while not emulator.state.charges and time.monotonic() < deadline:
        time.sleep(0.02)
    assert emulator.state.charges, "the request never reached the emulator"
    runner.kill()  # SIGKILL: the outcome is never written
    runner.communicate(timeout=10)
    hold.set()
    (key,) = emulator.state.charges
    assert len(emulator.succeeded("t-crash")) == 1
    time.sleep(1.2)  # the 1 s lease lapses
    code, out, err = finish(payretry(db, env, "run-due", "--processor", "stripe", "--json"))
    assert code == 0, err
    report = json.loads(out)
    assert report["rescued"] == 1 and report["succeeded"] == 1, report
    creates = emulator.requests("POST", "/v1/payment_intents")
    assert [(r.key, r.replayed) for r in creates] == [(key, False), (key, True)]
    assert emulator.state.charges[key] == 1  # exactly one charge
    assert len(emulator.succeeded("t-crash")) == 1
    code, out, _ = finish(payretry(db, env, "status", "t-crash", "--json"))
    status = json.loads(out)
    assert status["state"] == "succeeded"
    assert [a["idempotency_key"] for a in status["attempts"]] == [key]
    assert status["attempts"][0]["reference"] == emulator.succeeded("t-crash")[0]["id"]
