"""Retry policy as data: the strategy table, lookup order, caps, windows and jitter."""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from payretry.domain.models import JobState
from payretry.domain.policy import (
    DEFAULT_ROW,
    HARD_DECLINES,
    SOFT_DECLINES,
    STRATEGY_ROWS,
    Decision,
    Outcome,
    PolicyRow,
    RetryPolicy,
    default_rows,
)
from tests.conftest import NOW
from tests.unit.decisions import after_failure, first_retry

S, M, H = timedelta(seconds=1), timedelta(minutes=1), timedelta(hours=1)

# Issue 2's strategy table, written out again by hand: code -> (retry, max attempts, delays).
ISSUE_TABLE: dict[str, tuple[bool, int, tuple[timedelta, ...]]] = {
    "card_declined": (False, 0, ()),
    "network_error": (True, 3, (0 * S, 1 * M, 5 * M)),
    "insufficient_funds": (True, 2, (24 * H, 48 * H)),
    "processing_error": (True, 3, (1 * M, 5 * M, 30 * M)),
    "authentication_failed": (True, 2, (5 * M, 30 * M)),
    "rate_limit_exceeded": (True, 3, (30 * M, 1 * H, 2 * H)),
    "service_unavailable": (True, 3, (1 * M, 5 * M, 30 * M)),
}

HARD_CODES = [
    "incorrect_number",
    "lost_card",
    "pickup_card",
    "stolen_card",
    "revocation_of_authorization",
    "revocation_of_all_authorizations",
    "authentication_required",
    "highest_risk_level",
    "transaction_not_allowed",
    "fraudulent",
    "do_not_try_again",
    "stop_payment_order",
    "invalid_account",
    "new_account_information_available",
]
SOFT_CODES = [
    "try_again_later",
    "issuer_not_available",
    "reenter_transaction",
    "approve_with_id",
    "generic_decline",
    "do_not_honor",
    "card_velocity_exceeded",
]


def schedule(
    policy: RetryPolicy,
    error_code: str,
    decline_code: str | None = None,
    *,
    job_id: str = "job-1",
    now: datetime = NOW,
    expires_at: datetime | None = None,
) -> list[Decision]:
    """Walk a job through its whole schedule, every attempt failing with the same error."""
    first = first_retry(
        policy,
        job_id=job_id,
        error_code=error_code,
        decline_code=decline_code,
        now=now,
        expires_at=expires_at,
    )
    decisions = [first]
    attempt = 0
    while decisions[-1].outcome is Outcome.RETRY:
        at = decisions[-1].next_retry_at
        assert at is not None
        attempt += 1
        decisions.append(
            after_failure(
                policy,
                job_id=job_id,
                attempt_number=attempt,
                max_attempts=first.max_attempts,
                error_code=error_code,
                decline_code=decline_code,
                now=at,
                expires_at=expires_at,
            )
        )
        assert attempt <= 100, "the schedule never ends"
    return decisions


def waits(decisions: list[Decision], start: datetime = NOW) -> list[timedelta]:
    """The wait before each retry of a walked schedule."""
    times = [start] + [d.next_retry_at for d in decisions if d.next_retry_at is not None]
    return [later - earlier for earlier, later in pairwise(times)]


# --- the table ------------------------------------------------------------------------------


@pytest.mark.parametrize("code", sorted(ISSUE_TABLE))
def test_default_rows_match_the_issue_table(code: str) -> None:
    retry, max_attempts, delays = ISSUE_TABLE[code]
    row = default_rows()[code]
    assert (row.retry, row.max_attempts, row.delays) == (retry, max_attempts, delays)
    assert row.source  # every row says where it came from


def test_default_row_for_unknown_codes() -> None:
    assert (DEFAULT_ROW.retry, DEFAULT_ROW.max_attempts, DEFAULT_ROW.delays) == (
        True,
        2,
        (5 * M, 30 * M),
    )
    lookup = RetryPolicy.standard().lookup("some_brand_new_code")
    assert lookup.matched == "default"
    assert lookup.row == DEFAULT_ROW


