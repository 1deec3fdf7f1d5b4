"""The pages without a browser: the token exchange and what a bad token sees (404, never 403),
CSRF on every form, the headers (a strict CSP), escaping, cookies, bad input, and a retry
through the same throttle and idempotency keys as the API."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx

from tests.pages.conftest import Api, MakeApi, admin_client, csrf_of, customer_client, key_of

HOSTILE = "<script>alert(1)</script>"
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I)


def _strict(response: httpx.Response) -> None:
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp
    assert "unsafe-inline" not in csp and "default-src 'none'" in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    if response.headers.get("content-type", "").startswith("text/html"):
        assert not INLINE_SCRIPT.search(response.text), "an inline script"
        assert " style=" not in response.text, "an inline style"


def test_the_link_is_exchanged_once_for_a_cookie_of_this_page(api: Api) -> None:
    api.queue("txn_pay")
    client = api.client(None)
    token = api.customer("txn_pay")
    response = client.get("/pay/txn_pay", params={"token": token})
    assert response.status_code == 303
    assert response.headers["location"] == "/pay/txn_pay"  # the token is gone from the URL
    cookie = response.headers["set-cookie"]
    assert "prt_pay=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Path=/pay/txn_pay" in cookie and "Secure" not in cookie  # plain HTTP here
    assert token not in cookie
    page = client.get("/pay/txn_pay")
    assert page.status_code == 200
    _strict(page)
    assert token not in page.text and "99.99 USD" in page.text
    assert "Retry payment now" in page.text
    assert "processing_error" not in page.text  # no internal codes for the customer
    for path in ("/pay/txn_pay/status", "/static/pay.js", "/static/style.css"):
        _strict(client.get(path))


def test_an_expired_foreign_or_bad_token_and_no_cookie_are_404(api: Api) -> None:
    api.queue("txn_a")
    api.queue("txn_b", metadata={"userId": "user_b"})
    client = api.client(None)
    foreign = api.customer("txn_b")
    expiring = api.customer("txn_a", ttl=timedelta(minutes=1))
    for token in (foreign, "prt_000000000000_" + "x" * 43, "nonsense", api.tokens["admin"]):
        response = client.get("/pay/txn_a", params={"token": token})
        assert response.status_code == 404, token
        _strict(response)
        assert "txn_a" not in response.text
    assert client.get("/pay/txn_a").status_code == 404  # no cookie
    assert client.get("/pay/txn_nope", params={"token": foreign}).status_code == 404
    with_cookie = customer_client(api, "txn_a", ttl=timedelta(minutes=1))
    assert with_cookie.get("/pay/txn_a").status_code == 200
    assert with_cookie.get("/pay/txn_b").status_code == 404  # the cookie is of txn_a only
    api.clock.advance(minutes=2)
    assert client.get("/pay/txn_a", params={"token": expiring}).status_code == 404
    assert with_cookie.get("/pay/txn_a").status_code == 404  # the session ended with it
    assert with_cookie.get("/pay/txn_a/events").status_code == 404


def test_csrf_is_refused_on_every_form_and_changes_nothing(api: Api) -> None:
    api.queue("txn_c")
    customer = customer_client(api, "txn_c")
    key = key_of(customer.get("/pay/txn_c").text)
    for data in ({"key": key}, {"key": key, "csrf": "forged"}):
        response = customer.post("/pay/txn_c/retry", data=data)
        assert response.status_code == 403
    other = api.client(None)  # another browser: its own CSRF cookie
    stolen = csrf_of(customer.get("/pay/txn_c").text)
    other.cookies.set("prt_pay", customer.cookies["prt_pay"], path="/pay/txn_c")
    assert other.post("/pay/txn_c/retry", data={"csrf": stolen}).status_code == 403
    job = api.client("viewer").get("/api/payments/retry/txn_c").json()
    assert job["attempt_count"] == 0
    login = api.client(None)
    assert login.post("/admin/login", data={"token": api.tokens["operator"]}).status_code == 403
    operator = admin_client(api)
    assert operator.post("/admin/jobs/txn_c/cancel", data={}).status_code == 403
    response = operator.post(
        "/admin/jobs/txn_c/cancel",
        data={"csrf": "x"},
        headers={"Origin": "https://evil.example"},
    )
    assert response.status_code == 403
    assert operator.post("/admin/logout", data={}).status_code == 403
    assert api.client("viewer").get("/api/payments/retry/txn_c").json()["state"] == "scheduled"


def test_dashboard_login_cookie_roles_and_logout(make_api: MakeApi) -> None:
    api = make_api(PAYRETRY_PAGES_SECURE_COOKIES="true")
    api.queue("txn_d")
    client = api.client(None)
    assert client.get("/admin").status_code == 303  # to the login
    form = client.get("/admin/login")
    _strict(form)
    set_csrf = form.headers["set-cookie"]
    assert "Secure" in set_csrf and "HttpOnly" in set_csrf and "SameSite=strict" in set_csrf
    # Over plain HTTP a Secure cookie stays in the jar: send it as a TLS client would.
    jar = {"Cookie": set_csrf.split(";", 1)[0]}
    csrf = csrf_of(form.text)
    bad = client.post("/admin/login", data={"token": "prt_nope", "csrf": csrf}, headers=jar)
    assert bad.status_code == 401 and "unknown" in bad.text
    customer = client.post(
        "/admin/login", data={"token": api.customer("txn_d"), "csrf": csrf}, headers=jar
    )
    assert customer.status_code == 401  # a customer token is not a dashboard login
    ok = client.post(
        "/admin/login", data={"token": api.tokens["viewer"], "csrf": csrf}, headers=jar
    )
    cookie = ok.headers["set-cookie"]
    assert ok.status_code == 303 and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Secure" in cookie and "Path=/admin" in cookie
    assert api.tokens["viewer"] not in cookie  # a signed session, never the token


def test_viewer_sees_no_actions_and_gets_403_posting_anyway(api: Api) -> None:
    api.queue("txn_v")
    viewer = admin_client(api, "viewer")
    page = viewer.get("/admin/jobs/txn_v")
    assert page.status_code == 200 and "Cancel" not in page.text
    csrf = csrf_of(page.text)
    for action in ("cancel", "retry"):
        assert viewer.post(f"/admin/jobs/txn_v/{action}", data={"csrf": csrf}).status_code == 403
    assert api.client("viewer").get("/api/payments/retry/txn_v").json()["state"] == "scheduled"
    operator = admin_client(api)
    page = operator.get("/admin/jobs/txn_v")
    done = operator.post("/admin/jobs/txn_v/cancel", data={"csrf": csrf_of(page.text)})
    assert done.status_code == 303
    assert api.client("viewer").get("/api/payments/retry/txn_v").json()["state"] == "cancelled"
    again = operator.post("/admin/jobs/txn_v/cancel", data={"csrf": csrf_of(page.text)})
    assert again.status_code == 409 and "already cancelled" in again.text


def test_every_page_escapes_a_script_in_metadata(api: Api) -> None:
    api.queue(
        "txn_x",
        error={"code": "processing_error", "message": HOSTILE},
        metadata={"orderId": HOSTILE, "note": HOSTILE},
    )
    operator = admin_client(api)
    customer = customer_client(api, "txn_x")
    pages = [
        operator.get("/admin"),
        operator.get("/admin/jobs"),
        operator.get("/admin/jobs", params={"code": HOSTILE}),
        operator.get("/admin/jobs/txn_x"),
        operator.get("/admin/analytics"),
        operator.get("/admin/jobs", params={"state": HOSTILE}),
        customer.get("/pay/txn_x"),
        customer.get("/pay/txn_x/status"),
        api.client(None).get("/pay/" + HOSTILE),
    ]
    job_page = pages[3].text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in job_page  # shown, escaped
    for response in pages:
        assert HOSTILE not in response.text, response.url
        _strict(response)


def test_job_filters_refuse_bad_input_naming_the_field(api: Api) -> None:
    api.queue("txn_f1", metadata={"amount": "10.00", "currency": "EUR"})
    api.queue("txn_f2", metadata={"amount": "50.00", "currency": "EUR", "userId": "user_f"})
    operator = admin_client(api)
    bad = operator.get("/admin/jobs", params={"state": "paid"})
    assert bad.status_code == 422 and "state:" in bad.text
    no_currency = operator.get("/admin/jobs", params={"min": "5"})
    assert (
        no_currency.status_code == 422
        and "min: an amount range needs a currency" in no_currency.text
    )
    wrong = operator.get("/admin/jobs", params={"min": "5.001", "currency": "EUR"})
    assert wrong.status_code == 422 and "min:" in wrong.text
    assert operator.get("/admin/jobs", params={"before": "x"}).status_code == 422
    found = operator.get("/admin/jobs", params={"currency": "eur", "min": "20", "max": "60"})
    assert found.status_code == 200 and "txn_f2" in found.text and "txn_f1" not in found.text
    assert "txn_f1" in operator.get("/admin/jobs", params={"user": "user_456"}).text
    assert operator.get("/admin/jobs/txn_nope").status_code == 404


def test_a_customer_retry_is_throttled_and_idempotent(make_api: MakeApi) -> None:
    api = make_api(PAYRETRY_SIMULATED_SUCCESS_RATE="0")
    api.queue("txn_t", metadata={"simulate": "processing_error,processing_error"})
    customer = customer_client(api, "txn_t")
    page = customer.get("/pay/txn_t").text
    form = {"csrf": csrf_of(page), "key": key_of(page)}
    first = customer.post("/pay/txn_t/retry", data=form)
    assert first.status_code == 303 and first.headers["location"] == "/pay/txn_t?done=rescheduled"
    replay = customer.post("/pay/txn_t/retry", data=form)  # the same form sent again
    assert replay.headers["location"] == "/pay/txn_t?done=rescheduled"
    assert api.client("viewer").get("/api/payments/retry/txn_t").json()["attempt_count"] == 1
    shown = customer.get("/pay/txn_t?done=rescheduled").text
    assert "You can try again at" in shown and "disabled" in shown
    assert re.search(r"\(in (1m|[1-5]?[0-9]s)\)\.", shown)  # the window's 60 s, less elapsed
    second = customer.post("/pay/txn_t/retry", data={**form, "key": key_of(shown)})
    assert second.headers["location"] == "/pay/txn_t?done=throttled"
    assert api.client("viewer").get("/api/payments/retry/txn_t").json()["attempt_count"] == 1
    api.clock.advance(seconds=61)
    assert "disabled" not in customer.get("/pay/txn_t").text
