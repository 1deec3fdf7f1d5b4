"""A small Stripe emulator: Stripe's wire format for what payretry uses, over real HTTP.

Form-encoded requests (nested `a[b][0]=x`), JSON answers and Stripe's error objects; API keys
checked (401); idempotency as Stripe documents it: the first answer under a key is stored
(successes, card errors, 500s) and replayed with `Idempotent-Replayed: true`; the same key with
other parameters -> 400 `idempotency_error`; the same key while its first request still runs
-> 409. Endpoints: PaymentIntents create/retrieve/update/confirm/list/search, Checkout Sessions
create/retrieve/expire (only an open session expires, as at Stripe), Invoices retrieve and
InvoicePayments list (the invoice a PaymentIntent pays), the account. Scripted: card outcomes
per payment method (with the network's advice and response codes, and the card's brand and
fingerprint on each decline), invoices Stripe Billing retries, faults per endpoint (429, 500
before or after the charge, slow or held answers); a customer who pays a session at once
(paid) or with a method that settles later (complete and unpaid, then the payment succeeds or
fails), and who cannot pay a session that is no longer open. Every executed charge is counted
per idempotency key, and each payment that went through per PaymentIntent.

Webhooks: what happens here (a PaymentIntent succeeds or fails, a session completes or expires,
and what the test makes happen outside payretry: a payment made elsewhere, a card updated)
becomes a Stripe event, signed exactly as Stripe documents (`Stripe-Signature: t=<unix
seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" under the endpoint secret>`) and POSTed over real
HTTP to the endpoint set with `webhooks(url, secret)` when the test calls `deliver` (in order,
or in any order it chooses, again for a redelivery).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

KEY = "sk_test_emulator_0123456789"
REUSED_KEY = (
    "Keys for idempotent requests can only be used with the same parameters they were first "
    "used with."
)
Json = dict[str, Any]


def decode_form(text: str) -> Json:
    """`metadata[a]=1&items[0][x]=2` -> {"metadata": {"a": "1"}, "items": [{"x": "2"}]}."""
    root: Json = {}
    for name, value in parse_qsl(text, keep_blank_values=True):
        parts = re.findall(r"[^\[\]]+", name)
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    decoded: Json = _lists(root)
    return decoded


def _lists(node: Any) -> Any:
    if isinstance(node, dict):
        node = {k: _lists(v) for k, v in node.items()}
        if node and all(k.isdigit() for k in node):
            return [node[k] for k in sorted(node, key=int)]
    return node


class SessionClosed(Exception):
    """The customer tried to pay a Checkout Session that is no longer open."""


class StripeFailure(Exception):
    def __init__(self, status: int, error: Json, *, saved: bool = True) -> None:
        super().__init__(error.get("message"))
        self.status = status
        self.error = error
        self.saved = saved  # stored under the idempotency key (it ran), like Stripe


@dataclass
class Fault:
    """What to do to the next request matching `route` ("POST /v1/payment_intents")."""

    status: int | None = None  # 429 (before anything runs) or 5xx
    after_charge: bool = False  # a 5xx once the charge went through (and saved under the key)
    delay: float = 0.0  # answer this late (the charge is made first)
    hold: threading.Event | None = None  # answer only once this is set (or 30 s pass)
    retry_after: float | None = None


@dataclass
class Request:
    at: float
    method: str
    path: str
    key: str | None
    status: int = 0
    replayed: bool = False


@dataclass
class State:
    intents: dict[str, Json] = field(default_factory=dict)
    sessions: dict[str, Json] = field(default_factory=dict)
    invoices: dict[str, Json] = field(default_factory=dict)
    invoice_payments: dict[str, Json] = field(default_factory=dict)
    cards: dict[str, Json] = field(default_factory=dict)  # payment method -> brand, fingerprint
    outcomes: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    faults: dict[str, list[Fault]] = field(default_factory=lambda: defaultdict(list))
    keys: dict[str, tuple[str, str, int, Json]] = field(default_factory=dict)  # first answers
    running: set[str] = field(default_factory=set)
    charges: Counter[str] = field(default_factory=Counter)  # executed charges per key
    requests: list[Request] = field(default_factory=list)
    received: threading.Event = field(default_factory=threading.Event)
    paid: Counter[str] = field(default_factory=Counter)  # payments that went through, per PI
    events: list[Json] = field(default_factory=list)  # every event made, oldest first


def _now() -> int:
    return int(time.time())


def _id(prefix: str) -> str:
    """A random id like Stripe's, never with 12 digits in a row: payretry rightly redacts a
    long digit run that passes Luhn as a possible card number wherever it appears."""
    token = secrets.token_hex(12)
    return f"{prefix}_" + "".join(c if i % 8 else "x" for i, c in enumerate(token, 1))


def card_error(
    intent: Json,
    code: str,
    decline: str | None,
    advice: str | None,
    net: str | None,
    net_decline: str | None = None,
    card: Json | None = None,
) -> StripeFailure:
    error: Json = {
        "type": "card_error",
        "code": code,
        "decline_code": decline,
        "advice_code": advice or None,
        "network_advice_code": net or None,
        "network_decline_code": net_decline or None,
        "message": "Your card was declined." if code == "card_declined" else f"card error {code}",
        "payment_intent": intent,
    }
    if card is not None:  # Stripe's error names the payment method, with its card's details
        error["payment_method"] = {
            "id": intent.get("payment_method"),
            "object": "payment_method",
            "type": "card",
            "card": card,
        }
    intent["last_payment_error"] = {k: v for k, v in error.items() if k != "payment_intent"}
    intent["status"] = "requires_payment_method"
    return StripeFailure(402, error)


def sign(payload: str, secret: str, timestamp: int | None = None) -> str:
    """The `Stripe-Signature` header Stripe sends: `t=<unix seconds>,v1=<hex>`, the HMAC-SHA256
    of `<t>.<payload>` under the endpoint's signing secret."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


