"""The policy lint: a policy table (and its overrides) checked against the card-network rules."""

from __future__ import annotations

from datetime import timedelta

import pytest

from payretry.domain.network_rules import STRIPE_VISA_CATEGORY_1, NetworkRules
from payretry.domain.policy import PolicyRow, RetryPolicy
from payretry.domain.policy_lint import Severity, busiest, errors, lint, schedule

M, H, D = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)
FROM_CONFIG = "config /etc/payretry.toml"


def with_rows(*rows: PolicyRow, cap: int = 3, jitter: float = 0.0) -> RetryPolicy:
    return RetryPolicy.standard(cap=cap, jitter=jitter).with_rows(rows)


def found(policy: RetryPolicy, rules: NetworkRules | None = None) -> set[tuple[str, str]]:
    return {(v.row, v.rule) for v in errors(lint(policy, rules))}


def test_the_default_table_has_no_error_and_warns_where_macs_wait_longer_than_its_row() -> None:
    findings = lint(RetryPolicy.standard())
    assert errors(findings) == []
    assert {(v.row, v.rule, v.severity) for v in findings} == {
        ("try_again_later", f"mastercard_mac_{mac}", Severity.WARNING)
        for mac in ("02", "25", "26", "27", "28", "29", "30")  # MAC 24 asks 1h: the row waits 1h
    }
    mac27 = next(v for v in findings if v.rule == "mastercard_mac_27")
    assert "waits 1h before attempt 1" in mac27.sentence and "4 days" in mac27.sentence
    assert mac27.source.startswith("Mastercard Merchant Advice Codes")


@pytest.mark.parametrize("code", sorted(STRIPE_VISA_CATEGORY_1))
def test_a_row_that_retries_a_visa_category_1_code_is_an_error(code: str) -> None:
    policy = with_rows(PolicyRow(code, True, 2, (H, 6 * H), FROM_CONFIG))
    [violation] = [v for v in errors(lint(policy)) if v.row == code]
    assert violation.rule == "visa_category_1" and violation.row_source == FROM_CONFIG
    assert f"decline code {code} is retried up to 2 times" in violation.sentence
    assert "Visa category 1" in violation.sentence and violation.source.startswith("Visa Rules")


def test_the_category_1_codes_are_the_rules_setting() -> None:
    policy = with_rows(PolicyRow("lost_card", True, 2, (H, 6 * H)))
    assert ("lost_card", "visa_category_1") in found(policy)
    without_41 = NetworkRules(visa_category_1_codes=NetworkRules().visa_category_1_codes - {"41"})
    assert ("lost_card", "visa_category_1") not in found(policy, without_41)


@pytest.mark.parametrize(
    ("code", "rules"),
    [
        ("do_not_try_again", {"mastercard_mac_03", "mastercard_mac_21"}),
        ("confirm_card_data", {"mastercard_mac_01"}),
        ("new_account_information_available", {"mastercard_mac_01"}),
    ],
)
def test_a_row_that_retries_a_hard_mac_is_an_error(code: str, rules: set[str]) -> None:
    policy = with_rows(PolicyRow(code, True, 3, (D,)))
    assert found(policy) == {(code, rule) for rule in rules}


def test_a_code_without_its_own_row_is_linted_by_the_row_it_falls_to() -> None:
    """No lost_card row: the decline follows card_declined (made retryable here)."""
    rows = dict(RetryPolicy.standard().rows)
    del rows["lost_card"]
    rows["card_declined"] = PolicyRow("card_declined", True, 2, (D, 2 * D), FROM_CONFIG)
    violations = [v for v in errors(lint(RetryPolicy(rows))) if v.rule == "visa_category_1"]
    [violation] = [v for v in violations if "lost_card" in v.sentence]
    assert violation.row == "card_declined"
    assert "decline code lost_card follows row 'card_declined', which retries it" in (
        violation.sentence
    )


def test_rows_that_never_retry_are_never_findings() -> None:
    assert lint(with_rows(PolicyRow("try_again_later", False, 0))) == []


def test_the_20th_reattempt_in_30_days_passes_and_the_21st_is_an_error() -> None:
    daily = [D] * 30
    assert found(with_rows(PolicyRow("generic_decline", True, 20, tuple(daily)), cap=20)) == set()
    assert found(with_rows(PolicyRow("generic_decline", True, 21, tuple(daily)), cap=21)) == {
        ("generic_decline", "visa_reattempts_30d")
    }
    # 21 attempts 36 hours apart span 30 days: never more than 20 in one window.
    spread = with_rows(PolicyRow("generic_decline", True, 21, (36 * H,)), cap=21)
    assert found(spread) == set()


def test_the_10th_decline_in_24_hours_passes_and_the_11th_is_an_error() -> None:
    """The decline that queued the job is the first of them."""
    nine = with_rows(PolicyRow("processing_error", True, 9, (H,)), cap=10)
    ten = with_rows(PolicyRow("processing_error", True, 10, (H,)), cap=10)
    assert found(nine) == set()
    [violation] = errors(lint(ten))
    assert violation.rule == "mastercard_declines_24h"
    assert "alone makes 11 declines in 24 hours" in violation.sentence


def test_the_jitter_is_counted_at_its_shortest() -> None:
    """Ten retries 144 minutes apart end exactly 24 hours after the first decline, which has
    left the window by then; a 10% jitter brings the tenth inside it."""
    row = PolicyRow("processing_error", True, 10, (144 * M,))
    assert found(with_rows(row, cap=10)) == set()
    assert found(with_rows(row, cap=10, jitter=0.1)) == {
        ("processing_error", "mastercard_declines_24h")
    }


def test_the_35th_decline_in_30_days_passes_and_the_36th_is_an_error() -> None:
    roomy = NetworkRules(visa_reattempts_per_30d=100)
    ok = with_rows(PolicyRow("do_not_honor", True, 34, (20 * H,)), cap=40)
    over = with_rows(PolicyRow("do_not_honor", True, 35, (20 * H,)), cap=40)
    assert found(ok, roomy) == set()
    assert found(over, roomy) == {("do_not_honor", "mastercard_declines_30d")}


def test_the_global_cap_bounds_the_schedule_linted() -> None:
    row = PolicyRow("processing_error", True, 50, (H,))
    assert len(schedule(with_rows(row), row)) == 3
    assert found(with_rows(row)) == set()


def test_mac_waits_warn_per_mac_and_follow_the_rules() -> None:
    short = with_rows(PolicyRow("try_again_later", True, 3, (30 * M, 10 * D, 10 * D)))
    rules = {v.rule for v in lint(short)}
    assert "mastercard_mac_24" in rules and "mastercard_mac_30" in rules
    long = with_rows(PolicyRow("try_again_later", True, 3, (10 * D,)))
    assert lint(long) == []
    assert lint(short, NetworkRules(mac_waits={})) == []


def test_busiest_counts_windows_as_the_rules_do() -> None:
    """(t - window, t]: an entry exactly one window earlier is outside."""
    assert busiest([timedelta(0), D], D) == 1
    assert busiest([timedelta(0), D - M], D) == 2
    assert busiest([], D) == 0


def test_a_violation_as_json() -> None:
    violation = errors(lint(with_rows(PolicyRow("stolen_card", True, 2, (D,), FROM_CONFIG))))[0]
    assert violation.as_dict() == {
        "row": "stolen_card",
        "rule": "visa_category_1",
        "severity": "error",
        "sentence": violation.sentence,
        "source": violation.source,
        "row_source": FROM_CONFIG,
    }
