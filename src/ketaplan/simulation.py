"""One patient under a regimen: concentrations, effect sites, PD, and a summary per course.

A *course* is a run of administrations with gaps shorter than :data:`COURSE_GAP_H` (so a 5-day
infusion repeated every 11 weeks gives one course per infusion, and "50 mg PO q8h for 14 d" one
course). For each course the summary reports Cmax, the average steady-state level (average input
rate x F / clearance), AUC until the next course, hours above the analgesic and psychotomimetic
thresholds, norketamine exposure, relief at the end of the course and how long it stays above the
relief threshold, and when the next course is due.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from ketaplan.engine.build import BuiltModel, build
from ketaplan.engine.derived import derived_quantities
from ketaplan.engine.dosing import regimen_records
from ketaplan.engine.exact import solve
from ketaplan.engine.pd import evaluate_layers
from ketaplan.engine.schedule import compile_schedule
from ketaplan.errors import InputError
from ketaplan.models.compose import assemble
from ketaplan.models.library import DEFAULT_MODELS
from ketaplan.models.spec import LongLastingRelief, ModelSpec, factor_names
from ketaplan.models.thresholds import Threshold, thresholds_for
from ketaplan.predict import Patient
from ketaplan.regimen import Regimen

COURSE_GAP_H = 7 * 24.0
"""Administrations separated by less than this belong to the same course."""

DEFAULT_PD = {
    "racemic": ("navarrete_2024_ke0", "dahan_2011_crps_pkpd"),
    "s-ketamine": ("olofsen_2012_norketamine_pd", "dahan_2011_crps_pkpd"),
}
DEFAULT_PK = {"racemic": DEFAULT_MODELS["racemic_iv_adult"], "s-ketamine": DEFAULT_MODELS["s_ketamine_infusion"]}


@dataclass(frozen=True)
class Administration:
    """One dose given: start and end (h), amount (mg), route, rate (mg/h, 0 for a bolus)."""

    start: float
    end: float
    amount: float
    route: str
    rate: float


@dataclass(frozen=True)
class Course:
    """A treatment course: consecutive administrations."""

    index: int
    start: float
    end: float
    administrations: tuple[Administration, ...]

    @property
    def amount(self) -> float:
        return sum(a.amount for a in self.administrations)


def model_for(regimen: Regimen, model: str | ModelSpec | None = None, pd: tuple[str, ...] | None = None,
              s_fraction: float = 0.5) -> ModelSpec:
    """The PK model (default per drug form) with route data and the default PD layers attached."""
    spec_ref = model if model is not None else DEFAULT_PK[regimen.drug]
    layers = DEFAULT_PD[regimen.drug] if pd is None else pd
    used = regimen.routes or ("iv",)
    if isinstance(spec_ref, ModelSpec):
        from ketaplan.models.compose import with_pd, with_routes
        from ketaplan.models.library import load_pd, route_table

        spec = with_routes(spec_ref, route_table(spec_ref.drug), used)
        for ref in layers:
            spec = with_pd(spec, load_pd(ref), s_fraction)
    else:
        spec = assemble(spec_ref, pd=layers, routes=used, s_fraction=s_fraction)
    if spec.drug != regimen.drug:
        raise InputError("model", spec.id, f"describes {spec.drug}, but the regimen gives {regimen.drug}")
    return spec


def check_overrides(spec: ModelSpec, overrides: Mapping[str, float] | None) -> None:
    """Refuse ``--set NAME=VALUE`` for a parameter the model does not have or a value that is not a number >= 0."""
    for name, value in (overrides or {}).items():
        if name not in spec.parameters:
            raise InputError("--set", name, f"model {spec.id} has no such parameter; user-settable ones: "
                             + ", ".join(n for n, p in spec.parameters.items() if p.user_settable))
        if not (isinstance(value, (int, float)) and np.isfinite(value) and value >= 0):
            raise InputError(f"--set {name}", value, "a number >= 0 in the parameter's unit is required")
        fractions = {n for r in spec.routes.values() for part in r.parts for n in factor_names(part.bioavailability)}
        if name in fractions and value > max(1.0, spec.parameters[name].value):
            raise InputError(f"--set {name}", value, "a bioavailability is a fraction from 0 to 1 (for example "
                             "0.05 for 5 %)")


def administrations(regimen: Regimen) -> list[Administration]:
    """Every dose given (repeats expanded), in time order; the regimen must be resolved (no per-kg)."""
    out = []
    for e in regimen.events:
        if e.evid == 3:
            continue
        for t in e.dose_times():
            hours = e.infusion_hours
            rate = e.rate if e.rate > 0 else (e.amount / hours if hours > 0 else 0.0)
            out.append(Administration(float(t), float(t + hours), e.amount, e.route, rate))
    return sorted(out, key=lambda a: a.start)


def group_courses(admins: list[Administration], gap: float = COURSE_GAP_H) -> list[Course]:
    """Consecutive administrations with gaps below ``gap`` hours form a course."""
    courses: list[list[Administration]] = []
    for a in admins:
        if courses and a.start - max(x.end for x in courses[-1]) < gap:
            courses[-1].append(a)
        else:
            courses.append([a])
    return [Course(i + 1, c[0].start, max(a.end for a in c), tuple(c)) for i, c in enumerate(courses)]


def time_grid(admins: list[Administration], until: float, fine: float = 0.1, coarse: float = 1.0) -> np.ndarray:
    """Output times: every ``coarse`` h, every ``fine`` h during and 12 h after each administration."""
    pieces = [np.arange(0.0, until + 1e-9, coarse)]
    for a in admins:
        lo = a.start
        hi = min(until, a.end + 12.0)
        if hi > lo:
            pieces.append(np.arange(lo, hi + 1e-9, fine))
        pieces.append(np.array([a.start, a.end]))
    grid = np.unique(np.concatenate(pieces))
    return grid[(grid >= 0) & (grid <= until)]


def time_above(t: np.ndarray, c: np.ndarray, level: float) -> float:
    """Hours with c above ``level``, with linear interpolation inside each grid interval."""
    return float(time_above_batch(t, np.asarray(c, dtype=float)[None, :], level)[0])


def time_above_batch(t: np.ndarray, c: np.ndarray, level: float, inside: np.ndarray | None = None):
    """Hours above ``level`` for each row of c (S, T), interpolating linearly inside grid intervals.

    With ``inside`` (a boolean per grid interval) also returns the hours within the marked intervals.
    """
    dt = np.diff(t)
    above = c > level
    both = (above[:, :-1] & above[:, 1:]).astype(float)
    hours = both @ dt
    rows, cols = np.nonzero(above[:, :-1] != above[:, 1:])
    part = None
    if len(rows):
        a, b = c[rows, cols] - level, c[rows, cols + 1] - level
        part = np.where(a > 0, a / (a - b), b / (b - a))
        np.add.at(hours, rows, part * dt[cols])
    if inside is None:
        return hours
    dt_in = np.where(inside, dt, 0.0)
    hours_in = both @ dt_in
    if part is not None:
        np.add.at(hours_in, rows, part * dt_in[cols])
    return hours, hours_in


@dataclass
class PatientRun:
    """The result of :func:`run_patient`: the time course and what is needed to summarise it."""

    frame: pd.DataFrame
    spec: ModelSpec
    built: BuiltModel
    regimen: Regimen
    patient: Patient
    courses: list[Course]
    parent: str
    metabolite: str | None
    effect: str | None
    thresholds: dict[str, Threshold]
    clearance: float


def analyte_outputs(spec: ModelSpec) -> tuple[str, str | None, str | None]:
    """Observable names of the parent in plasma, its metabolite (or None) and the effect site (or None)."""
    parent_form = "ketamine" if spec.drug == "racemic" else "s-ketamine"
    metabolite_form = "norketamine" if spec.drug == "racemic" else "s-norketamine"
    comps = {c.name for c in spec.compartments}
    plasma = {n: o for n, o in spec.observables.items() if o.compartment in comps}
    parent = next(n for n, o in plasma.items() if o.analyte == parent_form)
    metabolite = next((n for n, o in plasma.items() if o.analyte == metabolite_form), None)
    effect = next((n for n in ("effect_site", "pain_site_k") if n in spec.observables), None)
    return parent, metabolite, effect


MAX_HORIZON_H = 20 * 8766.0
"""Longest simulation (h): 20 years, far beyond the seed case's 3.5 years, small enough for memory."""


