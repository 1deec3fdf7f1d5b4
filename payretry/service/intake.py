"""Turn raw fields (flags, a JSON Lines or CSV row) into a validated NewJob.

Every field is checked before anything is stored, in time linear in the row's size: a field
longer than its limit is refused before it is looked at any further, and no error quotes a
value that could be card data or an address.
"""

from __future__ import annotations

import codecs
import csv
import json
import re
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

from payretry.domain.card_checks import is_fingerprint
from payretry.domain.card_ledger import Network, network_code
from payretry.domain.durations import MAX_DURATION, parse_duration, parse_time
from payretry.domain.models import NewJob, ProcessorRefs, QueuedAdvice
from payretry.domain.money import Money
from payretry.domain.network_rules import ADVICE_CODES
from payretry.domain.validation import (
    MAX_MESSAGE_INPUT,
    no_card,
    sanitize_message,
    shown,
    validate_code,
    validate_id,
    validate_metadata,
    validate_text,
)
from payretry.errors import InvalidInput

FIELDS = (
    "transaction_id",
    "user_id",
    "amount",
    "currency",
    "error_code",
    "decline_code",
    "error_message",
    "payment_intent",
    "customer",
    "payment_method",
    "checkout_session",
    "window",
    "expires_at",
    "priority",
    "metadata",
    "card_network",
    "card_fingerprint",
    "advice_code",
    "network_advice_code",
    "network_decline_code",
)
_KNOWN = frozenset(FIELDS) | {"amount_minor"}
_PRIORITY_LIMIT = 2**62
_PRIORITY = re.compile(r"-?[0-9]{1,19}")  # as --amount: not "1_000", "+5", " 7 " or "٥"
_MINOR = re.compile(r"[0-9]{1,19}")
# A Mastercard Merchant Advice Code: two digits ("1" is read as "01"); an issuer's response
# code: one to three letters or digits ("51", "R0", "N7").
_MAC = re.compile(r"[0-9]{1,2}")
_RESPONSE = re.compile(r"[A-Za-z0-9]{1,3}")
# The longest each field may be, checked first: a bigger value is refused unread.
_LIMITS = {"error_message": MAX_MESSAGE_INPUT, "metadata": 16_000}
_DEFAULT_LIMIT = 1_000  # ids (255), codes (64), amounts, currencies, times: all far shorter
_SHORTEST_LIMIT = min(_DEFAULT_LIMIT, *_LIMITS.values())  # a value within it needs no look-up
MAX_LINE = 64 * 1024  # bytes in one line of a --from-file
_SKIP_AT_MOST = 64 * 1024 * 1024  # an endless line (/dev/zero) stops the reading


def _text(fields: Mapping[str, Any], name: str) -> str | None:
    value = fields.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidInput("must be a string", field=name)
    return str(value)


def _check_sizes(fields: Mapping[str, Any]) -> None:
    for name, value in fields.items():
        # Only a value longer than the shortest limit needs its own looked up.
        if isinstance(value, str) and len(value) > _SHORTEST_LIMIT:
            limit = _LIMITS.get(name, _DEFAULT_LIMIT)
            if len(value) > limit:
                raise InvalidInput(f"is longer than {limit:,} characters", field=name)


def _priority(raw: object) -> int | None:
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise InvalidInput("must be a whole number", field="priority")
    if isinstance(raw, str):
        if not _PRIORITY.fullmatch(raw):
            raise InvalidInput(f"{shown(raw)} is not a whole number", field="priority")
        raw = int(raw)
    if abs(raw) > _PRIORITY_LIMIT:
        raise InvalidInput("is out of range", field="priority")
    no_card(str(abs(raw)), "priority")
    return raw


def _money(fields: Mapping[str, Any], currency: str) -> Money:
    if fields.get("amount_minor") not in (None, ""):
        raw_minor = fields["amount_minor"]
        if isinstance(raw_minor, str):
            if not _MINOR.fullmatch(raw_minor):
                raise InvalidInput(
                    "must be a whole number of minor units (digits only)", field="amount_minor"
                )
            raw_minor = int(raw_minor)
        return Money.of(raw_minor, currency)
    amount = fields.get("amount")
    if amount is None or amount == "":
        raise InvalidInput("is required", field="amount")
    if not isinstance(amount, str):
        raise InvalidInput(
            'must be a decimal string like "99.99" (numbers lose precision)', field="amount"
        )
    return Money.parse(amount, currency)


def _metadata(raw: object) -> dict[str, str]:
    metadata = raw or {}
    if isinstance(metadata, str):
        try:
            metadata = _loads(metadata)
        except _BadJson as exc:
            raise InvalidInput(f"must be a JSON object ({exc})", field="metadata") from None
    if not isinstance(metadata, Mapping):
        raise InvalidInput("must be an object of KEY: VALUE", field="metadata")
    return validate_metadata(metadata)


