"""The Stripe processor from the command line: `stripe check`, the key kept secret, run-due with
a bad key, the checkout URL in `status`, `[processor] name = "stripe"`."""

from __future__ import annotations

import json
import os
from pathlib import Path

from typer.testing import CliRunner, Result

from payretry.cli import app
from tests.stripe.conftest import stripe_env
from tests.stripe.emulator import KEY, Emulator


def cli(db: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(app, ["--db", f"sqlite:///{db}", *args], env=env)


def test_stripe_check_prints_the_account_and_mode(emulator: Emulator, tmp_path: Path) -> None:
    env = stripe_env(emulator.url)
    done = cli(tmp_path / "p.db", "stripe", "check", env=env)
    assert done.exit_code == 0, done.stderr
    assert "acct_emulated (Emulated shop), test mode" in done.stdout
    assert KEY not in done.stdout + done.stderr
    done = cli(tmp_path / "p.db", "stripe", "check", "--json", env=env)
    assert json.loads(done.stdout) == {
        "ok": True,
        "account": "acct_emulated",
        "name": "Emulated shop",
        "country": "US",
        "mode": "test",
        "api_base": emulator.url,
        "charges_enabled": True,
    }


def test_stripe_check_with_a_bad_key_exits_1_without_echoing_it(
    emulator: Emulator, tmp_path: Path
) -> None:
    env = stripe_env(emulator.url, STRIPE_API_KEY="sk_test_not_the_right_one_9876")
    done = cli(tmp_path / "p.db", "stripe", "check", env=env)
    assert done.exit_code == 1
    assert "Stripe refused the API key" in done.stderr
    assert "not_the_right" not in done.stderr + done.stdout and "9876" not in done.stderr


def test_stripe_check_when_stripe_is_unreachable(tmp_path: Path) -> None:
    env = stripe_env("http://127.0.0.1:9")  # nothing listens on the discard port
    done = cli(tmp_path / "p.db", "stripe", "check", env=env)
    assert done.exit_code == 1 and "cannot reach Stripe at http://127.0.0.1:9" in done.stderr


def test_the_key_is_masked_by_config(tmp_path: Path) -> None:
    env = {"STRIPE_API_KEY": "sk_test_supersecretvalue"}
    done = cli(tmp_path / "p.db", "config", "--json", env=env)
    assert done.exit_code == 0
    rows = {row["key"]: row for row in json.loads(done.stdout)["settings"]}
    assert rows["stripe.api_key"]["value"] == "***"  # no character of the secret
    assert rows["stripe.api_key"]["source"] == "env STRIPE_API_KEY"
    assert "supersecret" not in done.stdout
    human = cli(tmp_path / "p.db", "config", env=env)
    assert "supersecret" not in human.stdout


def test_a_key_file_must_be_mode_0600(emulator: Emulator, tmp_path: Path) -> None:
    key_file = tmp_path / "stripe.key"
    key_file.write_text(KEY + "\n")
    os.chmod(key_file, 0o644)
    env = {
        **stripe_env(emulator.url),
        "STRIPE_API_KEY": "",
        "PAYRETRY_STRIPE_API_KEY_FILE": str(key_file),
    }
    done = cli(tmp_path / "p.db", "stripe", "check", env=env)
    assert done.exit_code == 2 and "chmod 600" in done.stderr, done.stderr
    os.chmod(key_file, 0o600)
    done = cli(tmp_path / "p.db", "stripe", "check", env=env)
    assert done.exit_code == 0, done.stderr


def _queue(db: Path, txn: str, *extra: str) -> None:
    done = cli(
        db,
        "queue",
        txn,
        "--error-code",
        "network_error",
        "--user-id",
        "u1",
        "--amount",
        "49.99",
        "--currency",
        "USD",
        *extra,
    )
    assert done.exit_code == 0, done.stderr


def test_run_due_with_a_bad_key_exits_1_and_counts_no_attempt(
    emulator: Emulator, tmp_path: Path
) -> None:
    db = tmp_path / "p.db"
    _queue(db, "t1", "--customer", "cus_1", "--payment-method", "pm_card")
    _queue(db, "t2", "--customer", "cus_1", "--payment-method", "pm_card")
    env = stripe_env(emulator.url, STRIPE_API_KEY="sk_test_revoked_key_000111")
    done = cli(db, "run-due", "--processor", "stripe", env=env)
    assert done.exit_code == 1
    assert "Stripe refused the API key" in done.stderr and "revoked" not in done.stderr
    listed = json.loads(cli(db, "list", "--json").stdout)["jobs"]
    assert [(j["state"], j["attempt_count"], j["attempts"]) for j in listed] == [
        ("scheduled", 0, []),
        ("scheduled", 0, []),
    ]


def test_the_processor_named_in_the_config_file_and_the_checkout_url_in_status(
    emulator: Emulator, tmp_path: Path
) -> None:
    db = tmp_path / "p.db"
    config = tmp_path / "payretry.toml"
    config.write_text(
        '[processor]\nname = "stripe"\n\n[stripe]\n'
        f'api_base = "{emulator.url}"\nmax_network_retries = 0\n'
        'checkout_success_url = "https://shop.example/paid"\n'
        'checkout_cancel_url = "https://shop.example/cart"\n'
    )
    original = emulator.session({"cart": "c-1"})
    _queue(db, "t-co", "--checkout-session", original, "--window", "3h")
    env = {"STRIPE_API_KEY": KEY}
    done = cli(db, "--config", str(config), "run-due", "--json", env=env)
    assert done.exit_code == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["awaiting_payer"] == 1
    assert report["results"][0]["outcome"] == "awaiting_payer"
    status = json.loads(cli(db, "status", "t-co", "--json").stdout)
    assert status["state"] == "awaiting_payer"
    action = status["customer_action"]
    session = emulator.state.sessions[action["checkout_session"]]
    assert action["url"] == session["url"]
    assert status["attempts"][0]["outcome"] == "awaiting_payer"
    human = cli(db, "status", "t-co").stdout
    assert "checkout url" in human and session["id"] in human
    emulator.complete(session["id"])
    done = cli(db, "--config", str(config), "run-due", "--json", env=env)
    assert json.loads(done.stdout)["succeeded"] == 1
    assert json.loads(cli(db, "status", "t-co", "--json").stdout)["state"] == "succeeded"
