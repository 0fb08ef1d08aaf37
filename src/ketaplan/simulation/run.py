"""One patient under a regimen: the one place where regimen, model and engine meet.

``run_patient`` resolves the regimen for the patient's weight once, builds the model, compiles the
doses and solves on a grid fine enough for Cmax, AUC and threshold times; ``solve_patient`` is the
same chain at chosen times (used by :func:`ketaplan.predict`). The per-course numbers are in
:mod:`ketaplan.simulation.summary`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

import numpy as np

from ketaplan.engine.build import BuiltModel, build
from ketaplan.engine.derived import derived_quantities
from ketaplan.engine.dosing import regimen_records
from ketaplan.engine.exact import solve
from ketaplan.engine.pd import evaluate_layers
from ketaplan.engine.schedule import compile_schedule
from ketaplan.errors import InputError
from ketaplan.finite import require_finite
from ketaplan.limits import HOURS_PER_YEAR, OUTPUT_POINTS_PER_PATIENT, PLAN_YEARS
from ketaplan.models.library import DEFAULT_MODELS, assemble
from ketaplan.models.spec import LongLastingRelief, ModelSpec, factor_names
from ketaplan.models.thresholds import Threshold, thresholds_for
from ketaplan.regimen.courses import Administration, Course, administrations, group_courses
from ketaplan.regimen.events import Regimen
from ketaplan.simulation.patient import Patient

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_PD = {
    "racemic": ("navarrete_2024_ke0", "dahan_2011_crps_pkpd"),
    "s-ketamine": ("olofsen_2012_norketamine_pd", "dahan_2011_crps_pkpd"),
}
DEFAULT_PK = {"racemic": DEFAULT_MODELS["racemic_iv_adult"], "s-ketamine": DEFAULT_MODELS["s_ketamine_infusion"]}


def model_for(regimen: Regimen, model: str | ModelSpec | None = None, pd: tuple[str, ...] | None = None,
              s_fraction: float = 0.5) -> ModelSpec:
    """The PK model (default per drug form) with route data and the default PD layers attached."""
    spec_ref = model if model is not None else DEFAULT_PK[regimen.drug]
    layers = DEFAULT_PD[regimen.drug] if pd is None else pd
    used = regimen.routes or ("iv",)
    spec = assemble(spec_ref, pd=layers, routes=used, s_fraction=s_fraction)
    if spec.drug != regimen.drug:
        raise InputError("model", spec.id, f"describes {spec.drug}, but the regimen gives {regimen.drug}")
    return spec


def check_overrides(spec: ModelSpec, overrides: Mapping[str, float] | None) -> None:
    """Refuse ``--set NAME=VALUE`` for a parameter the model does not have or a value that is not a number >= 0."""
    settable = ", ".join(n for n, p in spec.parameters.items() if p.user_settable)
    for name, value in (overrides or {}).items():
        if name not in spec.parameters:
            raise InputError("--set", name, f"model {spec.id} has no such parameter"
                             + (f"; user-settable ones: {settable}" if settable else
                                ", and none of its parameters can be set"))
        if not (isinstance(value, (int, float)) and np.isfinite(value) and value >= 0):
            raise InputError(f"--set {name}", value, "a number >= 0 in the parameter's unit is required")
        fractions = {n for r in spec.routes.values() for part in r.parts for n in factor_names(part.bioavailability)}
        if name in fractions and value > max(1.0, spec.parameters[name].value):
            raise InputError(f"--set {name}", value, "a bioavailability is a fraction from 0 to 1 (for example "
                             "0.05 for 5 %)")


def time_grid(admins: list[Administration], until: float, fine: float = 0.1, coarse: float = 1.0) -> np.ndarray:
    """Output times: every ``coarse`` h, every ``fine`` h during and 12 h after each administration, and each
    administration's start and end.

    The fine points lie on one lattice (multiples of ``fine``), so the windows of frequent doses share their
    points instead of adding near-copies: the grid has at most until / fine points plus the starts and ends.
    """
    steps = int(np.floor(until / fine + 1e-9))
    starts = np.array([a.start for a in admins])
    ends = np.array([a.end for a in admins])
    lo = np.clip(np.ceil(starts / fine - 1e-9), 0, steps + 1).astype(np.int64)
    hi = np.clip(np.floor(np.minimum(until, ends + 12.0) / fine + 1e-9), -1, steps).astype(np.int64)
    cover = np.zeros(steps + 2, dtype=np.int64)  # windows as +1 at their first lattice point, -1 after their last
    keep = hi >= lo
    np.add.at(cover, lo[keep], 1)
    np.add.at(cover, hi[keep] + 1, -1)
    fine_points = np.round(np.flatnonzero(np.cumsum(cover[:-1]) > 0) * fine, 9)  # 30 x 0.1 is 3, as the coarse 3
    grid = np.unique(np.concatenate([np.arange(0.0, until + 1e-9, coarse), fine_points, starts, ends]))
    return grid[(grid >= 0) & (grid <= until)]


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


MAX_HORIZON_H = PLAN_YEARS.value * HOURS_PER_YEAR
"""Longest simulation (h): :data:`ketaplan.limits.PLAN_YEARS`, far beyond the seed case's 3.5 years."""


