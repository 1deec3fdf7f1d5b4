"""Stripe webhooks in, end to end: the emulator makes each event, signs it as Stripe does and
POSTs it over real HTTP to payretry's API on a real uvicorn, on SQLite and PostgreSQL; the
jobs are retried through the real SDK against the same emulator."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from payretry.api.server import ApiServer
from payretry.config import load_settings
from payretry.domain.models import Job, JobState, NewJob, ProcessorRefs
from payretry.domain.money import Money
from payretry.service.operations import Operations
from payretry.store.sql import SqlStore
from payretry.store.tables import OUTBOX, STRIPE_EVENTS
from payretry.wiring import Wiring
from tests.stripe.conftest import Clock, stripe_env
from tests.stripe.emulator import Emulator, Fault, Json

SECRET = "whsec_test_0123456789abcdef"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def hook_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        url: str = request.getfixturevalue("pg_url")
        return url
    return f"sqlite:///{tmp_path / 'hooks.db'}"


class Hooked:
    """payretry's API (webhooks on) and a runner over one database, the emulator beside."""

    def __init__(self, url: str, emulator: Emulator, clock: Clock, **env: str) -> None:
        self.emulator = emulator
        self.clock = clock
        settings = load_settings(
            env=stripe_env(
                emulator.url,
                PAYRETRY_DATABASE_URL=url,
                PAYRETRY_DATABASE_LOCK_TIMEOUT="30s",
                PAYRETRY_HTTP_TOKEN_SECRET="test-token-secret-0123456789",
                PAYRETRY_RUNNER_GRACE_PERIOD="5s",
                **env,
            )
        )
        self.wiring = Wiring(settings, clock=clock)
        self.store: SqlStore = self.wiring.store
        self.server = ApiServer(self.wiring, "127.0.0.1", 0).start()
        self.url = self.server.url
        emulator.webhooks(f"{self.url}/webhooks/stripe", SECRET)

    def close(self) -> None:
        self.server.stop()
        self.wiring.close()

    def queue(self, txn: str, **refs: Any) -> Job:
        error_code = refs.pop("error_code", "card_declined")
        decline_code = refs.pop("decline_code", "insufficient_funds")
        request = NewJob(
            transaction_id=txn,
            user_id="user_1",
            money=Money(4999, "USD"),
            error_code=error_code,
            decline_code=decline_code,
            error_message=None,
            refs=ProcessorRefs(
                refs.pop("payment_intent", None),
                refs.pop("customer", "cus_1"),
                refs.pop("payment_method", None),
                refs.pop("checkout_session", None),
            ),
            metadata={"order": txn},
            expires_at=self.clock() + timedelta(days=7),
            priority=None,
            **refs,
        )
        job, _ = Operations(self.store, self.wiring.policy, ledger=self.store).queue(
            request, self.clock()
        )
        return job

    def run(self) -> dict[str, Any]:
        results: list[Any] = []
        report = self.wiring.runner("stripe").run_due(on_result=results.append)
        return {**report.as_dict(), "results": [r.as_dict() for r in results]}

    def job(self, txn: str) -> Job:
        job = self.store.find(txn)
        assert job is not None
        return job

    def send(self, event: Json, **how: Any) -> Json:
        status, answer = self.emulator.deliver(event, **how)
        assert status == 200, answer
        return answer

    def count(self, table: Any) -> int:
        with self.store.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(table)).scalar_one())

    def failed_intent(self, pm: str = "pm_card", customer: str | None = "cus_1") -> str:
        intent, _ = self.emulator.failed_payment(
            amount=4999,
            currency="usd",
            customer=customer,
            payment_method=pm,
            outcome="decline:insufficient_funds",
        )
        return str(intent["id"])


@pytest.fixture
def make_hooked(hook_db: str, emulator: Emulator, clock: Clock) -> Iterator[Any]:
    made: list[Hooked] = []

    def make(**env: str) -> Hooked:
        env.setdefault("PAYRETRY_STRIPE_WEBHOOK_SECRET", SECRET)
        hooked = Hooked(hook_db, emulator, clock, **env)
        made.append(hooked)
        return hooked

    yield make
    for hooked in made:
        hooked.close()


@pytest.fixture
def hooked(make_hooked: Any) -> Hooked:
    made: Hooked = make_hooked()
    return made


# -- the signature ---------------------------------------------------------------------------


