"""The operator's dashboard, `/admin`: a login with an operator or viewer token (kept as a
signed session cookie, HttpOnly, SameSite=Strict, Secure over TLS; never the token itself),
the queue at a glance, the job list with filters and pages, a job's page with its story, its
attempts and events and the actions its role allows, the DLQ in SQS mode, the outbox."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from payretry.api.errors import status_of
from payretry.api.pages.common import ADMIN_COOKIE, pages_of, see_other, services
from payretry.domain.access import ApiToken
from payretry.domain.analytics import JobFilter, duration_bounds
from payretry.domain.models import JobState
from payretry.domain.money import Money
from payretry.errors import InvalidInput, NotFound, PayretryError
from payretry.service.explain import job_story
from payretry.service.sessions import may_act, may_look
from payretry.service.views import events_document, job_dict, job_events, stats_document

# The form field every dashboard POST carries (checked against the signed cookie).
Csrf = Annotated[str | None, Form(max_length=200)]

router = APIRouter(include_in_schema=False)
PAGE = 50
SCOPE = "admin"


def user(request: Request) -> ApiToken | None:
    token = pages_of(request).sessions.check(request.cookies.get(ADMIN_COOKIE), SCOPE)
    return token if token is not None and may_look(token) else None


def _login() -> Response:
    return see_other("/admin/login")


def _forbidden(request: Request) -> HTMLResponse:
    return pages_of(request).error(
        request, 403, "Not allowed", "Your role may look but not act (an operator token may)."
    )


@router.get("/admin/login", response_class=HTMLResponse)
def login_form(request: Request) -> Response:
    return pages_of(request).render(request, "admin_login.html", who=None, problem=None)


@router.post("/admin/login")
def login(
    request: Request,
    token: Annotated[str, Form(max_length=200)] = "",
    csrf: Csrf = None,
) -> Response:
    pages = pages_of(request)
    if not pages.csrf_ok(request, csrf):
        return pages.refused_csrf(request)
    found = services(request).tokens.authenticate(token.strip())
    if found is None or not may_look(found):
        problem = "That token is unknown, expired or revoked, or may not use the dashboard."
        return pages.render(request, "admin_login.html", 401, who=None, problem=problem)
    value, ends = pages.sessions.open(found, SCOPE)
    response = see_other("/admin")
    max_age = int((ends - services(request).clock()).total_seconds())
    pages.session_cookie(request, response, ADMIN_COOKIE, value, "/admin", max_age)
    return response


@router.post("/admin/logout")
def logout(request: Request, csrf: Csrf = None) -> Response:
    pages = pages_of(request)
    if not pages.csrf_ok(request, csrf):
        return pages.refused_csrf(request)
    response = see_other("/admin/login")
    response.delete_cookie(ADMIN_COOKIE, path="/admin")
    return response


def _distributions(telemetry: Any) -> dict[str, Any]:
    bounds = duration_bounds()
    processing = []
    for (processor, outcome), h in telemetry.processing.items():
        mean = h.total / h.count if h.count else None
        p95 = h.quantile(0.95, [float(b) for b in bounds])
        processing.append(
            {
                "processor": processor,
                "outcome": outcome,
                "count": h.count,
                "mean": "-" if mean is None else f"{mean:.3f} s",
                "p95": "over 60 s" if p95 is None else f"up to {p95:g} s",
            }
        )
    freq = telemetry.retry_frequency
    return {"processing": processing, "frequency": freq.histogram(), "most": freq.most}


@router.get("/admin", response_class=HTMLResponse)
def overview(request: Request) -> Response:
    who = user(request)
    if who is None:
        return _login()
    s = services(request)
    now = s.clock()
    store = s.wiring.store
    stats = stats_document(store.stats(now))
    telemetry = store.telemetry(now, s.wiring.sink_names)
    context = {
        "who": who,
        "stats": stats,
        "throughput": store.throughput(now - timedelta(hours=1)),
        "events": events_document(s.events, s.wiring.sink_names),
        "sqs": s.wiring.sqs_mode,
        **_distributions(telemetry),
    }
    return pages_of(request).render(request, "admin_overview.html", **context)


def _filter(params: dict[str, str]) -> JobFilter:
    state = params.get("state") or None
    if state is not None and state not in {s.value for s in JobState}:
        raise InvalidInput(f"{state!r} is not a state", field="state")
    currency = (params.get("currency") or "").strip().upper() or None
    amounts: dict[str, int | None] = {}
    for name in ("min", "max"):
        text = (params.get(name) or "").strip()
        if not text:
            amounts[name] = None
            continue
        if currency is None:
            raise InvalidInput("an amount range needs a currency", field=name)
        try:
            amounts[name] = Money.parse(text, currency).amount_minor
        except InvalidInput as exc:
            raise InvalidInput(exc.message, field=name) from None
    for name in ("user", "code"):
        if len(params.get(name) or "") > 255:
            raise InvalidInput("is longer than 255 characters", field=name)
    return JobFilter(
        state=JobState(state) if state else None,
        user_id=(params.get("user") or "").strip() or None,
        code=(params.get("code") or "").strip() or None,
        currency=currency,
        min_minor=amounts["min"],
        max_minor=amounts["max"],
    )


@router.get("/admin/jobs", response_class=HTMLResponse)
def jobs(request: Request) -> Response:
    who = user(request)
    if who is None:
        return _login()
    pages = pages_of(request)
    params = {k: v for k, v in request.query_params.items() if k != "before"}
    before_text = request.query_params.get("before") or ""
    context: dict[str, Any] = {
        "who": who,
        "params": params,
        "states": [s.value for s in JobState],
        "jobs": [],
        "next": None,
        "problem": None,
    }
    try:
        where = _filter(params)
        if before_text and not before_text.isdigit():
            raise InvalidInput("is not a page marker", field="before")
        before = int(before_text) if before_text else None
    except InvalidInput as exc:
        context["problem"] = f"{exc.field}: {exc.message}"
        return pages.render(request, "admin_jobs.html", 422, **context)
    found = services(request).wiring.store.search_jobs(where, before_seq=before, limit=PAGE + 1)
    context["jobs"] = [job_dict(j) for j in found[:PAGE]]
    if len(found) > PAGE:
        context["next"] = "/admin/jobs?" + urlencode({**params, "before": found[PAGE - 1].seq})
    return pages.render(request, "admin_jobs.html", **context)


def _job_page(
    request: Request, who: ApiToken, txn: str, status: int, problem: str | None
) -> Response:
    s = services(request)
    try:
        job = s.operations.status(txn)
    except (NotFound, InvalidInput):
        return pages_of(request).not_found(request)
    context = {
        "who": who,
        "job": job_dict(job),
        "story": [step.as_dict() for step in job_story(s.wiring.store, job, s.policy)],
        "events": job_events(s.events, job.id, s.wiring.sink_names),
        "can_act": may_act(who),
        "problem": problem,
        "done": request.query_params.get("done") in ("cancelled", "retried"),
        "done_text": request.query_params.get("done"),
    }
    return pages_of(request).render(request, "admin_job.html", status, **context)


@router.get("/admin/jobs/{txn}", response_class=HTMLResponse)
def job_page(request: Request, txn: str) -> Response:
    who = user(request)
    if who is None:
        return _login()
    return _job_page(request, who, txn, 200, None)


def _refused_action(request: Request, csrf: str | None) -> Response | None:
    """Why a dashboard action may not run (not logged in, a bad form, a viewer), or None."""
    pages = pages_of(request)
    who = user(request)
    if who is None:
        return pages.error(request, 403, "Not logged in", "Log in to the dashboard first.")
    if not pages.csrf_ok(request, csrf):
        return pages.refused_csrf(request)
    if not may_act(who):
        return _forbidden(request)
    return None


def _act(request: Request, txn: str, csrf: str | None, action: str) -> Response:
    refused = _refused_action(request, csrf)
    if refused is not None:
        return refused
    pages, s = pages_of(request), services(request)
    try:
        job = s.operations.status(txn)
        if action == "cancel":
            s.operations.cancel(txn, s.clock())
        else:
            s.retries.retry(job, s.clock())
    except NotFound:
        return pages.not_found(request)
    except PayretryError as exc:
        who = user(request)
        assert who is not None  # checked by _refused_action
        return _job_page(request, who, txn, status_of(exc), exc.message)
    done = "cancelled" if action == "cancel" else "retried"
    return see_other(f"/admin/jobs/{txn}?done={done}")


@router.post("/admin/jobs/{txn}/cancel")
def cancel(request: Request, txn: str, csrf: Csrf = None) -> Response:
    return _act(request, txn, csrf, "cancel")


@router.post("/admin/jobs/{txn}/retry")
def retry(request: Request, txn: str, csrf: Csrf = None) -> Response:
    return _act(request, txn, csrf, "retry")


@router.get("/admin/dlq", response_class=HTMLResponse)
def dlq(request: Request) -> Response:
    who = user(request)
    if who is None:
        return _login()
    s = services(request)
    pages = pages_of(request)
    if not s.wiring.sqs_mode:
        return pages.error(request, 404, "No dead-letter queue", "payretry runs inline here.")
    from payretry.service.deadletters import list_dead

    try:
        queue = s.wiring.queue(dead_letters=True)
        letters = [d.as_dict() for d in list_dead(queue, s.store)]
        problem = None
    except PayretryError as exc:
        letters, problem = [], exc.message
    return pages.render(
        request, "admin_dlq.html", who=who, letters=letters, problem=problem, can_act=may_act(who)
    )


@router.post("/admin/dlq/redrive")
def redrive_dead(
    request: Request,
    csrf: Csrf = None,
    message_id: Annotated[str | None, Form(max_length=200)] = None,
) -> Response:
    refused = _refused_action(request, csrf)
    if refused is not None:
        return refused
    pages, s = pages_of(request), services(request)
    if not s.wiring.sqs_mode:
        return pages.not_found(request)
    from payretry.service.deadletters import redrive

    try:
        redrive(
            s.wiring.queue(dead_letters=True),
            s.wiring.queue(),
            s.store,
            [message_id] if message_id else None,
        )
    except PayretryError as exc:
        return pages.error(request, 409, "Not sent back", exc.message)
    return see_other("/admin/dlq")
