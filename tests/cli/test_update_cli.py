"""payretry update (new card data by hand) and payretry stripe webhooks; the webhook secret's
settings: masked, from a 0600 file, never echoed."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from payretry.config import load_settings
from payretry.domain.changes import Queued
from payretry.domain.models import JobState, NewJob, ProcessorRefs
from payretry.domain.money import Money
from payretry.errors import ConfigError
from payretry.store.sql import open_store
from payretry.wiring import Wiring
from tests.cli.conftest import Invoke, assert_error, doc, ok, queued

SECRET = "whsec_cli_0123456789abcdef"


def test_stripe_webhooks_lists_the_events_and_the_path(invoke: Invoke) -> None:
    document = doc(ok(invoke("stripe", "webhooks", "--json")))
    assert document["path"] == "/webhooks/stripe"
    types = [e["type"] for e in document["events"]]
    assert "payment_intent.succeeded" in types and "customer.updated" in types
    assert document["secret_configured"] is False
    text = ok(invoke("stripe", "webhooks", env={"PAYRETRY_STRIPE_WEBHOOK_SECRET": SECRET}))
    assert "/webhooks/stripe" in text.stdout and "checkout.session.expired" in text.stdout
    assert SECRET not in text.stdout + text.stderr


def test_stripe_webhooks_refuses_a_secret_the_server_would_refuse(invoke: Invoke) -> None:
    wrong = {"PAYRETRY_STRIPE_WEBHOOK_SECRET": "sk_test_not_an_endpoint_secret"}
    result = invoke("stripe", "webhooks", env=wrong)
    assert_error(result, 2, "stripe.webhook_secret")
    assert "sk_test_not" not in result.stdout + result.stderr  # never echoed


def test_update_refuses_a_missing_or_unrevivable_job(invoke: Invoke) -> None:
    assert_error(invoke("update", "txn_none", "--payment-method", "pm_1"), 4, "txn_none")
    queued(invoke, "txn_busy")
    result = invoke("update", "txn_busy", "--payment-method", "pm_1")
    assert_error(result, 3, "processing_error", "card needed new data")
    assert_error(invoke("update", "txn_busy"), 2, "--payment-method")


def test_update_revives_a_job_failed_on_an_expired_card(invoke: Invoke, db_path: Path) -> None:
    store = open_store(f"sqlite:///{db_path}")
    now = datetime.now(UTC)
    request = NewJob(
        "txn_card",
        "user_1",
        Money(1000, "USD"),
        "card_declined",
        "expired_card",
        None,
        ProcessorRefs(customer="cus_1", payment_method="pm_old"),
        {},
        now + timedelta(days=3),
        None,
    )
    draft = request.draft("0123abcd" * 4, now)
    failed = replace(draft, state=JobState.FAILED, attempt_count=1, max_attempts=3)
    store.insert(Queued(failed))
    store.close()
    result = doc(ok(invoke("update", "txn_card", "--payment-method", "pm_new", "--json")))
    assert result["state"] == "scheduled" and result["payment_method"] == "pm_new"
    assert "revived" in result["reason"]
    story = ok(invoke("explain", "txn_card")).stdout
    assert "revived" in story and "an operator" in story
    # Scheduled now: revived once more with another card is allowed, a stolen card never is.
    assert_error(
        invoke("update", "txn_card", "--payment-method", "4242424242424242"), 2, "payment_method"
    )


def test_the_webhook_secret_is_masked_and_read_from_a_0600_file(
    invoke: Invoke, tmp_path: Path
) -> None:
    shown = doc(ok(invoke("config", "--json", env={"PAYRETRY_STRIPE_WEBHOOK_SECRET": SECRET})))
    rows = {row["key"]: row for row in shown["settings"]} if "settings" in shown else None
    text = str(shown)
    assert SECRET not in text and "whsec_cli" not in text
    if rows is not None:
        assert rows["stripe.webhook_secret"]["value"] == "***"
    file = tmp_path / "hook.secret"
    file.write_text(SECRET + "\n")
    os.chmod(file, 0o644)
    settings = load_settings(env={"PAYRETRY_STRIPE_WEBHOOK_SECRET_FILE": str(file)})
    with pytest.raises(ConfigError, match="readable by others") as caught:
        Wiring(settings).webhook_secret()
    assert caught.value.field == "stripe.webhook_secret_file"
    os.chmod(file, 0o600)
    assert Wiring(settings).webhook_secret() == SECRET
    wrong = load_settings(env={"PAYRETRY_STRIPE_WEBHOOK_SECRET": "sk_test_not_a_webhook_secret"})
    with pytest.raises(ConfigError) as bad:
        Wiring(wrong).webhook_secret()
    assert "sk_test_not" not in str(bad.value)