def test_bad_missing_stale_or_foreign_signatures_are_400_and_change_nothing(
    hooked: Hooked,
) -> None:
    pi = hooked.failed_intent()
    hooked.queue("txn_sig", payment_intent=pi)
    event = hooked.emulator.pay_elsewhere(pi)
    entries = hooked.count(OUTBOX)
    for how in (
        {"signature": ""},  # none at all
        {"signature": "t=1,v1=00"},  # not the right MAC
        {"timestamp": int(time.time()) - 600},  # older than the SDK's 5 minutes
        {"secret": "whsec_another_endpoint_secret"},  # another endpoint's secret
        {"signature": "garbage"},
    ):
        status, answer = hooked.emulator.deliver(event, **how)
        assert status == 400, (how, answer)
        assert answer["error"]["kind"] == "bad_signature"
        assert "whsec_" not in str(answer)
    assert hooked.job("txn_sig").state is JobState.SCHEDULED
    assert hooked.count(STRIPE_EVENTS) == 0
    assert hooked.count(OUTBOX) == entries
    # The route takes no bearer token, and a good signature goes through.
    assert hooked.send(event)["applied"] is True


def test_webhooks_off_answers_503_and_polling_still_settles(make_hooked: Any) -> None:
    hooked: Hooked = make_hooked(PAYRETRY_STRIPE_WEBHOOK_SECRET="")
    session = hooked.emulator.session({"order": "A-1"})
    hooked.queue(
        "txn_poll",
        checkout_session=session,
        customer=None,
        error_code="network_error",
        decline_code=None,
    )
    assert hooked.run()["awaiting_payer"] == 1  # attempt 1 at once: a new session
    new_session = hooked.job("txn_poll").action
    assert new_session is not None
    hooked.emulator.complete(new_session.ref)
    event = hooked.emulator.events("checkout.session.completed")[-1]
    status, answer = hooked.emulator.deliver(event)
    assert status == 503
    assert "webhook_secret" in answer["error"]["message"]
    hooked.run()  # the poll: the fallback
    assert hooked.job("txn_poll").state is JobState.SUCCEEDED


# -- payment_intent.succeeded: paid elsewhere --------------------------------------------------


def test_a_payment_made_elsewhere_is_never_charged_again(hooked: Hooked) -> None:
    pi = hooked.failed_intent()
    hooked.queue("txn_paid", payment_intent=pi, payment_method="pm_card")
    hooked.clock.advance(days=2)  # the retry is due now
    event = hooked.emulator.pay_elsewhere(pi)
    answer = hooked.send(event)
    assert answer["applied"] is True and answer["transaction_id"] == "txn_paid"
    job = hooked.job("txn_paid")
    assert job.state is JobState.SUCCEEDED
    assert pi in (job.reason or "") and event["id"] in (job.reason or "")
    confirms = len(hooked.emulator.requests("POST", f"/v1/payment_intents/{pi}/confirm"))
    assert hooked.run()["processed"] == 0  # no further attempt, ever
    assert len(hooked.emulator.requests("POST", f"/v1/payment_intents/{pi}/confirm")) == confirms
    assert hooked.emulator.state.paid[pi] == 1
    # A redelivery does nothing twice.
    entries = hooked.count(OUTBOX)
    again = hooked.send(event)
    assert again["duplicate"] is True and again["applied"] is False
    assert hooked.count(OUTBOX) == entries and hooked.count(STRIPE_EVENTS) == 1
    success = [e for e in hooked.store.entries_for_job(job.id) if e.kind.value == "retry_success"]
    assert len(success) == 1 and success[0].data["settled_by"] == event["id"]
    # explain tells what the webhook did.
    from payretry.service.explain import explain, webhook_ids

    entries_of = hooked.store.entries_for_job(job.id)
    story = explain(
        job,
        hooked.wiring.policy,
        entries_of,
        hooked.store.webhooks_for_job(job.id, webhook_ids(entries_of)),
    )
    assert any(step.kind == "webhook" and event["id"] in step.text for step in story)
    # Purged with the jobs: a record older than the retention can no longer stop a repeat.
    hooked.store.purge(hooked.clock() + timedelta(days=1))
    assert hooked.count(STRIPE_EVENTS) == 0


