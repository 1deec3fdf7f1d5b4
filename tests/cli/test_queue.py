"""payretry queue: one failed payment at a time."""

from __future__ import annotations

import re

import pytest

from tests.cli.conftest import (
    ATTEMPT_KEYS,
    JOB_KEYS,
    NOW_Z,
    Clock,
    Invoke,
    assert_error,
    assert_json_error,
    doc,
    jobs,
    ok,
    queue_args,
    queued,
)

ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


def test_queue_json_document(invoke: Invoke, clock: Clock) -> None:
    job = queued(invoke, "txn_1", decline_code="try_again_later", amount="12.34", currency="eur")
    assert JOB_KEYS | {"created"} <= set(job)
    assert job["created"] is True
    assert job["transaction_id"] == "txn_1"
    assert job["user_id"] == "user_1"
    assert job["state"] == "scheduled"
    assert job["amount_minor"] == 1234
    assert job["currency"] == "EUR"
    assert job["error_code"] == "processing_error"
    assert job["decline_code"] == "try_again_later"
    assert job["attempt_count"] == 0
    # try_again_later (the decline code) wins over processing_error: 1h first, 3 attempts.
    assert job["max_attempts"] == 3
    assert job["attempts_remaining"] == 3
    assert job["retry_available"] is True
    assert job["next_retry_at"] == "2026-11-22T13:00:00Z"
    assert job["expires_at"] is None
    assert job["priority"] == 1234
    assert job["attempts"] == []


def test_queue_times_are_iso_utc_with_z(invoke: Invoke) -> None:
    # Real clock on purpose: microseconds and all, still ISO 8601 UTC with a Z.
    job = queued(invoke, window="2h")
    for key in ("next_retry_at", "expires_at", "created_at"):
        assert ISO_Z.match(job[key]), (key, job[key])


def test_queue_human_output(invoke: Invoke, clock: Clock) -> None:
    result = ok(invoke(*queue_args("txn_h", amount="1000", currency="JPY")))
    assert result.stdout.startswith("Queued: txn_h, 1000 JPY, processing_error")
    assert "attempt 1 of 3 at 2026-11-22T12:01:00Z" in result.stdout
    assert "scheduled" in result.stdout
    assert result.stderr == ""


def test_queue_is_idempotent_for_the_same_parameters(invoke: Invoke, clock: Clock) -> None:
    first = queued(invoke, "txn_1")
    clock.tick(30)
    # The free-text message is not part of the identity of a request.
    again = queued(invoke, "txn_1", error_message="second report")
    assert again["created"] is False
    assert again["job_id"] == first["job_id"]
    assert again["next_retry_at"] == first["next_retry_at"]
    human = ok(invoke(*queue_args("txn_1")))
    assert "Already queued" in human.stdout
    assert len(jobs(invoke)) == 1


@pytest.mark.parametrize(
    "change",
    [
        {"amount": "100.00"},
        {"user_id": "user_2"},
        {"error_code": "network_error"},
        {"currency": "EUR"},
        {"priority": "7"},
    ],
)
def test_queue_different_parameters_while_active_is_refused(
    invoke: Invoke, change: dict[str, str]
) -> None:
    first = queued(invoke, "txn_1")
    result = invoke(*queue_args("txn_1", **change))
    assert_error(result, 3, "txn_1")
    error = assert_json_error(invoke(*queue_args("txn_1", "--json", **change)), 3, "refused")
    assert "already active" in error["message"]
    stored = jobs(invoke)
    assert [j["job_id"] for j in stored] == [first["job_id"]]
    assert stored[0]["amount_minor"] == 9999


def test_queue_different_metadata_is_refused(invoke: Invoke) -> None:
    queued(invoke, "txn_1", "--metadata", "order=1")
    assert_error(invoke(*queue_args("txn_1", "--metadata", "order=2")), 3)


@pytest.mark.parametrize(
    ("error_code", "decline_code"),
    [
        ("card_declined", None),
        ("card_declined", "stolen_card"),
        ("card_declined", "lost_card"),
        ("card_declined", "fraudulent"),
        ("card_declined", "do_not_try_again"),
        ("processing_error", "authentication_required"),
        ("card_declined", "new_account_information_available"),
    ],
)
def test_queue_hard_decline_is_refused_and_nothing_stored(
    invoke: Invoke, error_code: str, decline_code: str | None
) -> None:
    options = {"error_code": error_code}
    if decline_code:
        options["decline_code"] = decline_code
    result = invoke(*queue_args("txn_hard", **options))
    assert_error(result, 3, decline_code or error_code, "never retried")
    assert result.stdout == ""
    error = assert_json_error(invoke(*queue_args("txn_hard", "--json", **options)), 3, "refused")
    assert (decline_code or error_code) in error["message"]
    assert jobs(invoke) == []


def test_queue_soft_decline_follows_its_own_row(invoke: Invoke, clock: Clock) -> None:
    job = queued(invoke, error_code="card_declined", decline_code="insufficient_funds")
    assert job["next_retry_at"] == "2026-11-23T12:00:00Z"  # insufficient_funds: 24h first
    assert job["max_attempts"] == 2


