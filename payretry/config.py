"""Settings: defaults < config file < PAYRETRY_* environment < flags, each value knowing its source.

Every key `[section] key` can be set by `PAYRETRY_SECTION_KEY`. The seed's names still work:
RETRY_MAX_ATTEMPTS, RETRY_LOCK_TIMEOUT and RETRY_PROCESSING_INTERVAL (milliseconds, as there).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from payretry.domain.bound import QueueBound
from payretry.domain.durations import format_duration, parse_duration
from payretry.domain.network_rules import SETTINGS as NETWORK_SETTINGS
from payretry.domain.network_rules import NetworkRules, rules_from_settings
from payretry.domain.policy import PolicyRow, RetryPolicy
from payretry.domain.validation import shown, validate_code
from payretry.errors import ConfigError, InvalidInput
from payretry.masking import MASK, mask_secrets, mask_url
from payretry.pacing import parse_rate

DEFAULT_CONFIG_FILE = "payretry.toml"


_WHOLE = re.compile(r"-?[0-9]{1,19}")
_NUMBER = re.compile(r"[0-9]{1,15}(?:\.[0-9]{1,15})?")
_RATE = re.compile(r"(?P<number>[0-9]{1,15}(?:\.[0-9]{1,15})?)(?:/(?P<unit>s|m|min|h))?")
MIN_RATE, MAX_RATE = 1 / 3600, 10_000.0  # attempts per second: one an hour to 10,000 a second


def _int(lo: int, hi: int) -> Callable[[object], int]:
    def parse(value: object) -> int:
        if isinstance(value, bool):
            raise ValueError("expected a whole number")
        if isinstance(value, str):
            if not _WHOLE.fullmatch(value.strip()):  # not "1_000", "+5", "١٢" or 5,000 digits
                raise ValueError("expected a whole number")
            value = int(value.strip())
        if not isinstance(value, int):
            raise ValueError("expected a whole number")
        if not lo <= value <= hi:
            raise ValueError(f"expected a number from {lo} to {hi}")
        return value

    return parse


def _optional_int(lo: int, hi: int) -> Callable[[object], int | None]:
    whole = _int(lo, hi)

    def parse(value: object) -> int | None:
        if value in ("", "none", None):
            return None
        return whole(value)

    return parse


def _float(lo: float, hi: float) -> Callable[[object], float]:
    def parse(value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError("expected a number")
        if isinstance(value, str) and not _NUMBER.fullmatch(value.strip()):
            raise ValueError(f"expected a number from {lo} to {hi}")
        number = float(value)
        if number != number or not lo <= number <= hi:
            raise ValueError(f"expected a number from {lo} to {hi}")
        return number

    return parse


def _duration(value: object) -> timedelta:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("expected a duration like 30s, 5m, 24h")
    try:
        return parse_duration(value)
    except InvalidInput as exc:
        raise ValueError(exc.message) from None


def _millis(value: str) -> timedelta:
    """The seed's variables: whole milliseconds (RETRY_LOCK_TIMEOUT=300000)."""
    text = value.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 12:  # 12 digits: > 30 years
        raise ValueError("expected whole milliseconds, at most 12 digits (300000 is 5m)")
    return timedelta(milliseconds=int(text))


def _rate(value: object) -> float | None:
    """`25/s`, `1500/m`, `90/h`, a bare number per second; "" (or none) for no limit. Zero is
    refused: it reads as a limit but would run unthrottled."""

    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("expected a rate like 25/s")
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("", "none"):
            return None
        if not _RATE.fullmatch(text):
            raise ValueError("expected a rate like 25/s, 1500/m or 90/h")
        value = text
    rate = parse_rate(value)
    if rate is None:  # 0/s: parse_rate's "unlimited"
        raise ValueError('must be above zero (leave it unset, or "", for no limit)')
    if not MIN_RATE <= rate <= MAX_RATE:
        raise ValueError("expected a rate from 1/h to 10000/s")
    return rate


def _millis_or_duration(value: object) -> timedelta:
    """The seed's variables: a bare number is milliseconds; `30s`, `5m` also work."""
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return _millis(value)
    return _duration(value)


def _bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("expected true or false")


def _str(value: object) -> str:
    """A string setting; a line break at either end (a file read whole) is dropped."""
    if not isinstance(value, str):
        raise ValueError("expected a string")
    if len(value) > 4096:
        raise ValueError("is longer than 4,096 characters")
    text = value.strip("\r\n")
    if not text.isprintable():
        # Never echoed: it may be a secret. A NUL, a line break or a lone surrogate (bytes
        # that were not UTF-8) in a path, a host or a key is a mistake, not a value.
        raise ValueError("contains control, invisible or non-UTF-8 characters")
    return text


def _database_url(value: object) -> str:
    """A SQLAlchemy URL of SQLite or PostgreSQL, checked as the store will read it. Never
    echoed: it may hold a password."""
    from payretry.store.urls import check_database_url

    text = _str(value).strip()
    if not text:
        raise ValueError("is empty (example: sqlite:///payretry.db)")
    return check_database_url(text)


