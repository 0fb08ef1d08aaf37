"""Plan and simulate in the browser: the planner (also prefilled from a patient's record), route comparison, and
the printable pump sheet of a planned course. The numbers are those of ``ketaplan simulate``, ``compare`` and
``pump``: the same functions compute them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pandas as pd
from fastapi import APIRouter, Request

from ketaplan.course import store
from ketaplan.course.alerts import next_course
from ketaplan.course.forecast import cached_forecast
from ketaplan.errors import InputError
from ketaplan.web.i18n import N_, Translator
from ketaplan.web.pages_patients import number, when
from ketaplan.web.views import Visit, refused, render, staff_view, translator

router = APIRouter()
POPULATION = 300
"""Virtual patients with the planned patient's covariates, for the 90 % intervals."""
DEFAULT_REGIMEN = "20 mg/h IV for 5 d"
FIELDS = ("regimen", "weight", "age", "sex", "height", "baseline_pain", "model", "threshold", "start", "confirm")


def _models() -> list[str]:
    from ketaplan.models.library import library_ids

    return list(library_ids("pk"))


MAIN_COLUMNS = ("course", "start_h", "end_h", "dose_mg", "cmax_ng_ml", "hours_above_analgesia",
                "hours_above_psychotomimetic", "relief_at_end", "relief_days", "next_course_due_h")
"""The course table a clinician reads first; the other columns of ``ketaplan simulate`` follow in a second table."""


@dataclass
class Table:
    """A table of the page: its id, column titles and formatted rows (the first cell of a row is its header)."""

    id: str
    columns: list[str]
    rows: list[list[str]]


@dataclass
class PlanResult:
    frame: object
    chart: str
    tables: list[Table]
    next_due: str


def run_plan(form: dict, t: Translator) -> PlanResult:
    """Simulate the planner's form with ``planning.plan.simulate`` (as ``ketaplan simulate``), and the 90 %
    intervals from virtual patients with the same covariates."""
    from ketaplan.planning.plan import simulate
    from ketaplan.population.api import simulate_population
    from ketaplan.regimen.text import parse_regimen
    from ketaplan.web.charts import plan_chart

    regimen = parse_regimen(store.clean_text(form.get("regimen", ""), "regimen", 500))
    if form.get("start"):
        start = when(form, "start", "start")
        if regimen.start is not None and regimen.start != start:
            raise InputError("start", form["start"], f"the regimen already says 'starting "
                             f"{regimen.start:%Y-%m-%d %H:%M}'; give the start once")
        regimen = regimen.with_start(start)
    weight = number(form, "weight", "weight")
    if weight is None:
        raise InputError("weight", "empty", "the patient's body weight in kg")
    threshold = number(form, "threshold", "relief threshold")
    if threshold is not None and not 0 < threshold < 100:
        raise InputError("relief threshold", f"{threshold:g} %", "a percentage between 1 and 99")
    sex = form.get("sex") or None
    model = form.get("model") or None
    if model is not None and model not in _models():
        raise InputError("model", model, "a model of the library")
    age, height, pain = number(form, "age", "age"), number(form, "height", "height"), number(form, "baseline_pain",
                                                                                             "baseline pain")
    try:
        frame = simulate(regimen, weight=weight, age=age, sex=sex, height=height, model=model,
                         relief_threshold=(threshold if threshold is not None else 30) / 100, baseline_pain=pain,
                         force=form.get("confirm") == "yes")
    except InputError as exc:
        raise store.UnitSlipRefused.of(exc) if "--force" in exc.allowed else exc from None
    covariates = pd.DataFrame({"weight": [weight], "age": [age if age is not None else np.nan],
                               "sex": [sex or "unknown"], "height": [height if height is not None else np.nan]})
    population = simulate_population(regimen, n=POPULATION, covariates=covariates, model=model,
                                     effect_site=True, until=float(frame["time"].iloc[-1]),
                                     relief_threshold=frame.settings["relief_threshold"])
    keys, columns, rows = course_table(frame, t)
    main = [i for i, k in enumerate(keys) if k in MAIN_COLUMNS]
    detail = [0] + [i for i, k in enumerate(keys) if k not in MAIN_COLUMNS]
    tables = [Table(id_, [columns[i] for i in idx], [[r[i] for i in idx] for r in rows])
              for id_, idx in (("plan-table", main), ("plan-levels", detail)) if len(idx) > 1]
    return PlanResult(frame, plan_chart(frame, population.bands, t, pain), tables, next_due_sentence(frame, t))


def next_due_sentence(frame, t: Translator) -> str:
    """How long relief lasts after the last course and when the next one is due, in one sentence."""
    last = frame.summary.iloc[-1]
    days, due = last.get("relief_days"), last.get("next_course_due_h")
    if due is None or not np.isfinite(due):
        return t.gettext("After the last course, relief lasts beyond the end of the calculation.")
    start = frame.run.regimen.start
    when_ = (t.datetime(start + timedelta(hours=float(due))) if start is not None
             else t.gettext("day %(n)s", n=t.number(float(due) / 24 + 1, 0)))
    return t.gettext("After the last course, relief lasts about %(days)s days: the next course is due on %(when)s.",
                     days=t.number(float(days), 0), when=when_)


