"""The pages under test: the API's real uvicorn (tests/api/conftest.py) on SQLite and
PostgreSQL, httpx for what needs no browser, and one headless Chromium (Debian's, driven by
Playwright; never downloaded) for the whole session."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.conftest import SECRET, Api, Clock, MakeApi, api, api_url, make_api

__all__ = ["Api", "Clock", "MakeApi", "api", "api_url", "make_api", "SECRET"]

CHROMIUM = os.environ.get("PAYRETRY_TEST_CHROMIUM", "/usr/bin/chromium")
# Read at import, before the autouse fixture clears PAYRETRY_* from the environment: where the
# browser tests also save their screenshots (the README's, docs/screenshots).
_SHOTS = os.environ.get("PAYRETRY_SCREENSHOTS")
SCREENSHOTS = str(Path(_SHOTS).resolve()) if _SHOTS else None
UNDER_CI = bool(os.environ.get("CI"))
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
_KEY = re.compile(r'name="key" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def key_of(html: str) -> str:
    found = _KEY.search(html)
    assert found, "no idempotency key on the page"
    return found.group(1)


def queue(api: Api, txn: str, **changes: Any) -> dict[str, Any]:
    return api.queue(txn, **changes)


def customer_client(api: Api, txn: str, ttl: timedelta = timedelta(hours=1)) -> httpx.Client:
    """A browser-like client holding the page's cookie for `txn` (the link exchanged)."""
    client = api.client(None)
    response = client.get(f"/pay/{txn}", params={"token": api.customer(txn, ttl)})
    assert response.status_code == 303, response.text
    return client


def admin_client(api: Api, role: str = "operator") -> httpx.Client:
    client = api.client(None)
    form = client.get("/admin/login")
    response = client.post(
        "/admin/login", data={"token": api.tokens[role], "csrf": csrf_of(form.text)}
    )
    assert response.status_code == 303, response.text
    return client


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, with a fresh profile: one for the whole session."""
    if not Path(CHROMIUM).exists():
        message = f"no Chromium at {CHROMIUM} (scripts/test.sh installs Debian's chromium)"
        if UNDER_CI:
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    # launch() gives Chromium a fresh temporary profile (--user-data-dir) of its own, removed
    # on close; each test then gets its own context (cookies, storage) within it.
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def shots(tmp_path: Path) -> Any:
    """Save a screenshot of a page under the test's folder (and docs/screenshots when asked)."""
    folder = tmp_path / "screenshots"
    folder.mkdir()

    def shot(page: Any, name: str) -> Path:
        path = folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        if SCREENSHOTS:
            target = Path(SCREENSHOTS)
            target.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target / f"{name}.png")
        return path

    return shot