def new_job(
    fields: Mapping[str, Any], *, now: datetime, default_window: timedelta | None = None
) -> NewJob:
    """Validate every field; raise InvalidInput naming the first bad one."""
    if not _KNOWN.issuperset(fields):
        unknown = sorted((f for f in fields if f not in _KNOWN), key=str)[0]
        name = unknown if isinstance(unknown, str) and shown(unknown) == repr(unknown) else None
        raise InvalidInput(f"unknown field {shown(unknown)}", field=name)
    _check_sizes(fields)
    transaction_id = validate_id(fields.get("transaction_id"), "transaction_id")
    user_id = validate_id(fields.get("user_id"), "user_id")
    currency = _text(fields, "currency")
    if currency is None:
        raise InvalidInput("is required", field="currency")
    money = _money(fields, currency)
    error_code = validate_code(fields.get("error_code"), "error_code")
    decline_code = validate_code(fields.get("decline_code"), "decline_code", required=False)
    message = _text(fields, "error_message")
    if message is not None:
        validate_text(message, "error_message", limit=MAX_MESSAGE_INPUT)
    refs = ProcessorRefs(
        payment_intent=validate_id(fields.get("payment_intent"), "payment_intent", required=False),
        customer=validate_id(fields.get("customer"), "customer", required=False),
        payment_method=validate_id(fields.get("payment_method"), "payment_method", required=False),
        checkout_session=validate_id(
            fields.get("checkout_session"), "checkout_session", required=False
        ),
    )
    window_text = _text(fields, "window")
    expires_text = _text(fields, "expires_at")
    if window_text and expires_text:
        raise InvalidInput("give --window or --expires-at, not both", field="window")
    expires_at: datetime | None = None
    if window_text:
        window = parse_duration(window_text, field="window")
        if window <= timedelta(0):
            raise InvalidInput("must be longer than zero", field="window")
        expires_at = now + window
    elif expires_text:
        expires_at = parse_time(expires_text, field="expires_at")
        if expires_at - now > MAX_DURATION:
            raise InvalidInput("is more than 10 years from now", field="expires_at")
    elif default_window is not None:
        expires_at = now + default_window
    priority = _priority(fields.get("priority"))
    metadata = _metadata(fields.get("metadata"))
    card_network, card_fingerprint = _card(fields)
    advice = _advice(fields)
    assert transaction_id is not None and user_id is not None and error_code is not None
    return NewJob(
        transaction_id=transaction_id,
        user_id=user_id,
        money=money,
        error_code=error_code,
        decline_code=decline_code,
        error_message=sanitize_message(message),
        refs=refs,
        metadata=metadata,
        expires_at=expires_at,
        priority=priority,
        window=window_text,
        card_network=card_network,
        card_fingerprint=card_fingerprint,
        advice=advice,
    )


def reported_advice(
    advice_code: str | None, network_advice_code: str | None, network_decline_code: str | None
) -> dict[str, str | None]:
    """The advice fields of a failure a processor reported (a webhook's `last_payment_error`),
    leniently: a code payretry does not know (a new Stripe advice code, an odd network code)
    is left out rather than refusing the job; the rest pass the same checks as `queue`'s."""
    fields: dict[str, str | None] = {
        "advice_code": advice_code,
        "network_advice_code": network_advice_code,
        "network_decline_code": network_decline_code,
    }
    for name in fields:
        try:
            _advice({name: fields[name]})
        except InvalidInput:
            fields[name] = None
    return fields


def _advice(fields: Mapping[str, Any]) -> QueuedAdvice | None:
    """What the failure's processor and card network advised: Stripe's advice code (one of
    its three), Mastercard's advice code (two digits) and the issuer's response code (one to
    three letters or digits), the network's codes as the networks spell them ("1" -> "01")."""
    advice = _text(fields, "advice_code")
    if advice is not None and advice.strip().lower() not in ADVICE_CODES:
        raise InvalidInput(
            f"{shown(advice)} is not an advice code (one of: {', '.join(sorted(ADVICE_CODES))})",
            field="advice_code",
        )
    mac = _text(fields, "network_advice_code")
    if mac is not None and not _MAC.fullmatch(mac.strip()):
        raise InvalidInput(
            f"{shown(mac)} is not a network advice code (Mastercard's: two digits, e.g. 27)",
            field="network_advice_code",
        )
    response = _text(fields, "network_decline_code")
    if response is not None and not _RESPONSE.fullmatch(response.strip()):
        raise InvalidInput(
            f"{shown(response)} is not a network decline code (the issuer's response code: "
            "one to three letters or digits, e.g. 51 or R0)",
            field="network_decline_code",
        )
    found = QueuedAdvice(
        advice.strip().lower() if advice else None,
        network_code(mac),
        network_code(response),
    )
    return found or None