def course_table(frame, t: Translator) -> tuple[list[str], list[str], list[list[str]]]:
    """The per-course table of ``ketaplan simulate`` (same columns, same numbers) in the reader's format: the
    summary's keys, the column titles and the rows."""
    from ketaplan.report.summary_table import SUMMARY_COLUMNS

    start = frame.run.regimen.start
    summary = frame.summary
    cols = [(title, key, fmt) for title, _, key, fmt in SUMMARY_COLUMNS if key in summary]
    rows = []
    for _, r in summary.iterrows():
        cells = []
        for _, key, fmt in cols:
            v = r[key]
            if v is None or (isinstance(v, float) and not np.isfinite(v)):
                cells.append(t.gettext("beyond the chart") if key in ("relief_days", "next_course_due_h") else "-")
            elif fmt == "date":
                cells.append(t.datetime(start + timedelta(hours=float(v))) if start is not None
                             else t.gettext("day %(n)s", n=t.number(float(v) / 24 + 1, 1)))
            elif fmt.endswith("%}"):
                cells.append(t.percent(float(v)))
            else:
                digits = int(fmt.split(".")[1][0]) if "." in fmt else 0
                cells.append(t.number(float(v), digits))
        rows.append(cells)
    return [key for _, key, _ in cols], [t.pgettext("column", title) for title, _, _ in cols], rows


def _planner(request: Request, form: dict, v: Visit, patient=None):
    t = translator(request)
    result, error, slip = None, None, False
    if form.get("regimen"):
        try:
            result = run_plan(form, t)
        except InputError as exc:
            error, slip = t.error(exc), isinstance(exc, store.UnitSlipRefused)
    return render(request, "planner.html", v, form=form, result=result, error=error, slip=slip, p=patient,
                  models=_models())


def _form(request: Request) -> dict:
    return {k: request.query_params.get(k, "")[:2000] for k in FIELDS}


@router.get("/plan")
def planner_page(request: Request):
    def view(s, v):
        form = _form(request)
        if not any(form.values()):
            form.update(regimen="", weight="", threshold="30")
        return _planner(request, form, v)

    return staff_view(request, view)


@router.get("/patients/{code}/plan")
def patient_planner_page(request: Request, code: str):
    """The planner prefilled from the record: latest weight, age, sex, baseline pain, the last regimen and the
    date the next course is due."""
    def view(s, v):
        try:
            p = store.get_patient(s, code)
        except InputError:
            return refused(request, v, N_("No patient has this code."), status=404)
        form = _form(request)
        if not form["regimen"]:
            last = next((c.planned_regimen for c in reversed(p.courses) if c.status != "cancelled"), None)
            due = next_course(p, cached_forecast(s, p)).forecast
            start = (due if due and due > store.now() else store.now() + timedelta(days=7)).replace(
                hour=9, minute=0, second=0)
            form.update(regimen=(last or DEFAULT_REGIMEN).split(" starting ")[0], start=start.strftime(
                "%Y-%m-%dT%H:%M"), threshold="30")
        form.update(threshold=form["threshold"] or "30", weight=form["weight"] or f"{store.latest_weight(p):g}",
                    age=form["age"] or str(store.now().year - p.birth_year), sex=form["sex"] or p.sex,
                    baseline_pain=form["baseline_pain"] or (f"{p.baseline_pain:g}" if p.baseline_pain is not None
                                                            else ""))
        return _planner(request, form, v, patient=p)

    return staff_view(request, view)


@router.get("/plan/routes")
def routes_page(request: Request, dose: str = "25 mg", basis: str = "dose", weight: str = "80", age: str = "45",
                forms: str = "racemic"):
    """Routes side by side (``ketaplan compare``, the same defaults): IV, oral, intranasal, sublingual, IM and
    topical."""
    from ketaplan.planning.compare import compare
    from ketaplan.regimen.units import Kind, parse
    from ketaplan.simulation.patient import Patient

    def view(s, v):
        t = translator(request)
        routes = request.query_params.getlist("route") or ["iv", "oral", "intranasal", "sublingual"]
        table, error = None, None
        query = {"dose": dose[:40], "basis": basis, "weight": weight[:10], "age": age[:10], "forms": forms,
                 "routes": routes}
        try:
            kg, years = number({"weight": weight}, "weight", "weight"), number({"age": age}, "age", "age")
            table, _, notes = compare(routes, [f for f in forms.split(",") if f], parse(dose, Kind.AMOUNT, "dose"),
                                      basis, Patient(kg or 0.0, years))
            query["notes"] = notes
        except InputError as exc:
            error = t.error(exc)
        return render(request, "routes.html", v, query=query, table=table, error=error)

    return staff_view(request, view)
