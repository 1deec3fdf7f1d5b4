"""The card-network rules end to end through the Stripe emulator: Mastercard MAC 24-30 declines
wait the MAC, a Visa category 1 decline blocks the job and every job on the card, jobs on one
card share one ledger, and a payment Stripe Billing already retries is refused at queue time."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from payretry.cli import app
from payretry.domain.card_ledger import CardKey, EntryKind, KeyKind
from payretry.domain.card_summary import summarize
from payretry.domain.events import EventType
from payretry.domain.models import JobState
from payretry.errors import Refused
from payretry.store.sql import SqlStore, open_store
from tests.stripe.conftest import Clock, Harness, stripe_env
from tests.stripe.emulator import Emulator

H, D = timedelta(hours=1), timedelta(days=1)
MAC_WAITS = {"24": H, "25": D, "26": 2 * D, "27": 4 * D, "28": 6 * D, "29": 8 * D, "30": 10 * D}
ROW_WAIT = 6 * H  # try_again_later's wait before attempt 2


def events_of(store: SqlStore, job_id: str) -> list[tuple[EventType, dict[str, object]]]:
    return [(e.type, dict(e.data)) for x in store.entries_for_job(job_id) for e in x.events()]


def advance_to(clock: Clock, when: object, extra: timedelta = timedelta(0)) -> None:
    assert hasattr(when, "tzinfo")
    clock.advance(seconds=(when - clock()).total_seconds() + extra.total_seconds())  # type: ignore[operator]


@pytest.mark.parametrize("mac", sorted(MAC_WAITS))
def test_a_mac_24_to_30_decline_waits_the_mac_then_the_retry_goes_through(
    harness: Harness, emulator: Emulator, clock: Clock, mac: str
) -> None:
    emulator.card("pm_mc", f"decline:generic_decline::{mac}", "succeeded")
    emulator.card_details("pm_mc", "mastercard", "fpMaster1")
    harness.queue("t-mac", error_code="network_error", decline_code=None, payment_method="pm_mc")
    first = harness.run()
    assert first["rescheduled"] == 1, first
    job = harness.job("t-mac")
    [attempt] = job.attempts
    assert attempt.decline_code == "try_again_later"  # MAC 24-30 read as try again later
    assert attempt.finished_at is not None and job.next_retry_at is not None
    wait = max(ROW_WAIT, MAC_WAITS[mac])  # never sooner than the MAC allows (26-30: days)
    assert job.next_retry_at - attempt.finished_at == wait
    assert (job.card_network, job.card_fingerprint) == ("mastercard", "fpMaster1")  # learnt
    moved = [d for t, d in events_of(harness.store, job.id) if t is EventType.POSTPONED]
    if MAC_WAITS[mac] > ROW_WAIT:
        assert job.network_rule == f"mastercard_mac_{mac}"
        assert job.reason is not None and f"Mastercard MAC {mac}: retry no sooner than" in (
            job.reason
        )
        assert [d["rule"] for d in moved] == [f"mastercard_mac_{mac}"]
    else:
        assert job.network_rule is None and moved == []
    advance_to(clock, job.next_retry_at, -timedelta(minutes=1))
    assert harness.run()["processed"] == 0  # a minute early: not due
    advance_to(clock, job.next_retry_at, timedelta(seconds=1))
    assert harness.run()["succeeded"] == 1
    assert len(emulator.requests("POST", "/v1/payment_intents")) == 2


def test_a_visa_category_1_decline_blocks_the_job_and_every_job_on_the_card(
    harness: Harness, emulator: Emulator, clock: Clock
) -> None:
    emulator.card("pm_v1", "decline:do_not_honor:::R0")  # do_not_honor alone is retried
    for method in ("pm_v1", "pm_v2"):  # one Visa card, saved twice
        emulator.card_details(method, "visa", "fpVisa1")
    first = harness.queue("t-a", error_code="network_error", decline_code=None,
                          payment_method="pm_v1")  # fmt: skip
    later = harness.queue("t-b", decline_code="generic_decline", payment_method="pm_v1")
    other = harness.queue("t-c", decline_code="generic_decline", payment_method="pm_v2",
                          card_network="visa", card_fingerprint="fpVisa1")  # fmt: skip
    report = harness.run()
    assert report["blocked"] == 1 and report["processed"] == 1, report
    blocked = harness.job("t-a")
    assert blocked.state is JobState.BLOCKED and blocked.network_rule == "visa_category_1"
    assert blocked.reason is not None and "Visa category 1 decline (response code R0)" in (
        blocked.reason
    )
    assert "(source: Visa Rules" in blocked.reason
    kinds = [t for t, _ in events_of(harness.store, first.id)]
    assert EventType.BLOCKED in kinds and EventType.SCHEDULED not in kinds[-3:]
    with pytest.raises(Refused, match="blocked: .*Visa category 1"):  # a new job on the card
        harness.queue("t-d", decline_code="generic_decline", payment_method="pm_v1")
    assert harness.store.find("t-d") is None
    clock.advance(hours=25)  # the other two fall due: held at claim, nothing sent
    report = harness.run()
    assert report["blocked"] == 2 and report["processed"] == 0, report
    for job in (later, other):
        now = harness.store.get(job.id)
        assert now is not None and now.state is JobState.BLOCKED and now.attempts == ()
        assert now.reason is not None and now.reason.startswith(
            "blocked by a card-network rule before attempt 1: Visa category 1 decline"
        )
    assert len(emulator.requests("POST", "/v1/payment_intents")) == 1  # only t-a's


def test_five_jobs_on_one_card_share_one_ledger(
    harness: Harness, emulator: Emulator, clock: Clock
) -> None:
    for n in range(5):  # five payment methods, one Mastercard card
        emulator.card(f"pm_{n}", "decline:generic_decline")
        emulator.card_details(f"pm_{n}", "mastercard", "fpShared")
        harness.queue(f"t-{n}", error_code="network_error", decline_code=None,
                      payment_method=f"pm_{n}", card_network="mastercard",
                      card_fingerprint="fpShared")  # fmt: skip
    assert harness.run()["rescheduled"] == 5
    card = CardKey(KeyKind.CARD, "mastercard:fpShared")
    rules = harness.policy.network
    history = harness.store.card_history(card, clock() - rules.lookback)
    assert len({e.job_id for e in history}) == 5
    assert (
        sorted((e.attempt_number, e.kind) for e in history)
        == [(0, EntryKind.DECLINE)] * 5 + [(1, EntryKind.DECLINE)] * 5
    )
    summary = summarize(rules, history, card=card, network="mastercard", now=clock())
    left = {x.rule: x.left for x in summary.limits}
    assert summary.declines_24h == 10 and left["mastercard_declines_24h"] == 0
    sixth = harness.queue("t-6", error_code="network_error", decline_code=None,
                          payment_method="pm_9", card_network="mastercard",
                          card_fingerprint="fpShared")  # fmt: skip
    assert sixth.network_rule == "mastercard_declines_24h"  # its own decline makes 11
    assert sixth.next_retry_at == sorted(e.at for e in history)[1] + D  # two must leave
    assert sixth.reason is not None and "at most 10 declines per card in 24 hours" in (sixth.reason)


# -- Stripe Billing already retries it -------------------------------------------------------


def cli(db: Path, *args: str, env: dict[str, str]) -> Result:
    return CliRunner().invoke(app, ["--db", f"sqlite:///{db}", *args], env=env)


QUEUE = ("queue", "--error-code", "card_declined", "--decline-code", "insufficient_funds",
         "--user-id", "usr_1", "--amount", "49.99", "--currency", "USD")  # fmt: skip


def test_a_payment_stripe_billing_retries_is_refused_at_queue_time(
    emulator: Emulator, tmp_path: Path
) -> None:
    env = {**stripe_env(emulator.url), "PAYRETRY_PROCESSOR_NAME": "stripe"}
    db = tmp_path / "b.db"
    next_try = int(time.time()) + 3 * 86400
    invoice = emulator.invoice("pi_billing", next_payment_attempt=next_try)
    done = cli(db, *QUEUE, "t-billing", "--payment-intent", "pi_billing", env=env)
    assert done.exit_code == 3, done.stderr
    assert f"pays Stripe invoice {invoice}, which Stripe Billing is retrying itself" in (
        done.stderr
    )
    assert "nothing queued" in done.stderr
    as_json = cli(db, *QUEUE, "t-billing", "--payment-intent", "pi_billing", "--json", env=env)
    assert json.loads(as_json.stdout)["error"]["exit_code"] == 3
    rows = tmp_path / "rows.jsonl"
    rows.write_text(
        json.dumps(
            {
                "transaction_id": "t-file",
                "user_id": "u",
                "amount": "1.00",
                "currency": "USD",
                "error_code": "processing_error",
                "payment_intent": "pi_billing",
            }
        )
        + "\n"  # fmt: skip
    )
    from_file = cli(db, "queue", "--from-file", str(rows), env=env)
    assert from_file.exit_code == 3 and "line 1:" in from_file.stderr
    store = open_store(f"sqlite:///{db}")
    try:
        assert store.find("t-billing") is None and store.find("t-file") is None
    finally:
        store.close()
    # Billing gave up (no next attempt), or the invoice is paid by hand: payretry may retry.
    emulator.invoice("pi_given_up", next_payment_attempt=None)
    emulator.invoice("pi_manual", collection_method="send_invoice", next_payment_attempt=None)
    for intent in ("pi_given_up", "pi_manual", "pi_no_invoice"):
        done = cli(db, *QUEUE, f"t-{intent}", "--payment-intent", intent, env=env)
        assert done.exit_code == 0, done.stderr
    asked = emulator.requests("GET", "/v1/invoice_payments")
    assert len(asked) == 6  # one question per job naming a payment intent


def test_queueing_without_a_payment_intent_asks_stripe_nothing(
    emulator: Emulator, tmp_path: Path
) -> None:
    env = {**stripe_env(emulator.url), "PAYRETRY_PROCESSOR_NAME": "stripe"}
    done = cli(tmp_path / "n.db", *QUEUE, "t-off", "--customer", "cus_1",
               "--payment-method", "pm_1", env=env)  # fmt: skip
    assert done.exit_code == 0, done.stderr
    assert emulator.requests() == []
