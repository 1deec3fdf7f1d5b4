"""The pages: the customer's payment page (/pay/{id}) and the operator's dashboard (/admin),
server-rendered with Jinja2 (autoescaping on), a small script for live updates, static files
served by the app, a strict Content-Security-Policy. No build step, no CDN."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from payretry.api.pages import admin, analytics, customer
from payretry.api.pages.common import STATIC, PageHeaders, Pages
from payretry.api.services import Services


def install(app: FastAPI, services: Services) -> None:
    app.state.pages = Pages(services)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for module in (customer, admin, analytics):
        app.include_router(module.router)
    app.add_middleware(PageHeaders)
