"""`payretry queue --advice-code/--network-advice-code/--network-decline-code`: the failure's
advice moves or stops the FIRST retry, as it moves or stops every later one; bad codes exit 2
naming the field and store nothing."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.cli.conftest import Clock, Invoke, assert_error, doc, jobs, ok, queue_args, queued
from tests.conftest import NOW


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.mark.parametrize("card", [(), ("--payment-method", "pm_mc27")])
def test_a_job_queued_after_mac_27_is_not_retried_sooner_than_4_days(
    invoke: Invoke, clock: Clock, card: tuple[str, ...]
) -> None:
    job = queued(
        invoke,
        "txn_mac27",
        *card,
        "--window",
        "30d",
        error_code="card_declined",
        decline_code="do_not_honor",
        network_advice_code="27",
    )
    assert _at(job["next_retry_at"]) == NOW + timedelta(days=4)  # not the row's 24h
    assert job["network_rule"] == "mastercard_mac_27"
    assert "Mastercard MAC 27" in job["reason"] and "4 days" in job["reason"]
    clock.tick(timedelta(days=3, hours=23).total_seconds())
    assert doc(ok(invoke("run-due", "--json")))["processed"] == 0  # nothing sent before it
    listed = jobs(invoke)
    assert listed[0]["state"] == "scheduled" and listed[0]["attempt_count"] == 0
    clock.tick(timedelta(hours=1).total_seconds())
    assert doc(ok(invoke("run-due", "--json")))["processed"] == 1


def test_mac_03_and_visa_category_1_stop_the_first_retry_nothing_stored(invoke: Invoke) -> None:
    mac03 = invoke(*queue_args("txn_mac03", error_code="card_declined", network_advice_code="3"))
    assert_error(mac03, 3, "do_not_try_again", "nothing queued")
    visa = invoke(
        *queue_args(
            "txn_visa",
            error_code="card_declined",
            decline_code="do_not_honor",
            network_decline_code="r0",
            card_network="visa",
            card_fingerprint="fpVISA01",
        )
    )
    assert_error(visa, 3, "Visa category 1", "response code R0", "nothing queued")
    advised = invoke(
        *queue_args("txn_adv", error_code="card_declined", advice_code="do_not_try_again")
    )
    assert_error(advised, 3, "never retried")
    assert jobs(invoke) == []


def test_stripe_advice_wins_over_the_decline_code(invoke: Invoke, clock: Clock) -> None:
    job = queued(
        invoke,
        "txn_later",
        error_code="card_declined",
        decline_code="do_not_honor",
        advice_code="try_again_later",
    )
    assert "policy row 'try_again_later'" in job["reason"] and job["network_rule"] is None
    assert _at(job["next_retry_at"]) == NOW + timedelta(hours=1)  # not do_not_honor's 24h


@pytest.mark.parametrize(
    ("flag", "value", "field"),
    [
        ("--advice-code", "retry_soon", "advice_code"),
        ("--network-advice-code", "270", "network_advice_code"),
        ("--network-advice-code", "2 7", "network_advice_code"),
        ("--network-decline-code", "R0R0", "network_decline_code"),
        ("--network-decline-code", "٥١", "network_decline_code"),
    ],
)
def test_bad_advice_flags_exit_2_naming_the_field(
    invoke: Invoke, flag: str, value: str, field: str
) -> None:
    assert_error(invoke(*queue_args("txn_bad", flag, value)), 2, field)
    assert jobs(invoke) == []


def test_advice_fields_in_a_file(invoke: Invoke, tmp_path: Path) -> None:
    rows = tmp_path / "failed.jsonl"
    base = {"user_id": "u1", "amount": "5.00", "currency": "USD", "error_code": "card_declined"}
    rows.write_text(
        json.dumps({**base, "transaction_id": "f1", "network_advice_code": "26", "window": "30d"})
        + "\n"
        + json.dumps({**base, "transaction_id": "f2", "network_decline_code": "!!"})
        + "\n"
    )
    assert_error(invoke("queue", "--from-file", str(rows)), 2, "line 2", "network_decline_code")
    rows.write_text(rows.read_text().splitlines()[0] + "\n")
    ok(invoke("queue", "--from-file", str(rows)))
    [job] = jobs(invoke)
    assert job["network_rule"] == "mastercard_mac_26"
    assert _at(job["next_retry_at"]) - _at(job["updated_at"]) >= timedelta(days=2)
