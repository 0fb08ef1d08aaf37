"""What every page handler shares: templates, the visit (session, user, language), CSRF checks, staff actions."""

from __future__ import annotations

import ipaddress
import secrets
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
from ketaplan.web.forms import (
    VISITOR_COOKIE,
    VISITOR_LIFETIME,
    BodyTooLarge,
    read_form,
    visitor_token,
    visitor_token_ok,
)
from ketaplan.web.i18n import LANGUAGE_NAMES, LANGUAGES, N_, Translator, negotiate

templates = Jinja2Templates(directory=str(resources.files("ketaplan.web") / "templates"))
templates.env.globals["software_version"] = __version__
templates.env.globals["language_names"] = LANGUAGE_NAMES
LANGUAGE_COOKIE = "ketaplan_lang"
PUBLIC_PATHS = ("/request", "/privacy")
"""Pages for patients: in the clinic's language unless the reader switched."""


@dataclass
class Visit:
    """The session of a request and its user (None when not logged in); visitors have a cookie nonce."""

    session: WebSession | None
    user: User | None
    nonce: str | None = None
    new_nonce: bool = False


def visit(request: Request, s: Session) -> Visit:
    ws = sessions.load(s, request.cookies.get(sessions.COOKIE))
    user = s.get(User, ws.user_id) if ws is not None and ws.user_id is not None else None
    if user is not None and user.disabled_at is None:
        return Visit(ws, user)
    nonce = request.cookies.get(VISITOR_COOKIE)
    if nonce and 20 <= len(nonce) <= 64:
        return Visit(ws, None, nonce)
    return Visit(ws, None, secrets.token_urlsafe(24), new_nonce=True)


def csrf_token(request: Request, v: Visit) -> str:
    if v.user is not None:
        return v.session.csrf_token
    return visitor_token(request.app.state.form_key, v.nonce)


def translator(request: Request) -> Translator:
    """The reader's language: their choice (cookie), else for public pages the clinic's, else the browser's
    Accept-Language, else the clinic's."""
    settings = request.app.state.settings
    chosen = request.cookies.get(LANGUAGE_COOKIE)
    if chosen not in LANGUAGES:
        public = request.url.path.startswith(PUBLIC_PATHS)
        chosen = settings.language if public else (negotiate(request.headers.get("accept-language"))
                                                   or settings.language)
    return Translator(chosen, strict=settings.strict_translations)


def set_cookie(request: Request, response: Response, token: str) -> None:
    response.set_cookie(sessions.COOKIE, token, max_age=int(sessions.LIFETIME.total_seconds()), httponly=True,
                        samesite="strict", secure=request.app.state.settings.secure_cookies, path="/")


def render(request: Request, name: str, v: Visit, status: int = 200, **context) -> HTMLResponse:
    t = translator(request)
    response = templates.TemplateResponse(request, name, {
        "user": v.user, "csrf": csrf_token(request, v), "t": t, "_": t.gettext, "lang": t.language,
        "clinic": request.app.state.settings, "here": request.url.path, **context}, status_code=status)
    if v.new_nonce:
        response.set_cookie(VISITOR_COOKIE, v.nonce, max_age=VISITOR_LIFETIME, httponly=True, samesite="strict",
                            secure=request.app.state.settings.secure_cookies, path="/")
    return response


def to_login(request: Request) -> RedirectResponse:
    return RedirectResponse("/login", status_code=303)


def refused(request: Request, v: Visit, message: str | InputError, status: int = 403, **values) -> HTMLResponse:
    """The error page with one sentence (a message id with its values, or a refusal) in the reader's language."""
    t = translator(request)
    text = t.error(message) if isinstance(message, InputError) else t.gettext(message, **values)
    return render(request, "error.html", v, status=status, message=text)


def form_endpoint(handler):
    """Turn ``handler(request, form)`` (synchronous, does database work) into an async endpoint that reads the
    form first (within the size limit) and runs the handler in the thread pool."""

    async def endpoint(request: Request):
        try:
            form = await read_form(request)
        except BodyTooLarge:
            return await run_in_threadpool(error_page, request, TOO_LARGE, 413)
        return await run_in_threadpool(handler, request, form)

    endpoint.__name__ = handler.__name__
    endpoint.__doc__ = handler.__doc__
    return endpoint


TOO_LARGE = N_("The form is larger than 4 MB; nothing was saved. Shorten the text and send it again.")


def checked(request: Request, s: Session, form: dict) -> Visit | None:
    """The visit if the form carries its CSRF token (the session's, or a visitor's signed one), else None."""
    v = visit(request, s)
    submitted = form.pop("csrf_token", None)
    if v.user is not None:
        return v if sessions.csrf_ok(v.session, submitted) else None
    return v if not v.new_nonce and visitor_token_ok(request.app.state.form_key, v.nonce, submitted) else None


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

    Redirects to ``done_url`` afterwards (unless the action returns a response); a refused value rolls
    everything back and answers ``on_error(exc)``.
    """
    try:
        with db(request) as s:
            v = staff_form(request, s, form)
            if not isinstance(v, Visit):
                return v
            result = action(s, v)
            if isinstance(result, Response):
                return result
    except InputError as exc:
        return on_error(exc)
    return RedirectResponse(done_url, status_code=303)


def staff_view(request: Request, view: Callable[[Session, Visit], Response], admin: bool = False) -> Response:
    """Answer ``view(session, visit)`` for a logged-in user (an admin if ``admin``), in one transaction; anyone
    else gets the login page or the refusal (the opening every staff page shares, as :func:`staff_action` is
    for their forms)."""
    with db(request) as s:
        v = staff_page(request, s, admin=admin)
        if not isinstance(v, Visit):
            return v
        return view(s, v)


def staff_page(request: Request, s: Session, admin: bool = False) -> Visit | Response:
    """The visit of a logged-in user (an admin if ``admin``), else the login page or the refusal."""
    v = visit(request, s)
    if v.user is None:
        return to_login(request)
    if admin and v.user.role != "admin":
        return refused(request, v, ADMIN_ONLY)
    return v


CSRF_MESSAGE = N_("The form has expired or did not come from this site (missing or wrong security token); reload the "
                "page and try again.")
ADMIN_ONLY = N_("Only an administrator can do this.")


def db(request: Request):
    return transaction(request.app.state.engine)


def client_address(request: Request) -> str:
    """The client's address; behind a trusted proxy (the clinic's settings) the last address it forwarded
    that is not itself a trusted proxy. X-Forwarded-For from anyone else is ignored."""
    peer = request.client.host if request.client else "-"
    trusted = request.app.state.settings.trusted_proxies
    if peer not in trusted:
        return peer
    for hop in reversed([h.strip() for h in request.headers.get("x-forwarded-for", "").split(",") if h.strip()]):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return peer
        if hop not in trusted:
            return hop
    return peer


def error_page(request: Request, message: str | InputError, status: int, **values) -> HTMLResponse:
    with db(request) as s:
        return refused(request, visit(request, s), message, status, **values)


def local_path(target: str | None, default: str = "/") -> str:
    """``target`` if it is a path on this site (no scheme, host or backslash), else ``default``."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target
