"""The card-network rules in the one decision (RetryPolicy.decide with the card's history), in
the claim's check, in the ledger entries a job writes and in the events it emits. Pure: the
clock is a parameter, the history a value."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from payretry.domain.card_checks import (
    CardHistory,
    CardIdentity,
    CardPool,
    after_outcome,
    attempt_entry,
    claim_verdict,
    is_fingerprint,
    job_card,
    queue_entry,
    settle,
)
from payretry.domain.card_ledger import (
    CardKey,
    EntryKind,
    KeyKind,
    LedgerEntry,
    Network,
    card_key,
)
from payretry.domain.changes import Held
from payretry.domain.events import EventType, on_outcome
from payretry.domain.models import Job, JobState, ProcessorRefs
from payretry.domain.network_rules import NetworkRules
from payretry.domain.policy import Outcome, RetryPolicy
from payretry.domain.results import AttemptResult
from tests.unit.decisions import job_of

T = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
H, D = timedelta(hours=1), timedelta(days=1)
POLICY = RetryPolicy.standard()
RULES = NetworkRules()
MC = CardKey(KeyKind.CARD, "mastercard:fp_m")
VISA = CardKey(KeyKind.CARD, "visa:fp_v")
MAC_WAITS = {"24": H, "25": D, "26": 2 * D, "27": 4 * D, "28": 6 * D, "29": 8 * D, "30": 10 * D}


def a_job(
    job_id: str = "j1",
    *,
    network: str | None = "mastercard",
    fingerprint: str | None = "fp_m",
    expires_at: datetime | None = None,
    attempts: int = 0,
    max_attempts: int = 3,
) -> Job:
    job = job_of(job_id, "card_declined", "try_again_later", expires_at, now=T)
    return replace(
        job,
        card_network=network,
        card_fingerprint=fingerprint,
        refs=ProcessorRefs(customer="cus_1", payment_method="pm_1"),
        attempt_count=attempts,
        max_attempts=max_attempts,
    )


def decline(
    at: datetime,
    *,
    card: CardKey = MC,
    job: str = "j1",
    number: int = 1,
    mac: str | None = None,
    code: str | None = None,
    network: Network | None = None,
) -> LedgerEntry:
    net = network or (Network.VISA if card == VISA else Network.MASTERCARD)
    return LedgerEntry(at, card, net, EntryKind.DECLINE, network_advice_code=mac,
                       network_decline_code=code, job_id=job, attempt_number=number)  # fmt: skip


def history(*entries: LedgerEntry, card: CardKey = MC) -> CardHistory:
    network = Network.VISA if card == VISA else Network.MASTERCARD
    return CardHistory(card, network, tuple(entries))


def failed(
    decline_code: str = "try_again_later", *, mac: str | None = None, code: str | None = None
) -> AttemptResult:
    return replace(
        AttemptResult.failure("card_declined", decline_code),
        network_advice_code=mac,
        network_decline_code=code,
    )


# -- decide with the card's history ----------------------------------------------------------


def test_without_a_card_the_policy_decides_held_by_the_failures_own_codes() -> None:
    plain = POLICY.decide(a_job(attempts=1), 1, failed(), T)
    assert plain.outcome is Outcome.RETRY and plain.next_retry_at == T + 6 * H
    assert plain.verdict is None and plain.rule is None
    # No ledger for the job, but the decline's own MAC still holds for the retry after it.
    decision = POLICY.decide(a_job(attempts=1), 1, failed(mac="27"), T)
    assert decision.outcome is Outcome.RETRY and decision.next_retry_at == T + 4 * D
    assert decision.rule == "mastercard_mac_27"


def test_a_mac_27_decline_moves_the_next_retry_to_4_days_and_says_so_with_its_source() -> None:
    own = decline(T, mac="27")
    decision = POLICY.decide(a_job(attempts=1), 1, failed(mac="27"), T, history(own))
    assert decision.outcome is Outcome.RETRY and decision.state is JobState.SCHEDULED
    assert decision.next_retry_at == T + 4 * D
    assert decision.rule == "mastercard_mac_27"
    assert decision.reason == (
        "decline code try_again_later: policy row 'try_again_later' waits 6h before attempt 2 "
        "of 3; moved by a card-network rule: Mastercard MAC 27: retry no sooner than 4 days "
        "after the decline; next try 2026-12-05T10:00:00Z (source: Mastercard Merchant Advice "
        "Codes (Transaction Processing Excellence): MAC 27, retry after 4 days)"
    )


@pytest.mark.parametrize("mac", sorted(MAC_WAITS))
def test_the_first_retry_after_mac_24_to_30_waits_the_mac_never_the_rows_hour(mac: str) -> None:
    job = a_job()
    queued = queue_entry(job, CardIdentity(MC, Network.MASTERCARD), T)
    queued = replace(queued, network_advice_code=mac)
    decision = POLICY.decide(job, 0, AttemptResult.queued_after(job), T, history(queued))
    assert decision.next_retry_at == T + MAC_WAITS[mac]  # the row alone says 1 hour
    assert decision.rule == (None if MAC_WAITS[mac] == H else f"mastercard_mac_{mac}")


def test_a_visa_category_1_decline_blocks_the_job_naming_the_rule_and_its_source() -> None:
    job = a_job(network="visa", fingerprint="fp_v", attempts=1)
    own = decline(T, card=VISA, code="R0")
    decision = POLICY.decide(job, 1, failed("do_not_honor", code="R0"), T, history(own, card=VISA))
    assert decision.outcome is Outcome.BLOCKED and decision.state is JobState.BLOCKED
    assert decision.next_retry_at is None and decision.rule == "visa_category_1"
    assert "a card-network rule stops it: Visa category 1 decline (response code R0)" in (
        decision.reason
    )
    assert "(source: Visa Rules" in decision.reason


def test_a_move_past_the_payment_window_is_a_block() -> None:
    job = a_job(attempts=1, expires_at=T + 2 * D)
    own = decline(T, mac="27")
    decision = POLICY.decide(job, 1, failed(mac="27"), T, history(own))
    assert decision.outcome is Outcome.BLOCKED and decision.rule == "mastercard_mac_27"
    assert decision.verdict is not None and decision.verdict.after_window
    assert "would fall after the payment window, which ends 2026-12-03T10:00:00Z" in (
        decision.reason
    )


def test_another_jobs_mac_03_blocks_the_cards_new_job_for_30_days() -> None:
    other = decline(T - 29 * D, job="other", mac="03")
    job = a_job()
    queued = queue_entry(job, CardIdentity(MC, Network.MASTERCARD), T)
    found = POLICY.decide(job, 0, AttemptResult.queued_after(job), T, history(other, queued))
    assert found.outcome is Outcome.BLOCKED and found.rule == "mastercard_mac_03"
    later = queue_entry(job, CardIdentity(MC, Network.MASTERCARD), T + D)
    again = POLICY.decide(job, 0, AttemptResult.queued_after(job), T + D, history(other, later))
    assert again.outcome is Outcome.RETRY and again.rule is None  # 30 days have passed


def test_the_11th_decline_in_24_hours_waits_for_the_oldest_to_leave() -> None:
    others = [decline(T - H + i * timedelta(minutes=5), job=f"o{i}") for i in range(9)]
    own = decline(T, mac=None)
    job = a_job(attempts=1)
    decision = POLICY.decide(job, 1, failed(), T, history(*others, own))
    # the row's attempt 2 comes 6 h later; by then 10 declines sit in the window
    assert decision.rule == "mastercard_declines_24h"
    assert decision.next_retry_at == others[0].at + D


def test_what_ends_the_job_never_asks_the_rules() -> None:
    blocking = history(decline(T - H, job="other", mac="21"))
    assert POLICY.decide(a_job(), 1, AttemptResult.success("pi_1"), T, blocking).outcome is (
        Outcome.SUCCEEDED
    )
    assert POLICY.decide(a_job(attempts=1), 1, failed("stolen_card"), T, blocking).outcome is (
        Outcome.FAILED
    )
    assert POLICY.decide(a_job(attempts=3), 3, failed(), T, blocking).outcome is Outcome.EXHAUSTED


# -- the claim's check -----------------------------------------------------------------------


def test_two_jobs_of_one_card_cannot_both_take_its_last_slot() -> None:
    nine = [decline(T - H + i * timedelta(minutes=1), job=f"o{i}") for i in range(9)]
    card = history(*nine)
    first, second = a_job("a"), a_job("b")
    allowed = claim_verdict(RULES, first, 1, card, T)
    assert allowed is not None and allowed.allowed
    taken = card.with_entry(attempt_entry(first, 1, card, T))  # counted as a possible decline
    held = claim_verdict(RULES, second, 1, taken, T)
    assert held is not None and held.postponed and held.rule == "mastercard_declines_24h"


def test_a_resend_of_an_attempt_already_in_the_ledger_is_not_checked_again() -> None:
    card = history(*[decline(T - H, job=f"o{i}") for i in range(12)])
    job = a_job("a")
    sent = card.with_entry(attempt_entry(job, 1, card, T - timedelta(minutes=5)))
    assert claim_verdict(RULES, job, 1, sent, T) is None


def test_a_hold_moves_the_job_never_earlier_than_it_was_due_and_a_block_ends_it() -> None:
    job = replace(a_job(), next_retry_at=T + 2 * D, lease_token="tok")
    card = history(decline(T - H, mac="26"))
    verdict = card.verdict(RULES, job, T)
    assert verdict.postponed and verdict.at == T - H + 2 * D
    held = Held.of(job, 1, verdict, T)
    assert held.job.state is JobState.SCHEDULED and held.job.next_retry_at == T + 2 * D
    assert held.job.lease_token is None and held.job.network_rule == "mastercard_mac_26"
    assert held.job.reason is not None and held.job.reason.startswith(
        "attempt 1 postponed by a card-network rule: Mastercard MAC 26: retry no sooner than 2 "
        "days after the decline"
    )
    [event] = held.entry.events()
    assert event.type is EventType.POSTPONED and event.data["rule"] == "mastercard_mac_26"
    assert event.id.endswith(":1:retry_postponed:20261203T100000Z")  # one id per move
    block = Held.of(job, 1, history(decline(T - H, job="o", mac="03")).verdict(RULES, job, T), T)
    assert block.blocked and block.job.next_retry_at is None
    assert [e.type for e in block.entry.events()] == [EventType.BLOCKED, EventType.NOTIFICATION]


# -- the entries a job writes, and the events of a rule-driven outcome -----------------------


def test_an_outcome_settles_the_attempts_entry_in_place_or_removes_it() -> None:
    job = a_job(network=None, fingerprint=None)
    method = CardKey(KeyKind.PAYMENT_METHOD, "pm_1")
    empty = CardHistory(method, Network.UNKNOWN, ())
    sent = attempt_entry(job, 1, empty, T - timedelta(seconds=2))
    card = empty.with_entry(sent)
    approval = settle(job, 1, card, AttemptResult.success("pi_1"), T)
    assert approval is not None and approval.sent == sent
    assert approval.entry is not None and approval.entry.kind is EntryKind.APPROVAL
    assert approval.entry.at == T  # when the answer came back
    nothing = settle(job, 1, card, AttemptResult.failure("rate_limit_exceeded"), T)
    assert nothing is not None and nothing.entry is None and nothing.sent == sent
    named = replace(failed(mac="24"), card_network="mastercard", card_fingerprint="Xt5EWLL")
    settled = settle(job, 1, card, named, T)
    assert settled is not None and settled.entry is not None
    assert settled.entry.network_advice_code == "24"
    assert settled.learnt == (CardKey(KeyKind.CARD, "mastercard:Xt5EWLL"), Network.MASTERCARD,
                              "Xt5EWLL")  # fmt: skip
    assert settled.entry.card == method  # entries never move; the method is linked instead
    assert after_outcome(card, settled).network is Network.MASTERCARD
    card_data = replace(named, card_fingerprint="4242424242424242")
    kept = settle(job, 1, card, card_data, T)
    assert kept is not None and kept.learnt is None  # never kept
    bare = replace(job, refs=ProcessorRefs(payment_intent="pi_1"))
    assert settle(bare, 1, None, failed(), T) is None  # the fast path: nothing to write
    first = settle(bare, 1, None, named, T)  # a card-less job learns its card
    assert first is not None and first.sent is None and first.entry is not None
    assert first.entry.card == CardKey(KeyKind.CARD, "mastercard:Xt5EWLL")


def test_a_fingerprint_is_an_opaque_id_never_digits_alone() -> None:
    assert is_fingerprint("Xt5EWLLDS7FJjR1c") and is_fingerprint("fp_1")
    assert not is_fingerprint("4242424242424242") and not is_fingerprint("123456789012")
    assert not is_fingerprint("has space") and not is_fingerprint("x" * 65)


def test_the_card_is_the_fingerprint_then_the_payment_method_then_the_customer() -> None:
    job = a_job()
    found = job_card(job)
    assert found == CardIdentity(MC, Network.MASTERCARD, "pm_1", "cus_1")
    for fields in (
        {"network": "visa", "fingerprint": "fp_v"},
        {"network": "unknown", "fingerprint": "fp_v"},
        {"network": None, "fingerprint": None},
    ):
        each = a_job(**fields)
        for refs in (each.refs, ProcessorRefs(customer="cus_9")):
            got = job_card(replace(each, refs=refs))
            assert got is not None and got.key == card_key(
                network=each.card_network,
                fingerprint=each.card_fingerprint,
                payment_method=refs.payment_method,
                customer=refs.customer,
            )
    assert found.own_keys == {"card:mastercard:fp_m", "payment_method:pm_1"}
    assert found.ledger_key == "payment_method:pm_1"  # written under the method
    assert found.link == ("payment_method:pm_1", "card:mastercard:fp_m")
    by_method = job_card(a_job(fingerprint=None, network=None))
    assert by_method is not None and str(by_method.key) == "payment_method:pm_1"
    assert by_method.own_keys == {"payment_method:pm_1"} and by_method.link is None
    learnt = job_card(replace(job, refs=ProcessorRefs(customer="cus_1")))
    assert learnt is not None and learnt.ledger_key == "card:mastercard:fp_m"
    assert learnt.own_keys == {"card:mastercard:fp_m", "customer:cus_1"}  # where it wrote
    bare = replace(a_job(fingerprint=None), refs=ProcessorRefs(payment_intent="pi_1"))
    assert job_card(bare) is None  # the claim's fast path
    checkout = replace(job, refs=ProcessorRefs(customer="cus_1", checkout_session="cs_1"))
    assert job_card(checkout) is None


def test_a_payment_method_linked_to_its_card_shares_the_cards_entries() -> None:
    pm1, pm2 = (CardKey(KeyKind.PAYMENT_METHOD, m) for m in ("pm_1", "pm_2"))
    pool = CardPool()
    pool.add(decline(T - H, card=pm1, job="a"))
    pool.add(decline(T - 2 * H, card=pm2, job="b"))  # the same card, saved twice
    pool.add(decline(T - 3 * H, job="c"))  # a job that knew only the card
    only_method = CardIdentity(pm1, Network.UNKNOWN, "pm_1")
    assert {e.job_id for e in pool.history(only_method).entries} == {"a"}  # no link yet
    pool.link("payment_method:pm_1", str(MC))
    pool.link("payment_method:pm_2", str(MC))
    assert {e.job_id for e in pool.history(only_method).entries} == {"a", "b", "c"}
    assert pool.keys_of(CardIdentity(MC, Network.MASTERCARD)) == {
        str(MC),
        "payment_method:pm_1",
        "payment_method:pm_2",
    }
    history = pool.history(CardIdentity(MC, Network.MASTERCARD, "pm_1"))
    assert history.key == pm1 and len(history.entries) == 3  # it writes under its method


def test_a_finish_moved_by_a_rule_emits_the_postponement_and_a_block_its_own_event() -> None:
    job = a_job(attempts=1)
    moved = POLICY.decide(job, 1, failed(mac="27"), T, history(decline(T, mac="27")))
    entry = on_outcome(job, 1, failed(mac="27"), moved, T)
    kinds = [e.type for e in entry.events()]
    assert kinds == [
        EventType.FAILED,
        EventType.POSTPONED,
        EventType.SCHEDULED,
        EventType.NOTIFICATION,
    ]
    postponed = entry.events()[1]
    assert postponed.attempt == 2 and postponed.data["rule_source"].startswith("Mastercard")
    block = POLICY.decide(job, 1, failed(mac="27"), T, history(decline(T, mac="03")))
    events = on_outcome(job, 1, failed(), block, T).events()
    assert [e.type for e in events] == [EventType.FAILED, EventType.BLOCKED, EventType.NOTIFICATION]
    assert events[1].data["rule"] == "mastercard_mac_03" and events[1].data["state"] == "blocked"