def memory_database(url: str) -> str | None:
    """Why a SQLite URL keeps nothing once the process exits; None for a file or PostgreSQL."""
    from payretry.store.urls import memory_database as why

    return why(url)


def _duration_within(lo: timedelta, hi: timedelta) -> Callable[[object], timedelta]:
    def parse(value: object) -> timedelta:
        found = _duration(value)
        if not lo <= found <= hi:
            raise ValueError(f"expected {format_duration(lo)} to {format_duration(hi)}")
        return found

    return parse


def _optional_duration_within(lo: timedelta, hi: timedelta) -> Callable[[object], timedelta | None]:
    within = _duration_within(lo, hi)

    def parse(value: object) -> timedelta | None:
        if value in ("", "none", None):
            return None
        return within(value)

    return parse


S, MS = timedelta(seconds=1), timedelta(milliseconds=1)
DAY, HOUR, MINUTE = timedelta(days=1), timedelta(hours=1), timedelta(minutes=1)
YEARS_10 = timedelta(days=3650)
# Leases and intervals: parsed within the widest range, then held to their floor (a lease of at
# least 5s, an interval of at least 1s) unless the test override is on; see _check_floors.
_SHORTEST = 100 * MS
_FLOORS = (
    ("database.lock_timeout", 5 * S, "database.allow_short_lease"),
    ("runner.processing_interval", S, "runner.allow_short_interval"),
    ("events.interval", S, "runner.allow_short_interval"),
)


def _queue_env(value: object) -> str:
    """The ${ENV} of the queue names: SQS allows 80 characters of [A-Za-z0-9_-] in a name."""
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,60}", value):
        raise ValueError("expected 1 to 60 letters, digits, '-' or '_'")
    return value


def _choice(*options: str) -> Callable[[object], str]:
    def parse(value: object) -> str:
        if value not in options:
            raise ValueError(f"expected one of {', '.join(options)}")
        return str(value)

    return parse


def _network(name: str) -> Callable[[object], Any]:
    """A `[network]` value, checked and read by the network rules themselves: codes as
    "03,21", waits as durations, counts as whole numbers (0 turns the generic cap off)."""

    def parse(value: object) -> Any:
        try:
            rules = rules_from_settings({name: value})
        except (ConfigError, InvalidInput) as exc:
            raise ValueError(exc.message) from None
        if name.endswith("_codes"):
            return ",".join(sorted(getattr(rules, name)))
        if name.startswith("mac_") and name.endswith("_wait"):
            return rules.mac_waits[name[4:6]]
        if name == "other_attempts_per_30d":
            return rules.other_attempts_per_30d or 0
        return getattr(rules, name)

    return parse


def _network_keys() -> tuple[Key, ...]:
    keys = []
    for name, default, text in NETWORK_SETTINGS:
        parse = _network(name)
        keys.append(Key("network", name, parse(tomllib.loads(f"v = {default}")["v"]), parse, text))
    return tuple(keys)


@dataclass(frozen=True, slots=True)
class Key:
    section: str
    name: str
    default: Any
    parse: Callable[[Any], Any]
    help: str
    aliases: tuple[str, ...] = ()
    legacy: tuple[tuple[str, Callable[[str], Any]], ...] = ()
    secret: bool = False

    @property
    def dotted(self) -> str:
        return f"{self.section}.{self.name}"

    @property
    def env(self) -> str:
        return f"PAYRETRY_{self.section}_{self.name}".upper()