def test_a_webhook_racing_a_running_attempt_makes_one_outcome_and_one_charge(
    hooked: Hooked,
) -> None:
    pi = hooked.failed_intent(pm="pm_good")
    hooked.emulator.card("pm_good", "succeeded")
    hooked.queue("txn_race", payment_intent=pi, payment_method="pm_good")
    hooked.clock.advance(days=2)
    release = threading.Event()
    hooked.emulator.fault(f"POST /v1/payment_intents/{pi}/confirm", Fault(hold=release))
    hooked.emulator.state.received.clear()
    results: dict[str, Any] = {}
    runner = threading.Thread(target=lambda: results.update(hooked.run()))
    runner.start()
    deadline = time.monotonic() + 20
    while not hooked.emulator.events("payment_intent.succeeded") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert hooked.job("txn_race").state is JobState.RUNNING  # the answer is held
    succeeded = hooked.emulator.events("payment_intent.succeeded")[-1]
    assert hooked.send(succeeded)["applied"] is True
    release.set()
    runner.join(30)
    job = hooked.job("txn_race")
    assert job.state is JobState.SUCCEEDED
    assert [r["outcome"] for r in results["results"]] == ["lost_lease"]
    assert job.attempts[0].outcome.value == "succeeded" and job.attempts[0].reference == pi
    kinds = [e.kind.value for e in hooked.store.entries_for_job(job.id)]
    assert kinds.count("retry_success") == 1
    assert hooked.emulator.state.paid[pi] == 1


# -- Checkout ------------------------------------------------------------------------------------


def _awaiting(hooked: Hooked, txn: str) -> str:
    session = hooked.emulator.session({"order": txn})
    hooked.queue(
        txn, checkout_session=session, customer=None, error_code="network_error", decline_code=None
    )
    assert hooked.run()["awaiting_payer"] == 1  # attempt 1 at once: a new session
    action = hooked.job(txn).action
    assert action is not None
    return action.ref


def test_checkout_completed_settles_now_and_the_poll_then_does_nothing(hooked: Hooked) -> None:
    ref = _awaiting(hooked, "txn_co")
    hooked.emulator.complete(ref)
    completed = hooked.emulator.events("checkout.session.completed")[-1]
    answer = hooked.send(completed)
    assert "succeeded" in answer["effect"]
    job = hooked.job("txn_co")
    assert job.state is JobState.SUCCEEDED and job.attempts[-1].outcome.value == "succeeded"
    entries = hooked.count(OUTBOX)
    hooked.run()  # the poll finds nothing waiting
    succeeded = hooked.emulator.events("payment_intent.succeeded")[-1]
    assert "already succeeded" in hooked.send(succeeded)["effect"]
    assert hooked.count(OUTBOX) == entries


def test_the_poll_first_then_the_webhook_does_nothing(hooked: Hooked) -> None:
    ref = _awaiting(hooked, "txn_poll_first")
    hooked.emulator.complete(ref)
    hooked.run()
    assert hooked.job("txn_poll_first").state is JobState.SUCCEEDED
    completed = hooked.emulator.events("checkout.session.completed")[-1]
    answer = hooked.send(completed)
    assert answer["applied"] is False and "already succeeded" in answer["effect"]


@pytest.mark.parametrize(
    "kind", ["checkout.session.expired", "checkout.session.async_payment_failed"]
)
def test_checkout_expired_or_async_failed_fails_the_attempt_as_checkout_expired(
    hooked: Hooked, kind: str
) -> None:
    ref = _awaiting(hooked, "txn_exp")
    session = hooked.emulator.state.sessions[ref]
    answer = hooked.send(hooked.emulator.event(kind, session))
    assert answer["applied"] is True
    job = hooked.job("txn_exp")
    assert job.state is JobState.SCHEDULED and job.attempt_count == 1
    assert job.attempts[0].error_code == "checkout_expired"
    assert job.policy_code == "checkout_expired"


def test_async_payment_succeeded_settles_an_unpaid_completion(hooked: Hooked) -> None:
    ref = _awaiting(hooked, "txn_async")
    session = {**hooked.emulator.state.sessions[ref], "status": "complete"}
    unpaid = hooked.send(hooked.emulator.event("checkout.session.completed", session))
    assert "waits for the async outcome" in unpaid["effect"]
    assert hooked.job("txn_async").state is JobState.AWAITING_PAYER
    paid = {**session, "payment_status": "paid"}
    hooked.send(hooked.emulator.event("checkout.session.async_payment_succeeded", paid))
    assert hooked.job("txn_async").state is JobState.SUCCEEDED


# -- payment_intent.payment_failed: opening jobs ------------------------------------------------


