"""Public pages (privacy statement, appointment request) and the clinicians' inbox."""

from __future__ import annotations

from fastapi import APIRouter, BackgroundTasks, Request
from sqlalchemy import select

from ketaplan.course import store
from ketaplan.course.schema import AppointmentRequest
from ketaplan.errors import InputError
from ketaplan.web.notify import notify_new_request
from ketaplan.web.views import (
    CSRF_MESSAGE,
    checked,
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


@router.get("/privacy")
def privacy_page(request: Request):
    version, text = store.privacy_statement(translator(request).language)
    with db(request) as s:
        return render(request, "privacy.html", visit(request, s), statement_version=version,
                      paragraphs=[p.replace("\n", " ") for p in text.split("\n\n") if p.strip()])


@router.get("/request")
def request_page(request: Request):
    with db(request) as s:
        return render(request, "request.html", visit(request, s), statement_version=store.privacy_statement()[0],
                      form={})


def _request(request: Request, form: dict):
    version = store.privacy_statement()[0]
    try:
        with db(request) as s:
            v = checked(request, s, form)
            if v is None:
                return refused(request, visit(request, s), CSRF_MESSAGE)
            store.add_appointment_request(s, form.get("name", ""), form.get("contact", ""), form.get("message", ""),
                                          form.get("consent") == "yes", form.get("consent_version", ""))
    except InputError as exc:
        with db(request) as s:
            return render(request, "request.html", visit(request, s), status=400, statement_version=version,
                          error=translator(request).error(exc), form=form)
    with db(request) as s:
        response = render(request, "request_done.html", visit(request, s))
    # after the commit, and after the answer: a mail that fails or is slow never loses or delays the request
    response.background = BackgroundTasks()
    response.background.add_task(notify_new_request, request.app.state.settings)
    return response


router.add_api_route("/request", form_endpoint(_request), methods=["POST"])


@router.get("/inbox")
def inbox_page(request: Request, purged: int | None = None):
    def view(s, v):
        items = s.scalars(select(AppointmentRequest).order_by(AppointmentRequest.created_at.desc())).all()
        return render(request, "inbox.html", v, items=items, purged=purged)

    return staff_view(request, view)


def _handled(request: Request, form: dict):
    def action(s, v):
        item = s.get(AppointmentRequest, int(request.path_params["item"]))
        if item is not None and item.handled_by is None:
            item.handled_by = v.user.username
            store.audit(s, v.user.username, "handled", "appointment_requests", item.id)

    return staff_action(request, form, action, "/inbox", lambda exc: _inbox_error(request, exc))


def _inbox_error(request: Request, exc: InputError):
    with db(request) as s:
        return refused(request, visit(request, s), exc, status=400)


router.add_api_route("/inbox/{item:int}/handled", form_endpoint(_handled), methods=["POST"])


def _delete(request: Request, form: dict):
    def action(s, v):
        if form.get("confirm") != "yes":
            raise InputError("confirmation", "not ticked", "tick the box to confirm")
        store.delete_request(s, v.user.username, int(request.path_params["item"]))

    return staff_action(request, form, action, "/inbox", lambda exc: _inbox_error(request, exc))


router.add_api_route("/inbox/{item:int}/delete", form_endpoint(_delete), methods=["POST"])