KEYS: tuple[Key, ...] = (
    Key(
        "database",
        "url",
        "sqlite:///payretry.db",
        _database_url,
        "SQLAlchemy URL of the store",
        secret=True,
    ),
    Key(
        "database",
        "allow_memory",
        False,
        _bool,
        "accept sqlite:///:memory: (every job lost when the process exits; for tests)",
    ),
    Key(
        "database",
        "lock_timeout",
        timedelta(minutes=5),
        _duration,
        "lease on a claimed job (5s to 1d)",
        legacy=(("RETRY_LOCK_TIMEOUT", _millis), ("PAYRETRY_LOCK_TIMEOUT", _millis_or_duration)),
    ),
    Key(
        "database",
        "allow_short_lease",
        False,
        _bool,
        "accept a lock_timeout from 100ms, below 5s (for tests)",
    ),
    Key("database", "auto_migrate", False, _bool, "migrate an older schema on open, unasked"),
    Key("database", "pool_size", 5, _int(1, 100), "PostgreSQL connections kept per process"),
    Key(
        "database",
        "statement_timeout",
        timedelta(seconds=30),
        _duration_within(timedelta(0), DAY),
        "PostgreSQL: longest a statement may run (0 for no limit; at most 1d)",
    ),
    Key(
        "retry",
        "max_attempts",
        3,
        _int(0, 100),
        "global cap on attempts, bounding every policy row",
        aliases=("PAYRETRY_MAX_ATTEMPTS",),
        legacy=(("RETRY_MAX_ATTEMPTS", _int(0, 100)),),
    ),
    Key("retry", "jitter", 0.0, _float(0.0, 0.5), "spread each delay by up to +/- this fraction"),
    Key(
        "retry",
        "window",
        None,
        _optional_duration_within(S, YEARS_10),
        "default payment window for new jobs",
    ),
    Key("runner", "batch_size", 200, _int(1, 10_000), "jobs claimed per transaction"),
    Key(
        "runner",
        "processing_interval",
        timedelta(seconds=30),
        _duration,
        "how often `serve` looks for due jobs (1s to 1d)",
        legacy=(
            ("RETRY_PROCESSING_INTERVAL", _millis),
            ("PAYRETRY_PROCESSING_INTERVAL", _millis_or_duration),
        ),
    ),
    Key(
        "runner",
        "allow_short_interval",
        False,
        _bool,
        "accept a processing_interval or [events] interval from 100ms, below 1s (for tests)",
    ),
    Key("runner", "concurrency", 1, _int(1, 256), "attempts in flight at once"),
    Key("runner", "rate", None, _rate, "most attempts started per second, e.g. 25/s"),
    Key(
        "runner",
        "max_rescues",
        3,
        _int(1, 100),
        "rescues of one attempt without an outcome before the job is parked for review",
    ),
    Key(
        "runner",
        "grace_period",
        timedelta(seconds=30),
        _duration_within(timedelta(0), HOUR),
        "time in-flight attempts get to finish after SIGTERM",
    ),
    Key(
        "health",
        "max_due_age",
        timedelta(minutes=15),
        _duration_within(S, YEARS_10),
        "cron mode: `payretry health` fails when a due job has waited longer",
    ),
    Key(
        "retention",
        "period",
        timedelta(days=30),
        _duration,
        "finished jobs older than this are purged",
    ),
    Key(
        "retention",
        "card_ledger",
        timedelta(days=31),
        _duration_within(timedelta(days=31), timedelta(days=3650)),
        "card-ledger entries older than this are purged (at least 31 days; never less than "
        "the network rules look back)",
    ),
    Key(
        "queue",
        "max_active",
        None,
        _optional_int(1, 1_000_000_000),
        "most active jobs; when full, a new job of higher priority evicts the lowest-priority "
        "scheduled one (latest next retry), a lower one is refused (unset: no bound)",
    ),
    Key("processor", "name", "simulated", _choice("simulated", "stripe"), "payment processor"),
    Key("simulated", "success_rate", 0.7, _float(0.0, 1.0), "chance an attempt succeeds"),
    Key(
        "simulated",
        "latency",
        timedelta(0),
        _duration_within(timedelta(0), HOUR),
        "time each simulated attempt takes",
    ),
    Key("simulated", "seed", 0, _int(0, 2**63), "seed for the simulated outcomes"),
    Key("simulated", "ledger", None, _str, "SQLite file recording each idempotency key once"),
    Key(
        "stripe",
        "api_key",
        None,
        _str,
        "Stripe secret or restricted key (prefer STRIPE_API_KEY or api_key_file)",
        aliases=("STRIPE_API_KEY",),
        secret=True,
    ),
    Key("stripe", "api_key_file", None, _str, "file holding the Stripe key; must be mode 0600"),
    Key("stripe", "api_base", "https://api.stripe.com", _str, "Stripe API base URL"),
    Key(
        "stripe",
        "connect_timeout",
        timedelta(seconds=5),
        _duration_within(_SHORTEST, 10 * MINUTE),
        "Stripe connect timeout",
    ),
    Key(
        "stripe",
        "read_timeout",
        timedelta(seconds=30),
        _duration_within(_SHORTEST, 10 * MINUTE),
        "Stripe read timeout",
    ),
    Key(
        "stripe",
        "max_network_retries",
        2,
        _int(0, 10),
        "SDK re-sends (same idempotency key) on connection errors, 409 and 5xx",
    ),
    Key(
        "stripe",
        "rate",
        None,
        _rate,
        "most Stripe requests per second per process (default 25/s test keys, 90/s live)",
    ),
    Key(
        "stripe",
        "payment_method_types",
        "",
        _str,
        "comma-separated payment method types for off-session PaymentIntents",
    ),
    Key(
        "stripe",
        "checkout_fallback",
        False,
        _bool,
        "create a Checkout Session when an off-session payment needs authentication",
    ),
    Key("stripe", "checkout_success_url", None, _str, "Checkout: where a paying customer lands"),
    Key("stripe", "checkout_cancel_url", None, _str, "Checkout: where one who backs out lands"),
    Key(
        "stripe",
        "webhook_secret",
        None,
        _str,
        "the webhook endpoint's signing secret, whsec_... (POST /webhooks/stripe; unset: off)",
        secret=True,
    ),
    Key(
        "stripe",
        "webhook_secret_file",
        None,
        _str,
        "file holding the webhook signing secret; must be mode 0600",
    ),
    Key(
        "stripe",
        "auto_queue",
        False,
        _bool,
        "open a job from each payment_intent.payment_failed webhook payretry did not cause",
    ),
    Key(
        "dispatch",
        "mode",
        "inline",
        _choice("inline", "sqs"),
        "inline: run-due/serve attempt due jobs; sqs: they send them to SQS for `payretry worker`",
    ),
    Key(
        "sqs",
        "env",
        "dev",
        _queue_env,
        "environment in the queue names payments-retry-${ENV} and payments-retry-${ENV}-dlq",
        aliases=("PAYRETRY_ENV",),
    ),
    Key("sqs", "endpoint_url", None, _str, "SQS endpoint (SQS-compatible server); default AWS's"),
    Key("sqs", "region", None, _str, "AWS region (default: the standard AWS configuration chain)"),
    Key(
        "sqs",
        "max_receive_count",
        5,
        _int(1, 1000),
        "`sqs setup`: receives before a message moves to the dead-letter queue",
    ),
    Key(
        "sqs",
        "wait_time",
        timedelta(seconds=20),
        _duration_within(timedelta(0), timedelta(seconds=20)),
        "worker: long-poll wait per receive (SIGTERM is noticed within it)",
    ),
    Key(
        "sqs",
        "visibility_timeout",
        timedelta(minutes=1),
        _duration_within(timedelta(seconds=1), timedelta(hours=12)),
        "worker: a received message stays hidden this long, extended while its attempt runs",
    ),
    Key(
        "sqs",
        "failure_visibility",
        timedelta(seconds=30),
        _duration_within(timedelta(0), timedelta(hours=12)),
        "worker: a message it could not handle comes back after this long",
    ),
    Key(
        "sqs",
        "resend_after",
        timedelta(minutes=1),
        _duration_within(timedelta(seconds=1), timedelta(hours=1)),
        "a dispatch whose send was never confirmed is sent again after this long",
    ),
    Key(
        "sqs",
        "message_retention",
        timedelta(days=4),
        _duration_within(timedelta(minutes=1), timedelta(days=14)),
        "`sqs setup`: how long the queue keeps a message",
    ),
    Key(
        "sqs",
        "dlq_retention",
        timedelta(days=14),
        _duration_within(timedelta(minutes=1), timedelta(days=14)),
        "`sqs setup`: how long the dead-letter queue keeps one (longer than the queue's)",
    ),
    Key(
        "events",
        "file",
        None,
        _str,
        "JSON Lines sink: append every event to this file (- for stdout)",
    ),
    Key("events", "batch_size", 100, _int(1, 10_000), "outbox entries per delivery batch"),
    Key(
        "events",
        "interval",
        timedelta(seconds=5),
        _duration,
        "how often `serve` delivers (1s to 1d)",
    ),
    Key(
        "events",
        "max_backoff",
        timedelta(minutes=5),
        _duration_within(S, DAY),
        "longest wait before a failing sink is tried again",
    ),
    Key("webhook", "url", None, _str, "webhook sink: POST events as JSON here", secret=True),
    Key(
        "webhook",
        "secret",
        None,
        _str,
        "webhook: shared secret of the HMAC-SHA256 signature (required with url)",
        secret=True,
    ),
    Key(
        "webhook",
        "timeout",
        timedelta(seconds=10),
        _duration_within(_SHORTEST, 10 * MINUTE),
        "webhook: time per request",
    ),
    Key(
        "webhook",
        "retries",
        3,
        _int(0, 10),
        "webhook: re-sends of a batch within one delivery, with backoff",
    ),
    Key("segment", "write_key", None, _str, "Segment sink: the source's write key", secret=True),
    Key("segment", "host", "https://api.segment.io", _str, "Segment API host"),
    Key(
        "segment",
        "timeout",
        timedelta(seconds=10),
        _duration_within(_SHORTEST, 10 * MINUTE),
        "Segment: time per request",
    ),
    Key("statsd", "host", None, _str, "DogStatsD host: metrics go there over UDP when set"),
    Key("statsd", "port", 8125, _int(1, 65535), "DogStatsD port"),
    Key("statsd", "tags", "", _str, "tags on every metric, comma-separated (env:prod,team:pay)"),
    Key("metrics", "port", None, _int(1, 65535), "serve: Prometheus /metrics on this port"),
    Key("metrics", "addr", "127.0.0.1", _str, "serve: address /metrics listens on"),
    Key("metrics", "textfile", None, _str, "run-due: Prometheus textfile written here (.prom)"),
    Key("http", "port", None, _int(1, 65535), "serve: also serve the HTTP API on this port"),
    Key("http", "addr", "127.0.0.1", _str, "address the HTTP API listens on"),
    Key(
        "http",
        "token_secret",
        None,
        _str,
        "key of the keyed SHA-256 under which API tokens are stored (set it; keep it secret)",
        secret=True,
    ),
    Key("http", "max_body", 65536, _int(1, 16 * 2**20), "largest request body, in bytes"),
    Key("http", "cors_origins", "", _str, "origins allowed by CORS, comma-separated (off: empty)"),
    Key(
        "http",
        "idempotency_ttl",
        timedelta(hours=24),
        _duration_within(timedelta(minutes=1), timedelta(days=30)),
        "how long a response is replayed for its Idempotency-Key",
    ),
    Key(
        "http",
        "customer_token_ttl",
        timedelta(hours=24),
        _duration_within(timedelta(minutes=1), timedelta(days=30)),
        "default lifetime of a customer token",
    ),
    Key(
        "http",
        "events_poll",
        timedelta(milliseconds=500),
        _duration_within(timedelta(milliseconds=50), timedelta(seconds=30)),
        "how often a live event stream looks for new outbox entries",
    ),
    Key(
        "throttle",
        "per_transaction",
        1,
        _int(0, 1_000_000),
        "retries now (API and `payretry retry`) per transaction per window; 0: no limit",
    ),
    Key(
        "throttle",
        "transaction_window",
        timedelta(seconds=60),
        _duration_within(timedelta(seconds=1), timedelta(days=30)),
        "the per-transaction window",
    ),
    Key("throttle", "per_user", 10, _int(0, 1_000_000), "retries now per user per window; 0: off"),
    Key(
        "throttle",
        "user_window",
        timedelta(hours=1),
        _duration_within(timedelta(seconds=1), timedelta(days=30)),
        "the per-user window",
    ),
    Key(
        "pages",
        "session_ttl",
        timedelta(hours=8),
        _duration_within(timedelta(minutes=5), timedelta(days=7)),
        "how long a dashboard login lasts (a customer's, at most its token's lifetime)",
    ),
    Key(
        "pages",
        "secure_cookies",
        False,
        _bool,
        "page cookies always Secure (TLS ended by a proxy); else Secure when served over TLS",
    ),
    Key("log", "format", "auto", _choice("auto", "human", "json"), "log format on stderr"),
    Key("log", "level", "warning", _choice("debug", "info", "warning", "error"), "log level"),
)
KEYS = KEYS + _network_keys()  # `[network]`: the card-network rules' numbers
KEYS_BY_NAME = {key.dotted: key for key in KEYS}
POLICY_FIELDS = {"retry", "max_attempts", "delays"}
# The flag each setting is given by, as the user types it (errors name it), where it is not
# --<key name>: the root's options, and commands whose flag names the setting differently.
_FLAG_NAMES = {
    "database.url": "--db",
    "log.format": "--log-format",
    "log.level": "--log-level",
    "retention.period": "--older-than",
    "runner.processing_interval": "--interval",
    "metrics.port": "--metrics-port",
    "metrics.textfile": "--metrics-textfile",
}
MAX_CONFIG_BYTES = 1 << 20  # a config file is a few kilobytes; /dev/zero is not one