class Emulator:
    def __init__(self, keys: tuple[str, ...] = (KEY,)) -> None:
        self.keys = set(keys)
        self.state = State()
        self.endpoint = ("", "")
        self.lock = threading.RLock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    # -- test controls -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Emulator:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def card(self, payment_method: str, *outcomes: str) -> None:
        """Outcomes of successive charges on a payment method: `succeeded`,
        `decline:<decline_code>[:<advice_code>[:<network_advice_code>[:<network_decline_code>]]]`,
        `error:<code>`, `auth` (needs authentication). The last one repeats."""
        with self.lock:
            self.state.outcomes[payment_method] = list(outcomes)

    def card_details(self, payment_method: str, brand: str, fingerprint: str) -> None:
        """The card behind a payment method, as Stripe shows it (`card.brand`,
        `card.fingerprint`): several payment methods may share one card."""
        with self.lock:
            self.state.cards[payment_method] = {"brand": brand, "fingerprint": fingerprint}

    def invoice(
        self,
        payment_intent: str,
        *,
        status: str = "open",
        collection_method: str = "charge_automatically",
        auto_advance: bool = True,
        next_payment_attempt: int | None = None,
    ) -> str:
        """A Stripe invoice the PaymentIntent pays (an InvoicePayment links them), with the
        fields that say whether Stripe Billing retries it itself."""
        with self.lock:
            invoice_id = _id("in")
            self.state.invoices[invoice_id] = {
                "id": invoice_id,
                "object": "invoice",
                "status": status,
                "collection_method": collection_method,
                "auto_advance": auto_advance,
                "next_payment_attempt": next_payment_attempt,
                "attempted": True,
                "attempt_count": 1,
                "livemode": False,
            }
            payment_id = _id("inpay")
            self.state.invoice_payments[payment_id] = {
                "id": payment_id,
                "object": "invoice_payment",
                "invoice": invoice_id,
                "is_default": True,
                "status": "open",
                "payment": {"type": "payment_intent", "payment_intent": payment_intent},
                "livemode": False,
            }
            return invoice_id

    def fault(self, route: str, *faults: Fault) -> None:
        with self.lock:
            self.state.faults[route].extend(faults)

    def session(self, metadata: dict[str, str]) -> str:
        """An original Checkout Session (the one whose payment failed)."""
        sid = _id("cs_test")
        with self.lock:
            self.state.sessions[sid] = self._session({"metadata": metadata}, sid, status="expired")
        return sid

    def complete(self, session_id: str, *, paid: bool = True) -> str:
        """The customer pays the session (one charge, under the session's own key); with
        `paid=False`, with a payment method that settles later: the session is complete but
        unpaid, its PaymentIntent `processing`, until `async_succeeded` or `async_failed`.
        A session that is no longer open cannot be paid (SessionClosed). Returns the intent."""
        with self.lock:
            session = self.state.sessions[session_id]
            if session["status"] != "open":
                raise SessionClosed(f"checkout session {session_id} is {session['status']}")
            intent = self._intent(
                {
                    "amount": session["amount_total"],
                    "currency": session["currency"],
                    "metadata": session["metadata"],
                }
            )
            intent["status"] = "succeeded" if paid else "processing"
            self.state.charges[f"checkout:{session_id}"] += 1
            if paid:
                self.state.paid[intent["id"]] += 1
            session.update(
                status="complete",
                payment_status="paid" if paid else "unpaid",
                payment_intent=intent["id"],
            )
            if paid:
                self._event("payment_intent.succeeded", intent)
            self._event("checkout.session.completed", session)
            return str(intent["id"])

    def _async(self, session_id: str) -> tuple[Json, Json]:
        session = self.state.sessions[session_id]
        assert session["status"] == "complete" and session["payment_status"] == "unpaid"
        return session, self.state.intents[session["payment_intent"]]

    def async_succeeded(self, session_id: str) -> None:
        """The payment of a session completed unpaid arrives (Stripe:
        checkout.session.async_payment_succeeded): the session is paid."""
        with self.lock:
            session, intent = self._async(session_id)
            intent["status"] = "succeeded"
            session["payment_status"] = "paid"
            self.state.paid[intent["id"]] += 1
            self._event("payment_intent.succeeded", intent)
            self._event("checkout.session.async_payment_succeeded", session)

    def async_failed(self, session_id: str) -> None:
        """The payment of a session completed unpaid fails (Stripe:
        checkout.session.async_payment_failed): the session stays complete and unpaid, its
        PaymentIntent needs a new payment method."""
        with self.lock:
            session, intent = self._async(session_id)
            intent["status"] = "requires_payment_method"
            intent["last_payment_error"] = {
                "type": "card_error",
                "code": "payment_method_provider_decline",
                "message": "The bank debit failed.",
            }
            self._event("checkout.session.async_payment_failed", session)

    def expire(self, session_id: str) -> None:
        """The session's own expiry time passes (not the API call: see POST .../expire)."""
        with self.lock:
            session = self.state.sessions[session_id]
            if session["status"] == "open":
                session["status"] = "expired"
                self._event("checkout.session.expired", session)

    # -- webhooks --------------------------------------------------------------------------------

    def webhooks(self, url: str, secret: str) -> None:
        """Where events are POSTed, and the endpoint's signing secret."""
        self.endpoint = (url, secret)

    def _event(self, kind: str, obj: Json, previous: Json | None = None) -> Json:
        data: Json = {"object": json.loads(json.dumps(obj))}
        if previous is not None:
            data["previous_attributes"] = previous
        event: Json = {
            "id": _id("evt"),
            "object": "event",
            "api_version": "2024-06-20",
            "created": _now(),
            "type": kind,
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "data": data,
        }
        self.state.events.append(event)
        return event

    def events(self, kind: str | None = None) -> list[Json]:
        with self.lock:
            return [e for e in self.state.events if kind is None or e["type"] == kind]

    def deliver(
        self,
        event: Json,
        *,
        secret: str | None = None,
        timestamp: int | None = None,
        signature: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Json]:
        """POST one event to the endpoint, signed with its secret (or `secret`, `timestamp`,
        or a `signature` header as given; "" sends none): (status, answer)."""
        url, endpoint_secret = self.endpoint
        body = json.dumps(event, indent=2)  # Stripe's bodies are pretty-printed JSON
        if signature is None:
            signature = sign(body, secret or endpoint_secret, timestamp)
        sent = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "Stripe/1.0"}
        if signature:
            sent["Stripe-Signature"] = signature
        request = urllib.request.Request(
            url, data=body.encode(), method="POST", headers={**sent, **(headers or {})}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, json.loads(answer.read() or b"{}")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")

    def deliver_all(self, kind: str | None = None) -> list[tuple[int, Json]]:
        """Every event made so far (of `kind`), in order."""
        return [self.deliver(event) for event in self.events(kind)]

    # -- what happens outside payretry -----------------------------------------------------------

    def pay_elsewhere(self, payment_intent: str) -> Json:
        """The customer pays the PaymentIntent by other means (in the app, by bank transfer):
        one payment, a payment_intent.succeeded event."""
        with self.lock:
            intent = self.state.intents[payment_intent]
            intent.update(status="succeeded", last_payment_error=None)
            self.state.paid[payment_intent] += 1
            return self._event("payment_intent.succeeded", intent)

    def failed_payment(
        self,
        *,
        amount: int,
        currency: str,
        customer: str | None,
        payment_method: str,
        outcome: str,
        metadata: dict[str, str] | None = None,
    ) -> tuple[Json, Json]:
        """A payment made outside payretry that failed (`outcome` as for `card`): the
        PaymentIntent and its payment_intent.payment_failed event."""
        with self.lock:
            intent = self._intent(
                {
                    "amount": amount,
                    "currency": currency,
                    "customer": customer,
                    "payment_method": payment_method,
                    "metadata": metadata or {},
                }
            )
            kind, *rest = outcome.split(":")
            self._failure(intent, kind, rest)
            return intent, self._event("payment_intent.payment_failed", intent)

    def payment_method(
        self, payment_method: str, customer: str | None, kind: str = "payment_method.attached"
    ) -> Json:
        """A payment method event (attached to the customer, or its card updated by the card
        networks' updater), with the card's brand and fingerprint when known."""
        with self.lock:
            card = self.state.cards.get(payment_method) or {"brand": "visa", "fingerprint": None}
            method = {
                "id": payment_method,
                "object": "payment_method",
                "type": "card",
                "customer": customer,
                "card": {**card, "exp_month": 12, "exp_year": 2031, "last4": "4242"},
            }
            return self._event(kind, method)

    def default_payment_method(self, customer: str, new: str, old: str | None) -> Json:
        """customer.updated with a new invoice_settings.default_payment_method."""
        with self.lock:
            obj = {
                "id": customer,
                "object": "customer",
                "invoice_settings": {"default_payment_method": new},
            }
            return self._event(
                "customer.updated", obj, {"invoice_settings": {"default_payment_method": old}}
            )

    def event(self, kind: str, obj: Json) -> Json:
        """Any other event, made here."""
        with self.lock:
            return self._event(kind, obj)

    def forget_keys(self) -> None:
        """Stripe prunes keys once they are at least 24 hours old."""
        with self.lock:
            self.state.keys.clear()

    def succeeded(self, transaction_id: str | None = None) -> list[Json]:
        with self.lock:
            return [
                i
                for i in self.state.intents.values()
                if i["status"] == "succeeded"
                and (
                    transaction_id is None
                    or i["metadata"].get("payretry_transaction_id") == transaction_id
                )
            ]

    def requests(self, method: str | None = None, path: str | None = None) -> list[Request]:
        with self.lock:
            return [
                r
                for r in self.state.requests
                if (method is None or r.method == method) and (path is None or r.path == path)
            ]

    # -- resources -----------------------------------------------------------------------------

    def _intent(self, params: Json) -> Json:
        intent: Json = {
            "id": _id("pi"),
            "object": "payment_intent",
            "amount": int(params["amount"]),
            "currency": params["currency"],
            "customer": params.get("customer"),
            "payment_method": params.get("payment_method"),
            "metadata": dict(params.get("metadata") or {}),
            "status": "requires_confirmation",
            "last_payment_error": None,
            "created": _now(),
            "livemode": False,
        }
        self.state.intents[intent["id"]] = intent
        return intent

    def _charge(self, intent: Json, key: str | None) -> None:
        """Confirm: the card's next scripted outcome. Counted whatever it is."""
        self.state.charges[key or f"nokey:{intent['id']}"] += 1
        intent["last_payment_error"] = None
        plan = self.state.outcomes.get(intent["payment_method"] or "", [])
        outcome = plan.pop(0) if len(plan) > 1 else (plan[0] if plan else "succeeded")
        kind, *rest = outcome.split(":")
        if kind == "succeeded":
            intent["status"] = "succeeded"
            self.state.paid[intent["id"]] += 1
            self._event("payment_intent.succeeded", intent)
        else:
            failure = self._failure(intent, kind, rest)
            self._event("payment_intent.payment_failed", intent)
            raise failure

    def _failure(self, intent: Json, kind: str, rest: list[str]) -> StripeFailure:
        if kind == "decline":
            rest += [""] * 4
            card = self.state.cards.get(intent["payment_method"] or "")
            return card_error(intent, "card_declined", rest[0], rest[1], rest[2], rest[3], card)
        if kind == "error":
            return card_error(intent, rest[0], rest[0], None, None)
        if kind == "auth":
            return card_error(
                intent, "authentication_required", "authentication_required", None, None
            )
        raise AssertionError(kind)  # pragma: no cover - a typo in a test

    def _session(self, params: Json, sid: str | None = None, status: str = "open") -> Json:
        sid = sid or _id("cs_test")
        items = params.get("line_items") or [{"price_data": {"unit_amount": 0}, "quantity": 1}]
        price = items[0]["price_data"]
        return {
            "id": sid,
            "object": "checkout.session",
            "status": status,
            "payment_status": "unpaid",
            "url": f"https://checkout.example.test/c/pay/{sid}#emulated",
            "expires_at": int(params.get("expires_at") or _now() + 86400),
            "metadata": dict(params.get("metadata") or {}),
            "payment_intent_data": params.get("payment_intent_data"),
            "payment_intent": None,
            "client_reference_id": params.get("client_reference_id"),
            "customer": params.get("customer"),
            "amount_total": int(price.get("unit_amount") or 0) * int(items[0]["quantity"]),
            "currency": price.get("currency"),
            "success_url": params.get("success_url"),
            "cancel_url": params.get("cancel_url"),
            "created": _now(),
        }

    def _not_found(self, what: str, ident: str) -> StripeFailure:
        return StripeFailure(
            404,
            {
                "type": "invalid_request_error",
                "code": "resource_missing",
                "message": f"No such {what}: '{ident}'",
            },
            saved=False,
        )

    def route(self, method: str, path: str, params: Json, key: str | None) -> Json:
        s = self.state
        if method == "GET" and path == "/v1/account":
            return {
                "id": "acct_emulated",
                "object": "account",
                "country": "US",
                "charges_enabled": True,
                "business_profile": {"name": "Emulated shop"},
            }
        if method == "POST" and path == "/v1/payment_intents":
            intent = self._intent(params)
            if str(params.get("confirm")) == "true":
                intent["payment_method"] = params.get("payment_method")
                self._charge(intent, key)
            return intent
        if method == "GET" and path == "/v1/payment_intents":
            since = int((params.get("created") or {}).get("gte") or 0)
            found = [
                i
                for i in s.intents.values()
                if i["customer"] == params.get("customer") and i["created"] >= since
            ]
            return {"object": "list", "data": found, "has_more": False, "url": path}
        if method == "GET" and path == "/v1/payment_intents/search":
            match = re.fullmatch(r"metadata\['([^']+)'\]:'([^']*)'", params.get("query", ""))
            if match is None:
                raise StripeFailure(
                    400,
                    {"type": "invalid_request_error", "message": "unsupported query"},
                    saved=False,
                )
            name, value = match.groups()
            found = [i for i in s.intents.values() if i["metadata"].get(name) == value]
            return {"object": "search_result", "data": found, "has_more": False, "url": path}
        if m := re.fullmatch(r"/v1/payment_intents/(pi_\w+)(/confirm)?", path):
            found_intent = s.intents.get(m.group(1))
            if found_intent is None:
                raise self._not_found("payment_intent", m.group(1))
            intent = found_intent
            if method == "GET":
                return intent
            if m.group(2):
                if intent["status"] in ("succeeded", "canceled", "processing"):
                    raise StripeFailure(
                        400,
                        {
                            "type": "invalid_request_error",
                            "code": "payment_intent_unexpected_state",
                            "message": f"This PaymentIntent's status is {intent['status']}.",
                        },
                    )
                if params.get("payment_method"):
                    intent["payment_method"] = params["payment_method"]
                self._charge(intent, key)
                return intent
            intent["metadata"].update(params.get("metadata") or {})
            return intent
        if method == "GET" and path == "/v1/invoice_payments":
            wanted = params.get("payment") or {}
            found = [
                p
                for p in s.invoice_payments.values()
                if p["payment"]["payment_intent"] == wanted.get("payment_intent")
                and p["payment"]["type"] == wanted.get("type", "payment_intent")
            ]
            return {"object": "list", "data": found, "has_more": False, "url": path}
        if m := re.fullmatch(r"/v1/invoices/(in_\w+)", path):
            found_invoice = s.invoices.get(m.group(1))
            if found_invoice is None or method != "GET":
                raise self._not_found("invoice", m.group(1))
            return found_invoice
        if method == "POST" and path == "/v1/checkout/sessions":
            expires = int(params.get("expires_at") or 0)
            if not _now() + 30 * 60 - 5 <= expires <= _now() + 24 * 3600 + 5:
                raise StripeFailure(
                    400,
                    {
                        "type": "invalid_request_error",
                        "param": "expires_at",
                        "message": "expires_at must be 30 minutes to 24 hours from now",
                    },
                    saved=False,
                )
            session = self._session(params)
            s.sessions[session["id"]] = session
            return session
        if m := re.fullmatch(r"/v1/checkout/sessions/(cs_\w+)(/expire)?", path):
            found_session = s.sessions.get(m.group(1))
            if found_session is None:
                raise self._not_found("checkout.session", m.group(1))
            session = found_session
            if m.group(2):
                if method != "POST":
                    raise self._not_found("route", path)
                status = session["status"]
                if status != "open":
                    raise StripeFailure(
                        400,
                        {
                            "type": "invalid_request_error",
                            "message": 'Only Checkout Sessions with a status in ["open"] can be '
                            f'expired. This Checkout Session has a status of "{status}".',
                        },
                    )
                session["status"] = "expired"
                self._event("checkout.session.expired", session)
            return session
        raise StripeFailure(
            404,
            {
                "type": "invalid_request_error",
                "message": f"Unrecognized request URL ({method}: {path})",
            },
            saved=False,
        )

    # -- HTTP ----------------------------------------------------------------------------------

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            queue = self.state.faults.get(f"{method} {path}")
            return queue.pop(0) if queue else None

    @contextmanager
    def _running(self, key: str | None) -> Iterator[bool]:
        with self.lock:
            busy = key is not None and key in self.state.running
            if key is not None and not busy:
                self.state.running.add(key)
        try:
            yield busy
        finally:
            if key is not None and not busy:
                with self.lock:
                    self.state.running.discard(key)

    def handle(
        self, method: str, path: str, headers: Any, body: str
    ) -> tuple[int, Json, dict[str, str]]:
        key = headers.get("Idempotency-Key") if method == "POST" else None
        split = urlsplit(path)
        path = split.path
        record = Request(time.monotonic(), method, path, key)
        with self.lock:
            self.state.requests.append(record)
        auth = headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ").strip()
        if token not in self.keys:
            masked = token[:8] + "*" * 8 + token[-4:] if len(token) > 12 else "***"
            record.status = 401
            return (
                401,
                {
                    "error": {
                        "type": "invalid_request_error",
                        "message": f"Invalid API Key provided: {masked}",
                    }
                },
                {},
            )
        params = decode_form(body if method == "POST" else split.query)
        fingerprint = json.dumps([method, path, params], sort_keys=True)
        with self._running(key) as busy:
            if busy:
                record.status = 409
                return (
                    409,
                    {
                        "error": {
                            "type": "invalid_request_error",
                            "code": "idempotency_key_in_use",
                            "message": "There is currently another in-progress request using this "
                            "Idempotent Key. Please try again later.",
                        }
                    },
                    {},
                )
            if key is not None:
                with self.lock:
                    first = self.state.keys.get(key)
                if first is not None:
                    if first[0] != fingerprint:
                        record.status = 400
                        return (
                            400,
                            {
                                "error": {
                                    "type": "idempotency_error",
                                    "message": REUSED_KEY,
                                }
                            },
                            {},
                        )
                    record.status, record.replayed = first[2], True
                    return first[2], first[3], {"Idempotent-Replayed": "true"}
            status, answer, extra = self._execute(method, path, params, key)
            record.status = status
            return status, answer, extra

    def _execute(
        self, method: str, path: str, params: Json, key: str | None
    ) -> tuple[int, Json, dict[str, str]]:
        fault = self._take_fault(method, path)
        extra: dict[str, str] = {}
        if fault is not None and fault.status == 429:
            if fault.retry_after is not None:
                extra["Retry-After"] = str(fault.retry_after)
            return (
                429,
                {
                    "error": {
                        "type": "invalid_request_error",
                        "code": "rate_limit",
                        "message": "Too many requests hit the API too quickly.",
                    }
                },
                extra,
            )
        if fault is not None and fault.status and fault.status >= 500 and not fault.after_charge:
            status, answer = (
                fault.status,
                {"error": {"type": "api_error", "message": "An unknown error occurred"}},
            )
            self._save(key, method, path, params, status, answer)
            return status, answer, {"Stripe-Should-Retry": "false"}
        with self.lock:
            try:
                status, answer = 200, self.route(method, path, params, key)
                saved = True
            except StripeFailure as failure:
                status, answer, saved = failure.status, {"error": failure.error}, failure.saved
            answer = json.loads(json.dumps(answer))  # a snapshot, as sent
            if fault is not None and fault.status and fault.after_charge:
                status, answer = (
                    fault.status,
                    {"error": {"type": "api_error", "message": "An unknown error occurred"}},
                )
                extra["Stripe-Should-Retry"] = "false"
            if saved:
                self._save(key, method, path, params, status, answer)
        self.state.received.set()
        if fault is not None and fault.hold is not None:
            fault.hold.wait(30)
        if fault is not None and fault.delay:
            time.sleep(fault.delay)
        return status, answer, extra

    def _save(
        self, key: str | None, method: str, path: str, params: Json, status: int, answer: Json
    ) -> None:
        if key is None:
            return
        fingerprint = json.dumps([method, path, params], sort_keys=True)
        with self.lock:
            self.state.keys.setdefault(key, (fingerprint, path, status, answer))

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                status, answer, extra = emulator.handle(method, self.path, self.headers, body)
                data = json.dumps(answer).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.send_header("Request-Id", _id("req"))
                    for name, value in extra.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout) or was killed

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                self._serve("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._serve("POST")

        return Handler


def main() -> None:  # pragma: no cover - run by hand: python -m tests.stripe.emulator
    emulator = Emulator().start()
    print(f"Stripe emulator on {emulator.url} (key {KEY})", flush=True)
    threading.Event().wait()


if __name__ == "__main__":  # pragma: no cover
    main()
