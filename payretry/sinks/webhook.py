"""Webhook sink: each batch POSTed as JSON, signed with HMAC-SHA256 over the timestamp and the
body, re-sent with backoff; at least once (receivers drop duplicates by event id).

Request: `POST <url>`, `Content-Type: application/json`, body `{"events": [...]}`, header
`Payretry-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" with the secret>`.
Any 2xx accepts the batch; anything else (or no answer) is a failure. Redirects are not
followed: a signed body is not re-sent to another address. Credentials in the URL
(`https://user:pass@host/...`) go in an Authorization: Basic header.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from payretry import __version__
from payretry.backoff import Backoff
from payretry.domain.events import Event
from payretry.domain.outbox import SinkError
from payretry.errors import ConfigError

SIGNATURE_HEADER = "Payretry-Signature"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The header value: `t=<timestamp>,v1=<hex HMAC-SHA256 of "<timestamp>.<body>">`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def describe(url: str) -> str:
    """The URL without credentials, query or fragment (they may carry tokens): for logs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 3xx surfaces as an HTTPError: a failure


class WebhookSink:
    name = "webhook"

    def __init__(
        self,
        url: str,
        secret: str,
        *,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.5,
        stop: threading.Event | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if urlsplit(url).scheme not in ("http", "https"):
            raise ConfigError(f"[webhook] url must be http or https, not {describe(url)!r}")
        if not secret:
            raise ConfigError(
                "[webhook] url is set but [webhook] secret is not: every delivery is signed "
                "(set PAYRETRY_WEBHOOK_SECRET)"
            )
        parts = urlsplit(url)
        self._auth: str | None = None
        if parts.username is not None:  # urllib takes no credentials in the URL: a header
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            self._auth = "Basic " + base64.b64encode(pair.encode()).decode()
            host = parts.hostname or ""
            netloc = f"[{host}]" if ":" in host else host
            if parts.port:
                netloc += f":{parts.port}"
            url = urlunsplit(parts._replace(netloc=netloc))
        self.url = url
        self._secret = secret
        self.timeout = timeout
        self.retries = retries
        self.resend = Backoff(first=backoff, factor=2.0, cap=backoff * 2**retries)
        self.stop = stop or threading.Event()
        self.clock = clock
        self._opener = urllib.request.build_opener(_NoRedirect)

    def send(self, events: Sequence[Event]) -> None:
        body = json.dumps({"events": [e.as_dict() for e in events]}, separators=(",", ":")).encode()
        problem = ""
        for attempt in range(self.retries + 1):
            if attempt and self.stop.wait(self.resend.delay(attempt)):
                break
            problem = self._post(body)
            if not problem:
                return
        raise SinkError(f"webhook {describe(self.url)}: {problem}")

    def _post(self, body: bytes) -> str:
        """'' when the receiver took the batch, else what went wrong."""
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"payretry/{__version__}",
            SIGNATURE_HEADER: sign(self._secret, int(self.clock()), body),
        }
        if self._auth:
            headers["Authorization"] = self._auth
        request = urllib.request.Request(self.url, data=body, method="POST", headers=headers)
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                response.read()
                status = int(response.status)
        except urllib.error.HTTPError as exc:
            exc.close()
            status = exc.code
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            return f"no answer ({reason})"
        return "" if 200 <= status < 300 else f"HTTP {status}"

    def close(self) -> None:
        pass