def _foreign_failure(
    hooked: Hooked,
    outcome: str,
    *,
    txn: str | None = None,
    user: str = "usr_9",
    pm: str = "pm_x",
    amount: int = 900,
    currency: str = "usd",
    customer: str = "cus_2",
) -> tuple[Json, Json]:
    """A payment made outside payretry that failed with `outcome`: its PaymentIntent and the
    payment_intent.payment_failed event (carrying `txn` as its transaction id when given)."""
    metadata = {"transaction_id": txn, "user_id": user} if txn else None
    return hooked.emulator.failed_payment(
        amount=amount,
        currency=currency,
        customer=customer,
        payment_method=pm,
        outcome=outcome,
        metadata=metadata,
    )


def test_a_failure_not_made_by_payretry_opens_a_job_with_auto_queue(make_hooked: Any) -> None:
    hooked: Hooked = make_hooked(PAYRETRY_STRIPE_AUTO_QUEUE="true")
    hooked.emulator.card_details("pm_mc", "mastercard", "fpMC1234")
    intent, failed = _foreign_failure(
        hooked,
        "decline:insufficient_funds:try_again_later:24",
        txn="ord_77",
        user="usr_77",
        pm="pm_mc",
        amount=2500,
        currency="eur",
        customer="cus_9",
    )
    answer = hooked.send(failed)
    assert answer["applied"] is True, answer
    job = hooked.job("ord_77")
    assert job.state is JobState.SCHEDULED and job.user_id == "usr_77"
    assert job.money == Money(2500, "EUR") and job.refs.payment_intent == intent["id"]
    assert job.decline_code == "try_again_later"
    assert (job.card_network, job.card_fingerprint) == ("mastercard", "fpMC1234")
    from payretry.domain.card_checks import job_card

    card = job_card(job)  # its attempts count on that card under the card-network rules
    assert card is not None and str(card.key) == "card:mastercard:fpMC1234"
    # Then the customer pays it elsewhere: the job ends, nothing more is sent.
    hooked.send(hooked.emulator.pay_elsewhere(intent["id"]))
    assert hooked.job("ord_77").state is JobState.SUCCEEDED


def test_failed_after_succeeded_out_of_order_opens_nothing(make_hooked: Any) -> None:
    hooked: Hooked = make_hooked(PAYRETRY_STRIPE_AUTO_QUEUE="true")
    intent, failed = _foreign_failure(hooked, "decline:generic_decline")
    succeeded = hooked.emulator.pay_elsewhere(intent["id"])
    assert "no job retries" in hooked.send(succeeded)["effect"]
    answer = hooked.send(failed)  # arrives second
    assert answer["applied"] is False and "succeeded since" in answer["effect"]
    assert hooked.store.find(intent["id"]) is None


def test_a_failure_without_auto_queue_is_recorded_and_ignored(hooked: Hooked) -> None:
    intent, failed = _foreign_failure(hooked, "decline:generic_decline")
    answer = hooked.send(failed)
    assert answer["applied"] is False and "auto_queue is off" in answer["effect"]
    assert hooked.store.find(intent["id"]) is None and hooked.count(STRIPE_EVENTS) == 1


def test_anything_else_is_recorded_with_no_effect(hooked: Hooked) -> None:
    answer = hooked.send(
        hooked.emulator.event("invoice.created", {"id": "in_1", "object": "invoice"})
    )
    assert answer["applied"] is False and "no effect" in answer["effect"]
    assert hooked.count(STRIPE_EVENTS) == 1


# -- new card data: revival ------------------------------------------------------------------


def _failed_on(hooked: Hooked, txn: str, pm: str, outcome: str, **card: str) -> Job:
    hooked.emulator.card(pm, outcome)
    hooked.queue(txn, payment_method=pm, customer="cus_rev", **card)
    hooked.clock.advance(days=2)
    hooked.run()
    return hooked.job(txn)


def test_a_newly_attached_card_revives_a_job_failed_on_an_expired_card(hooked: Hooked) -> None:
    job = _failed_on(hooked, "txn_exp_card", "pm_old", "decline:expired_card")
    assert job.state is JobState.FAILED
    hooked.emulator.card("pm_new", "succeeded")
    hooked.emulator.card_details("pm_new", "visa", "fpNEW0001")
    answer = hooked.send(hooked.emulator.payment_method("pm_new", "cus_rev"))
    assert answer["applied"] is True and "txn_exp_card" in answer["effect"]
    revived = hooked.job("txn_exp_card")
    assert revived.state is JobState.SCHEDULED and revived.refs.payment_method == "pm_new"
    assert revived.card_fingerprint == "fpNEW0001" and revived.revived_after == 1
    kinds = [e.kind.value for e in hooked.store.entries_for_job(revived.id)]
    assert kinds[-1] == "retry_revived"
    report = hooked.run()
    assert report["succeeded"] == 1
    done = hooked.job("txn_exp_card")
    assert done.state is JobState.SUCCEEDED and done.attempt_count == 2


