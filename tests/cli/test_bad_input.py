"""Bad input: a clear error naming the field, exit 2, nothing written (issue 2, "Bad input")."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import Invoke, assert_error, assert_json_error, jobs, queue_args

CARD = "4242424242424242"  # Luhn-valid
LONG = "x" * 256
GROUPS = ["4242"] * 4
NBSP, THIN, ZWSP = "\u00a0", "\u2009", "\u200b"


def _case(label: str, field: str, *extra: str, txn: str = "txn_bad", **options: str) -> object:
    return pytest.param(txn, options, list(extra), field, id=label)


BAD_INPUT = [
    # amounts
    _case("amount-negative", "amount", amount="-5.00"),
    _case("amount-zero", "amount", amount="0"),
    _case("amount-zero-decimals", "amount", amount="0.00"),
    _case("amount-nan", "amount", amount="NaN"),
    _case("amount-inf", "amount", amount="inf"),
    _case("amount-infinity", "amount", amount="Infinity"),
    _case("amount-exponent", "amount", amount="1e3"),
    _case("amount-over-precise-usd", "amount", amount="1.999"),
    _case("amount-over-precise-jpy", "amount", amount="100.5", currency="JPY"),
    _case("amount-over-precise-bhd", "amount", amount="1.2345", currency="BHD"),
    _case("amount-comma", "amount", amount="1,000"),
    _case("amount-empty", "amount", amount=""),
    _case("amount-huge", "amount", amount="1" + "0" * 20),
    # currencies
    _case("currency-unknown", "currency", currency="XYZ"),
    _case("currency-two-letters", "currency", currency="US"),
    _case("currency-empty", "currency", currency=""),
    _case("currency-no-minor-unit", "currency", currency="XAU"),
    # ids
    _case("txn-empty", "transaction_id", txn=""),
    _case("txn-too-long", "transaction_id", txn=LONG),
    _case("txn-control-newline", "transaction_id", txn="txn\n1"),
    _case("txn-control-escape", "transaction_id", txn="txn\x1b[31m"),
    _case("txn-nul", "transaction_id", txn="txn\x00"),
    _case("txn-card-number", "transaction_id", txn=CARD),
    _case("user-empty", "user_id", user_id=""),
    _case("user-too-long", "user_id", user_id=LONG),
    _case("user-control", "user_id", user_id="user\t1"),
    _case("user-email", "user_id", user_id="jane@example.com"),
    _case("payment-intent-too-long", "payment_intent", payment_intent=LONG),
    # codes
    _case("error-code-missing", "error_code", error_code=""),
    _case("error-code-malformed", "error_code", error_code="not a code!"),
    _case("decline-code-malformed", "decline_code", decline_code="x" * 65),
    # priority
    _case("priority-words", "priority", priority="high"),
    _case("priority-fraction", "priority", priority="1.5"),
    # windows and times
    _case("window-words", "window", window="tomorrow"),
    _case("window-negative", "window", window="-5m"),
    _case("window-zero", "window", window="0s"),
    _case("window-unknown-unit", "window", window="5y"),
    _case("window-too-long", "window", window="4000d"),
    _case("window-and-expires", "window", window="1h", expires_at="2030-01-01T00:00:00Z"),
    _case("expires-words", "expires_at", expires_at="next tuesday"),
    _case("expires-bad-month", "expires_at", expires_at="2026-13-01T00:00:00Z"),
    _case("expires-naive", "expires_at", expires_at="2030-11-23T12:00:00"),
    # metadata
    _case("metadata-no-equals", "metadata", "--metadata", "justakey"),
    _case("metadata-empty-key", "metadata", "--metadata", "=value"),
    _case("metadata-key-too-long", "metadata", "--metadata", "k" * 41 + "=v"),
    _case("metadata-key-bad-chars", "metadata", "--metadata", "bad key=v"),
    _case("metadata-value-too-long", "metadata", "--metadata", "k=" + "v" * 501),
    _case("metadata-value-control", "metadata", "--metadata", "k=a\x07b"),
    _case("metadata-key-twice", "metadata", "--metadata", "k=1", "--metadata", "k=2"),
    _case(
        "metadata-too-many-keys",
        "metadata",
        *[arg for n in range(21) for arg in ("--metadata", f"k{n}=v")],
    ),
    _case("metadata-card", "metadata.card", "--metadata", f"card={CARD}"),
    _case("metadata-card-spaces", "metadata.card", "--metadata", "card=4242 4242 4242 4242"),
    _case("metadata-card-dashes", "metadata.card", "--metadata", "card=4242-4242-4242-4242"),
    _case("metadata-card-amex", "metadata.card", "--metadata", "card=3782 822463 10005"),
    _case("metadata-card-in-text", "metadata.note", "--metadata", f"note=paid with {CARD} ok"),
    _case(
        "metadata-email", "metadata.contact", "--metadata", "contact=jane.doe+x@mail.example.org"
    ),
    # issue 11: card numbers however separated, in every field; addresses of every script
    _case("metadata-card-dots", "metadata.card", "--metadata", "card=4242.4242.4242.4242"),
    _case("metadata-card-2-spaces", "metadata.card", "--metadata", "card=4242  4242  4242  4242"),
    _case("metadata-card-nbsp", "metadata.card", "--metadata", f"card={NBSP.join(GROUPS)}"),
    _case("metadata-card-thin", "metadata.card", "--metadata", f"card={THIN.join(GROUPS)}"),
    _case("metadata-card-zero-width", "metadata.card", "--metadata", f"card={ZWSP.join(GROUPS)}"),
    _case(
        "metadata-card-em-dash",
        "metadata.card",
        "--metadata",
        "card=4242\u20144242\u20144242\u20144242",
    ),
    _case("metadata-card-slashes", "metadata.card", "--metadata", "card=4242/4242/4242/4242"),
    _case("metadata-card-underscores", "metadata.card", "--metadata", "card=4242_4242_4242_4242"),
    _case("metadata-card-arabic", "metadata.card", "--metadata", "card=" + "\u0664\u0662" * 8),
    _case("metadata-card-fullwidth", "metadata.card", "--metadata", "card=" + "\uff14\uff12" * 8),
    _case("metadata-key-card", "metadata", "--metadata", f"{CARD}=x"),
    _case("metadata-key-card-dots", "metadata", "--metadata", "4242.4242.4242.4242=x"),
    _case("metadata-email-unicode", "metadata.owner", "--metadata", "owner=bob@b\u00fccher.de"),
    _case("metadata-email-apostrophe", "metadata.owner", "--metadata", "owner=o'neil@example.com"),
    _case("metadata-value-zero-width", "metadata", "--metadata", "k=a\u200bb"),
    _case("error-code-card", "error_code", error_code=CARD),
    _case("error-code-card-underscores", "error_code", error_code="4242_4242_4242_4242"),
    _case("error-code-kelvin", "error_code", error_code="\u212aode"),
    _case("decline-code-card", "decline_code", decline_code=CARD),
    _case("txn-card-dots", "transaction_id", txn="4242.4242.4242.4242"),
    _case("txn-zero-width", "transaction_id", txn="txn\u200b1"),
    _case("txn-rtl-override", "transaction_id", txn="txn\u202e1"),
    _case("txn-nbsp", "transaction_id", txn="txn\u00a01"),
    _case("user-email-unicode", "user_id", user_id="bob@b\u00fccher.de"),
    _case("user-card-nbsp", "user_id", user_id=NBSP.join(GROUPS)),
    _case("customer-zero-width", "customer", customer="cus\u200d1"),
    _case("error-message-too-long", "error_message", error_message="x" * 2001),
    _case("amount-card", "amount", amount=CARD),
    _case("amount-card-jpy", "amount", amount="4222222222222", currency="JPY"),
    _case("amount-arabic-digits", "amount", amount="\u0669\u0669.\u0669\u0669"),
    _case("currency-long-s", "currency", currency="u\u017fd"),
    _case("priority-underscore", "priority", priority="1_000"),
    _case("priority-plus", "priority", priority="+5"),
    _case("priority-spaces", "priority", priority=" 7 "),
    _case("priority-arabic-digits", "priority", priority="\u0667"),
    _case("priority-card", "priority", priority=CARD),
    _case("window-arabic-digits", "window", window="\u0665m"),
    _case("expires-before-year-1", "expires_at", expires_at="0001-01-01T00:00:00+14:00"),
    _case("expires-after-year-9999", "expires_at", expires_at="9999-12-31T23:59:59-14:00"),
    _case("expires-far-future", "expires_at", expires_at="2500-01-01T00:00:00Z"),
]


@pytest.mark.parametrize(("txn", "options", "extra", "field"), BAD_INPUT)
def test_bad_input_exit_2_names_the_field_and_writes_nothing(
    invoke: Invoke,
    db_path: Path,
    txn: str,
    options: dict[str, str],
    extra: list[str],
    field: str,
) -> None:
    result = invoke(*queue_args(txn, *extra, **options))
    assert_error(result, 2, field)
    assert result.stderr.startswith("error: ")
    assert result.stderr.count("\n") == 1, "one line on stderr"
    assert result.stdout == ""
    for digits in ("4242", "\u0664\u0662", "4222", "bob@", "neil@"):
        assert digits not in result.stderr, (
            "a rejected value that looks like card data or an address is never echoed"
        )

    as_json = invoke(*queue_args(txn, *extra, "--json", **options))
    assert_json_error(as_json, 2, "invalid_input", field)
    assert "4242" not in as_json.stdout

    assert not db_path.exists(), "a refused queue creates no database"
    assert jobs(invoke) == []


def test_bad_input_rejected_before_an_identical_valid_job_is_touched(invoke: Invoke) -> None:
    # A valid job exists; a bad repeat of it is still exit 2 and changes nothing.
    valid = invoke(*queue_args("txn_1", "--json"))
    assert valid.exit_code == 0
    before = jobs(invoke)
    assert_error(invoke(*queue_args("txn_1", amount="99.999")), 2, "amount")
    assert jobs(invoke) == before