# -- typed views: each section as a frozen value, so code reads `settings.runner.batch_size`
# (checked by mypy) instead of `settings["runner.batch_size"]`. Field names are the keys'.


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    url: str
    lock_timeout: timedelta
    auto_migrate: bool
    pool_size: int
    statement_timeout: timedelta
    allow_memory: bool
    allow_short_lease: bool


@dataclass(frozen=True, slots=True)
class RetrySettings:
    max_attempts: int
    jitter: float
    window: timedelta | None


@dataclass(frozen=True, slots=True)
class RunnerSettings:
    batch_size: int
    processing_interval: timedelta
    concurrency: int
    rate: float | None
    max_rescues: int
    grace_period: timedelta
    allow_short_interval: bool


@dataclass(frozen=True, slots=True)
class HealthSettings:
    max_due_age: timedelta


@dataclass(frozen=True, slots=True)
class RetentionSettings:
    period: timedelta
    card_ledger: timedelta


@dataclass(frozen=True, slots=True)
class NetworkSettings:
    """`[network]`: the card-network rules (payretry/domain/network_rules.py SETTINGS)."""

    visa_reattempts_per_30d: int
    visa_category_1_codes: str
    mc_declines_per_24h: int
    mc_declines_per_30d: int
    mac_new_card_codes: str
    mac_never_codes: str
    mac_02_wait: timedelta
    mac_24_wait: timedelta
    mac_25_wait: timedelta
    mac_26_wait: timedelta
    mac_27_wait: timedelta
    mac_28_wait: timedelta
    mac_29_wait: timedelta
    mac_30_wait: timedelta
    hard_decline_block: timedelta
    other_attempts_per_30d: int
    unknown_network_strictest: bool

    def rules(self) -> NetworkRules:
        return rules_from_settings({f.name: getattr(self, f.name) for f in fields(self)})


