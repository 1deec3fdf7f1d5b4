"""What every page shares: the templates (autoescaped), the security headers, the CSRF cookie
and check, session cookies, and error pages."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from payretry.api.services import Services, services_of
from payretry.domain.durations import iso
from payretry.service.sessions import PageSessions

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
CSRF_COOKIE = "prt_csrf"
ADMIN_COOKIE = "prt_admin"
PAY_COOKIE = "prt_pay"
# No inline script or style anywhere: scripts, styles, images and the event stream come from
# this origin only; forms post here only; no framing; no <base>.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
# A chart is an SVG image: it runs no script; its own drawing styles are inline.
IMAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'"
_PREFIXES = ("/pay/", "/admin", "/static/")
_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]


class PageHeaders:
    """The security headers of every page, static file and chart (the API's JSON routes keep
    their own)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope["path"]).startswith(_PREFIXES):
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                extra = [h for h in _HEADERS if h[0] not in names]
                if b"content-security-policy" not in names:
                    extra.append((b"content-security-policy", CSP.encode()))
                if b"cache-control" not in names and not scope["path"].startswith("/static/"):
                    extra.append((b"cache-control", b"no-store"))
                message["headers"] = headers + extra
            await send(message)

        await self.app(scope, receive, with_headers)


def _date(value: Any) -> str:
    return iso(value) or "-" if value is not None else "-"


class Pages:
    """The pages' own collaborators, built once with the application."""

    def __init__(self, services: Services) -> None:
        settings = services.wiring.settings
        self.services = services
        self.sessions = PageSessions(
            services.tokens.store,
            settings.http.token_secret,
            services.clock,
            settings.pages.session_ttl,
        )
        self.always_secure = settings.pages.secure_cookies
        self.env = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["when"] = _date

    def secure(self, request: Request) -> bool:
        return self.always_secure or request.url.scheme == "https"

    def render(
        self, request: Request, name: str, status: int = 200, **context: Any
    ) -> HTMLResponse:
        cookie = request.cookies.get(CSRF_COOKIE)
        fresh = None
        if not cookie or len(cookie) > 64:
            cookie = fresh = self.sessions.new_csrf_cookie()
        context.setdefault("csrf", self.sessions.csrf_token(cookie))
        html = self.env.get_template(name).render(**context)
        response = HTMLResponse(html, status)
        if fresh is not None:
            response.set_cookie(
                CSRF_COOKIE,
                fresh,
                httponly=True,
                samesite="strict",
                secure=self.secure(request),
                path="/",
            )
        return response

    def csrf_ok(self, request: Request, field: str | None) -> bool:
        """The form's CSRF field matches this browser's cookie, and the request comes from
        this origin when the browser says where it comes from."""
        origin = request.headers.get("origin")
        if origin is not None and origin != "null":
            expected = f"{request.url.scheme}://{request.url.netloc}"
            if origin != expected:
                return False
        return self.sessions.csrf_ok(request.cookies.get(CSRF_COOKIE), field)

    def session_cookie(
        self, request: Request, response: Response, name: str, value: str, path: str, max_age: int
    ) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max(1, max_age),
            httponly=True,
            samesite="strict",
            secure=self.secure(request),
            path=path,
        )

    def error(self, request: Request, status: int, title: str, message: str) -> HTMLResponse:
        return self.render(request, "error.html", status, title=title, message=message)

    def not_found(self, request: Request) -> HTMLResponse:
        return self.error(
            request,
            404,
            "Not found",
            "There is no page here. The link may have expired; ask for a new one.",
        )

    def refused_csrf(self, request: Request) -> HTMLResponse:
        return self.error(
            request,
            403,
            "Form expired",
            "This form could not be checked (it may be stale). Reload the page and try again.",
        )


def pages_of(request: Request) -> Pages:
    pages: Pages = request.app.state.pages
    return pages


def services(request: Request) -> Services:
    return services_of(request.app)


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def path_of(ref: str) -> str:
    return "/pay/" + quote(ref, safe="")