def run_patient(regimen: Regimen, patient: Patient, spec: ModelSpec, until: float | None = None,
                overrides: dict[str, float] | None = None, baseline_pain: float | None = None) -> PatientRun:
    """Simulate one patient exactly on a grid fine enough for Cmax, AUC and threshold times."""
    resolved = regimen.resolve(patient.weight)
    admins = administrations(resolved)
    if not admins:
        raise InputError("regimen", regimen.label or "this regimen", "gives no dose")
    courses = group_courses(admins)
    horizon = until if until is not None else courses[-1].end + 12 * 7 * 24.0
    if horizon <= 0:
        raise InputError("until", horizon, "the simulation must run for more than 0 h")
    if max(horizon, courses[-1].end) > MAX_HORIZON_H:
        raise InputError("plan", f"{max(horizon, courses[-1].end) / 8766:.1f} years",
                         "one simulation covers at most 20 years of treatment and follow-up; shorten the regimen "
                         "or --until")
    if regimen.start is not None and not 1950 <= regimen.start.year <= 2100:
        raise InputError("start", regimen.start.strftime("%Y-%m-%d"), "a start date between 1950 and 2100")
    built = build(spec, patient.covariates(), overrides=overrides)
    records, parts = regimen_records(resolved, built.route_parts)
    schedule = compile_schedule(records, built.modifiers(parts), built.structure.n_states)
    times = time_grid(admins, horizon)
    names = list(spec.observables)
    values = solve(built.rate_matrix(), schedule, times, built.readout(names))[0]
    frame = pd.DataFrame({"id": 1, "time": times})
    if regimen.start is not None:
        frame["date"] = [regimen.start + timedelta(hours=float(h)) for h in times]
    for i, name in enumerate(names):
        frame[name] = values[:, i]
    layers = evaluate_layers(spec, built.params, {n: frame[n].to_numpy()[None] for n in names}, baseline_pain)
    for name, arr in layers.items():
        frame[name] = arr[0]
    parent, metabolite, effect = analyte_outputs(spec)
    clearance = next(d.clearance_l_per_h for d in derived_quantities(built)
                     if d.analyte == spec.observables[parent].analyte)
    return PatientRun(frame, spec, built, resolved, patient, courses, parent, metabolite, effect,
                      thresholds_for(spec.drug), clearance)