def test_queue_with_window(invoke: Invoke, clock: Clock) -> None:
    job = queued(invoke, window="24h")
    assert job["expires_at"] == "2026-11-23T12:00:00Z"
    assert job["next_retry_at"] == "2026-11-22T12:01:00Z"


def test_queue_with_expires_at_in_another_offset(invoke: Invoke, clock: Clock) -> None:
    job = queued(invoke, expires_at="2026-11-22T15:30:00+02:00")
    assert job["expires_at"] == "2026-11-22T13:30:00Z"


def test_queue_window_too_short_for_the_first_delay_is_refused(
    invoke: Invoke, clock: Clock
) -> None:
    # processing_error waits 1m before attempt 1; a 30s window cannot hold it.
    result = invoke(*queue_args("txn_w", window="30s"))
    assert_error(result, 3, "window")
    assert_json_error(invoke(*queue_args("txn_w", "--json", window="30s")), 3, "refused")
    assert jobs(invoke) == []


def test_queue_window_already_closed_is_refused(invoke: Invoke, clock: Clock) -> None:
    assert_error(invoke(*queue_args(expires_at="2026-11-22T11:00:00Z")), 3, "window")
    assert jobs(invoke) == []


def test_queue_default_window_from_config(invoke: Invoke, clock: Clock) -> None:
    job = queued(invoke)
    assert job["expires_at"] is None
    result = invoke(*queue_args("txn_2", "--json"), env={"PAYRETRY_RETRY_WINDOW": "2h"})
    assert doc(ok(result))["expires_at"] == "2026-11-22T14:00:00Z"


def test_queue_metadata_pairs_and_refs(invoke: Invoke, clock: Clock) -> None:
    job = queued(
        invoke,
        "txn_m",
        "--metadata",
        "order=A-17",
        "--metadata",
        "note=a=b",  # only the first '=' splits
        "--metadata",
        "card=4242 4242 4242 4241",  # 16 digits but not Luhn-valid: allowed
        payment_intent="pi_123",
        customer="cus_9",
        error_message="declined for jane@example.com card 4242424242424242",
    )
    assert job["metadata"] == {"order": "A-17", "note": "a=b", "card": "4242 4242 4242 4241"}
    assert job["payment_intent"] == "pi_123"
    assert job["customer"] == "cus_9"
    assert "jane@example.com" not in job["error_message"]
    assert "4242424242424242" not in job["error_message"]
    status = doc(ok(invoke("status", "txn_m", "--json")))
    assert status["metadata"] == job["metadata"]


@pytest.mark.parametrize(
    ("amount", "currency", "priority"),
    [
        ("99.99", "USD", 9999),
        ("1000", "JPY", 100000),  # zero-decimal: normalised to hundredths of the unit
        ("1.234", "BHD", 123),  # three-decimal
    ],
)
def test_queue_priority_defaults_from_the_amount(
    invoke: Invoke, amount: str, currency: str, priority: int
) -> None:
    job = queued(invoke, amount=amount, currency=currency)
    assert job["priority"] == priority


def test_queue_explicit_priority_wins(invoke: Invoke) -> None:
    job = queued(invoke, "txn_p", amount="5000.00", priority="-3")
    assert job["priority"] == -3
    assert job["amount_minor"] == 500000


def test_queue_amount_precision_per_currency(invoke: Invoke) -> None:
    assert queued(invoke, "t_kwd", amount="0.001", currency="KWD")["amount_minor"] == 1
    assert queued(invoke, "t_krw", amount="5000", currency="KRW")["amount_minor"] == 5000
    assert queued(invoke, "t_usd", amount="7", currency="usd")["amount_minor"] == 700


def test_queue_again_after_the_job_finished(invoke: Invoke) -> None:
    first = queued(invoke, "txn_1")
    ok(invoke("cancel", "txn_1"))
    second = queued(invoke, "txn_1")
    assert second["created"] is True
    assert second["job_id"] != first["job_id"]
    assert {j["state"] for j in jobs(invoke)} == {"cancelled", "scheduled"}


def test_queue_json_attempt_shape_after_an_attempt(invoke: Invoke) -> None:
    queued(invoke, "txn_a", "--metadata", "simulate=processing_error")
    ok(invoke("retry", "txn_a"))
    again = queued(invoke, "txn_a", "--metadata", "simulate=processing_error")
    assert again["created"] is False
    assert again["attempt_count"] == 1
    (attempt,) = again["attempts"]
    assert ATTEMPT_KEYS <= set(attempt)
    assert attempt["idempotency_key"] == f"payretry:{again['job_id']}:1"


def test_queue_without_transaction_id_is_usage_error(invoke: Invoke) -> None:
    result = invoke(
        "queue", "--error-code", "x", "--user-id", "u", "--amount", "1", "--currency", "USD"
    )
    assert_error(result, 2, "transaction_id")
    assert jobs(invoke) == []


def test_queue_created_at_is_now(invoke: Invoke, clock: Clock) -> None:
    assert queued(invoke)["created_at"] == NOW_Z
