"""The Processor contract, on every processor: the simulated one (with its ledger, as `run-due`
uses it) and the Stripe processor against the Stripe emulator of tests/stripe over real HTTP.

The same idempotency key twice gives the same answer and one charge; a new attempt is a new
charge; a decline is a result, not an exception; a lost connection, or an answer lost after
the charge, is "in doubt" (AttemptInDoubt: the same key is sent again later, and charges
nothing more); a refused key is a ProcessorError; `name`, `needs_history` and `rate` are
declared. Where a processor cannot meet a case (the simulated one has no connection and no
key), the case is skipped saying why. localstripe is left out: it does not implement
idempotency keys, the heart of this contract.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from payretry.domain.models import Job, JobState, ProcessorRefs, attempt_key
from payretry.domain.money import Money
from payretry.domain.ports import Processor
from payretry.domain.results import AttemptInDoubt, AttemptRequest
from payretry.errors import ProcessorError
from payretry.processors.simulated import SimulatedProcessor
from payretry.processors.stripe import StripeProcessor
from payretry.processors.stripe_client import stripe_settings
from tests.stripe.conftest import emulator, free_port  # noqa: F401  (fixture)
from tests.stripe.emulator import KEY, Emulator, Fault

OUTCOMES = ("succeeded", "declined")


@dataclass
class ProcessorUnderTest:
    processor: Processor
    job: Callable[[str], Job]  # a job whose next attempt ends with that outcome
    charges: Callable[[str], int]  # charges made under an idempotency key
    # The cases a processor may not have, each with a reason when it has not.
    unreachable: Callable[[], Processor] | str  # the processor, its peer gone
    slow_answer: Callable[[], float] | str  # makes the next answer late; returns the wait
    bad_key: Callable[[], Processor] | str


def a_job(outcome: str, *, refs: ProcessorRefs, metadata: dict[str, str]) -> Job:
    assert outcome in OUTCOMES
    now = datetime.now(UTC)
    return Job(
        id=uuid.uuid4().hex,
        transaction_id=f"txn-{uuid.uuid4().hex[:8]}",
        user_id="user-1",
        money=Money(4999, "USD"),
        error_code="processing_error",
        decline_code=None,
        error_message=None,
        state=JobState.RUNNING,
        attempt_count=0,
        max_attempts=3,
        next_retry_at=now,
        created_at=now,
        updated_at=now,
        expires_at=None,
        priority=4999,
        refs=refs,
        metadata=metadata,
        seq=1,
    )


def simulated(tmp_path: Path) -> Iterator[ProcessorUnderTest]:
    ledger = tmp_path / "ledger.db"
    processor = SimulatedProcessor(success_rate=1.0, ledger=str(ledger))
    plans = {"succeeded": "succeeded", "declined": "card_declined:insufficient_funds"}

    def job(outcome: str) -> Job:
        return a_job(outcome, refs=ProcessorRefs(), metadata={"simulate": plans[outcome]})

    def charges(key: str) -> int:
        with closing(sqlite3.connect(ledger)) as conn:
            rows = conn.execute("SELECT 1 FROM charges WHERE idempotency_key = ?", (key,))
            return len(rows.fetchall())

    in_process = "the simulated processor answers in-process: no connection, no key"
    yield ProcessorUnderTest(processor, job, charges, in_process, in_process, in_process)
    processor.close()


def stripe(server: Emulator) -> Iterator[ProcessorUnderTest]:
    def build(api_key: str = KEY, api_base: str = server.url) -> StripeProcessor:
        conf = stripe_settings(
            api_key=api_key,
            api_base=api_base,
            max_network_retries=0,
            connect_timeout=timedelta(seconds=1),
            read_timeout=timedelta(seconds=1),
        )
        return StripeProcessor(conf)

    server.card("pm_declined", "decline:insufficient_funds")
    cards = {"succeeded": "pm_ok", "declined": "pm_declined"}

    def job(outcome: str) -> Job:
        refs = ProcessorRefs(customer="cus_1", payment_method=cards[outcome])
        return a_job(outcome, refs=refs, metadata={"order": "A-1"})

    def slow_answer() -> float:
        server.fault("POST /v1/payment_intents", Fault(delay=1.5))  # after the charge
        return 1.5

    yield ProcessorUnderTest(
        build(),
        job,
        lambda key: server.state.charges[key],
        lambda: build(api_base=f"http://127.0.0.1:{free_port()}"),
        slow_answer,
        lambda: build(api_key="sk_test_not_the_right_key_0000"),
    )


@pytest.fixture(params=["simulated", "stripe"])
def contract_processor(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[ProcessorUnderTest]:
    if request.param == "simulated":
        yield from simulated(tmp_path)
    else:
        yield from stripe(request.getfixturevalue("emulator"))


def first_request(job: Job, number: int = 1) -> AttemptRequest:
    return AttemptRequest(job, number, attempt_key(job.id, number), datetime.now(UTC))


def test_capabilities_are_declared(contract_processor: ProcessorUnderTest) -> None:
    processor = contract_processor.processor
    assert isinstance(processor.name, str) and processor.name
    assert isinstance(processor.needs_history, bool)
    assert processor.rate is None or processor.rate > 0


@pytest.mark.parametrize("outcome", OUTCOMES)
def test_the_same_key_twice_gives_the_same_answer_and_one_charge(
    contract_processor: ProcessorUnderTest, outcome: str
) -> None:
    under = contract_processor
    request = first_request(under.job(outcome))
    first = under.processor.attempt(request)
    again = under.processor.attempt(replace(request, resent=True))  # a crash, then the re-send
    assert again == first
    assert under.charges(request.idempotency_key) == 1
    if outcome == "succeeded":
        assert first.succeeded and first.reference
    else:  # a decline is an answer, not an exception
        assert not first.succeeded
        assert (first.error_code, first.decline_code) == ("card_declined", "insufficient_funds")


def test_a_new_attempt_is_a_new_charge(contract_processor: ProcessorUnderTest) -> None:
    under = contract_processor
    job = under.job("succeeded")
    one = under.processor.attempt(first_request(job, 1))
    two = under.processor.attempt(first_request(replace(job, attempt_count=1), 2))
    assert one.succeeded and two.succeeded and one.reference != two.reference
    assert under.charges(attempt_key(job.id, 1)) == under.charges(attempt_key(job.id, 2)) == 1


def test_a_lost_connection_is_in_doubt(contract_processor: ProcessorUnderTest) -> None:
    under = contract_processor
    if isinstance(under.unreachable, str):
        pytest.skip(under.unreachable)
    away = under.unreachable()
    request = first_request(under.job("succeeded"))
    with pytest.raises(AttemptInDoubt) as caught:
        away.attempt(request)
    assert caught.value.error_code == "network_error"
    assert under.charges(request.idempotency_key) == 0


def test_an_answer_lost_after_the_charge_is_in_doubt_and_the_resend_charges_nothing_more(
    contract_processor: ProcessorUnderTest,
) -> None:
    under = contract_processor
    if isinstance(under.slow_answer, str):
        pytest.skip(under.slow_answer)
    late = under.slow_answer()
    request = first_request(under.job("succeeded"))
    started = time.monotonic()
    with pytest.raises(AttemptInDoubt):
        under.processor.attempt(request)  # read timeout: charged, but no answer
    assert under.charges(request.idempotency_key) == 1
    time.sleep(max(0.0, late - (time.monotonic() - started)) + 0.2)  # the first request ends
    again = under.processor.attempt(replace(request, resent=True))
    assert again.succeeded
    assert under.charges(request.idempotency_key) == 1


def test_a_refused_key_is_a_processor_error(contract_processor: ProcessorUnderTest) -> None:
    under = contract_processor
    if isinstance(under.bad_key, str):
        pytest.skip(under.bad_key)
    refused = under.bad_key()
    request = first_request(under.job("succeeded"))
    with pytest.raises(ProcessorError) as caught:
        refused.attempt(request)
    assert "sk_test_not" not in str(caught.value)  # the key is never echoed
    assert under.charges(request.idempotency_key) == 0


def test_close_lets_go(contract_processor: ProcessorUnderTest) -> None:
    contract_processor.processor.close()