def _card(fields: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The card's network (one of the known networks) and the processor's fingerprint (an
    opaque id). Never card data: a fingerprint that looks like a card number is refused
    without being echoed."""
    network_text = _text(fields, "card_network")
    network = None
    if network_text is not None:
        no_card(network_text, "card_network")
        try:
            network = Network.parse(network_text)
        except InvalidInput:  # said again with the value shown safely
            names = ", ".join(n.value for n in Network)
            raise InvalidInput(
                f"{shown(network_text)} is not a card network (one of: {names})",
                field="card_network",
            ) from None
    known = network.value if network is not None and network is not Network.UNKNOWN else None
    fingerprint = _text(fields, "card_fingerprint")
    if fingerprint is None:
        return known, None
    validate_id(fingerprint, "card_fingerprint")  # no card number, no e-mail address
    if not is_fingerprint(fingerprint):
        raise InvalidInput(
            "is not a card fingerprint (the processor's opaque id: 1 to 64 letters, digits, "
            "'_', '-', '.', ':', not digits alone); never card data",
            field="card_fingerprint",
        )
    if known is None:
        raise InvalidInput("a card fingerprint needs its card network", field="card_network")
    return known, fingerprint


class _BadJson(ValueError):
    """Why a JSON text was refused (its message names the problem, never a value)."""


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data = dict(pairs)  # built in C; a key given twice leaves it shorter than the pairs
    if len(data) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _BadJson(f"key {shown(key)} appears twice")
            seen.add(key)
    return data


def _constant(name: str) -> Any:
    raise _BadJson(f"{name} is not a JSON number")


def _loads(text: str) -> Any:
    """JSON, strictly: no duplicate keys, no NaN or Infinity; a structure nested too deeply
    or a number too long is refused, not an internal error."""
    try:
        return json.loads(text, object_pairs_hook=_object, parse_constant=_constant)
    except _BadJson:
        raise
    except json.JSONDecodeError as exc:
        raise _BadJson(f"not valid JSON: {exc.msg} at column {exc.colno}") from None
    except RecursionError:
        raise _BadJson("nested too deeply") from None
    except ValueError:  # an integer of more than 4,300 digits
        raise _BadJson("a number too long") from None


def _lines(handle: IO[bytes], path: Path) -> Iterator[tuple[int, str | None, str | None]]:
    """(line number, text, problem) for each line: decoded as UTF-8, a leading byte-order
    mark dropped; a line that is not UTF-8, or longer than MAX_LINE bytes, comes with its
    problem instead of its text."""
    number = 0
    while raw := handle.readline(MAX_LINE + 1):
        number += 1
        if len(raw) > MAX_LINE and not raw.endswith(b"\n"):
            skipped = 0
            while (more := handle.readline(MAX_LINE + 1)) and not more.endswith(b"\n"):
                skipped += len(more)
                if skipped > _SKIP_AT_MOST:
                    raise InvalidInput(
                        f"{path}, line {number}: longer than {MAX_LINE:,} bytes, and no end "
                        "in sight; stopped reading, nothing written",
                        field="--from-file",
                    )
            yield number, None, f"longer than {MAX_LINE:,} bytes"
            continue
        if number == 1 and raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8) :]
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            byte, column = raw[exc.start], exc.start + 1
            yield number, None, f"not UTF-8 text (byte {byte:#04x} at column {column})"
            continue
        yield number, line, None


def read_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Rows of a JSON Lines (`.jsonl`, `.json`, `.ndjson`) or CSV file, with their line numbers.

    A row that cannot be parsed is yielded as {"__error__": message}.
    """
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}", field="--from-file") from None
    with handle:
        if path.suffix.lower() == ".csv":
            yield from _csv_rows(_lines(handle, path), path)
            return
        for number, line, problem in _lines(handle, path):
            if problem is not None:
                yield number, {"__error__": problem}
                continue
            assert line is not None
            if not line.strip():
                continue
            try:
                data = _loads(line)
            except _BadJson as exc:
                yield number, {"__error__": str(exc)}
                continue
            if not isinstance(data, dict):
                yield number, {"__error__": "not a JSON object"}
                continue
            yield number, data


def _csv_rows(
    lines: Iterator[tuple[int, str | None, str | None]], path: Path
) -> Iterator[tuple[int, dict[str, Any]]]:
    """CSV rows: a header of known, distinct columns, then one row per record (a quoted
    field may span lines; a record's number is the line it ends on)."""

    def text() -> Iterator[str]:
        for number, line, problem in lines:
            if problem is not None:  # the parser cannot resynchronise after a bad line
                raise InvalidInput(f"{path}, line {number}: {problem}", field="--from-file")
            assert line is not None
            yield line

    reader = csv.reader(text())
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise InvalidInput(f"{path}, line 1: not valid CSV ({exc})", field="--from-file") from None
    if header is None:
        return
    unknown = [f for f in header if f not in _KNOWN]
    if unknown:
        raise InvalidInput(
            f"{path}: unknown column {shown(unknown[0])} (known: {', '.join(FIELDS)})",
            field="--from-file",
        )
    if len(set(header)) != len(header):
        twice = next(f for f in header if header.count(f) > 1)
        raise InvalidInput(f"{path}: column {twice!r} appears twice", field="--from-file")
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:  # no way to tell where the next record starts: stop here
            raise InvalidInput(
                f"{path}, line {reader.line_num}: not valid CSV ({exc}); nothing written",
                field="--from-file",
            ) from None
        if not row:
            continue
        if len(row) > len(header):
            yield reader.line_num, {"__error__": f"{len(row)} values for {len(header)} columns"}
            continue
        yield reader.line_num, {k: v for k, v in zip(header, row, strict=False) if v != ""}
