"""The FastAPI application: security headers, sessions, CSRF, request logging without personal data."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ketaplan import __version__
from ketaplan.course.db import make_engine, require_schema, transaction
from ketaplan.course.schema import User, WebSession
from ketaplan.errors import InputError
from ketaplan.web import sessions
from ketaplan.web.rate_limit import SlidingWindow

log = logging.getLogger("ketaplan.web")

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                               "script-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@dataclass
class Settings:
    secure_cookies: bool = True


LOGIN_LIMIT = (30, 600.0)
"""Login posts per client address: at most 30 in 10 minutes."""
REQUEST_LIMIT = (10, 3600.0)
"""Appointment requests per client address: at most 10 an hour."""
ANONYMOUS_LIMIT = (60, 600.0)
"""New anonymous sessions (one database row each, for the CSRF token of the public forms) per client
address: at most 60 in 10 minutes; beyond that pages are served without a session."""


templates = Jinja2Templates(directory=str(resources.files("ketaplan.web") / "templates"))
templates.env.globals["version"] = __version__


def create_app(db: str | None = None, secure_cookies: bool = True, engine: Engine | None = None,
               login_limit: tuple[int, float] = LOGIN_LIMIT, request_limit: tuple[int, float] = REQUEST_LIMIT,
               anonymous_limit: tuple[int, float] = ANONYMOUS_LIMIT) -> FastAPI:
    """The dashboard on database ``db`` (an initialised clinic database).

    ``login_limit`` and ``request_limit`` are (posts, seconds) per client address for the two public forms,
    ``anonymous_limit`` (new sessions, seconds) for the sessions that visitors of those forms get.
    """
    from ketaplan.web import pages_auth, pages_patients, pages_public

    engine = engine or make_engine(db)
    require_schema(engine)
    app = FastAPI(title="ketaplan clinic", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.engine = engine
    app.state.settings = Settings(secure_cookies)
    app.mount("/static", StaticFiles(directory=str(resources.files("ketaplan.web") / "static")), name="static")
    app.state.limits = {"/login": SlidingWindow(*login_limit), "/request": SlidingWindow(*request_limit)}
    app.state.anonymous_sessions = SlidingWindow(*anonymous_limit)

    @app.middleware("http")
    async def limit_public_forms(request: Request, call_next):
        limiter = request.app.state.limits.get(request.url.path) if request.method == "POST" else None
        wait = limiter.retry_after(_address(request)) if limiter else 0.0
        if wait <= 0:
            return await call_next(request)
        minutes = max(1, math.ceil(wait / 60))
        response = await run_in_threadpool(
            _error_page, request, f"Too many attempts from your address; please try again in {minutes} "
            f"minute{'s' if minutes > 1 else ''}.", 429)
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

    for module in (pages_auth, pages_public, pages_patients):
        app.include_router(module.router)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        message = {404: "There is no such page.", 405: "This page does not accept that request."}.get(
            exc.status_code, "The request could not be served.")
        return await run_in_threadpool(_error_page, request, message, exc.status_code)

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception):
        log.error("error %s on %s %s", type(exc).__name__, request.method,
                  getattr(request.scope.get("route"), "path", "-"))
        return await run_in_threadpool(_error_page, request, "Something went wrong on the server; nothing from "
                                       "this request was saved. Try again, and tell the administrator if it "
                                       "happens again.", 500)

    @app.get("/healthz", include_in_schema=False)
    def health() -> dict:
        return {"status": "ok"}

    return app


def _address(request: Request) -> str:
    return request.client.host if request.client else "-"


def _error_page(request: Request, message: str, status: int) -> HTMLResponse:
    with db(request) as s:
        return render(request, "error.html", visit(request, s), status=status, message=message)


@dataclass
class Visit:
    """The session of a request and its user (None when not logged in)."""

    session: WebSession | None
    user: User | None
    new_token: str | None = None


def visit(request: Request, s: Session, create_anonymous: bool = False) -> Visit:
    ws = sessions.load(s, request.cookies.get(sessions.COOKIE))
    user = s.get(User, ws.user_id) if ws is not None and ws.user_id is not None else None
    if ws is None and create_anonymous and request.app.state.anonymous_sessions.retry_after(_address(request)) == 0:
        token, ws = sessions.create(s, None)
        return Visit(ws, None, token)
    return Visit(ws, user)


def set_cookie(request: Request, response: Response, token: str) -> None:
    response.set_cookie(sessions.COOKIE, token, max_age=int(sessions.LIFETIME.total_seconds()), httponly=True,
                        samesite="strict", secure=request.app.state.settings.secure_cookies, path="/")


def render(request: Request, name: str, v: Visit, status: int = 200, **context) -> HTMLResponse:
    response = templates.TemplateResponse(request, name, {"user": v.user, "csrf": v.session.csrf_token
                                                          if v.session else "", **context}, status_code=status)
    if v.new_token:
        set_cookie(request, response, v.new_token)
    return response


def to_login(request: Request) -> RedirectResponse:
    return RedirectResponse("/login", status_code=303)


def refused(request: Request, v: Visit, message: str, status: int = 403) -> HTMLResponse:
    return render(request, "error.html", v, status=status, message=message)


def form_endpoint(handler):
    """Turn ``handler(request, form)`` (synchronous, does database work) into an async endpoint that reads the
    form first and runs the handler in the thread pool."""

    async def endpoint(request: Request):
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        return await run_in_threadpool(handler, request, form)

    endpoint.__name__ = handler.__name__
    endpoint.__doc__ = handler.__doc__
    return endpoint


def checked(request: Request, s: Session, form: dict) -> Visit | None:
    """The visit if the form carries the session's CSRF token, else None."""
    v = visit(request, s)
    return v if sessions.csrf_ok(v.session, form.pop("csrf_token", None)) else None


def staff_form(request: Request, s: Session, form: dict) -> Visit | Response:
    """The visit of a logged-in user whose form carries the session's CSRF token, else the response to send
    (the login page without a logged-in session, the refusal without a valid token)."""
    if visit(request, s).user is None:
        return to_login(request)
    v = checked(request, s, form)
    return v if v is not None else refused(request, visit(request, s), CSRF_MESSAGE)


def staff_action(request: Request, form: dict, action: Callable[[Session, Visit], Response | None], done_url: str,
                 on_error: Callable[[InputError], Response]) -> Response:
    """Run ``action(session, visit)`` for a logged-in user whose form carries the CSRF token, in one transaction.

    Redirects to ``done_url`` afterwards (unless the action returns its own response); a refused value
    rolls everything back and answers ``on_error(exc)``.
    """
    try:
        with db(request) as s:
            v = staff_form(request, s, form)
            if not isinstance(v, Visit):
                return v
            result = action(s, v)
            if result is not None:
                return result
    except InputError as exc:
        return on_error(exc)
    return RedirectResponse(done_url, status_code=303)


def staff_page(request: Request, s: Session) -> Visit | Response:
    """The visit of a logged-in user, else the redirect to the login page."""
    v = visit(request, s)
    return v if v.user is not None else to_login(request)


CSRF_MESSAGE = ("The form has expired or did not come from this site (missing or wrong security token); reload the "
                "page and try again.")


def db(request: Request):
    return transaction(request.app.state.engine)
