"""The card-network rules from the command line: the queue's card flags and fields (bad input:
exit 2, the field named, nothing stored, never card data echoed), `payretry card`, `payretry
policy` and `policy check`, the `[network]` settings, the card ledger's own retention, and the
rule-driven decisions in `status` and `explain`."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from tests.cli.conftest import (
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

CARD = "4242424242424242"  # Luhn-valid
MC = ("--card-network", "mastercard", "--card-fingerprint", "fpMaster1")


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        pytest.param(["--card-network", "bogus"], "card_network", id="network-unknown-name"),
        pytest.param(["--card-network", ""], None, id="network-empty-is-none"),
        pytest.param(
            ["--card-network", "visa", "--card-fingerprint", CARD], "card_fingerprint", id="pan"
        ),
        pytest.param(
            ["--card-network", "visa", "--card-fingerprint", "4242 4242 4242 4242"],
            "card_fingerprint",
            id="pan-spaced",
        ),
        pytest.param(
            ["--card-network", "visa", "--card-fingerprint", "123456789012"],
            "card_fingerprint",
            id="digits-alone",
        ),
        pytest.param(
            ["--card-network", "visa", "--card-fingerprint", "fp with space"],
            "card_fingerprint",
            id="not-an-id",
        ),
        pytest.param(
            ["--card-network", "visa", "--card-fingerprint", "f" * 65],
            "card_fingerprint",
            id="too-long",
        ),
        pytest.param(
            ["--card-network", "visa", "--card-fingerprint", "jane@example.com"],
            "card_fingerprint",
            id="email",
        ),
        pytest.param(["--card-fingerprint", "fpAlone"], "card_network", id="fingerprint-alone"),
        pytest.param(
            ["--card-network", "unknown", "--card-fingerprint", "fp1"],
            "card_network",
            id="fingerprint-of-an-unknown-network",
        ),
    ],
)
def test_bad_card_flags_exit_2_name_the_field_and_store_nothing(
    invoke: Invoke, extra: list[str], field: str | None
) -> None:
    if field is None:  # an empty value is no value: accepted
        ok(invoke(*queue_args("txn_empty", *extra)))
        return
    result = invoke(*queue_args("txn_bad", *extra))
    assert_error(result, 2, field)
    assert CARD not in result.stderr and "4242 4242" not in result.stderr  # never echoed
    assert_json_error(invoke(*queue_args("txn_bad", *extra, "--json")), 2, "invalid_input", field)
    assert jobs(invoke) == []


def test_bad_card_fields_in_a_file_name_the_line_and_store_nothing(
    invoke: Invoke, tmp_path: Path
) -> None:
    rows = tmp_path / "rows.csv"
    rows.write_text(
        "transaction_id,user_id,amount,currency,error_code,card_network,card_fingerprint\n"
        "t1,u1,1.00,USD,processing_error,visa,fpGood1\n"
        "t2,u2,1.00,USD,processing_error,bogus,\n"
        f"t3,u3,1.00,USD,processing_error,visa,{CARD}\n"
    )
    result = invoke("queue", "--from-file", str(rows))
    assert_error(result, 2, "line 3: card_network", "line 4: card_fingerprint")
    assert CARD not in result.stderr
    assert jobs(invoke) == []
    good = tmp_path / "good.jsonl"
    good.write_text(
        json.dumps(
            {
                "transaction_id": "t1",
                "user_id": "u1",
                "amount": "1.00",
                "currency": "USD",
                "error_code": "processing_error",
                "card_network": "Visa",
                "card_fingerprint": "fpGood1",
            }
        )
        + "\n"  # fmt: skip
    )
    ok(invoke("queue", "--from-file", str(good)))
    [job] = jobs(invoke)
    assert (job["card_network"], job["card_key"]) == ("visa", "card:visa:fpGood1")


def test_a_job_carries_its_card_and_the_same_request_is_idempotent(invoke: Invoke) -> None:
    job = queued(invoke, "txn_1", "--card-network", "MasterCard", "--card-fingerprint", "fp1")
    assert (job["card_network"], job["card_fingerprint"]) == ("mastercard", "fp1")
    assert job["card_key"] == "card:mastercard:fp1" and job["network_rule"] is None
    again = queued(invoke, "txn_1", "--card-network", "mastercard", "--card-fingerprint", "fp1")
    assert again["created"] is False and again["job_id"] == job["job_id"]
    other = invoke(*queue_args("txn_1", "--card-network", "visa", "--card-fingerprint", "fp1"))
    assert_error(other, 3, "already active")
    by_method = queued(invoke, "txn_2", "--customer", "cus_1", "--payment-method", "pm_1")
    assert by_method["card_key"] == "payment_method:pm_1"


def test_card_shows_the_cards_declines_and_the_limits_left(invoke: Invoke) -> None:
    for n in range(3):
        queued(invoke, f"txn_{n}", *MC, error_code="network_error")
    document = doc(ok(invoke("card", "card:mastercard:fpMaster1", "--json")))
    assert document["card"] == "card:mastercard:fpMaster1" and document["network"] == "mastercard"
    assert document["declines_24h"] == 3 and document["attempts_30d"] == 3
    left = {x["rule"]: x["left"] for x in document["limits"]}
    assert left == {"mastercard_declines_24h": 7, "mastercard_declines_30d": 32}
    assert {e["attempt_number"] for e in document["recent"]} == {0}
    assert document["next_try"]["verdict"] == "allowed"
    human = ok(invoke("card", "card:mastercard:fpMaster1")).stdout
    assert "3 decline(s) in 24 hours" in human and "mastercard_declines_24h" in human


def test_card_refuses_a_bad_key_and_knows_no_unseen_card(invoke: Invoke) -> None:
    assert_error(invoke("card", "nope"), 2, "KEY")
    bad = invoke("card", CARD)
    assert_error(bad, 2, "KEY", "looks like a card number")
    assert CARD not in bad.stderr
    assert_json_error(invoke("card", "card:visa:unseen", "--json"), 4, "not_found")


def test_status_and_explain_tell_each_rule_driven_decision(invoke: Invoke) -> None:
    for n in range(11):  # 11 declines on one Mastercard card in a minute
        queued(invoke, f"txn_{n:02d}", *MC, error_code="network_error")
    last = doc(ok(invoke("status", "txn_10", "--json")))
    assert last["network_rule"] == "mastercard_declines_24h"
    assert "at most 10 declines per card in 24 hours" in last["reason"]
    story = ok(invoke("explain", "txn_10")).stdout
    assert "Its first retry was moved by a card-network rule: Mastercard excessive attempts" in (
        story
    )
    assert "(source: Mastercard Transaction Processing Excellence" in story
    report = doc(ok(invoke("run-due", "--json")))
    assert report["processed"] == 0 and report["postponed"] == 9  # the 9 due: held at claim
    first = ok(invoke("explain", "txn_00")).stdout
    assert "attempt 1 was not sent: Mastercard excessive attempts" in first
    events = doc(ok(invoke("explain", "txn_00", "--json")))["events"]
    assert [e["rule"] for e in events if e["type"] == "retry_postponed"] == [
        "mastercard_declines_24h"
    ]


# -- the rules in force, and the lint ---------------------------------------------------------


def test_policy_shows_the_card_network_rules_in_force(invoke: Invoke, tmp_path: Path) -> None:
    rules = {r["rule"]: r for r in doc(ok(invoke("policy", "--json")))["network_rules"]}
    assert rules["mastercard_mac_27"]["setting"].endswith("no sooner than 4 days after the decline")
    assert rules["visa_reattempts_30d"]["setting"].startswith("at most 20 reattempts")
    assert rules["visa_category_1"]["source"].startswith("Visa Rules")
    config = tmp_path / "c.toml"
    config.write_text('[network]\nvisa_reattempts_per_30d = 12\nmac_27_wait = "5d"\n')
    changed = doc(ok(invoke("--config", str(config), "policy", "--json")))["network_rules"]
    settings = {r["rule"]: r["setting"] for r in changed}
    assert settings["visa_reattempts_30d"].startswith("at most 12 reattempts")
    assert settings["mastercard_mac_27"].endswith("no sooner than 5 days after the decline")
    assert "card-network rules in force" in ok(invoke("policy")).stdout


def test_policy_check_warns_on_the_defaults_and_refuses_a_row_the_networks_fine(
    invoke: Invoke, tmp_path: Path
) -> None:
    default = ok(invoke("policy", "check"))
    assert "warning: mastercard_mac_27:" in default.stdout
    assert doc(ok(invoke("policy", "check", "--json")))["errors"] == 0
    config = tmp_path / "c.toml"
    config.write_text(
        '[policy.stolen_card]\nretry = true\nmax_attempts = 2\ndelays = ["1d"]\n\n'
        '[policy.network_error]\nretry = true\nmax_attempts = 12\ndelays = ["1m"]\n\n'
        "[retry]\nmax_attempts = 12\n"
    )
    bad = invoke("--config", str(config), "policy", "check")
    assert_error(bad, 3, "finding(s) are errors")
    assert "error: visa_category_1: decline code stolen_card is retried up to 2 times" in bad.stdout
    assert f"[config {config}]" in bad.stdout  # where the row came from
    assert "error: mastercard_declines_24h: row 'network_error' alone makes 13" in bad.stdout
    as_json = invoke("--config", str(config), "policy", "check", "--json")
    assert as_json.exit_code == 3
    document = doc(as_json)  # exactly one document
    assert document["ok"] is False and document["errors"] == 2
    assert {v["rule"] for v in document["violations"] if v["severity"] == "error"} == {
        "visa_category_1",
        "mastercard_declines_24h",
    }


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('[network]\nmac_27_wait = "soon"\n', "[network] mac_27_wait"),
        ("[network]\nmc_declines_per_24h = 0\n", "[network] mc_declines_per_24h"),
        ('[network]\nmac_never_codes = "03,abc"\n', "[network] mac_never_codes"),
        ("[network]\nno_such_rule = 1\n", "unknown setting [network] no_such_rule"),
        ('[retention]\ncard_ledger = "7d"\n', "[retention] card_ledger"),
    ],
)
def test_a_bad_network_setting_is_refused_naming_it(
    invoke: Invoke, tmp_path: Path, text: str, needle: str
) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(text)
    result = invoke("--config", str(config), "policy")
    assert_error(result, 2, needle, str(config), "line 2")


def test_a_bad_network_variable_is_refused_naming_it(invoke: Invoke) -> None:
    result = invoke("policy", env={"PAYRETRY_NETWORK_VISA_REATTEMPTS_PER_30D": "many"})
    assert_error(result, 2, "PAYRETRY_NETWORK_VISA_REATTEMPTS_PER_30D")


# -- the card ledger's own retention ----------------------------------------------------------


def test_the_jobs_purge_leaves_the_card_ledger_which_keeps_its_own_retention(
    invoke: Invoke, clock: Clock
) -> None:
    queued(invoke, "txn_1", *MC, error_code="network_error")
    ok(invoke("cancel", "txn_1"))
    clock.tick(timedelta(days=2).total_seconds())
    purged = doc(ok(invoke("purge", "--older-than", "1d", "--json")))
    assert purged["jobs"] == 1 and purged["card_ledger_entries"] == 0
    assert purged["card_ledger_older_than"] == "31d"
    assert doc(ok(invoke("card", "card:mastercard:fpMaster1", "--json")))["declines_30d"] == 1
    clock.tick(timedelta(days=30).total_seconds())
    dry = doc(ok(invoke("purge", "--dry-run", "--json")))
    assert dry["card_ledger_entries"] == 1
    assert doc(ok(invoke("purge", "--json")))["card_ledger_entries"] == 1
    assert_json_error(invoke("card", "card:mastercard:fpMaster1", "--json"), 4, "not_found")
