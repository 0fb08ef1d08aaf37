"""Patient list with search and alerts, the patient page, and the forms that record what happened."""

from __future__ import annotations

import unicodedata
from datetime import datetime, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from sqlalchemy import select

from ketaplan.course import store
from ketaplan.course.alerts import cumulative_dose_mg, next_course, patient_alerts
from ketaplan.course.corrections import history
from ketaplan.course.forecast import cached_forecast
from ketaplan.course.schema import DrugLevel, Lab, Note, PainEntry, Patient, SideEffect
from ketaplan.errors import InputError
from ketaplan.regimen.units import Kind, parse, parse_level
from ketaplan.web.charts import course_chart
from ketaplan.web.i18n import N_
from ketaplan.web.views import db, form_endpoint, refused, render, staff_action, staff_view, translator, visit

router = APIRouter()
SEARCH_LIMIT = 200


@router.get("/patients")
def patient_list(request: Request, q: str = "", erased: str = ""):
    def view(s, v):
        query = unicodedata.normalize("NFKC", q.strip())[:100]
        stmt = select(Patient).order_by(Patient.code)
        if query:
            like = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            stmt = stmt.where(Patient.code.ilike(like, escape="\\") | Patient.diagnosis.ilike(like, escape="\\"))
        rows = []
        today = store.now()
        for p in s.scalars(stmt.limit(SEARCH_LIMIT)).all():
            fc = cached_forecast(s, p)
            rows.append({"code": p.code, "diagnosis": p.diagnosis, "next": next_course(p, fc),
                         "alerts": patient_alerts(s, p, fc, today)})
        return render(request, "patients.html", v, rows=rows, q=query, erased=erased, limit=SEARCH_LIMIT)

    return staff_view(request, view)


@router.get("/patients/new")
def new_patient_page(request: Request):
    def view(s, v):
        return render(request, "patient_new.html", v, statement_version=store.privacy_statement()[0], form={})

    return staff_view(request, view)


def number(form: dict, key: str, label: str, integer: bool = False) -> float | int | None:
    """A number typed in a form (a decimal comma is read as a point), None when empty."""
    raw = (form.get(key) or "").strip()
    if not raw:
        return None
    text = raw.replace(",", ".") if raw.count(",") == 1 and "." not in raw else raw
    try:
        return int(text) if integer else float(text)
    except ValueError:
        raise InputError(label, raw[:40], "a whole number" if integer else "a number") from None


def when(form: dict, key: str, label: str) -> datetime:
    """A date and time typed in a form (the browser's 2026-03-01T08:30, or 1-3-2026 08:30)."""
    raw = (form.get(key) or "").strip()
    for fmt in ("%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d", "%d-%m-%Y %H:%M", "%d-%m-%Y"):
        try:
            return datetime.strptime(raw, fmt)
        except ValueError:
            continue
    raise InputError(label, raw[:40] or "empty", "a date and time such as 2026-03-01 08:30")


def _new_patient(request: Request, form: dict):
    def action(s, v):
        if form.get("consent") != "yes":
            raise InputError("consent", "not recorded", "the patient must accept the privacy statement before "
                             "their data are stored")
        birth_year, weight = number(form, "birth_year", "birth year", True), number(form, "weight", "weight")
        if birth_year is None or weight is None:
            raise InputError("form", "incomplete", "fill in every required field")
        p = store.add_patient(s, v.user.username, form.get("code", ""), birth_year, form.get("sex", ""),
                              form.get("diagnosis", ""), weight, form.get("consent_version", ""),
                              number(form, "baseline_pain", "baseline pain"), form.get("drug", "racemic"))
        return RedirectResponse(f"/patients/{p.code}", status_code=303)

    def on_error(exc: InputError):
        with db(request) as s:
            return render(request, "patient_new.html", visit(request, s), status=400,
                          statement_version=store.privacy_statement()[0], error=translator(request).error(exc),
                          form=form)

    return staff_action(request, form, action, "/patients", on_error)


router.add_api_route("/patients", form_endpoint(_new_patient), methods=["POST"])


@router.get("/patients/{code}")
def patient_page(request: Request, code: str, planned: int | None = None):
    def view(s, v):
        return patient_view(request, s, v, code, planned=planned)

    return staff_view(request, view)