def relief_layer(spec: ModelSpec) -> LongLastingRelief | None:
    return next((layer for layer in spec.pd if isinstance(layer, LongLastingRelief)), None)


def course_summary(run: PatientRun, relief_threshold: float = 0.3) -> pd.DataFrame:
    """One row per course (see the module docstring). Times in h from the first dose, dates if known."""
    f = run.frame
    t = f["time"].to_numpy()
    parent = f[run.parent].to_numpy()
    analgesia = run.thresholds["analgesia"].value
    psycho = run.thresholds["psychotomimetic"].value
    layer = relief_layer(run.spec)
    relief = f[layer.name].to_numpy() if layer is not None else None
    rows = []
    ends = [c.start for c in run.courses[1:]] + [t[-1]]
    for course, window_end in zip(run.courses, ends, strict=True):
        w = (t >= course.start) & (t <= window_end)
        tw, cw = t[w], parent[w]
        row = {
            "course": course.index,
            "start_h": course.start,
            "end_h": course.end,
            "dose_mg": course.amount,
            "cmax_ng_ml": float(cw.max()),
            "css_avg_ng_ml": steady_state_level(run, course),
            "auc_ng_h_ml": float(np.trapezoid(cw, tw)),
            "hours_above_analgesia": time_above(tw, cw, analgesia),
            "hours_above_psychotomimetic": time_above(tw, cw, psycho),
        }
        if run.metabolite is not None:
            mw = f[run.metabolite].to_numpy()[w]
            row["norketamine_cmax_ng_ml"] = float(mw.max())
            row["norketamine_auc_ng_h_ml"] = float(np.trapezoid(mw, tw))
        if relief is not None:
            rw = relief[w]
            after = tw >= course.end
            row["relief_at_end"] = float(np.interp(course.end, tw, rw))
            row["relief_peak"] = float(rw.max())
            below = after & (rw < relief_threshold)
            if row["relief_peak"] < relief_threshold:
                row["relief_days"] = 0.0
            elif np.any(below):
                row["relief_days"] = float((tw[below][0] - course.end) / 24.0)
            else:
                row["relief_days"] = float("nan")  # still above the threshold at the next course or the end
            row["next_course_due_h"] = course.end + 24.0 * row["relief_days"] if np.isfinite(row["relief_days"]) \
                else float("nan")
        if run.regimen.start is not None:
            row["start_date"] = run.regimen.start + timedelta(hours=course.start)
            row["end_date"] = run.regimen.start + timedelta(hours=course.end)
            if "next_course_due_h" in row and np.isfinite(row["next_course_due_h"]):
                row["next_course_due_date"] = run.regimen.start + timedelta(hours=row["next_course_due_h"])
        rows.append(row)
    return pd.DataFrame(rows)


def steady_state_level(run: PatientRun, course: Course) -> float:
    """Plasma level (ng/mL) if the course's average input rate ran forever, by route (exact: -K^-1 r).

    NaN for a course of one dose lasting under an hour: a single dose has no steady state.
    """
    if len(course.administrations) == 1 and course.end - course.start < 1.0:
        return float("nan")
    k = run.built.rate_matrix()[0]
    r = np.zeros(k.shape[0])
    hours = max(course.end - course.start, 1e-9)
    for a in course.administrations:
        for state, part in run.built.route_parts.get(a.route, ()):
            r[state] += a.amount / hours * run.built.bioavailability(part.bioavailability)[0]
    amounts = np.linalg.solve(k, -r)
    return float(run.built.readout([run.parent])[0, 0] @ amounts)


def date_of(start: datetime | None, hours: float, compact: bool = False) -> str:
    """A readable date for hours from the first dose, or 'day N' ('dN' compact) without a start date."""
    if not np.isfinite(hours):
        return "-"
    if start is None:
        return f"d{hours / 24:.1f}" if compact else f"day {hours / 24:.1f}"
    return (start + timedelta(hours=hours)).strftime("%Y-%m-%d %H:%M")