@dataclass(frozen=True, slots=True)
class QueueSettings:
    max_active: int | None

    def bound(self) -> QueueBound | None:
        """The bound a queue keeps (domain/bound.py), or None when unset."""
        return QueueBound(self.max_active) if self.max_active is not None else None


@dataclass(frozen=True, slots=True)
class ProcessorSettings:
    name: str


@dataclass(frozen=True, slots=True)
class SimulatedSettings:
    success_rate: float
    latency: timedelta
    seed: int
    ledger: str | None


@dataclass(frozen=True, slots=True)
class StripeConfig:
    api_key: str | None
    api_key_file: str | None
    api_base: str
    connect_timeout: timedelta
    read_timeout: timedelta
    max_network_retries: int
    rate: float | None
    payment_method_types: str
    checkout_fallback: bool
    checkout_success_url: str | None
    checkout_cancel_url: str | None
    webhook_secret: str | None
    webhook_secret_file: str | None
    auto_queue: bool


@dataclass(frozen=True, slots=True)
class DispatchSettings:
    mode: str


@dataclass(frozen=True, slots=True)
class SqsConfig:
    env: str
    endpoint_url: str | None
    region: str | None
    max_receive_count: int
    wait_time: timedelta
    visibility_timeout: timedelta
    failure_visibility: timedelta
    resend_after: timedelta
    message_retention: timedelta
    dlq_retention: timedelta


