"""The TokenStore and ThrottleStore contracts: the in-memory twins (payretry.testing), SQLite and
PostgreSQL pass the same tests. Time is passed in."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from payretry.domain.access import ApiToken, Role
from payretry.domain.requests import Limit, ThrottleStore
from tests.contract.conftest import ApiPorts

NOW = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def token(token_id: str, at: datetime, **fields: object) -> ApiToken:
    base: dict[str, object] = {
        "id": token_id,
        "name": f"name-{token_id}",
        "role": Role.OPERATOR,
        "secret_hash": f"hash-{token_id}",
        "created_at": at,
    }
    return ApiToken(**{**base, **fields})  # type: ignore[arg-type]


# -- tokens ------------------------------------------------------------------------------------


def test_a_token_round_trips_every_field(api_ports: ApiPorts) -> None:
    full = token(
        "t1",
        NOW,
        role=Role.CUSTOMER,
        expires_at=NOW + timedelta(hours=1),
        transaction_id="txn-1",
    )
    api_ports.tokens.add_token(full)
    assert api_ports.tokens.token("t1") == full
    assert api_ports.tokens.token("nobody") is None


def test_tokens_are_listed_newest_first_then_by_id(api_ports: ApiPorts) -> None:
    for token_id, at in [("b", NOW), ("c", NOW + MINUTE), ("a", NOW)]:
        api_ports.tokens.add_token(token(token_id, at))
    assert [t.id for t in api_ports.tokens.tokens()] == ["c", "a", "b"]


def test_a_second_token_with_the_same_id_is_refused(api_ports: ApiPorts) -> None:
    api_ports.tokens.add_token(token("t1", NOW))
    with pytest.raises(Exception):  # noqa: B017 - SQL: IntegrityError; the twin: StoreError
        api_ports.tokens.add_token(token("t1", NOW + MINUTE, name="other"))
    found = api_ports.tokens.token("t1")
    assert found is not None and found.name == "name-t1"


def test_revoking_keeps_the_token_and_its_first_revocation(api_ports: ApiPorts) -> None:
    api_ports.tokens.add_token(token("t1", NOW))
    revoked = api_ports.tokens.revoke_token("t1", NOW + MINUTE)
    assert revoked is not None and revoked.revoked_at == NOW + MINUTE
    assert not revoked.active(NOW + MINUTE)
    again = api_ports.tokens.revoke_token("t1", NOW + 2 * MINUTE)
    assert again is not None and again.revoked_at == NOW + MINUTE  # not moved
    assert api_ports.tokens.token("t1") == again
    assert api_ports.tokens.revoke_token("nobody", NOW) is None


# -- the throttle ------------------------------------------------------------------------------


def limits(txn: int = 2, user: int = 3) -> list[Limit]:
    return [Limit("txn:1", txn, timedelta(hours=1)), Limit("user:1", user, timedelta(days=1))]


def test_no_limits_always_passes(api_ports: ApiPorts) -> None:
    assert api_ports.throttle.take([], NOW).allowed
    assert api_ports.throttle.peek([], NOW).allowed


def test_a_full_bucket_refuses_with_its_wait_and_counts_nothing(api_ports: ApiPorts) -> None:
    throttle = api_ports.throttle
    assert throttle.take(limits(), NOW).allowed
    assert throttle.take(limits(), NOW + MINUTE).allowed
    refused = throttle.take(limits(), NOW + 2 * MINUTE)
    assert not refused.allowed and refused.bucket == "txn:1"
    assert refused.retry_after == timedelta(minutes=58)  # the window began with the first
    assert throttle.peek(limits(), NOW + 2 * MINUTE) == refused
    # Nothing was counted on the user's bucket by the refused request: one more fits there.
    other = [Limit("txn:2", 5, timedelta(hours=1)), Limit("user:1", 3, timedelta(days=1))]
    assert throttle.take(other, NOW + 3 * MINUTE).allowed
    full = throttle.take(other, NOW + 4 * MINUTE)
    assert not full.allowed and full.bucket == "user:1"
    assert full.retry_after == timedelta(days=1) - 4 * MINUTE


def test_a_window_that_ran_out_starts_again(api_ports: ApiPorts) -> None:
    throttle = api_ports.throttle
    one = [Limit("txn:1", 1, timedelta(hours=1))]
    assert throttle.take(one, NOW).allowed
    assert not throttle.take(one, NOW + 59 * MINUTE).allowed
    assert throttle.peek(one, NOW + 60 * MINUTE).allowed
    assert throttle.take(one, NOW + 60 * MINUTE).allowed  # a new window, from this request
    refused = throttle.take(one, NOW + 61 * MINUTE)
    assert not refused.allowed and refused.retry_after == timedelta(minutes=59)


def test_a_request_timed_before_the_window_counts_in_it(api_ports: ApiPorts) -> None:
    throttle = api_ports.throttle
    one = [Limit("txn:1", 1, timedelta(hours=1))]
    assert throttle.take(one, NOW).allowed
    early = throttle.take(one, NOW - MINUTE)  # a clock a moment behind: not a new window
    assert not early.allowed and early.retry_after == timedelta(minutes=61)


def test_peek_counts_nothing(api_ports: ApiPorts) -> None:
    throttle = api_ports.throttle
    one = [Limit("txn:1", 1, timedelta(hours=1))]
    for _ in range(3):
        assert throttle.peek(one, NOW).allowed
    assert throttle.take(one, NOW).allowed
    assert not throttle.peek(one, NOW).allowed


def _race(throttle: ThrottleStore, threads: int, slots: int) -> int:
    allowed: list[bool] = []
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def one() -> None:
        start.wait()
        verdict = throttle.take([Limit("hot", slots, timedelta(hours=1))], NOW)
        with lock:
            allowed.append(verdict.allowed)

    workers = [threading.Thread(target=one) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert len(allowed) == threads
    return sum(allowed)


def test_concurrent_requests_never_take_more_than_the_limit(api_ports: ApiPorts) -> None:
    assert _race(api_ports.throttle, threads=8, slots=3) == 3
