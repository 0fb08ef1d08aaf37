"""Patient list with alerts, the patient page, and the forms that record what happened."""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from sqlalchemy import select

from ketaplan.course import store
from ketaplan.course.alerts import cumulative_dose_mg, patient_alerts
from ketaplan.course.forecast import cached_forecast
from ketaplan.course.schema import DrugLevel, Lab, Note, PainEntry, Patient, SideEffect
from ketaplan.errors import InputError
from ketaplan.regimen.units import Kind, parse
from ketaplan.web.charts import course_chart
from ketaplan.web.views import (
    Visit,
    db,
    form_endpoint,
    refused,
    render,
    staff_action,
    staff_page,
    visit,
)

router = APIRouter()


@router.get("/patients")
def patient_list(request: Request):
    with db(request) as s:
        v = staff_page(request, s)
        if not isinstance(v, Visit):
            return v
        rows = []
        today = store.now()
        for p in s.scalars(select(Patient).order_by(Patient.code)).all():
            fc = cached_forecast(s, p)
            due = fc.get("next_due", [None, None, None])[1] if fc.get("status") == "ok" else None
            rows.append({"code": p.code, "diagnosis": p.diagnosis, "due": due[:10] if due else "-",
                         "alerts": patient_alerts(s, p, fc, today)})
        return render(request, "patients.html", v, rows=rows)


@router.get("/patients/new")
def new_patient_page(request: Request):
    version, _ = store.privacy_statement()
    with db(request) as s:
        v = staff_page(request, s)
        if not isinstance(v, Visit):
            return v
        return render(request, "patient_new.html", v, version=version, form={})


def _number(form: dict, key: str, label: str, integer: bool = False) -> float | int | None:
    raw = (form.get(key) or "").strip()
    if not raw:
        return None
    try:
        return int(raw) if integer else float(raw)
    except ValueError:
        raise InputError(label, raw, "a number") from None


def _when(form: dict, key: str, label: str) -> datetime:
    raw = (form.get(key) or "").strip()
    for fmt in ("%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d"):
        try:
            return datetime.strptime(raw, fmt)
        except ValueError:
            continue
    raise InputError(label, raw or "empty", "a date and time such as 2026-03-01 08:30")


def _new_patient(request: Request, form: dict):
    version, _ = store.privacy_statement()

    def action(s, v):
        if form.get("consent") != "yes":
            raise InputError("consent", "not recorded", "the patient must accept the privacy statement before "
                             "their data are stored")
        try:
            p = store.add_patient(s, v.user.username, form.get("code", ""),
                                  _number(form, "birth_year", "birth year", True), form.get("sex", ""),
                                  form.get("diagnosis", ""), _number(form, "weight", "weight"),
                                  form.get("consent_version", ""), _number(form, "baseline_pain", "baseline pain"),
                                  form.get("drug", "racemic"))
        except TypeError:
            raise InputError("form", "incomplete", "fill in every required field") from None
        return RedirectResponse(f"/patients/{p.code}", status_code=303)

    def on_error(exc: InputError):
        with db(request) as s:
            return render(request, "patient_new.html", visit(request, s), status=400, version=version,
                          error=str(exc), form=form)

    return staff_action(request, form, action, "/patients", on_error)


router.add_api_route("/patients", form_endpoint(_new_patient), methods=["POST"])


@router.get("/patients/{code}")
def patient_page(request: Request, code: str):
    with db(request) as s:
        v = staff_page(request, s)
        if not isinstance(v, Visit):
            return v
        return _patient_view(request, s, v, code)


def _patient_view(request: Request, s, v, code: str, error: str | None = None, status: int = 200):
    p = s.scalar(select(Patient).where(Patient.code == code))
    if p is None:
        return refused(request, v, "No patient has this code.", status=404)
    fc = cached_forecast(s, p)
    today = store.now()

    def rows(model, order):
        return s.scalars(select(model).where(model.patient_id == p.id).order_by(order)).all()

    levels = rows(DrugLevel, DrugLevel.taken_at)
    diary = rows(PainEntry, PainEntry.recorded_at)
    infusions = [i for c in p.courses for i in c.infusions]
    consent = next((c for c in reversed(p.consents) if c.withdrawn_at is None), None)
    return render(request, "patient.html", v, status=status, p=p, fc=fc, error=error,
                  alerts=patient_alerts(s, p, fc, today), weight=store.latest_weight(p),
                  chart=course_chart(infusions, levels, diary, fc), levels=levels[-20:], diary=diary[-20:],
                  n_diary=len(diary), labs=rows(Lab, Lab.taken_at)[-20:], effects=rows(SideEffect,
                                                                                     SideEffect.recorded_at)[-20:],
                  notes=rows(Note, Note.created_at)[-20:], consent=consent,
                  dose_12m=cumulative_dose_mg(p, today - timedelta(days=365)), pump=_pump(p),
                  now=today.strftime("%Y-%m-%dT%H:%M"))


