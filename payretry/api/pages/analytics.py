"""The dashboard's recovery analytics: the report of `payretry report`, its charts as SVG
images (drawn by the charts extra) with the numbers beside them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from payretry.api.pages.admin import user
from payretry.api.pages.common import IMAGE_CSP, pages_of, see_other, services
from payretry.service.recovery import recovery_report

router = APIRouter(include_in_schema=False)
PERIODS = {"7d": 7, "30d": 30, "90d": 90, "365d": 365}


def _report(request: Request, since: str) -> dict[str, Any]:
    s = services(request)
    today = s.clock().date()
    days = PERIODS.get(since, 30)
    return recovery_report(s.wiring.store, today - timedelta(days=days - 1), today)


def _charts_available() -> bool:
    from payretry.charts.render import available

    return available()


@router.get("/admin/analytics", response_class=HTMLResponse)
def analytics(request: Request, since: str = "30d") -> Response:
    who = user(request)
    if who is None:
        return see_other("/admin/login")
    from payretry.charts.html import tables
    from payretry.charts.render import CHARTS, TITLES

    since = since if since in PERIODS else "30d"
    report = _report(request, since)
    numbers = tables(report)
    charts = [
        {"name": name, "title": TITLES[name], "header": numbers[name][0], "rows": numbers[name][1]}
        for name in CHARTS
    ]
    return pages_of(request).render(
        request,
        "admin_analytics.html",
        who=who,
        report=report,
        charts=charts,
        since=since,
        periods=list(PERIODS),
        drawn=_charts_available(),
    )


@router.get("/admin/analytics/{name}.svg")
async def chart(request: Request, name: str, since: str = "30d") -> Response:
    who = await run_in_threadpool(user, request)
    if who is None:
        return Response(status_code=404)
    from payretry.charts.render import CHARTS
    from payretry.charts.render import chart as draw

    if name not in CHARTS or not _charts_available():
        return Response(status_code=404)
    report = await run_in_threadpool(_report, request, since)
    svg = await run_in_threadpool(draw, report, name, "svg")
    return Response(
        svg,
        media_type="image/svg+xml",
        headers={"Content-Security-Policy": IMAGE_CSP, "Cache-Control": "no-store"},
    )