@dataclass(frozen=True, slots=True)
class EventsSettings:
    file: str | None
    batch_size: int
    interval: timedelta
    max_backoff: timedelta


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    url: str | None
    secret: str | None
    timeout: timedelta
    retries: int


@dataclass(frozen=True, slots=True)
class SegmentSettings:
    write_key: str | None
    host: str
    timeout: timedelta


@dataclass(frozen=True, slots=True)
class StatsdSettings:
    host: str | None
    port: int
    tags: str


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    port: int | None
    addr: str
    textfile: str | None


@dataclass(frozen=True, slots=True)
class HttpSettings:
    port: int | None
    addr: str
    token_secret: str | None
    max_body: int
    cors_origins: str
    idempotency_ttl: timedelta
    customer_token_ttl: timedelta
    events_poll: timedelta


@dataclass(frozen=True, slots=True)
class ThrottleSettings:
    per_transaction: int
    transaction_window: timedelta
    per_user: int
    user_window: timedelta


@dataclass(frozen=True, slots=True)
class PagesSettings:
    session_ttl: timedelta
    secure_cookies: bool


@dataclass(frozen=True, slots=True)
class LogSettings:
    format: str
    level: str


VIEWS: dict[str, type] = {
    "database": DatabaseSettings,
    "retry": RetrySettings,
    "runner": RunnerSettings,
    "health": HealthSettings,
    "retention": RetentionSettings,
    "network": NetworkSettings,
    "queue": QueueSettings,
    "processor": ProcessorSettings,
    "simulated": SimulatedSettings,
    "stripe": StripeConfig,
    "dispatch": DispatchSettings,
    "sqs": SqsConfig,
    "events": EventsSettings,
    "webhook": WebhookSettings,
    "segment": SegmentSettings,
    "statsd": StatsdSettings,
    "metrics": MetricsSettings,
    "http": HttpSettings,
    "throttle": ThrottleSettings,
    "pages": PagesSettings,
    "log": LogSettings,
}
_View = TypeVar("_View")


