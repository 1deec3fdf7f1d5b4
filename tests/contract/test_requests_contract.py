"""The IdempotencyStore, FirstAttemptStore and JobLookups contracts: the in-memory twins
(payretry.testing), SQLite and PostgreSQL pass the same tests. Time is passed in."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pytest

from payretry.domain.changes import Finish, Queued
from payretry.domain.models import CustomerAction, JobState, ProcessorRefs
from payretry.domain.policy import Decision, Outcome
from payretry.domain.requests import ClaimState, FirstAttempt, KeyClaim, StoredResponse
from payretry.domain.results import AttemptResult
from payretry.errors import InvalidInput
from tests.contract.conftest import ApiPorts
from tests.contract.test_store_contract import ROW, make_job

NOW = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
KEEP = timedelta(hours=24)
LEASE = timedelta(minutes=5)
OK = StoredResponse(201, b'{"id":"j1","note":"caf\xc3\xa9"}', "application/json")
T = TypeVar("T")


def race(threads: int, one: Callable[[], T]) -> list[T]:
    """`one` run by `threads` threads released at once; their answers."""
    answers: list[T] = []
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def run() -> None:
        start.wait()
        answer = one()
        with lock:
            answers.append(answer)

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert len(answers) == threads
    return answers


# -- idempotency keys --------------------------------------------------------------------------


def claim(ports: ApiPorts, at: datetime, fingerprint: str = "fp-1", key: str = "k1") -> KeyClaim:
    return ports.idempotency.claim_key(
        "tok-1", key, fingerprint, at, keep_for=KEEP, lease_for=LEASE
    )


def test_a_key_is_claimed_once_then_replayed(api_ports: ApiPorts) -> None:
    first = claim(api_ports, NOW)
    assert first.state is ClaimState.CLAIMED and first.token
    assert claim(api_ports, NOW + timedelta(seconds=1)).state is ClaimState.RUNNING
    assert claim(api_ports, NOW, "fp-other").state is ClaimState.MISMATCH
    assert first.token is not None
    assert api_ports.idempotency.complete_key("tok-1", "k1", first.token, OK, NOW)
    replay = claim(api_ports, NOW + timedelta(hours=1))
    assert replay.state is ClaimState.REPLAY and replay.response == OK
    assert claim(api_ports, NOW, "fp-other").state is ClaimState.MISMATCH
    # Another scope (another token) has keys of its own.
    other = api_ports.idempotency.claim_key(
        "tok-2", "k1", "fp-9", NOW, keep_for=KEEP, lease_for=LEASE
    )
    assert other.state is ClaimState.CLAIMED


def test_a_key_older_than_keep_for_is_free_again(api_ports: ApiPorts) -> None:
    first = claim(api_ports, NOW)
    assert first.token is not None
    api_ports.idempotency.complete_key("tok-1", "k1", first.token, OK, NOW)
    again = claim(api_ports, NOW + KEEP, "fp-new")
    assert again.state is ClaimState.CLAIMED and again.token != first.token
    # The old claim's token no longer completes it.
    assert not api_ports.idempotency.complete_key("tok-1", "k1", first.token, OK, NOW + KEEP)
    assert claim(api_ports, NOW + KEEP, "fp-new").state is ClaimState.RUNNING


def test_a_claim_whose_request_died_is_taken_over_after_its_lease(api_ports: ApiPorts) -> None:
    first = claim(api_ports, NOW)
    assert claim(api_ports, NOW + LEASE - timedelta(seconds=1)).state is ClaimState.RUNNING
    taken = claim(api_ports, NOW + LEASE)
    assert taken.state is ClaimState.CLAIMED and taken.token not in (None, first.token)
    assert first.token is not None and taken.token is not None
    # The dead request's token is fenced out; the new owner completes it.
    assert not api_ports.idempotency.complete_key("tok-1", "k1", first.token, OK, NOW + LEASE)
    assert api_ports.idempotency.complete_key("tok-1", "k1", taken.token, OK, NOW + LEASE)
    assert claim(api_ports, NOW + LEASE).response == OK


def test_release_frees_a_running_claim_only_for_its_owner(api_ports: ApiPorts) -> None:
    first = claim(api_ports, NOW)
    assert first.token is not None
    api_ports.idempotency.release_key("tok-1", "k1", "not-the-token")
    assert claim(api_ports, NOW).state is ClaimState.RUNNING
    api_ports.idempotency.release_key("tok-1", "k1", first.token)
    again = claim(api_ports, NOW, "fp-2")  # free: any request may use it now
    assert again.state is ClaimState.CLAIMED and again.token is not None
    api_ports.idempotency.complete_key("tok-1", "k1", again.token, OK, NOW)
    api_ports.idempotency.release_key("tok-1", "k1", again.token)  # a stored answer stays
    assert claim(api_ports, NOW, "fp-2").state is ClaimState.REPLAY


def test_purge_removes_keys_created_before(api_ports: ApiPorts) -> None:
    claim(api_ports, NOW, key="old")
    claim(api_ports, NOW + timedelta(hours=2), key="new")
    assert api_ports.idempotency.purge_keys(NOW + timedelta(hours=1)) == 1
    assert claim(api_ports, NOW + timedelta(hours=2), key="old").state is ClaimState.CLAIMED
    assert claim(api_ports, NOW + timedelta(hours=2), key="new").state is ClaimState.RUNNING


def test_concurrent_claims_of_one_key_have_one_winner(api_ports: ApiPorts) -> None:
    answers = race(8, lambda: claim(api_ports, NOW).state)
    assert sorted(answers).count(ClaimState.CLAIMED) == 1
    assert set(answers) == {ClaimState.CLAIMED, ClaimState.RUNNING}


# -- first attempts ----------------------------------------------------------------------------


def first(txn: str = "txn-1", at: datetime = NOW) -> FirstAttempt:
    return FirstAttempt(
        transaction_id=txn,
        job_id=f"job-{txn}",
        idempotency_key=f"payretry:job-{txn}:0",
        request={"amount_minor": 4990, "currency": "EUR", "tags": ("a", "b"), "z": {"y": 1}},
        started_at=at,
    )


def test_one_first_attempt_per_transaction(api_ports: ApiPorts) -> None:
    started = api_ports.first.start_first(first(), LEASE)
    assert started == first()
    assert api_ports.first.start_first(replace(first(), job_id="job-other"), LEASE) is None
    stored = api_ports.first.first_attempt("txn-1")
    assert stored is not None and stored.job_id == "job-txn-1" and stored.pending
    assert stored.lease_expires_at == NOW + LEASE and not stored.queued
    assert stored.request == {  # as JSON reads it back
        "amount_minor": 4990,
        "currency": "EUR",
        "tags": ["a", "b"],
        "z": {"y": 1},
    }
    assert api_ports.first.first_attempt("txn-other") is None


def test_a_lease_is_taken_over_only_once_it_ran_out(api_ports: ApiPorts) -> None:
    api_ports.first.start_first(first(), LEASE)
    assert api_ports.first.lease_first("txn-1", NOW + LEASE - timedelta(seconds=1), LEASE) is None
    taken = api_ports.first.lease_first("txn-1", NOW + LEASE, LEASE)
    assert taken is not None and taken.lease_expires_at == NOW + 2 * LEASE
    assert api_ports.first.lease_first("txn-1", NOW + LEASE, LEASE) is None  # held again
    api_ports.first.unlease_first("txn-1")  # its outcome was not known: send again at once
    again = api_ports.first.lease_first("txn-1", NOW + LEASE, LEASE)
    assert again is not None and again.request == taken.request
    assert api_ports.first.lease_first("txn-none", NOW, LEASE) is None


def test_the_outcome_is_written_once_and_ends_the_lease(api_ports: ApiPorts) -> None:
    api_ports.first.start_first(first(), LEASE)
    done = replace(
        first(),
        outcome="succeeded",
        result={"reference": "pi_1", "codes": ("x",)},
        finished_at=NOW + timedelta(seconds=2),
    )
    api_ports.first.finish_first(done)
    api_ports.first.finish_first(replace(done, outcome="failed", result={"error": "late"}))
    stored = api_ports.first.first_attempt("txn-1")
    assert stored is not None and stored.outcome == "succeeded" and not stored.pending
    assert stored.result == {"reference": "pi_1", "codes": ["x"]}
    assert stored.finished_at == NOW + timedelta(seconds=2) and stored.lease_expires_at is None
    assert api_ports.first.lease_first("txn-1", NOW + LEASE, LEASE) is None  # settled
    api_ports.first.unlease_first("txn-1")  # changes nothing once settled
    assert api_ports.first.first_attempt("txn-1") == stored
    api_ports.first.mark_queued("txn-1")
    queued = api_ports.first.first_attempt("txn-1")
    assert queued is not None and queued.queued and queued.outcome == "succeeded"


def test_concurrent_first_attempts_have_one_winner(api_ports: ApiPorts) -> None:
    answers = race(8, lambda: api_ports.first.start_first(first(), LEASE) is not None)
    assert answers.count(True) == 1


# -- lookups -----------------------------------------------------------------------------------


def test_a_users_jobs_come_newest_first_a_page_at_a_time(api_ports: ApiPorts) -> None:
    store = api_ports.store
    for n in range(5):
        store.insert(Queued(make_job(f"txn-{n}", user_id="u1", state=JobState.CANCELLED)))
    store.insert(Queued(make_job("txn-other", user_id="u2")))
    pages, cursor = [], None
    while True:
        page = api_ports.lookups.jobs_for_user("u1", after=cursor, limit=2)
        pages.append([j.transaction_id for j in page.jobs])
        cursor = page.next_cursor
        if cursor is None:
            break
    assert pages == [["txn-4", "txn-3"], ["txn-2", "txn-1"], ["txn-0"]]
    exact = api_ports.lookups.jobs_for_user("u1", after=None, limit=5)
    assert len(exact.jobs) == 5 and exact.next_cursor is None
    assert api_ports.lookups.jobs_for_user("nobody", after=None, limit=5).jobs == []


@pytest.mark.parametrize("cursor", ["abc", "-1", "1.5", "١٢", "9" * 19, ""])
def test_a_cursor_that_no_page_gave_is_invalid(api_ports: ApiPorts, cursor: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        api_ports.lookups.jobs_for_user("u1", after=cursor, limit=2)
    assert caught.value.field == "cursor"


def test_a_page_of_no_jobs_is_invalid(api_ports: ApiPorts) -> None:
    """A limit below 1 is refused: a page of none has no last job to continue after (the SQL
    side answered a cursor past the first job, and the next page skipped it)."""
    api_ports.store.insert(Queued(make_job("txn-0", user_id="u1")))
    with pytest.raises(InvalidInput) as caught:
        api_ports.lookups.jobs_for_user("u1", after=None, limit=0)
    assert caught.value.field == "limit"


def test_a_job_is_found_by_its_checkout_sessions(api_ports: ApiPorts) -> None:
    store = api_ports.store
    original = ProcessorRefs(checkout_session="cs_original")
    old = store.insert(Queued(replace(make_job("txn-s", state=JobState.CANCELLED), refs=original)))
    newer_final = store.insert(
        Queued(replace(make_job("txn-t", state=JobState.EXHAUSTED), refs=original))
    )
    found = api_ports.lookups.find_by_session("cs_original")
    assert found is not None and found.id == newer_final.id  # no active one: the newest
    active = store.insert(Queued(replace(make_job("txn-s"), refs=original)))
    found = api_ports.lookups.find_by_session("cs_original")
    assert found is not None and found.id == active.id  # an active job first
    assert old.id != active.id
    # The session a job now waits on finds it too, with its attempts.
    [claimed] = store.claim(NOW, 1, LEASE)
    action = CustomerAction("cs_retry_1", "https://checkout.example/cs_retry_1", None)
    result = AttemptResult.awaiting_customer(action, "complete checkout")
    decision = Decision(Outcome.AWAITING, ROW, "waits on the customer", None, 3)
    assert store.finish([Finish(claimed, result, decision, NOW)]) == [True]
    waiting = api_ports.lookups.find_by_session("cs_retry_1")
    assert waiting is not None and waiting.id == active.id
    assert waiting.state is JobState.AWAITING_PAYER and len(waiting.attempts) == 1
    assert api_ports.lookups.find_by_session("cs_nobody") is None


def test_ping_answers(api_ports: ApiPorts) -> None:
    api_ports.lookups.ping()


def test_concurrent_takeovers_of_a_lapsed_first_attempt_have_one_winner(
    api_ports: ApiPorts,
) -> None:
    api_ports.first.start_first(first(), LEASE)
    answers = race(8, lambda: api_ports.first.lease_first("txn-1", NOW + LEASE, LEASE))
    assert sum(a is not None for a in answers) == 1
