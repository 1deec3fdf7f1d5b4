"""Secrets hidden from everything payretry prints: error lines, logs, `payretry config`.

What is masked (every mask is `***`, showing no character of the secret):

- the password of a URL (`postgresql://app:***@db/pay`), wherever a URL appears;
- credential query parameters of a URL (`?password=***`, `&sslpassword=***`, `token`,
  `access_token`, `api_key`, `key`, `secret`, `sig`, ...: any parameter whose name contains
  pass, pwd, secret, token, key, auth, credential or signature, in any case);
- `NAME=value` and `NAME: value` pairs in free text whose name is a credential
  (`password=...`, `db_password: ...`, `api_key=...`, `client_secret=...`, `access_token=...`),
  quoted values whole;
- Stripe keys (`sk_live_...`, `rk_test_...`, `whsec_...`) and `Bearer`/`Basic` credentials.

Every pattern reads the text once (bounded repetitions, no nested backtracking).
"""

from __future__ import annotations

import re

MASK = "***"

# A URL's password: in a URL given as a setting, everything up to the first @ (as SQLAlchemy
# reads it, so a password may hold / or a space); in free text, no space or / (URLs printed by
# SQLAlchemy and the drivers are percent-encoded), so that host:port/path is never taken.
_USERINFO = re.compile(r"(?P<head>^[A-Za-z][A-Za-z0-9+.\-]{0,40}://[^:/?#@]{0,256}:)[^@]*@")
_USERINFO_IN_TEXT = re.compile(
    r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]{0,40}://[^\s:/?#@]{0,256}:)[^@\s/]{1,1024}@"
)
_QUERY = re.compile(r"(?P<head>[?&;](?P<name>[^=&#\s?;]{1,64})=)(?P<value>[^&#\s;]*)")
_CREDENTIAL_NAME = re.compile(r"pass|pwd|secret|token|key|auth|credential|signature|^sig$", re.I)
# A credential pair: a name made of up to three words joined by _ or - (db_password,
# aws_secret_access_key) ending in a credential word, then = or : and the value. Each word is
# taken whole (possessive), so a position costs a few steps, not one per prefix length.
_PAIR = re.compile(
    r"(?P<head>(?<![A-Za-z0-9_\-])(?:[A-Za-z0-9]{1,24}+[_\-]){0,3}"
    r"(?:(?:pg|ssl|db)?pass(?:word|wd|phrase)?|pwd|secret|token|api_?key|access_?key"
    r"|private_?key|secret_?key|write_?key|credentials?)"
    r"[\"']?\s{0,8}[=:]\s{0,8})"
    r"(?P<value>\"[^\"\n]{0,1024}\"|'[^'\n]{0,1024}'|[^\s,;&'\"]+)",
    re.I,
)
_STRIPE_KEY = re.compile(r"\b(?:sk|rk|pk|whsec)_(?:(?:test|live)_)?[A-Za-z0-9]{6,}")
_BEARER = re.compile(r"(?P<head>\b(?:Bearer|Basic)\s{1,8})[A-Za-z0-9._~+/\-]+=*", re.I)
_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.\-]{0,40}://[^\s\"'<>]*")


def _query_value(match: re.Match[str]) -> str:
    if _CREDENTIAL_NAME.search(match.group("name")) and match.group("value"):
        return match.group("head") + MASK
    return match.group(0)


def mask_url(url: str, *, path: bool = True, _in_text: bool = False) -> str:
    """The URL with its password and credential query parameters masked. `path=False`: also
    everything after the host and port (a URL whose path is itself a capability, like many
    webhook URLs), and the user name."""
    userinfo = _USERINFO_IN_TEXT if _in_text else _USERINFO
    masked = userinfo.sub(lambda m: m.group("head") + MASK + "@", url, count=1)
    masked = _QUERY.sub(_query_value, masked)
    if path:
        return masked
    scheme, sep, rest = masked.partition("://")
    if not sep:
        return MASK
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    host = authority.rpartition("@")[2]
    tail = rest[len(authority) :]
    return f"{scheme}://{MASK + '@' if '@' in authority else ''}{host}{'/' + MASK if tail else ''}"


def mask_secrets(text: str) -> str:
    """Every secret payretry knows how to recognise in free text, masked."""
    if not text:
        return text
    masked = _STRIPE_KEY.sub("[redacted-key]", text)
    masked = _BEARER.sub(lambda m: m.group("head") + MASK, masked)
    if "://" in masked:
        masked = _URL.sub(lambda m: mask_url(m.group(0), _in_text=True), masked)
    if "=" in masked or ":" in masked:
        masked = _PAIR.sub(lambda m: m.group("head") + MASK, masked)
    return masked