@pytest.mark.parametrize("code", sorted(ISSUE_TABLE))
def test_walked_schedule_follows_the_table(code: str) -> None:
    retry, max_attempts, delays = ISSUE_TABLE[code]
    decisions = schedule(RetryPolicy.standard(), code)
    if not retry:
        assert [d.outcome for d in decisions] == [Outcome.FAILED]
        assert "never retried" in decisions[0].reason
        return
    assert waits(decisions) == list(delays)
    assert [d.outcome for d in decisions] == [Outcome.RETRY] * max_attempts + [Outcome.EXHAUSTED]
    assert decisions[0].max_attempts == max_attempts


def test_unknown_code_walks_the_default_schedule() -> None:
    decisions = schedule(RetryPolicy.standard(), "mystery_error")
    assert waits(decisions) == [5 * M, 30 * M]
    assert decisions[-1].outcome is Outcome.EXHAUSTED
    assert decisions[-1].state is JobState.EXHAUSTED


def test_processing_error_schedule_in_absolute_times() -> None:
    decisions = schedule(RetryPolicy.standard(), "processing_error")
    assert [d.next_retry_at for d in decisions] == [
        NOW + 1 * M,
        NOW + 6 * M,
        NOW + 36 * M,
        None,
    ]
    assert [d.state for d in decisions] == [JobState.SCHEDULED] * 3 + [JobState.EXHAUSTED]
    assert "3 of 3 attempts used" in decisions[-1].reason


def test_table_lists_strategy_rows_first_and_default_last() -> None:
    table = RetryPolicy.standard().table()
    assert [row.code for row in table[: len(STRATEGY_ROWS)]] == [r.code for r in STRATEGY_ROWS]
    assert table[-1] == DEFAULT_ROW
    rest = [row.code for row in table[len(STRATEGY_ROWS) : -1]]
    assert rest == sorted(rest)
    assert len(table) == len(default_rows()) + 1


def test_row_describe_and_delay_before() -> None:
    row = default_rows()["processing_error"]
    assert row.describe() == "processing_error: up to 3 attempts, waiting 1m, 5m, 30m"
    assert default_rows()["card_declined"].describe() == "card_declined: never retried"
    assert [row.delay_before(n) for n in (1, 2, 3, 4, 9)] == [1 * M, 5 * M, 30 * M, 30 * M, 30 * M]
    assert PolicyRow("x", True, 3).delay_before(1) == timedelta(0)


# --- lookup order ---------------------------------------------------------------------------


def test_decline_code_wins_over_error_code() -> None:
    policy = RetryPolicy.standard()
    lookup = policy.lookup("card_declined", "insufficient_funds")
    assert lookup.matched == "decline_code"
    assert lookup.row.code == "insufficient_funds"
    decisions = schedule(policy, "card_declined", "insufficient_funds")
    assert waits(decisions) == [24 * H, 48 * H]
    assert "decline code insufficient_funds" in decisions[0].reason


def test_card_declined_with_generic_decline_retries() -> None:
    decision = first_retry(
        RetryPolicy.standard(),
        job_id="j",
        error_code="card_declined",
        decline_code="generic_decline",
        now=NOW,
        expires_at=None,
    )
    assert decision.outcome is Outcome.RETRY
    assert decision.row.code == "generic_decline"


def test_unknown_decline_code_falls_back_to_error_code_then_default() -> None:
    policy = RetryPolicy.standard()
    lookup = policy.lookup("processing_error", "no_such_decline")
    assert (lookup.matched, lookup.row.code) == ("error_code", "processing_error")
    lookup = policy.lookup("no_such_error", "no_such_decline")
    assert (lookup.matched, lookup.row) == ("default", DEFAULT_ROW)
    decision = first_retry(
        policy,
        job_id="j",
        error_code="card_declined",
        decline_code="no_such_decline",
        now=NOW,
        expires_at=None,
    )
    assert decision.outcome is Outcome.FAILED
    assert "no row of its own" in decision.reason


