"""Turn raw fields (flags, a JSON Lines or CSV row) into a validated NewJob."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from payretry.domain.card_checks import is_fingerprint
from payretry.domain.card_ledger import Network
from payretry.domain.durations import parse_duration, parse_time
from payretry.domain.models import NewJob, ProcessorRefs
from payretry.domain.money import Money
from payretry.domain.validation import (
    sanitize_message,
    validate_code,
    validate_id,
    validate_metadata,
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
)
_KNOWN = frozenset(FIELDS) | {"amount_minor"}
_PRIORITY_LIMIT = 2**62


def _text(fields: Mapping[str, Any], name: str) -> str | None:
    value = fields.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidInput("must be a string", field=name)
    return str(value)


def new_job(
    fields: Mapping[str, Any], *, now: datetime, default_window: timedelta | None = None
) -> NewJob:
    """Validate every field; raise InvalidInput naming the first bad one."""
    if not _KNOWN.issuperset(fields):
        unknown = sorted(set(fields) - _KNOWN)
        raise InvalidInput(f"unknown field {unknown[0]!r}", field=unknown[0])
    transaction_id = validate_id(fields.get("transaction_id"), "transaction_id")
    user_id = validate_id(fields.get("user_id"), "user_id")
    currency = _text(fields, "currency")
    if currency is None:
        raise InvalidInput("is required", field="currency")
    if fields.get("amount_minor") not in (None, ""):
        raw_minor = fields["amount_minor"]
        if isinstance(raw_minor, str) and raw_minor.isascii() and raw_minor.isdigit():
            raw_minor = int(raw_minor)
        money = Money.of(raw_minor, currency)
    else:
        amount = fields.get("amount")
        if amount is None or amount == "":
            raise InvalidInput("is required", field="amount")
        if not isinstance(amount, str):
            raise InvalidInput(
                'must be a decimal string like "99.99" (numbers lose precision)', field="amount"
            )
        money = Money.parse(amount, currency)
    error_code = validate_code(fields.get("error_code"), "error_code")
    decline_code = validate_code(fields.get("decline_code"), "decline_code", required=False)
    message = _text(fields, "error_message")
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
    elif default_window is not None:
        expires_at = now + default_window
    priority: int | None = None
    raw_priority = fields.get("priority")
    if raw_priority not in (None, ""):
        if isinstance(raw_priority, bool):
            raise InvalidInput("must be a whole number", field="priority")
        try:
            priority = int(str(raw_priority).strip())
        except ValueError:
            raise InvalidInput(
                f"{raw_priority!r} is not a whole number", field="priority"
            ) from None
        if abs(priority) > _PRIORITY_LIMIT:
            raise InvalidInput("is out of range", field="priority")
    metadata = fields.get("metadata") or {}
    if isinstance(metadata, str):
        try:
            metadata = json.loads(metadata)
        except json.JSONDecodeError:
            raise InvalidInput("must be a JSON object", field="metadata") from None
    if not isinstance(metadata, Mapping):
        raise InvalidInput("must be an object of KEY: VALUE", field="metadata")
    card_network, card_fingerprint = _card(fields)
    assert transaction_id is not None and user_id is not None and error_code is not None
    return NewJob(
        transaction_id=transaction_id,
        user_id=user_id,
        money=money,
        error_code=error_code,
        decline_code=decline_code,
        error_message=sanitize_message(message),
        refs=refs,
        metadata=validate_metadata(metadata),
        expires_at=expires_at,
        priority=priority,
        window=window_text,
        card_network=card_network,
        card_fingerprint=card_fingerprint,
    )


def _card(fields: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The card's network (one of the known networks) and the processor's fingerprint (an
    opaque id). Never card data: a fingerprint that looks like a card number is refused
    without being echoed."""
    network_text = _text(fields, "card_network")
    network = Network.parse(network_text) if network_text is not None else None
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


def read_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Rows of a JSON Lines (`.jsonl`, `.json`, `.ndjson`) or CSV file, with their line numbers.

    A row that cannot be parsed is yielded as {"__error__": message}.
    """
    try:
        handle = path.open(encoding="utf-8", newline="")
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}", field="--from-file") from None
    with handle:
        if path.suffix.lower() == ".csv":
            reader = csv.DictReader(handle)
            if reader.fieldnames is None:
                return
            unknown = [f for f in reader.fieldnames if f not in FIELDS and f != "amount_minor"]
            if unknown:
                raise InvalidInput(
                    f"{path}: unknown column {unknown[0]!r} (known: {', '.join(FIELDS)})",
                    field="--from-file",
                )
            for row in reader:
                yield reader.line_num, {k: v for k, v in row.items() if v not in (None, "")}
            return
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                yield number, {"__error__": f"not valid JSON ({exc.msg})"}
                continue
            if not isinstance(data, dict):
                yield number, {"__error__": "not a JSON object"}
                continue
            yield number, data