@dataclass
class Settings:
    values: dict[str, Any]
    sources: dict[str, str]
    policy_rows: tuple[PolicyRow, ...] = ()
    config_file: Path | None = None

    def __getitem__(self, dotted: str) -> Any:
        return self.values[dotted]

    def view(self, section: str, cls: type[_View]) -> _View:
        """The section `[section]` as `cls`, whose fields are the section's keys."""
        return cls(**{f.name: self.values[f"{section}.{f.name}"] for f in fields(cls)})  # type: ignore[arg-type]

    @property
    def database(self) -> DatabaseSettings:
        return self.view("database", DatabaseSettings)

    @property
    def retry(self) -> RetrySettings:
        return self.view("retry", RetrySettings)

    @property
    def runner(self) -> RunnerSettings:
        return self.view("runner", RunnerSettings)

    @property
    def health(self) -> HealthSettings:
        return self.view("health", HealthSettings)

    @property
    def retention(self) -> RetentionSettings:
        return self.view("retention", RetentionSettings)

    @property
    def network(self) -> NetworkSettings:
        return self.view("network", NetworkSettings)

    def ledger_retention(self) -> timedelta:
        """How long card-ledger entries are kept: `[retention] card_ledger`, and never less
        than the network rules look back (a day more, for the entries a check reads)."""
        lookback = self.network.rules().lookback + timedelta(days=1)
        return max(self.retention.card_ledger, lookback)

    @property
    def queue(self) -> QueueSettings:
        return self.view("queue", QueueSettings)

    @property
    def processor(self) -> ProcessorSettings:
        return self.view("processor", ProcessorSettings)

    @property
    def simulated(self) -> SimulatedSettings:
        return self.view("simulated", SimulatedSettings)

    @property
    def stripe(self) -> StripeConfig:
        return self.view("stripe", StripeConfig)

    @property
    def dispatch(self) -> DispatchSettings:
        return self.view("dispatch", DispatchSettings)

    @property
    def sqs(self) -> SqsConfig:
        return self.view("sqs", SqsConfig)

    @property
    def events(self) -> EventsSettings:
        return self.view("events", EventsSettings)

    @property
    def webhook(self) -> WebhookSettings:
        return self.view("webhook", WebhookSettings)

    @property
    def segment(self) -> SegmentSettings:
        return self.view("segment", SegmentSettings)

    @property
    def statsd(self) -> StatsdSettings:
        return self.view("statsd", StatsdSettings)

    @property
    def metrics(self) -> MetricsSettings:
        return self.view("metrics", MetricsSettings)

    @property
    def http(self) -> HttpSettings:
        return self.view("http", HttpSettings)

    @property
    def throttle(self) -> ThrottleSettings:
        return self.view("throttle", ThrottleSettings)

    @property
    def pages(self) -> PagesSettings:
        return self.view("pages", PagesSettings)

    @property
    def log(self) -> LogSettings:
        return self.view("log", LogSettings)

    def policy(self) -> RetryPolicy:
        retry = self.retry
        return RetryPolicy.standard(
            cap=retry.max_attempts, jitter=retry.jitter, network=self.network.rules()
        ).with_rows(self.policy_rows)

    def describe(self) -> list[dict[str, Any]]:
        """Every setting with its value (secrets masked), source and variable."""
        rows = []
        for key in KEYS:
            value = self.values[key.dotted]
            shown: Any
            if isinstance(value, timedelta):
                shown = format_duration(value)
            elif key.secret and value is not None:
                shown = mask(str(value), path=key.dotted == "database.url")
            elif isinstance(value, str):
                shown = mask_secrets(value)  # a password in an endpoint URL, say
            else:
                shown = value
            rows.append(
                {
                    "key": key.dotted,
                    "value": shown,
                    "source": self.sources[key.dotted],
                    "env": key.env,
                    "help": key.help,
                }
            )
        return rows


def mask(value: str, *, path: bool = True) -> str:
    """A secret setting as shown, with no character of the secret: a URL keeps its scheme,
    user, host, port and (with `path`) path and harmless query parameters, its password and
    credential parameters masked (`postgresql://app:***@db/pay?password=***`); `path=False`
    for a URL that is itself a capability (a webhook's). Anything else is `***`."""
    if "://" in value:
        return mask_url(value.strip(), path=path)
    return MASK


def _line_of(text: str, section: str, name: str) -> int | None:
    current = ""
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        header = re.match(r"^\[([^\]]+)\]", stripped)
        if header:
            current = header.group(1).strip().strip('"')
            if current == section and not name:
                return number  # the table itself: point at its header
            continue
        if current == section and re.match(rf"^\"?{re.escape(name)}\"?\s*=", stripped):
            return number
        if current == section and not name:
            return number
    return None


def _where(path: Path, text: str, section: str, name: str) -> str:
    line = _line_of(text, section, name)
    return f"{path}, line {line}" if line else str(path)


def _find_config(explicit: str | None, env: Mapping[str, str]) -> Path | None:
    if explicit:
        return Path(explicit)
    if env.get("PAYRETRY_CONFIG"):
        return Path(env["PAYRETRY_CONFIG"])
    default = Path(DEFAULT_CONFIG_FILE)
    return default if default.is_file() else None


def _parse_policy(path: Path, text: str, table: Any) -> list[PolicyRow]:
    if not isinstance(table, dict):
        raise ConfigError(f"{_where(path, text, 'policy', '')}: [policy] must be a table")
    rows = []
    for code, spec in table.items():
        section = f"policy.{code}"
        where = _where(path, text, section, "")
        try:
            row_code = validate_code(code, "code") or code  # as the CLI does: lower-case
        except InvalidInput:
            raise ConfigError(f"{where}: {code!r} is not an error code") from None
        if not isinstance(spec, dict):
            where = _where(path, text, "policy", code)  # `[policy] code = ...`: that line
            raise ConfigError(f"{where}: [policy.{code}] must be a table")
        unknown = set(spec) - POLICY_FIELDS
        if unknown:
            raise ConfigError(
                f"{_where(path, text, section, sorted(unknown)[0])}: unknown key "
                f"{sorted(unknown)[0]!r} in [policy.{code}] (known: retry, max_attempts, delays)"
            )
        retry = spec.get("retry", True)
        if not isinstance(retry, bool):
            raise ConfigError(
                f"{_where(path, text, section, 'retry')}: retry must be true or false"
            )
        try:
            attempts = _int(0, 100)(spec.get("max_attempts", 0 if not retry else 3))
        except ValueError as exc:
            raise ConfigError(f"{_where(path, text, section, 'max_attempts')}: {exc}") from None
        delays_raw = spec.get("delays", [])
        if not isinstance(delays_raw, list):
            raise ConfigError(
                f'{_where(path, text, section, "delays")}: delays must be a list like ["1m", "5m"]'
            )
        try:
            delays = tuple(_duration(d) for d in delays_raw)
        except ValueError as exc:
            raise ConfigError(f"{_where(path, text, section, 'delays')}: {exc}") from None
        if retry and attempts and not delays:
            raise ConfigError(
                f"{_where(path, text, section, 'delays')}: a retried row needs delays"
            )
        rows.append(PolicyRow(row_code, retry, attempts if retry else 0, delays, f"config {path}"))
    return rows


