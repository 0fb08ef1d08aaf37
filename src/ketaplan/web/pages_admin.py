"""What administrators do in the browser: users (add, disable, reset a password) and the purge of old requests;
and what the record owes the patient: consent withdrawn or renewed, export, erasure."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select

from ketaplan.course import store
from ketaplan.course.schema import User
from ketaplan.course.users import ROLES, add_user, change_password, disable_user
from ketaplan.errors import InputError
from ketaplan.web.views import (
    ADMIN_ONLY,
    Visit,
    db,
    form_endpoint,
    refused,
    render,
    staff_action,
    staff_view,
    translator,
    visit,
)

router = APIRouter()
CONFIRM = "yes"


def _confirmed(form: dict, field: str = "confirm") -> None:
    if form.get(field) != CONFIRM:
        raise InputError("confirmation", "not ticked", "tick the box to confirm")


@router.get("/admin/users")
def users_page(request: Request, done: str = ""):
    def view(s, v):
        return _users(request, s, v, done=done)

    return staff_view(request, view, admin=True)


def _users(request: Request, s, v: Visit, status: int = 200, **context):
    users = s.scalars(select(User).order_by(User.username)).all()
    return render(request, "users.html", v, status=status, users=users, roles=ROLES, form={}, **context)


def _admin_action(request: Request, form: dict, action, done: str, form_id: str):
    """An admin's form: run ``action(s, v)``; a refusal shows the users page again with what was typed."""

    def run(s, v):
        if v.user.role != "admin":
            return refused(request, v, ADMIN_ONLY)
        action(s, v)
        return None

    def on_error(exc: InputError):
        with db(request) as s:
            v = visit(request, s)
            return _users(request, s, v, status=400, error=translator(request).error(exc), active=form_id,
                          typed=form)

    return staff_action(request, form, run, f"/admin/users?done={done}", on_error)


def _add_user(request: Request, form: dict):
    return _admin_action(request, form, lambda s, v: add_user(s, v.user, form.get("username", ""),
                                                             form.get("password", ""), form.get("role", "")),
                         "added", "add")


def _disable(request: Request, form: dict):
    def action(s, v):
        _confirmed(form)
        disable_user(s, v.user, form.get("username", ""))

    return _admin_action(request, form, action, "disabled", "disable-" + form.get("username", ""))


def _reset(request: Request, form: dict):
    def action(s, v):
        if not form.get("username"):
            raise InputError("user", "none chosen", "choose whose password to reset")
        if form["username"] == v.user.username:
            raise InputError("user", form["username"], "change your own password on your account page")
        change_password(s, v.user, form["username"], form.get("new_password", ""), None)

    return _admin_action(request, form, action, "reset", "reset")


router.add_api_route("/admin/users", form_endpoint(_add_user), methods=["POST"])
router.add_api_route("/admin/users/disable", form_endpoint(_disable), methods=["POST"])
router.add_api_route("/admin/users/password", form_endpoint(_reset), methods=["POST"])


def _purge(request: Request, form: dict):
    def action(s, v):
        if v.user.role != "admin":
            return refused(request, v, ADMIN_ONLY)
        raw = (form.get("days") or "").strip()
        if not raw.isdigit():
            raise InputError("days", raw or "empty", "a whole number of days")
        n = store.purge_requests(s, v.user.username, int(raw))
        return RedirectResponse(f"/inbox?purged={n}", status_code=303)

    def on_error(exc: InputError):
        with db(request) as s:
            return refused(request, visit(request, s), exc, status=400)

    return staff_action(request, form, action, "/inbox", on_error)


router.add_api_route("/inbox/purge", form_endpoint(_purge), methods=["POST"])


def _patient_form(request: Request, form: dict, action, done: str):
    """A form about the patient in the path: ``action(s, v, patient)``; refusals show the patient page."""
    from ketaplan.web.pages_patients import patient_view

    code = request.path_params["code"]

    def run(s, v):
        return action(s, v, store.get_patient(s, code))

    def on_error(exc: InputError):
        with db(request) as s:
            return patient_view(request, s, visit(request, s), code, error=translator(request).error(exc),
                                status=400, active=request.url.path.rsplit("/", 1)[-1], typed=form)

    return staff_action(request, form, run, done.format(code=code), on_error)


def _withdraw(request: Request, form: dict):
    def action(s, v, p):
        _confirmed(form)
        store.withdraw_consent(s, v.user.username, p)

    return _patient_form(request, form, action, "/patients/{code}#consent")


def _renew(request: Request, form: dict):
    def action(s, v, p):
        if form.get("consent") != CONFIRM:
            raise InputError("consent", "not recorded", "the patient must accept the privacy statement before their "
                             "data are stored")
        store.record_consent(s, v.user.username, p, form.get("consent_version", ""))

    return _patient_form(request, form, action, "/patients/{code}#consent")


def _export(request: Request, form: dict):
    def action(s, v, p):
        record = store.export_patient(s, v.user.username, p)
        body = json.dumps(record, ensure_ascii=False, indent=1)
        return Response(body, media_type="application/json", headers={
            "Content-Disposition": f'attachment; filename="{p.code}.json"'})

    return _patient_form(request, form, action, "/patients/{code}")


def _erase(request: Request, form: dict):
    def action(s, v, p):
        if (form.get("confirm_code") or "").strip().upper() != p.code.upper():
            raise InputError("confirmation", form.get("confirm_code", "")[:40] or "empty",
                             "type the patient's code to confirm the erasure")
        reference = store.erase_patient(s, v.user.username, p)
        return RedirectResponse(f"/patients?erased={reference}", status_code=303)

    return _patient_form(request, form, action, "/patients")


for path, handler in (("consent/withdraw", _withdraw), ("consent/renew", _renew), ("export", _export),
                      ("erase", _erase)):
    router.add_api_route(f"/patients/{{code}}/{path}", form_endpoint(handler), methods=["POST"])