def test_a_new_default_payment_method_revives_a_mac_01_block(hooked: Hooked) -> None:
    hooked.emulator.card_details("pm_mc1", "mastercard", "fpMCOLD01")
    job = _failed_on(
        hooked,
        "txn_mac",
        "pm_mc1",
        "decline:do_not_honor::01",
        card_network="mastercard",
        card_fingerprint="fpMCOLD01",
    )
    assert job.state in (JobState.BLOCKED, JobState.FAILED), job.reason
    hooked.emulator.card("pm_mc1", "succeeded")  # updated in place: same card, new data
    event = hooked.emulator.default_payment_method("cus_rev", "pm_mc1", "pm_other")
    assert hooked.send(event)["applied"] is True
    assert hooked.run()["succeeded"] == 1  # the old MAC 01 no longer holds the job


def test_automatically_updated_revives_but_not_other_failures(hooked: Hooked) -> None:
    _failed_on(hooked, "txn_stolen", "pm_s", "decline:stolen_card")
    assert hooked.job("txn_stolen").state is JobState.FAILED
    event = hooked.emulator.payment_method(
        "pm_s", "cus_rev", "payment_method.automatically_updated"
    )
    answer = hooked.send(event)
    assert answer["applied"] is False and "waits for new card data" in answer["effect"]
    assert hooked.job("txn_stolen").state is JobState.FAILED  # final stays final
    # The card networks' updater refreshed a card the issuer asked to confirm: revived.
    confirm = _failed_on(hooked, "txn_confirm", "pm_c", "decline:card_declined:confirm_card_data")
    assert confirm.state is JobState.FAILED and confirm.attempts[-1].decline_code == (
        "confirm_card_data"
    )
    hooked.emulator.card("pm_c", "succeeded")
    event = hooked.emulator.payment_method(
        "pm_c", "cus_rev", "payment_method.automatically_updated"
    )
    answer = hooked.send(event)
    assert answer["applied"] is True and answer["transaction_id"] == "txn_confirm"
    assert hooked.job("txn_stolen").state is JobState.FAILED
    assert hooked.run()["succeeded"] == 1
    assert hooked.job("txn_confirm").state is JobState.SUCCEEDED


def test_update_by_hand_over_patch(hooked: Hooked) -> None:
    job = _failed_on(hooked, "txn_hand", "pm_h", "decline:expired_card")
    assert job.state is JobState.FAILED
    _failed_on(hooked, "txn_other", "pm_o", "decline:stolen_card")
    token, _ = hooked.wiring.tokens().create(_role("operator"), "ops")
    viewer, _ = hooked.wiring.tokens().create(_role("viewer"), "view")
    with httpx.Client(base_url=hooked.url, timeout=30) as http:
        path = "/api/payments/retry/{}"
        body = {"payment_method": "pm_fresh"}
        auth = {"Authorization": f"Bearer {token}"}
        assert http.patch(path.format("txn_hand"), json=body).status_code == 401
        seen = http.patch(
            path.format("txn_hand"), json=body, headers={"Authorization": f"Bearer {viewer}"}
        )
        assert seen.status_code == 403
        missing = http.patch(path.format("txn_nope"), json=body, headers=auth)
        assert missing.status_code == 404
        refused = http.patch(path.format("txn_other"), json=body, headers=auth)
        assert refused.status_code == 409 and "stolen_card" in refused.json()["error"]["message"]
        bad = http.patch(
            path.format("txn_hand"), json={"payment_method": "pm_1", "x": 1}, headers=auth
        )
        assert bad.status_code == 422
        done = http.patch(path.format("txn_hand"), json=body, headers=auth)
        assert done.status_code == 200, done.text
        assert done.json()["state"] == "scheduled" and done.json()["payment_method"] == "pm_fresh"
    assert hooked.run()["succeeded"] == 1
    assert hooked.job("txn_hand").state is JobState.SUCCEEDED


def _role(name: str) -> Any:
    from payretry.domain.access import Role

    return Role(name)


