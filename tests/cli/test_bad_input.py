"""Bad input: a clear error naming the field, exit 2, nothing written (issue 2, "Bad input")."""

from __future__ import annotations

import pytest

from tests.cli.conftest import Invoke, assert_error, assert_json_error, jobs, queue_args

CARD = "4242424242424242"  # Luhn-valid
LONG = "x" * 256


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
]


@pytest.mark.parametrize(("txn", "options", "extra", "field"), BAD_INPUT)
def test_bad_input_exit_2_names_the_field_and_writes_nothing(
    invoke: Invoke, txn: str, options: dict[str, str], extra: list[str], field: str
) -> None:
    result = invoke(*queue_args(txn, *extra, **options))
    assert_error(result, 2, field)
    assert result.stderr.startswith("error: ")
    assert result.stderr.count("\n") == 1, "one line on stderr"
    assert result.stdout == ""

    as_json = invoke(*queue_args(txn, *extra, "--json", **options))
    assert_json_error(as_json, 2, "invalid_input", field)

    assert jobs(invoke) == []


def test_bad_input_rejected_before_an_identical_valid_job_is_touched(invoke: Invoke) -> None:
    # A valid job exists; a bad repeat of it is still exit 2 and changes nothing.
    valid = invoke(*queue_args("txn_1", "--json"))
    assert valid.exit_code == 0
    before = jobs(invoke)
    assert_error(invoke(*queue_args("txn_1", amount="99.999")), 2, "amount")
    assert jobs(invoke) == before