def _pump(p: Patient) -> dict | None:
    """The pump plan of the next planned course (1 mg/mL in 50 mL syringes), if there is one."""
    from ketaplan.planning.pump import pump_plan
    from ketaplan.regimen.text import parse_regimen

    planned = [c for c in p.courses if c.status == "planned"]
    if not planned:
        return None
    course = planned[0]
    try:
        plan = pump_plan(parse_regimen(course.planned_regimen), store.latest_weight(p), 1.0)
    except InputError:
        return None
    return {"course": course.number, "regimen": course.planned_regimen,
            "segments": [(f"{seg.start_h:g}-{seg.end_h:g} h", f"{seg.rate_mg_h:.3g}", f"{seg.rate_ml_h_rounded:g}")
                         for seg in plan.segments], "changes": len(plan.changes), "notes": plan.notes}


def _course(s, actor, p, form):
    start = _when(form, "start", "planned start") if form.get("start") else None
    store.plan_course(s, actor, p, form.get("regimen", ""), start, force=form.get("force") == "yes")


def _infusion(s, actor, p, form):
    rate = parse(form.get("rate", ""), Kind.RATE, "rate")
    course = store.get_course(p, _number(form, "course", "course", True) or 0)
    store.record_infusion(s, actor, p, course, _when(form, "start", "start"), _when(form, "end", "end"), rate,
                          note=form.get("note", ""))


def _level(s, actor, p, form):
    blq = form.get("blq") == "yes"
    value = parse(form["value"], Kind.MASS_CONCENTRATION, "level") if form.get("value") else None
    lloq = parse(form["lloq"], Kind.MASS_CONCENTRATION, "LLOQ") if form.get("lloq") else None
    store.add_level(s, actor, p, _when(form, "taken_at", "time"), form.get("analyte", "ketamine"), value, blq, lloq)


def _diary(s, actor, p, form):
    store.add_pain(s, actor, p, _when(form, "recorded_at", "date"), _number(form, "nrs", "NRS") if form.get("nrs")
                   else -1)


def _lab(s, actor, p, form):
    store.add_lab(s, actor, p, _when(form, "taken_at", "time"), form.get("test", ""), _number(form, "value", "value"),
                  _number(form, "uln", "upper limit"))


def _effect(s, actor, p, form):
    store.add_side_effect(s, actor, p, _when(form, "recorded_at", "time"), form.get("kind", ""),
                          _number(form, "grade", "grade", True))


def _note(s, actor, p, form):
    store.add_note(s, actor, p, form.get("text", ""))


def _weight(s, actor, p, form):
    store.add_weight(s, actor, p, _when(form, "on", "date").date(), _number(form, "kg", "weight") or 0)


ACTIONS = {"course": _course, "infusion": _infusion, "level": _level, "diary": _diary, "lab": _lab,
           "side-effect": _effect, "note": _note, "weight": _weight}


def _record(request: Request, form: dict):
    code = request.path_params["code"]
    action = ACTIONS.get(request.path_params["action"])

    def run(s, v):
        if action is None:
            return refused(request, v, "There is no such form.", status=404)
        try:
            action(s, v.user.username, store.get_patient(s, code), form)
        except TypeError:
            raise InputError("form", "incomplete", "fill in every required field") from None
        return None

    def on_error(exc: InputError):
        with db(request) as s:
            v = visit(request, s)
            return _patient_view(request, s, v, code, error=str(exc), status=400)

    return staff_action(request, form, run, f"/patients/{code}#record", on_error)


router.add_api_route("/patients/{code}/{action}", form_endpoint(_record), methods=["POST"])