def test_a_full_queue_opens_no_job_from_a_failure_and_records_why(make_hooked: Any) -> None:
    hooked: Hooked = make_hooked(PAYRETRY_STRIPE_AUTO_QUEUE="true", PAYRETRY_QUEUE_MAX_ACTIVE="1")
    hooked.queue("txn_big")  # 49.99 USD: the one active job, of higher priority
    intent, failed = _foreign_failure(
        hooked, "decline:insufficient_funds", txn="ord_small", pm="pm_card", amount=500
    )
    answer = hooked.send(failed)
    assert answer["applied"] is False and "not queued" in answer["effect"], answer
    assert "max_active" in answer["effect"] or "full" in answer["effect"], answer
    assert hooked.store.find("ord_small") is None
    assert hooked.job("txn_big").state is JobState.SCHEDULED  # a lower job evicts nothing
    assert hooked.send(failed).get("duplicate") is True  # recorded: a redelivery does nothing


def test_a_revived_job_leaves_the_sealed_counts_so_stats_stay_exact(hooked: Hooked) -> None:
    from payretry.store import counts

    job = _failed_on(hooked, "txn_sealed", "pm_old", "decline:expired_card")
    assert job.state is JobState.FAILED
    with hooked.store.engine.begin() as conn:
        assert counts.seal_step(conn, 1000)[0] >= 1  # the failed job is behind the mark now
    hooked.emulator.card("pm_new", "succeeded")
    assert hooked.send(hooked.emulator.payment_method("pm_new", "cus_rev"))["applied"] is True
    assert hooked.job("txn_sealed").state is JobState.SCHEDULED
    with hooked.store.engine.connect() as conn:
        exact = counts.count(conn)  # every row, counted live
        assert counts.current(conn).by_state == exact.by_state
        assert exact.by_state["scheduled"] == 1 and exact.by_state["failed"] == 0
    hooked.run()
    with hooked.store.engine.connect() as conn:
        assert counts.current(conn).by_state == counts.count(conn).by_state


def test_an_auto_queued_failure_carries_its_network_advice_into_the_first_retry(
    make_hooked: Any,
) -> None:
    hooked: Hooked = make_hooked(PAYRETRY_STRIPE_AUTO_QUEUE="true")
    hooked.emulator.card_details("pm_mc27", "mastercard", "fpMC2727")
    hooked.emulator.card("pm_mc27", "succeeded")
    intent, failed = _foreign_failure(
        hooked,
        "decline:do_not_honor::27",
        txn="ord_27",
        user="usr_27",
        pm="pm_mc27",
        amount=1500,
        customer="cus_27",
    )
    before = hooked.clock()
    assert hooked.send(failed)["applied"] is True
    after = hooked.clock()
    job = hooked.job("ord_27")
    assert job.state is JobState.SCHEDULED and job.network_rule == "mastercard_mac_27"
    assert job.next_retry_at is not None  # 4 days after the decline, not try_again_later's 1 h
    assert before + timedelta(days=4) <= job.next_retry_at <= after + timedelta(days=4)
    assert "Mastercard MAC 27" in (job.reason or "")
    confirm = f"/v1/payment_intents/{intent['id']}/confirm"
    hooked.clock.advance(days=3, hours=23, minutes=59)
    assert hooked.run()["processed"] == 0
    assert hooked.emulator.requests("POST", confirm) == []
    hooked.clock.advance(minutes=1)
    assert hooked.run()["succeeded"] == 1
    assert len(hooked.emulator.requests("POST", confirm)) == 1


@pytest.mark.parametrize(
    ("brand", "outcome", "said"),
    [
        ("visa", "decline:do_not_honor:::04", "Visa category 1"),
        ("mastercard", "decline:do_not_honor::21", "do_not_try_again"),
        ("mastercard", "decline:generic_decline::03", "do_not_try_again"),
    ],
)
def test_an_auto_queued_failure_the_networks_forbid_retrying_opens_no_job(
    make_hooked: Any, brand: str, outcome: str, said: str
) -> None:
    hooked: Hooked = make_hooked(PAYRETRY_STRIPE_AUTO_QUEUE="true")
    hooked.emulator.card_details("pm_never", brand, "fpNEVER01")
    _, failed = _foreign_failure(
        hooked, outcome, txn="ord_never", pm="pm_never", amount=1500, customer="cus_never"
    )
    answer = hooked.send(failed)
    assert answer["applied"] is False and "not queued" in answer["effect"], answer
    assert said in answer["effect"]
    assert hooked.store.find("ord_never") is None
