"""Login, logout, passwords and users."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from sqlalchemy import select

from ketaplan.course.schema import User
from ketaplan.course.users import (
    ROLES,
    WrongCurrentPassword,
    add_user,
    authenticate,
    change_password,
    count_failure,
    disable_user,
)
from ketaplan.errors import InputError
from ketaplan.web import sessions
from ketaplan.web.views import (
    CSRF_MESSAGE,
    Visit,
    checked,
    db,
    form_endpoint,
    refused,
    render,
    set_cookie,
    staff_action,
    staff_page,
    visit,
)

router = APIRouter()
LOGIN_REFUSED = "Wrong user name or password, or the account is locked for a while after repeated failures."


@router.get("/")
def home(request: Request):
    return RedirectResponse("/patients", status_code=303)


@router.get("/login")
def login_page(request: Request):
    with db(request) as s:
        v = visit(request, s, create_anonymous=True)
        if v.user is not None:
            return RedirectResponse("/patients", status_code=303)
        return render(request, "login.html", v)


def _login(request: Request, form: dict):
    with db(request) as s:
        v = checked(request, s, form)
        if v is None:
            return refused(request, visit(request, s, create_anonymous=True), CSRF_MESSAGE)
    with db(request) as s:  # a refusal commits too: failures are counted
        user = authenticate(s, form.get("username", ""), form.get("password", ""))
        if user is None:
            return render(request, "login.html", visit(request, s, create_anonymous=True), status=401,
                          error=LOGIN_REFUSED)
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
            return refused(request, visit(request, s, create_anonymous=True), CSRF_MESSAGE)
        sessions.end(s, request.cookies.get(sessions.COOKIE))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(sessions.COOKIE, path="/")
    return response


router.add_api_route("/logout", form_endpoint(_logout), methods=["POST"])


@router.get("/account")
def account_page(request: Request):
    with db(request) as s:
        v = staff_page(request, s)
        if not isinstance(v, Visit):
            return v
        users = s.scalars(select(User).order_by(User.username)).all() if v.user.role == "admin" else []
        return render(request, "account.html", v, users=users, roles=ROLES)


def _password(request: Request, form: dict):
    def action(s, v):
        change_password(s, v.user, form.get("username") or v.user.username, form.get("new_password", ""),
                        form.get("current_password"), keep_session=v.session.token_hash)

    def on_error(exc: InputError):
        if isinstance(exc, WrongCurrentPassword):
            with db(request) as s:  # a wrong current password counts as a failed login
                v = visit(request, s)
                if v.user is not None:
                    count_failure(s, v.user)
        return _account_error(request, exc, "only their own")

    return staff_action(request, form, action, "/account?done=password", on_error)


def _disable(request: Request, form: dict):
    return staff_action(request, form, lambda s, v: disable_user(s, v.user, form.get("username", "")),
                        "/account?done=disabled", lambda exc: _account_error(request, exc, "only an admin"))


def _add_user(request: Request, form: dict):
    return staff_action(request, form, lambda s, v: add_user(s, v.user, form.get("username", ""),
                                                             form.get("password", ""), form.get("role", "clinician")),
                        "/account?done=user", lambda exc: _account_error(request, exc, "only an admin"))


def _account_error(request: Request, exc: InputError, forbidden: str):
    with db(request) as s:
        v = visit(request, s)
        return refused(request, v, str(exc), status=403 if forbidden in str(exc) else 400)


router.add_api_route("/account/password", form_endpoint(_password), methods=["POST"])
router.add_api_route("/account/disable", form_endpoint(_disable), methods=["POST"])
router.add_api_route("/account/users", form_endpoint(_add_user), methods=["POST"])