def patient_view(request: Request, s, v, code: str, error: str | None = None, status: int = 200,
                 active: str | None = None, typed: dict | None = None, planned: int | None = None):
    """The patient page; after a refusal ``active`` names the form and ``typed`` holds what was typed."""
    try:
        p = store.get_patient(s, code)
    except InputError:
        return refused(request, v, N_("No patient has this code."), status=404)
    fc = cached_forecast(s, p)
    today = store.now()

    def rows(model, order):
        return s.scalars(select(model).where(model.patient_id == p.id).order_by(order)).all()

    levels = rows(DrugLevel, DrugLevel.taken_at)
    diary = rows(PainEntry, PainEntry.recorded_at)
    infusions = [i for c in p.courses for i in store.active(c.infusions)]
    consent = next((c for c in reversed(p.consents) if c.withdrawn_at is None), None)
    flags = {i.id: store.infusion_findings(p, i.start, i.end, i.rate_mg_h, i.route) for i in infusions}
    planned_findings = _planned_findings(p, planned)
    nxt = next_course(p, fc)
    return render(request, "patient.html", v, status=status, p=p, fc=fc, error=error, active=active,
                  typed=typed or {}, alerts=patient_alerts(s, p, fc, today), weight=store.latest_weight(p),
                  next=nxt, today=today,
                  chart=course_chart(infusions, store.active(levels), store.active(diary), fc, today,
                                     translator(request), nxt.when if nxt.source == "planned" else None),
                  levels=levels[-30:], diary=diary[-30:], n_diary=len(store.active(diary)),
                  labs=rows(Lab, Lab.taken_at)[-30:], effects=rows(SideEffect, SideEffect.recorded_at)[-30:],
                  notes=rows(Note, Note.created_at)[-30:], weights=p.weights[-10:], consent=consent,
                  history=history(s, p), flags=flags, planned=planned, planned_findings=planned_findings,
                  statement_version=store.privacy_statement()[0],
                  dose_12m=cumulative_dose_mg(p, today - timedelta(days=365)),
                  now=today.strftime("%Y-%m-%dT%H:%M"))


def _planned_findings(p: Patient, number_: int | None) -> list:
    """The dose checks of a course just planned (shown once after planning)."""
    from ketaplan.regimen.safety import check_plan
    from ketaplan.regimen.text import parse_regimen

    course = next((c for c in p.courses if c.number == number_), None)
    if course is None:
        return []
    return check_plan(parse_regimen(course.planned_regimen), store.latest_weight(p), force=True)


def _course(s, actor, p, form):
    start = when(form, "start", "planned start") if form.get("start") else None
    confirmed = form.get("confirm") == "yes"
    c, _ = store.plan_course(s, actor, p, form.get("regimen", ""), start, force=confirmed,
                             reason=form.get("reason", "") if confirmed else None)
    return RedirectResponse(f"/patients/{p.code}?planned={c.number}#courses", status_code=303)


def _infusion(s, actor, p, form):
    rate = parse(form.get("rate", ""), Kind.RATE, "rate")
    course = store.get_course(p, number(form, "course", "course", True) or 0)
    confirmed = form.get("confirm") == "yes"
    return store.record_infusion(s, actor, p, course, when(form, "start", "start"), when(form, "end", "end"), rate,
                                 note=form.get("note", ""), confirmed=confirmed,
                                 reason=form.get("reason", "") if confirmed else None)


def _level(s, actor, p, form):
    blq = form.get("blq") == "yes"
    value = parse_level(form["value"], "level") if form.get("value") else None
    lloq = parse(form["lloq"], Kind.MASS_CONCENTRATION, "LLOQ") if form.get("lloq") else None
    return store.add_level(s, actor, p, when(form, "taken_at", "time"), form.get("analyte", "ketamine"), value, blq,
                           lloq)


def _diary(s, actor, p, form):
    nrs = number(form, "nrs", "NRS")
    if nrs is None:
        raise InputError("NRS", "empty", "a whole number from 0 to 10")
    return store.add_pain(s, actor, p, when(form, "recorded_at", "date"), nrs)


def _lab(s, actor, p, form):
    return store.add_lab(s, actor, p, when(form, "taken_at", "time"), form.get("test", ""),
                         number(form, "value", "value"), number(form, "uln", "upper limit"))


def _effect(s, actor, p, form):
    return store.add_side_effect(s, actor, p, when(form, "recorded_at", "time"), form.get("kind", ""),
                                 number(form, "grade", "grade", True))


def _note(s, actor, p, form):
    return store.add_note(s, actor, p, form.get("text", ""))


def _weight(s, actor, p, form):
    return store.add_weight(s, actor, p, when(form, "on", "date").date(), number(form, "kg", "weight") or 0)


ACTIONS = {"course": _course, "infusion": _infusion, "level": _level, "diary": _diary, "lab": _lab,
           "side-effect": _effect, "note": _note, "weight": _weight}
"""The forms of the patient page, by the last part of their address."""


def _record(request: Request, form: dict):
    code = request.path_params["code"]
    name = request.path_params["action"]
    action = ACTIONS.get(name)

    def run(s, v):
        if action is None:
            return refused(request, v, N_("There is no such form."), status=404)
        result = action(s, v.user.username, store.get_patient(s, code), form)
        return result if isinstance(result, RedirectResponse) else None

    def on_error(exc: InputError):
        with db(request) as s:
            v = visit(request, s)
            typed = {**form, "needs_confirm": isinstance(exc, store.UnitSlipRefused)}
            return patient_view(request, s, v, code, error=translator(request).error(exc), status=400, active=name,
                                typed=typed)

    return staff_action(request, form, run, f"/patients/{code}#record", on_error)


router.add_api_route("/patients/{code}/{action}", form_endpoint(_record), methods=["POST"])
