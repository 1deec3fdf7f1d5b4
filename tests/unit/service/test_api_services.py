"""The HTTP API's services on their in-memory twins (payretry.testing): tokens, the retry
throttle, idempotency keys and the first attempt of a processed payment, in milliseconds."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from payretry.domain.access import Role
from payretry.domain.requests import ClaimState, StoredResponse
from payretry.domain.results import AttemptInDoubt, AttemptResult
from payretry.errors import NotFound, Throttled
from payretry.service.idempotency import IdempotencyKeys
from payretry.service.operations import Operations
from payretry.service.process import PENDING_CODE, InDoubt, ProcessPayment
from payretry.service.runner import Runner
from payretry.service.throttle import RetryRequests, RetryThrottle
from payretry.service.tokens import Tokens
from payretry.testing import (
    ManualClock,
    MemoryFirstAttempts,
    MemoryIdempotency,
    MemoryStore,
    MemoryThrottle,
    MemoryTokens,
)
from tests.unit.service.conftest import LEASE, POLICY, Scripted, queue, request

HOUR = timedelta(hours=1)


def test_tokens_authenticate_until_revoked_or_expired(clock: ManualClock) -> None:
    tokens = Tokens(MemoryTokens(), "secret-0123456789", clock)
    text, record = tokens.create(Role.OPERATOR, "ops")
    clock.advance(timedelta(seconds=1))  # newest first; tokens of one instant go by their id
    customer, _ = tokens.create(Role.CUSTOMER, "c", transaction_id="t1", ttl=HOUR)
    assert tokens.authenticate(text) == record
    assert tokens.authenticate(text[:-1] + ("A" if text[-1] != "A" else "B")) is None
    assert tokens.authenticate(customer) is not None
    clock.advance(HOUR)
    assert tokens.authenticate(customer) is None  # expired
    tokens.revoke(record.id)
    assert tokens.authenticate(text) is None
    assert [t.name for t in tokens.list()] == ["c", "ops"]
    with pytest.raises(NotFound):
        tokens.revoke("nobody")


def test_retry_requests_are_throttled_per_transaction(
    store: MemoryStore, clock: ManualClock
) -> None:
    queue(store, "t1", error_code="insufficient_funds")  # due in 24 h: retried only on request
    runner = Runner(
        store,
        POLICY,
        Scripted({"t1": [AttemptResult.failure("processing_error")]}),
        clock=clock,
        lease_for=LEASE,
    )
    throttle = RetryThrottle(
        MemoryThrottle(),
        per_transaction=1,
        transaction_window=HOUR,
        per_user=0,
        user_window=HOUR,
    )
    requests = RetryRequests(Operations(store, POLICY, execution=runner.execution), throttle)
    job = store.find("t1")
    assert job is not None
    assert requests.retry(job, clock()).attempt == 1
    job = store.find("t1")
    assert job is not None
    with pytest.raises(Throttled) as caught:
        requests.retry(job, clock())
    assert caught.value.retry_after == 3600 and "transaction t1" in caught.value.message
    assert throttle.wait(job, clock()) == HOUR


def test_idempotency_keys_replay_the_first_answer(clock: ManualClock) -> None:
    keys = IdempotencyKeys(MemoryIdempotency(), clock)
    first = keys.claim("tok", "k-1", "POST", "/api/x", b"{}")
    assert first.state is ClaimState.CLAIMED and first.token is not None
    assert keys.claim("tok", "k-1", "POST", "/api/x", b"{}").state is ClaimState.RUNNING
    assert keys.claim("tok", "k-1", "POST", "/api/x", b'{"a":1}').state is ClaimState.MISMATCH
    answer = StoredResponse(201, b"{}", "application/json")
    assert keys.complete("tok", "k-1", first.token, answer)
    assert keys.claim("tok", "k-1", "POST", "/api/x", b"{}").response == answer
    clock.advance(timedelta(hours=25))
    assert keys.purge() == 1


def test_a_first_attempt_in_doubt_is_sent_again_under_its_key(
    store: MemoryStore, clock: ManualClock
) -> None:
    processor = Scripted(
        {"t1": [AttemptInDoubt("network_error", "timeout"), AttemptResult.success("ch_1")]}
    )
    first = MemoryFirstAttempts()
    process = ProcessPayment(first, store, POLICY, processor, clock=clock, lease_for=LEASE)
    payment = replace(request("t1"), error_code=PENDING_CODE)  # as the API's intake makes it
    with pytest.raises(InDoubt):
        process.process(payment)
    done = process.process(payment)  # the same request again: the same key
    assert done.success and not done.replayed
    again = process.process(payment)  # and once more: answered from the record
    assert again.success and again.replayed
    assert len(set(processor.keys)) == 1 and len(processor.keys) == 2
