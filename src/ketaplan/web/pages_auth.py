"""Login, logout and one's own password."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

from ketaplan.course.users import WrongCurrentPassword, authenticate, change_password, count_failure
from ketaplan.errors import InputError
from ketaplan.web import sessions
from ketaplan.web.i18n import N_
from ketaplan.web.views import (
    CSRF_MESSAGE,
    checked,
    db,
    form_endpoint,
    refused,
    render,
    set_cookie,
    staff_action,
    staff_view,
    translator,
    visit,
)

router = APIRouter()
LOGIN_REFUSED = N_("Wrong user name or password, or the account is locked for a while after repeated failures.")


@router.get("/")
def home(request: Request):
    return RedirectResponse("/patients", status_code=303)


@router.get("/login")
def login_page(request: Request):
    with db(request) as s:
        v = visit(request, s)
        if v.user is not None:
            return RedirectResponse("/patients", status_code=303)
        return render(request, "login.html", v)


def _login(request: Request, form: dict):
    with db(request) as s:
        v = checked(request, s, form)
        if v is None:
            return refused(request, visit(request, s), CSRF_MESSAGE)
    with db(request) as s:  # a refusal commits too: failures are counted
        user = authenticate(s, form.get("username", ""), form.get("password", ""))
        if user is None:
            return render(request, "login.html", visit(request, s), status=401,
                          error=translator(request).gettext(LOGIN_REFUSED), username=form.get("username", ""))
        sessions.end(s, request.cookies.get(sessions.COOKIE))
        token, _ = sessions.create(s, user)
    response = RedirectResponse("/patients", status_code=303)
    set_cookie(request, response, token)
    return response


router.add_api_route("/login", form_endpoint(_login), methods=["POST"])


def _logout(request: Request, form: dict):
    with db(request) as s:
        v = checked(request, s, form)
        if v is None:
            return refused(request, visit(request, s), CSRF_MESSAGE)
        sessions.end(s, request.cookies.get(sessions.COOKIE))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(sessions.COOKIE, path="/")
    return response


router.add_api_route("/logout", form_endpoint(_logout), methods=["POST"])


@router.get("/account")
def account_page(request: Request, done: str = ""):
    def view(s, v):
        return render(request, "account.html", v, done=done)

    return staff_view(request, view)


def _password(request: Request, form: dict):
    def action(s, v):
        change_password(s, v.user, v.user.username, form.get("new_password", ""), form.get("current_password"),
                        keep_session=v.session.token_hash)

    def on_error(exc: InputError):
        with db(request) as s:
            v = visit(request, s)
            if isinstance(exc, WrongCurrentPassword) and v.user is not None:
                count_failure(s, v.user)  # a wrong current password counts as a failed login
        with db(request) as s:
            v = visit(request, s)
            if v.user is None:  # locked out: the session ended
                return RedirectResponse("/login", status_code=303)
            return render(request, "account.html", v, status=400, error=translator(request).error(exc))

    return staff_action(request, form, action, "/account?done=password", on_error)


router.add_api_route("/account/password", form_endpoint(_password), methods=["POST"])