def test_empty_decline_code_is_ignored() -> None:
    lookup = RetryPolicy.standard().lookup("network_error", "")
    assert (lookup.matched, lookup.row.code) == ("error_code", "network_error")


@pytest.mark.parametrize("code", HARD_CODES)
@pytest.mark.parametrize("as_decline", [True, False])
def test_hard_declines_are_never_retried(code: str, as_decline: bool) -> None:
    assert code in HARD_DECLINES and HARD_DECLINES[code]  # each with its citation
    policy = RetryPolicy.standard(cap=100)
    error_code, decline_code = ("card_declined", code) if as_decline else (code, None)
    first = first_retry(
        policy,
        job_id="j",
        error_code=error_code,
        decline_code=decline_code,
        now=NOW,
        expires_at=None,
    )
    assert first.outcome is Outcome.FAILED
    assert first.state is JobState.FAILED
    assert first.next_retry_at is None
    assert "never retried" in first.reason
    # A job already queued whose next attempt fails with a hard decline stops there.
    after = after_failure(
        policy,
        job_id="j",
        attempt_number=1,
        max_attempts=3,
        error_code="processing_error",
        decline_code=code,
        now=NOW,
        expires_at=None,
    )
    assert after.outcome is Outcome.FAILED


def test_hard_decline_overrides_a_retryable_error_code() -> None:
    decision = first_retry(
        RetryPolicy.standard(),
        job_id="j",
        error_code="processing_error",
        decline_code="stolen_card",
        now=NOW,
        expires_at=None,
    )
    assert decision.outcome is Outcome.FAILED


@pytest.mark.parametrize("code", SOFT_CODES)
def test_soft_declines_retry(code: str) -> None:
    assert code in {row.code for row in SOFT_DECLINES}
    decisions = schedule(RetryPolicy.standard(), "card_declined", code)
    assert decisions[0].outcome is Outcome.RETRY
    assert decisions[0].row.code == code
    assert decisions[-1].outcome is Outcome.EXHAUSTED
    assert all(w > timedelta(0) for w in waits(decisions))


def test_hard_and_soft_lists_do_not_overlap() -> None:
    soft = {row.code for row in SOFT_DECLINES}
    assert not soft & set(HARD_DECLINES)
    assert all(row.source for row in SOFT_DECLINES)


# --- global cap -----------------------------------------------------------------------------


def test_cap_one_exhausts_after_attempt_one() -> None:
    policy = RetryPolicy.standard(cap=1)
    decisions = schedule(policy, "processing_error")
    assert [d.outcome for d in decisions] == [Outcome.RETRY, Outcome.EXHAUSTED]
    assert decisions[0].max_attempts == 1
    assert "cap 1" in decisions[-1].reason


@settings(max_examples=60)
@given(
    cap=st.integers(min_value=0, max_value=10),
    code=st.sampled_from([*ISSUE_TABLE, "unknown_code"]),
)
def test_cap_bounds_every_row(cap: int, code: str) -> None:
    policy = RetryPolicy.standard(cap=cap)
    row = policy.lookup(code).row
    expected = min(row.max_attempts, cap) if row.retry else 0
    assert policy.limit(row) == expected
    decisions = schedule(policy, code)
    retries = [d for d in decisions if d.outcome is Outcome.RETRY]
    assert len(retries) == expected
    assert decisions[-1].outcome is (Outcome.EXHAUSTED if expected else Outcome.FAILED)


def test_cap_zero_refuses_everything() -> None:
    decision = first_retry(
        RetryPolicy.standard(cap=0),
        job_id="j",
        error_code="network_error",
        decline_code=None,
        now=NOW,
        expires_at=None,
    )
    assert decision.outcome is Outcome.FAILED