def _flag_name(key: Key) -> str:
    return _FLAG_NAMES.get(key.dotted) or f"--{key.name.replace('_', '-')}"


def _read_config(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"config file {path} is larger than {MAX_CONFIG_BYTES:,} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"config file {path}, line {line}: not UTF-8 text") from None


def load_settings(
    config: str | None = None,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> Settings:
    """Resolve every setting. Raises ConfigError naming the file and line, or the variable;
    InvalidInput naming the flag as typed."""
    env = os.environ if env is None else env
    values = {key.dotted: key.default for key in KEYS}
    sources = {key.dotted: "default" for key in KEYS}
    policy_rows: list[PolicyRow] = []
    path = _find_config(config, env)
    text = ""
    if path is not None:
        text = _read_config(path)
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
        for section, table in data.items():
            if section == "policy":
                policy_rows = _parse_policy(path, text, table)
                continue
            if not isinstance(table, dict):
                raise ConfigError(f"{_where(path, text, '', section)}: {section} must be a [table]")
            for name, raw in table.items():
                key = KEYS_BY_NAME.get(f"{section}.{name}")
                if key is None:
                    raise ConfigError(
                        f"{_where(path, text, section, name)}: unknown setting [{section}] "
                        f"{name if re.fullmatch(r'[A-Za-z0-9_-]{1,40}', name) else shown(name)}"
                    )
                try:
                    values[key.dotted] = key.parse(raw)
                except (ValueError, OverflowError) as exc:
                    raise ConfigError(
                        f"{_where(path, text, section, name)}: [{section}] {name}: {exc}"
                    ) from None
                sources[key.dotted] = f"config {path}"
    for key in KEYS:
        for variable, parse in (
            *((legacy, lparse) for legacy, lparse in key.legacy),
            *((alias, key.parse) for alias in key.aliases),
            (key.env, key.parse),
        ):
            raw = env.get(variable)
            if raw is None or raw == "":
                continue
            try:
                values[key.dotted] = parse(raw)
            except (ValueError, OverflowError) as exc:
                raise ConfigError(f"environment variable {variable}: {exc}") from None
            sources[key.dotted] = f"env {variable}"
    for dotted, value in (flags or {}).items():
        if value is not None:
            key = KEYS_BY_NAME[dotted]
            try:
                values[dotted] = key.parse(value)
            except (ValueError, OverflowError) as exc:
                raise InvalidInput(str(exc), field=_flag_name(key)) from None
            sources[dotted] = "flag"
    _check_together(values, sources, path, text)
    return Settings(values, sources, tuple(policy_rows), path)


def _check_together(
    values: dict[str, Any], sources: dict[str, str], path: Path | None, text: str
) -> None:
    """What one value cannot say alone: a database that keeps nothing (unless asked for),
    leases and intervals within their bounds (the seed's millisecond variables included)."""

    def refuse(dotted: str, message: str) -> InvalidInput:
        key, source = KEYS_BY_NAME[dotted], sources[dotted]
        if source == "flag":
            return InvalidInput(message, field=_flag_name(key))
        if source.startswith("env "):
            return ConfigError(f"environment variable {source[4:]}: {message}")
        where = _where(path, text, key.section, key.name) if path is not None else "config"
        return ConfigError(f"{where}: [{key.section}] {key.name}: {message}")

    why = memory_database(values["database.url"])
    in_memory = why is not None and why.startswith("is an in-memory")
    if why is not None and not (in_memory and values["database.allow_memory"]):
        advice = "; for a throwaway database (tests) set [database] allow_memory = true"
        raise refuse(
            "database.url",
            f"{why}: every job would be lost when payretry exits; give a file path like "
            f"sqlite:///var/lib/payretry/payretry.db{advice if in_memory else ''}",
        )
    for dotted, floor, override in _FLOORS:
        lowest = _SHORTEST if values[override] else floor
        if not lowest <= values[dotted] <= DAY:
            raise refuse(dotted, f"expected {format_duration(lowest)} to 1d")
