"""The levels a pump plan gives, as prescribed and with the pump's rounded rates, and the safety checks.

Same engine, grid and formulas as :func:`ketaplan.planning.plan.simulate` (steady state -K^-1 r, Cmax on the
simulation grid, hours above the psychotomimetic level), computed on the parent analyte only and without a
DataFrame, so that ``ketaplan pump`` starts at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from ketaplan.finite import require_finite
from ketaplan.models.thresholds import thresholds_for
from ketaplan.planning.pump import PumpPlan
from ketaplan.regimen.courses import Course, administrations, group_courses
from ketaplan.regimen.events import Regimen
from ketaplan.regimen.safety import Finding, check_courses, check_levels, check_regimen
from ketaplan.simulation.course_levels import course_windows, steady_state_level, time_above
from ketaplan.simulation.patient import Patient
from ketaplan.simulation.run import analyte_outputs, model_for, prepare_run, solve_patient

ASSUMED_WEIGHT_KG = 70.0
"""Body weight for the levels when the prescription is not per kg and no weight was given (stated in the output)."""


@dataclass(frozen=True)
class CourseLevel:
    """Parent plasma numbers of one course."""

    course: int
    cmax_ng_ml: float
    css_avg_ng_ml: float
    hours_above_psychotomimetic: float


def course_levels(regimen: Regimen, patient: Patient, model: str | None,
                  until: float) -> tuple[list[CourseLevel], str, list[Course]]:
    """Per-course Cmax, steady state and hours above the psychotomimetic level of the parent analyte, with the
    parent's name and the run's courses."""
    spec = model_for(regimen, model)
    prepared = prepare_run(regimen, patient, spec, until)
    parent = analyte_outputs(spec)[0]
    t = prepared.times
    level = solve_patient(prepared.built, prepared.resolved, t, [parent])[:, 0]
    require_finite({parent: level}, lambda i: f"time {t[i]:g} h")
    psycho = thresholds_for(spec.drug)["psychotomimetic"].value
    rows = [CourseLevel(course.index, float(level[w].max()), steady_state_level(prepared.built, course, parent),
                        time_above(t[w], level[w], psycho))
            for course, w in course_windows(t, prepared.courses)]
    return rows, parent, prepared.courses


def pump_horizon(regimen: Regimen, plan: PumpPlan, weight: float) -> float:
    """Hours simulated for the levels: a day past the last dose of any route (oral or intranasal doses may
    follow the last infusion within a course)."""
    last_dose = group_courses(administrations(regimen.resolve(weight)))[-1].end
    return max(plan.segments[-1].end_h if plan.segments else 0.0, last_dose) + 24.0


def pump_levels(regimen: Regimen, plan: PumpPlan, weight: float | None, model: str | None,
                force: bool) -> tuple[dict, list[Finding]]:
    """Course-1 steady-state level and peak as prescribed and as delivered with the rounded rates, and the
    dose and level checks of the prescription (refused doses raise unless ``force``)."""
    patient = Patient(weight if weight is not None else ASSUMED_WEIGHT_KG)
    findings = check_regimen(regimen, patient.weight, force)
    horizon = pump_horizon(regimen, plan, patient.weight)
    planned, parent, courses = course_levels(regimen, patient, model, horizon)
    delivered, _, _ = course_levels(plan.delivered_regimen(regimen, weight), patient, model, horizon)
    routes = [{a.route for a in c.administrations} for c in courses]
    findings += check_courses(regimen.drug, courses, routes)
    findings += check_levels([row.__dict__ for row in planned], thresholds_for(regimen.drug))
    levels = {"planned_css": planned[0].css_avg_ng_ml, "delivered_css": delivered[0].css_avg_ng_ml,
              "planned_cmax": planned[0].cmax_ng_ml, "delivered_cmax": delivered[0].cmax_ng_ml,
              "analyte": parent, "weight_assumed": weight is None}
    return levels, sorted(findings, key=lambda f: ("refused", "warning", "info").index(f.severity))