def test_job_max_attempts_bounds_after_failure() -> None:
    """A job queued under a lower limit keeps it even if the row now allows more."""
    decision = after_failure(
        RetryPolicy.standard(),
        job_id="j",
        attempt_number=1,
        max_attempts=1,
        error_code="processing_error",
        decline_code=None,
        now=NOW,
        expires_at=None,
    )
    assert decision.outcome is Outcome.EXHAUSTED


def test_after_failure_switches_row_to_the_new_error() -> None:
    decision = after_failure(
        RetryPolicy.standard(),
        job_id="j",
        attempt_number=1,
        max_attempts=3,
        error_code="rate_limit_exceeded",
        decline_code=None,
        now=NOW,
        expires_at=None,
    )
    assert decision.outcome is Outcome.RETRY
    assert decision.next_retry_at == NOW + 1 * H  # rate_limit_exceeded's wait before attempt 2
    assert decision.row.code == "rate_limit_exceeded"


# --- payment window -------------------------------------------------------------------------


def test_first_retry_after_the_window_is_abandoned() -> None:
    decision = first_retry(
        RetryPolicy.standard(),
        job_id="j",
        error_code="insufficient_funds",
        decline_code=None,
        now=NOW,
        expires_at=NOW + 12 * H,
    )
    assert decision.outcome is Outcome.ABANDONED
    assert decision.state is JobState.ABANDONED
    assert decision.next_retry_at is None
    assert "payment window" in decision.reason


def test_retry_exactly_at_the_window_end_is_allowed() -> None:
    decision = first_retry(
        RetryPolicy.standard(),
        job_id="j",
        error_code="insufficient_funds",
        decline_code=None,
        now=NOW,
        expires_at=NOW + 24 * H,
    )
    assert decision.outcome is Outcome.RETRY
    assert decision.next_retry_at == NOW + 24 * H


def test_window_abandons_mid_schedule() -> None:
    decisions = schedule(RetryPolicy.standard(), "processing_error", expires_at=NOW + 10 * M)
    assert [d.outcome for d in decisions] == [Outcome.RETRY, Outcome.RETRY, Outcome.ABANDONED]
    assert "attempt 3" in decisions[-1].reason


# --- jitter ---------------------------------------------------------------------------------


def test_no_jitter_by_default() -> None:
    policy = RetryPolicy.standard()
    assert policy.jitter == 0.0
    a = first_retry(
        policy,
        job_id="a",
        error_code="processing_error",
        decline_code=None,
        now=NOW,
        expires_at=None,
    )
    b = first_retry(
        policy,
        job_id="b",
        error_code="processing_error",
        decline_code=None,
        now=NOW,
        expires_at=None,
    )
    assert a.next_retry_at == b.next_retry_at == NOW + 1 * M


@settings(max_examples=100)
@given(
    job_id=st.text(min_size=1, max_size=20),
    attempt=st.integers(min_value=1, max_value=2),
    jitter=st.floats(min_value=0.01, max_value=0.5),
)
def test_jitter_is_deterministic_and_bounded(job_id: str, attempt: int, jitter: float) -> None:
    policy = RetryPolicy.standard(jitter=jitter)

    def next_at() -> datetime:
        decision = after_failure(
            policy,
            job_id=job_id,
            attempt_number=attempt,
            max_attempts=3,
            error_code="processing_error",
            decline_code=None,
            now=NOW,
            expires_at=None,
        )
        assert decision.next_retry_at is not None
        return decision.next_retry_at

    base = default_rows()["processing_error"].delay_before(attempt + 1)
    first = next_at()
    assert next_at() == first  # same job and attempt: same time
    assert abs((first - NOW) - base) <= base * jitter + timedelta(microseconds=1)


