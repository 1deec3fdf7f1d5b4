"""The pages in a real browser (Debian's Chromium, headless, through Playwright): the flows a
customer and an operator go through, live updates, keyboard-only use, no CSP violation. Each
page's screenshot is saved under the test's folder (and in docs/screenshots when
PAYRETRY_SCREENSHOTS names it)."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from payretry.domain.changes import Queued
from payretry.domain.models import Job, JobState
from payretry.domain.money import Money
from tests.pages.conftest import Api, MakeApi

pytestmark = pytest.mark.slow
TIMEOUT = 10_000  # ms


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    tab = context.new_page()
    tab.set_default_timeout(TIMEOUT)
    violations: list[str] = []
    tab.on(
        "console",
        lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None,
    )
    tab.violations = violations
    yield tab
    context.close()
    assert not violations, violations


def link(api: Api, txn: str) -> str:
    return f"{api.url}/pay/{txn}?token={api.customer(txn)}"


def tab_to(page: Any, selector: str, presses: int = 40) -> None:
    """Press Tab until `selector` has the focus: proof it is reachable by keyboard."""
    for _ in range(presses):
        page.keyboard.press("Tab")
        if page.evaluate("s => document.activeElement.matches(s)", selector):
            return
    raise AssertionError(f"{selector} is not reachable with Tab")


def labelled(page: Any) -> None:
    """Every control has a label (a <label>, aria-label, or text for a button)."""
    missing = page.evaluate(
        """() => [...document.querySelectorAll('input:not([type=hidden]), select, button')]
          .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                       && !(e.tagName === 'BUTTON' && e.textContent.trim()))
          .map(e => e.outerHTML)"""
    )
    assert missing == []


def test_customer_retries_a_soft_decline_by_keyboard_and_sees_success(
    api: Api, page: Any, shots: Any
) -> None:
    api.queue(
        "txn_soft",
        error={"code": "card_declined", "decline_code": "try_again_later"},
        metadata={"amount": "49.90", "currency": "EUR"},
    )
    page.goto(link(api, "txn_soft"))
    assert page.url == f"{api.url}/pay/txn_soft"  # the token left the address bar
    assert page.locator(".amount").inner_text() == "49.90 EUR"
    assert "could not approve the payment right now" in page.locator(".reason").inner_text()
    assert page.locator("#attempts-left").inner_text() == "3"
    labelled(page)
    shots(page, "pay")
    tab_to(page, "#retry")
    page.keyboard.press("Enter")
    page.wait_for_url("**/pay/txn_soft?done=succeeded")
    assert page.locator(".headline").inner_text() == "Paid"
    assert "went through" in page.locator(".flash").inner_text()
    assert page.locator("#retry").count() == 0
    shots(page, "pay-paid")


def test_exhausted_job_shows_a_disabled_button_and_why(api: Api, page: Any, shots: Any) -> None:
    now = api.clock()
    job = Job(
        id="e" * 32,
        transaction_id="txn_done",
        user_id="user_1",
        money=Money(1999, "USD"),
        error_code="insufficient_funds",
        decline_code=None,
        error_message=None,
        state=JobState.EXHAUSTED,
        attempt_count=2,
        max_attempts=2,
        next_retry_at=None,
        created_at=now - timedelta(days=3),
        updated_at=now - timedelta(hours=1),
        expires_at=now + timedelta(days=1),
        priority=1999,
        reason="2 of 2 attempts used",
    )
    api.wiring.store.insert(Queued(job))
    page.goto(link(api, "txn_done"))
    assert page.locator(".headline").inner_text() == "This payment will not be retried"
    assert page.locator("#retry").is_disabled()
    assert page.locator("#why-not").inner_text() == "No attempts are left: all 2 have been used."
    assert "insufficient funds" in page.locator(".reason").inner_text()
    shots(page, "pay-exhausted")


def test_a_throttled_second_press_shows_the_wait(make_api: MakeApi, page: Any) -> None:
    api = make_api(PAYRETRY_SIMULATED_SUCCESS_RATE="0")
    api.queue("txn_wait", metadata={"simulate": "processing_error,processing_error"})
    page.goto(link(api, "txn_wait"))
    page.click("#retry")
    page.wait_for_url("**done=rescheduled")
    assert page.locator("#retry").is_disabled()
    assert "You can try again at" in page.locator("#why-not").inner_text()
    page.evaluate("document.querySelector('#status form').submit()")  # pressed anyway
    page.wait_for_url("**done=throttled")
    assert page.locator(".flash").inner_text() == "Please wait a moment before trying again."
    assert re.search(r"\(in (1m|[1-5]?[0-9]s)\)\.$", page.locator("#why-not").inner_text())
    assert page.locator("#attempts-made").inner_text() == "1 of 3"


def test_the_page_updates_itself_when_run_due_succeeds(api: Api, page: Any) -> None:
    api.queue("txn_live")
    page.goto(link(api, "txn_live"))
    page.wait_for_selector("#payment[data-live=yes]")
    assert page.locator(".headline").inner_text() == "Payment not completed yet"
    api.clock.advance(minutes=2)  # processing_error waits 1m

    def run_due() -> None:
        api.wiring.runner().run_due()

    worker = threading.Thread(target=run_due)
    worker.start()
    worker.join(30)
    page.wait_for_selector("#status[data-outcome=paid]")
    assert page.locator(".headline").inner_text() == "Paid"
    assert page.url.endswith("/pay/txn_live")  # no reload, no navigation


def test_operator_logs_in_filters_opens_and_cancels_by_keyboard(
    api: Api, page: Any, shots: Any
) -> None:
    api.queue("txn_op1", metadata={"userId": "user_a"})
    api.queue("txn_op2", metadata={"userId": "user_b", "amount": "250.00"})
    page.goto(f"{api.url}/admin")
    assert page.url.endswith("/admin/login")
    labelled(page)
    shots(page, "admin-login")
    tab_to(page, "#token")
    page.keyboard.type(api.tokens["operator"])
    page.keyboard.press("Enter")
    page.wait_for_url(f"{api.url}/admin")
    assert page.locator("#due-now").is_visible()
    labelled(page)
    shots(page, "admin")
    page.goto(f"{api.url}/admin/jobs")
    tab_to(page, "#f-user")
    page.keyboard.type("user_b")
    page.keyboard.press("Enter")
    page.wait_for_url("**user=user_b**")
    rows = page.locator("table.jobs tbody tr")
    assert rows.count() == 1 and "txn_op2" in rows.first.inner_text()
    labelled(page)
    shots(page, "admin-jobs")
    tab_to(page, "a[href='/admin/jobs/txn_op2']")
    page.keyboard.press("Enter")
    page.wait_for_url("**/admin/jobs/txn_op2")
    assert page.locator("ol.story li").count() >= 3
    labelled(page)
    shots(page, "admin-job")
    tab_to(page, "button.danger")
    page.keyboard.press("Enter")
    page.wait_for_url("**done=cancelled")
    assert page.locator("#job-state").inner_text() == "cancelled"


def test_viewer_sees_no_cancel_and_gets_403_posting_anyway(api: Api, page: Any) -> None:
    api.queue("txn_view")
    page.goto(f"{api.url}/admin/login")
    page.fill("#token", api.tokens["viewer"])
    page.click("button[type=submit]")
    page.goto(f"{api.url}/admin/jobs/txn_view")
    assert page.locator("button.danger").count() == 0
    assert page.get_by_role("button", name="Retry now").count() == 0
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    response = page.request.post(f"{api.url}/admin/jobs/txn_view/cancel", form={"csrf": csrf or ""})
    assert response.status == 403
    assert api.wiring.store.find("txn_view").state is JobState.SCHEDULED  # type: ignore[union-attr]


def test_the_analytics_page_shows_its_charts(api: Api, page: Any, shots: Any) -> None:
    api.queue("txn_an1")
    api.queue("txn_an2", metadata={"simulate": "card_declined:stolen_card"})
    api.clock.advance(minutes=2)
    api.wiring.runner().run_due()
    page.goto(f"{api.url}/admin/login")
    page.fill("#token", api.tokens["viewer"])
    page.click("button[type=submit]")
    page.goto(f"{api.url}/admin/analytics")
    images = page.locator("section.chart img")
    assert images.count() == 5
    page.wait_for_function(
        "() => [...document.querySelectorAll('section.chart img')]"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )
    assert "1 recovered, 1 lost" in page.locator("#summary").inner_text()
    labelled(page)
    shots(page, "admin-analytics")


def test_no_js_needed_the_form_posts_plainly(browser: Any, api: Api) -> None:
    context = browser.new_context(java_script_enabled=False)
    try:
        tab = context.new_page()
        tab.set_default_timeout(TIMEOUT)
        api.queue("txn_nojs")
        tab.goto(link(api, "txn_nojs"))
        tab.click("#retry")
        tab.wait_for_url("**done=succeeded")
        assert tab.locator(".headline").inner_text() == "Paid"
    finally:
        context.close()
