"""The Stripe connection: the key (STRIPE_API_KEY or a 0600 key file), the official client with
explicit timeouts and network retries, the base URL, and a request pacer. The key is read here
and handed only to the SDK: never printed, never logged, masked by `payretry config`."""

from __future__ import annotations

import re
import stat
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import stripe

from payretry.errors import ConfigError
from payretry.pacing import RateLimiter

TEST_RATE = 25.0  # requests/s: Stripe allows 25/s in test mode ...
LIVE_RATE = 90.0  # ... and 100/s live; we keep a margin for the dashboard and other clients
_LOOPBACK = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True, slots=True)
class StripeSettings:
    api_key: str
    api_base: str
    connect_timeout: float
    read_timeout: float
    max_network_retries: int
    rate: float
    payment_method_types: tuple[str, ...]
    checkout_fallback: bool
    success_url: str | None
    cancel_url: str | None

    @property
    def mode(self) -> str:
        return "live" if "_live_" in self.api_key[:8] else "test"


def read_secret_file(
    path: str, *, field: str = "stripe.api_key_file", what: str = "Stripe key"
) -> str:
    """A secret kept in a file only its owner may read (mode 0600, or stricter)."""
    file = Path(path).expanduser()
    try:
        info = file.stat()
    except OSError as exc:
        raise ConfigError(
            f"cannot read the {what} file {file}: {exc.strerror}", field=field
        ) from None
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"the {what} file {file} is readable by others (mode "
            f"{stat.S_IMODE(info.st_mode):04o}); run `chmod 600 {file}`",
            field=field,
        )
    try:
        with file.open("rb") as handle:  # a key is ~100 bytes; never read a huge file whole
            return handle.read(4096).decode("utf-8").strip()
    except (OSError, UnicodeDecodeError):
        raise ConfigError(f"cannot read the {what} file {file}", field=field) from None


def _api_key(api_key: str | None, api_key_file: str | None) -> str:
    key = api_key or ""
    if not key and api_key_file:
        key = read_secret_file(api_key_file)
    key = key.strip()
    if not key:
        raise ConfigError(
            "no Stripe API key: set STRIPE_API_KEY or [stripe] api_key_file", field="stripe.api_key"
        )
    if not re.fullmatch(r"[A-Za-z0-9_]+", key):
        # A line break or a space inside (two keys pasted together, a wrapped line): the SDK
        # would put it in a header and echo it in its error. Show none of it.
        raise ConfigError(
            "the Stripe API key contains whitespace, a line break or other characters a key "
            "never has (letters, digits and '_' only); check STRIPE_API_KEY or the key file",
            field="stripe.api_key",
        )
    if not key.startswith(("sk_", "rk_")):
        # Never echo the value: it may be a real secret put in the wrong place.
        raise ConfigError(
            "the Stripe API key must be a secret (sk_...) or restricted (rk_...) key",
            field="stripe.api_key",
        )
    return key


def _api_base(value: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigError(
            f"{value!r} is not an http(s) URL like https://api.stripe.com", field="stripe.api_base"
        )
    if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
        raise ConfigError(
            "plain http is only allowed to a local test server (localhost); use https",
            field="stripe.api_base",
        )
    return value.strip().rstrip("/")


def stripe_settings(
    *,
    api_key: str | None,
    api_key_file: str | None = None,
    api_base: str = "https://api.stripe.com",
    connect_timeout: timedelta = timedelta(seconds=5),
    read_timeout: timedelta = timedelta(seconds=30),
    max_network_retries: int = 2,
    rate: float | None = None,
    payment_method_types: str = "",
    checkout_fallback: bool = False,
    success_url: str | None = None,
    cancel_url: str | None = None,
) -> StripeSettings:
    """The processor's settings from plain values: the key read and checked (from the value or
    its 0600 file), the base URL checked, the request rate defaulted by the key's mode."""
    key = _api_key(api_key, api_key_file)
    types = tuple(t.strip() for t in payment_method_types.split(",") if t.strip())
    live = "_live_" in key[:8]
    return StripeSettings(
        api_key=key,
        api_base=_api_base(api_base),
        connect_timeout=connect_timeout.total_seconds(),
        read_timeout=read_timeout.total_seconds(),
        max_network_retries=max_network_retries,
        rate=rate or (LIVE_RATE if live else TEST_RATE),
        payment_method_types=types,
        checkout_fallback=checkout_fallback,
        success_url=success_url,
        cancel_url=cancel_url,
    )


def make_client(conf: StripeSettings) -> stripe.StripeClient:
    """The official client: explicit (connect, read) timeouts, the SDK's own re-sends on
    connection errors, 409 and 5xx (each with the request's idempotency key), a base URL."""
    return stripe.StripeClient(
        conf.api_key,
        base_addresses={"api": conf.api_base},
        max_network_retries=conf.max_network_retries,
        http_client=stripe.RequestsClient(timeout=(conf.connect_timeout, conf.read_timeout)),
    )


class StripeRequests:
    """The official client and the pace every request of this process keeps (one limiter,
    shared by the off-session attempts and the Checkout flow)."""

    def __init__(self, conf: StripeSettings, client: stripe.StripeClient | None = None) -> None:
        self.client = client or make_client(conf)
        self.limiter = RateLimiter(conf.rate)

    @property
    def v1(self) -> Any:
        return self.client.v1

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """One request, paced by the shared limiter."""
        self.limiter.acquire()
        return fn(*args, **kwargs)


@dataclass(frozen=True, slots=True)
class AccountCheck:
    account: str
    name: str | None
    country: str | None
    mode: str
    api_base: str
    charges_enabled: bool | None

    def as_dict(self) -> dict[str, object]:
        return {
            "ok": True,
            "account": self.account,
            "name": self.name,
            "country": self.country,
            "mode": self.mode,
            "api_base": self.api_base,
            "charges_enabled": self.charges_enabled,
        }


def check_account(conf: StripeSettings) -> AccountCheck:
    """`payretry stripe check`: the key works and Stripe answers; which account, which mode."""
    from payretry.errors import ProcessorError
    from payretry.processors.stripe_classify import redact

    client = make_client(conf)
    try:
        account = client.v1.accounts.retrieve_current()
    except (stripe.AuthenticationError, stripe.PermissionError) as exc:
        raise ProcessorError(
            f"Stripe refused the API key ({redact(exc.user_message or str(exc))})"
        ) from None
    except stripe.APIConnectionError as exc:
        raise ProcessorError(
            f"cannot reach Stripe at {conf.api_base}: {redact(exc.user_message or str(exc))}"
        ) from None
    except stripe.StripeError as exc:
        raise ProcessorError(f"Stripe answered {exc.http_status}: {redact(str(exc))}") from None
    profile = getattr(account, "business_profile", None)
    settings_obj = getattr(account, "settings", None)
    dashboard = getattr(settings_obj, "dashboard", None) if settings_obj else None
    name = getattr(profile, "name", None) or getattr(dashboard, "display_name", None)
    return AccountCheck(
        account=account.id,
        name=name,
        country=getattr(account, "country", None),
        mode=conf.mode,
        api_base=conf.api_base,
        charges_enabled=getattr(account, "charges_enabled", None),
    )
