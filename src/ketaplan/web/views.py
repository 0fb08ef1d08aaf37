"""What every page handler shares: templates, the visit (session and user), CSRF checks, staff actions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from ketaplan import __version__
from ketaplan.course.db import transaction
from ketaplan.course.schema import User, WebSession
from ketaplan.errors import InputError
from ketaplan.web import sessions

templates = Jinja2Templates(directory=str(resources.files("ketaplan.web") / "templates"))
templates.env.globals["version"] = __version__


@dataclass
class Visit:
    """The session of a request and its user (None when not logged in)."""

    session: WebSession | None
    user: User | None
    new_token: str | None = None


def visit(request: Request, s: Session, create_anonymous: bool = False) -> Visit:
    ws = sessions.load(s, request.cookies.get(sessions.COOKIE))
    user = s.get(User, ws.user_id) if ws is not None and ws.user_id is not None else None
    limiter = request.app.state.anonymous_sessions
    if ws is None and create_anonymous and limiter.retry_after(client_address(request)) == 0:
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


def client_address(request: Request) -> str:
    return request.client.host if request.client else "-"


def error_page(request: Request, message: str, status: int) -> HTMLResponse:
    with db(request) as s:
        return render(request, "error.html", visit(request, s), status=status, message=message)