def test_jitter_spreads_jobs_apart() -> None:
    policy = RetryPolicy.standard(jitter=0.1)
    times = {
        first_retry(
            policy,
            job_id=f"job-{n}",
            error_code="processing_error",
            decline_code=None,
            now=NOW,
            expires_at=None,
        ).next_retry_at
        for n in range(20)
    }
    assert len(times) > 10


def test_jitter_leaves_a_zero_delay_alone() -> None:
    decision = first_retry(
        RetryPolicy.standard(jitter=0.5),
        job_id="j",
        error_code="network_error",
        decline_code=None,
        now=NOW,
        expires_at=None,
    )
    assert decision.next_retry_at == NOW


# --- overrides ------------------------------------------------------------------------------


def test_with_rows_overrides_and_adds_rows() -> None:
    base = RetryPolicy.standard()
    policy = base.with_rows(
        [
            PolicyRow("card_declined", True, 2, (10 * M, 20 * M), "config"),
            PolicyRow("my_code", False, 0, (), "config"),
            PolicyRow("default", True, 1, (1 * H,), "config"),
        ]
    )
    assert waits(schedule(policy, "card_declined")) == [10 * M, 20 * M]
    assert schedule(policy, "my_code")[0].outcome is Outcome.FAILED
    assert waits(schedule(policy, "unheard_of")) == [1 * H]
    assert policy.default.source == "config"
    # The original is untouched.
    assert base.lookup("card_declined").row.retry is False
    assert base.default == DEFAULT_ROW
    assert "my_code" not in base.rows


def test_with_rows_keeps_cap_and_jitter() -> None:
    policy = RetryPolicy.standard(cap=2, jitter=0.2).with_rows([])
    assert (policy.cap, policy.jitter) == (2, 0.2)


def test_override_is_still_bounded_by_the_cap() -> None:
    policy = RetryPolicy.standard(cap=2).with_rows(
        [PolicyRow("network_error", True, 10, (1 * M,), "config")]
    )
    assert len(schedule(policy, "network_error")) == 3  # 2 retries, then exhausted


# --- properties -----------------------------------------------------------------------------

_codes = st.sampled_from([*ISSUE_TABLE, *SOFT_CODES, *HARD_CODES[:3], "unknown_code"])


@settings(max_examples=100)
@given(
    error_code=_codes,
    decline_code=st.one_of(st.none(), _codes),
    attempt=st.integers(min_value=0, max_value=5),
    max_attempts=st.integers(min_value=0, max_value=5),
    window=st.one_of(st.none(), st.integers(min_value=0, max_value=7 * 24 * 3600)),
    jitter=st.sampled_from([0.0, 0.1, 0.5]),
    cap=st.integers(min_value=0, max_value=5),
    job_id=st.text(min_size=1, max_size=10),
)
def test_next_retry_is_never_before_now_nor_after_the_window(
    error_code: str,
    decline_code: str | None,
    attempt: int,
    max_attempts: int,
    window: int | None,
    jitter: float,
    cap: int,
    job_id: str,
) -> None:
    policy = RetryPolicy.standard(cap=cap, jitter=jitter)
    expires_at = None if window is None else NOW + timedelta(seconds=window)
    if attempt == 0:
        decision = first_retry(
            policy,
            job_id=job_id,
            error_code=error_code,
            decline_code=decline_code,
            now=NOW,
            expires_at=expires_at,
        )
    else:
        decision = after_failure(
            policy,
            job_id=job_id,
            attempt_number=attempt,
            max_attempts=max_attempts,
            error_code=error_code,
            decline_code=decline_code,
            now=NOW,
            expires_at=expires_at,
        )
    if decision.outcome is Outcome.RETRY:
        assert decision.next_retry_at is not None
        assert decision.next_retry_at >= NOW
        assert expires_at is None or decision.next_retry_at <= expires_at
        assert 1 <= decision.max_attempts <= cap
        assert attempt < decision.max_attempts
    else:
        assert decision.next_retry_at is None
        assert decision.state.final