def check_horizon(hours: float) -> None:
    """Refuse a plan or follow-up that would run past :data:`MAX_HORIZON_H` (checked before doses are expanded)."""
    if not hours <= MAX_HORIZON_H:
        PLAN_YEARS.check("plan", hours / HOURS_PER_YEAR if np.isfinite(hours) else float("inf"),
                         "shorten the regimen or --until")


@dataclass(frozen=True)
class PreparedRun:
    """A patient's regimen resolved, grouped into courses and checked, the model built and the output grid."""

    resolved: Regimen
    courses: list[Course]
    built: BuiltModel
    times: np.ndarray


def prepare_run(regimen: Regimen, patient: Patient, spec: ModelSpec, until: float | None = None,
                overrides: dict[str, float] | None = None) -> PreparedRun:
    """Everything :func:`run_patient` needs before solving, each limit checked before work is allocated."""
    resolved = regimen.resolve(patient.weight)
    check_horizon(max(resolved.end_time(), until or 0.0))
    admins = administrations(resolved)
    if not admins:
        raise InputError("regimen", regimen.label or "this regimen", "gives no dose")
    courses = group_courses(admins)
    horizon = until if until is not None else courses[-1].end + 12 * 7 * 24.0
    if horizon <= 0:
        raise InputError("until", horizon, "the simulation must run for more than 0 h")
    check_horizon(max(horizon, courses[-1].end))
    if regimen.start is not None and not 1950 <= regimen.start.year <= 2100:
        raise InputError("start", regimen.start.strftime("%Y-%m-%d"), "a start date between 1950 and 2100")
    built = build(spec, patient.covariates(), overrides=overrides)
    times = time_grid(admins, horizon)
    OUTPUT_POINTS_PER_PATIENT.check("simulation", len(times), "shorten the plan or --until")
    return PreparedRun(resolved, courses, built, times)


def run_patient(regimen: Regimen, patient: Patient, spec: ModelSpec, until: float | None = None,
                overrides: dict[str, float] | None = None, baseline_pain: float | None = None) -> PatientRun:
    """Simulate one patient exactly on a grid fine enough for Cmax, AUC and threshold times."""
    import pandas as pd

    prepared = prepare_run(regimen, patient, spec, until, overrides)
    built, times = prepared.built, prepared.times
    names = list(spec.observables)
    values = solve_patient(built, prepared.resolved, times, names)
    require_finite({name: values[:, i] for i, name in enumerate(names)}, lambda i: f"time {times[i]:g} h")
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
    return PatientRun(frame, spec, built, prepared.resolved, patient, prepared.courses, parent, metabolite, effect,
                      thresholds_for(spec.drug), clearance)


def solve_patient(built: BuiltModel, resolved: Regimen, times: np.ndarray, names: list[str]) -> np.ndarray:
    """Outputs ``names`` (T, n_out) of one built patient under a resolved regimen, exactly, at ``times``."""
    records, parts = regimen_records(resolved, built.route_parts)
    schedule = compile_schedule(records, built.modifiers(parts), built.structure.n_states)
    return solve(built.rate_matrix(), schedule, times, built.readout(names))[0]


def relief_layer(spec: ModelSpec) -> LongLastingRelief | None:
    """The long-lasting relief layer of a model, if it has one."""
    return next((layer for layer in spec.pd if isinstance(layer, LongLastingRelief)), None)


