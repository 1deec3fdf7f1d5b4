"""Four `run-due` processes at once over many jobs of the same few cards, on SQLite and on
PostgreSQL: no card-network rule broken, and every card's limit used to the last slot.

Every job fails every attempt (network_error, retried at once, up to 8 attempts), so the only
thing between the cards and far more authorizations than the networks allow is the claim's
check, and two workers racing on two jobs of one card must not both take its last slot.
Afterwards the card ledger is read with plain SQL and every authorization in it is checked by
the pure suite's brute-force oracle (tests/unit/test_network_rules.py), not by the code under
test.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from payretry.config import load_settings
from payretry.domain.card_ledger import CardKey, EntryKind, Initiator, LedgerEntry, Network
from payretry.domain.models import NewJob
from payretry.service.intake import new_job
from payretry.service.operations import Operations
from payretry.store.sql import open_store
from tests.daemon.helpers import cli_env, payretry
from tests.unit.test_network_rules import oracle

PROCESSES = 4
ATTEMPTS = 8
# (network, fingerprint or None for a payment method alone, jobs on the card)
CARDS = [
    *[("visa", f"fpVisa{n}", 10) for n in range(3)],  # 80 wanted, 20 reattempts allowed
    *[("mastercard", f"fpMc{n}", 3) for n in range(2)],  # 3 queue declines: 7 attempts
    (None, None, 3),  # unknown network, by payment method: both networks' limits, 7 attempts
]
CONFIG = f"""
[retry]
max_attempts = {ATTEMPTS}

[policy.network_error]
retry = true
max_attempts = {ATTEMPTS}
delays = ["0s"]
"""


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        found: str = request.getfixturevalue("pg_url")
        return found
    return f"sqlite:///{tmp_path / 'cards.db'}"


def queue_all(url: str, config: Path, now: datetime) -> int:
    settings = load_settings(str(config), env={})
    rows: list[tuple[int, NewJob]] = []
    for c, (network, fingerprint, jobs) in enumerate(CARDS):
        for j in range(jobs):
            fields: dict[str, Any] = {
                "transaction_id": f"txn-{c}-{j}",
                "user_id": f"usr-{c}-{j}",
                "amount": f"{10 + j}.00",
                "currency": "USD",
                "error_code": "network_error",
                "payment_method": f"pm_{c}_{j}" if fingerprint else f"pm_shared_{c}",
                "customer": f"cus_{c}",
                "metadata": {"simulate": ",".join(["network_error"] * ATTEMPTS)},
            }
            if fingerprint:
                fields |= {"card_network": network, "card_fingerprint": fingerprint}
            rows.append((len(rows) + 1, new_job(fields, now=now)))
    store = open_store(url)
    try:
        Operations(store, settings.policy(), ledger=store).queue_many(rows, now)
    finally:
        store.close()
    return len(rows)


def read_ledger(url: str) -> dict[str, list[LedgerEntry]]:
    """The card ledger, straight from the tables: each entry under its card (a payment
    method linked to a card counts as that card), by the time it counts from."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            links = {
                str(m): str(c)
                for m, c in conn.execute(text("SELECT method_key, card_key FROM card_links"))
            }
            rows = conn.execute(
                text(
                    "SELECT card_key, coalesce(settled_at, at) AS at, network, kind, "
                    "initiated_by, network_advice_code, network_decline_code, job_id, "
                    "attempt_number FROM card_ledger"
                )
            ).all()
    finally:
        engine.dispose()
    cards: dict[str, list[LedgerEntry]] = defaultdict(list)
    for r in sorted(rows, key=lambda r: str(r.at)):
        at = r.at if isinstance(r.at, datetime) else datetime.fromisoformat(str(r.at))
        entry = LedgerEntry(
            at.replace(tzinfo=UTC) if at.tzinfo is None else at,
            CardKey.parse(r.card_key),
            Network(r.network),
            EntryKind(r.kind),
            Initiator(r.initiated_by),
            r.network_advice_code,
            r.network_decline_code,
            r.job_id,
            r.attempt_number,
        )
        cards[links.get(r.card_key, r.card_key)].append(entry)
    return cards


def count_attempt_rows(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM retry_attempts")).scalar_one())
    finally:
        engine.dispose()


@pytest.mark.slow
def test_four_workers_on_a_few_cards_break_no_rule_and_use_every_slot(
    url: str, tmp_path: Path
) -> None:
    config = tmp_path / "payretry.toml"
    config.write_text(CONFIG)
    queued = queue_all(url, config, datetime.now(UTC))
    env = cli_env(
        url,
        tmp_path / "charges.db",
        PAYRETRY_CONFIG=str(config),
        PAYRETRY_RUNNER_BATCH_SIZE="4",  # small batches: the four interleave on every card
    )
    runners = [payretry("run-due", "--json", env=env) for _ in range(PROCESSES)]
    reports = []
    try:
        for runner in runners:
            out, err = runner.communicate(timeout=180)  # a guard against a hang, not a goal
            assert runner.returncode == 0, err
            reports.append(json.loads(out))
    finally:
        for runner in runners:
            if runner.poll() is None:
                runner.kill()
                runner.wait()
    assert all(r["lost_lease"] == 0 and r["rescued"] == 0 for r in reports)
    assert sum(r["postponed"] for r in reports) > 0  # the rules held jobs at claim time

    ledger = read_ledger(url)
    assert len(ledger) == len(CARDS)
    attempts = 0
    for key, entries in ledger.items():
        network = Network(key.split(":")[1]) if key.startswith("card:") else Network.UNKNOWN
        last: dict[str, LedgerEntry] = {}
        for i, e in enumerate(entries):
            assert e.kind is not EntryKind.ATTEMPT, e  # every outcome settled its entry
            if e.attempt_number != 0:
                attempts += 1
                broken = oracle(
                    entries[:i], network=network, at=e.at, who=Initiator.MERCHANT,
                    last=last.get(e.job_id or ""),
                )  # fmt: skip
                assert broken == set(), (key, e, broken)
            last[e.job_id or ""] = e
        reattempts = sum(1 for e in entries if e.attempt_number != 0)
        declines = sum(1 for e in entries if e.kind is EntryKind.DECLINE)
        if network is Network.VISA:
            assert reattempts == 20, key  # the last slot used, none past it
        else:  # Mastercard's, or both networks' for an unknown card: 10 declines in 24 hours
            assert declines == 10, key
    assert attempts == count_attempt_rows(url) == sum(r["processed"] for r in reports)
    assert queued == sum(jobs for _, _, jobs in CARDS)
