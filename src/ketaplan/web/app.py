"""The FastAPI application: security headers, sessions, CSRF, request logging without personal data."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import replace
from importlib import resources

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ketaplan.course.db import make_engine, require_schema
from ketaplan.web.config import ClinicSettings
from ketaplan.web.forms import form_key
from ketaplan.web.i18n import LANGUAGES, N_
from ketaplan.web.rate_limit import SlidingWindow
from ketaplan.web.views import LANGUAGE_COOKIE, client_address, error_page, local_path

log = logging.getLogger("ketaplan.web")
NOT_FOUND = N_("There is no such page.")
TOO_MANY = N_("Too many attempts from your address; please try again in %(minutes)s min.")
SERVER_ERROR = N_("Something went wrong on the server; nothing from this request was saved. Try again, and tell the "
                "administrator if it happens again.")

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                               "script-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


LOGIN_LIMIT = (30, 600.0)
"""Login posts per client address: at most 30 in 10 minutes."""
REQUEST_LIMIT = (10, 3600.0)
"""Appointment requests per client address: at most 10 an hour."""


def create_app(db: str | None = None, secure_cookies: bool = True, engine: Engine | None = None,
               login_limit: tuple[int, float] = LOGIN_LIMIT, request_limit: tuple[int, float] = REQUEST_LIMIT,
               settings: ClinicSettings | None = None) -> FastAPI:
    """The dashboard on database ``db`` (an initialised clinic database) with the clinic's ``settings``.

    ``login_limit`` and ``request_limit`` are (posts, seconds) per client address for the two public forms.
    """
    from ketaplan.web import (
        pages_admin,
        pages_auth,
        pages_entries,
        pages_patients,
        pages_plan,
        pages_public,
        pages_pump,
    )

    engine = engine or make_engine(db)
    require_schema(engine)
    app = FastAPI(title="ketaplan clinic", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.engine = engine
    app.state.settings = replace(settings or ClinicSettings(), secure_cookies=secure_cookies)
    app.state.form_key = form_key(engine)
    app.mount("/static", StaticFiles(directory=str(resources.files("ketaplan.web") / "static")), name="static")
    app.state.limits = {"/login": SlidingWindow(*login_limit), "/request": SlidingWindow(*request_limit)}

    @app.middleware("http")
    async def limit_public_forms(request: Request, call_next):
        limiter = request.app.state.limits.get(request.url.path) if request.method == "POST" else None
        wait = limiter.retry_after(client_address(request)) if limiter else 0.0
        if wait <= 0:
            return await call_next(request)
        minutes = max(1, math.ceil(wait / 60))
        response = await run_in_threadpool(error_page, request, TOO_MANY, 429, minutes=minutes)
        response.headers["Retry-After"] = str(math.ceil(wait))
        return response

    @app.middleware("http")  # added last, so it wraps the limit above: refusals get the headers and a log line
    async def headers_and_log(request: Request, call_next):
        t0 = time.perf_counter()
        response = await call_next(request)
        for k, v in SECURITY_HEADERS.items():
            response.headers.setdefault(k, v)
        if request.app.state.settings.secure_cookies:
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        route = request.scope.get("route")
        # the route template, never the URL: codes and query strings stay out of the log
        log.info("%s %s %d %.0f ms", request.method, getattr(route, "path", "-"), response.status_code,
                 1000 * (time.perf_counter() - t0))
        return response

    for module in (pages_auth, pages_public, pages_admin, pages_entries, pages_plan, pages_pump, pages_patients):
        app.include_router(module.router)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        message = {404: NOT_FOUND, 405: N_("This page does not accept that request.")}.get(
            exc.status_code, N_("The request could not be served."))
        return await run_in_threadpool(error_page, request, message, exc.status_code)

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception):
        log.error("error %s on %s %s", type(exc).__name__, request.method,
                  getattr(request.scope.get("route"), "path", "-"))
        return await run_in_threadpool(error_page, request, SERVER_ERROR, 500)

    @app.get("/language/{language}")
    def switch_language(request: Request, language: str, next: str = "/") -> RedirectResponse:
        """Remember the reader's choice of language (a year) and go back to the page."""
        response = RedirectResponse(local_path(next), status_code=303)
        if language in LANGUAGES:
            response.set_cookie(LANGUAGE_COOKIE, language, max_age=365 * 86400, samesite="lax", path="/",
                                secure=request.app.state.settings.secure_cookies)
        return response

    @app.get("/healthz", include_in_schema=False)
    def health() -> dict:
        return {"status": "ok"}

    return app


