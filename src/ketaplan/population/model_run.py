"""What a worker needs to simulate any slice of a virtual population, and the simulation of one slice.

The regimen may be per kg (with rate caps): outputs are then the sum of the absolute doses' outputs and
weight x the outputs of the per-kg doses given at 1 kg (superposition; the PK is linear in dose), so a
chunk of patients with different weights is solved in one batched call per capping pattern.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from ketaplan.engine.build import BuiltModel, Covariates, build
from ketaplan.engine.dosing import regimen_records
from ketaplan.engine.exact import solve
from ketaplan.engine.occasions import expand_repeats, solve_by_occasion
from ketaplan.engine.schedule import compile_schedule
from ketaplan.errors import InputError
from ketaplan.models.spec import LongLastingRelief, ModelSpec
from ketaplan.population.covariates import covariates_from_table, sample_covariates
from ketaplan.population.variability import eta_parameters, sample_course_etas, sample_etas
from ketaplan.regimen.courses import Course, administrations, group_courses
from ketaplan.regimen.events import Regimen
from ketaplan.simulation.run import analyte_outputs, check_horizon, relief_layer

GEOMETRIC_POINTS = 24
"""Grid points after each dose's start and end, spaced geometrically from 1 minute to 12 hours."""
BAND_POINTS = 300
"""Percentile bands are kept at most at this many of the grid's time points (evenly spread)."""


@dataclass(frozen=True)
class PopulationSpec:
    """Everything a worker needs to simulate any chunk of the population (picklable)."""

    spec: ModelSpec
    regimen: Regimen
    n: int
    seed: int
    times: np.ndarray
    relief_threshold: float = 0.3
    window_fraction: float = 0.8
    covariate_table: pd.DataFrame | None = None
    overrides: dict = field(default_factory=dict)
    sample_times: tuple[float, ...] = ()
    """Times (h) at which observations with residual error are simulated (they are on the grid)."""
    effect_site: bool = False
    """Also simulate the effect-site concentration (for its percentile band; it costs about a fifth more)."""

    @property
    def band_index(self) -> np.ndarray:
        """Indices of the grid times at which percentile bands are kept."""
        t = len(self.times)
        return np.arange(t) if t <= BAND_POINTS else np.unique(np.linspace(0, t - 1, BAND_POINTS).round().astype(int))

    @property
    def courses(self) -> list[Course]:
        """The regimen's courses (timing does not depend on weight)."""
        return group_courses(administrations(_timing_regimen(self.regimen)))


def _timing_regimen(regimen: Regimen) -> Regimen:
    return regimen.resolve(70.0) if regimen.needs_weight else regimen


def population_grid(regimen: Regimen, horizon: float, coarse: float = 24.0, extra: tuple[float, ...] = ()
                    ) -> np.ndarray:
    """Shared output times: geometrically spaced after each dose's start and end (1 min to 12 h), hourly (or
    eight steps) during infusions, ``coarse`` h elsewhere, and the ``extra`` times.

    Levels change fastest just after a dose starts or stops, so that is where the points are dense: times
    above a threshold agree with a 1-minute grid to a few minutes per course.
    """
    offsets = np.concatenate([[0.0], np.geomspace(1 / 60, 12.0, GEOMETRIC_POINTS)])
    pieces = [np.arange(0.0, horizon + 1e-9, coarse), np.asarray(extra, dtype=float)]
    for a in administrations(_timing_regimen(regimen)):
        hours = max(a.end - a.start, 0.0)
        if hours > 0:
            pieces.append(np.arange(a.start, a.end, min(1.0, hours / 8)))
        pieces += [a.start + offsets, a.end + offsets]
    grid = np.unique(np.concatenate(pieces))
    return grid[(grid >= 0) & (grid <= horizon)]


def make_spec(regimen: Regimen, spec: ModelSpec, n: int, seed: int = 1, horizon: float | None = None,
              **kw) -> PopulationSpec:
    """A population specification on the default grid (to 12 weeks after the last dose unless ``horizon``)."""
    if eta_parameters(spec, occasion=True):
        expand_repeats(_timing_regimen(regimen))  # refuses steady-state doses, which cannot change by course
    timing = _timing_regimen(regimen)
    check_horizon(max(timing.end_time(), horizon or 0.0))
    courses = group_courses(administrations(timing))
    end = horizon if horizon is not None else courses[-1].end + 12 * 7 * 24.0
    check_horizon(end)
    samples = tuple(float(t) for t in kw.get("sample_times", ()))
    for t in samples:
        if not 0 <= t <= end:
            raise InputError("--sample-at", f"{t:g} h", f"sampling times must lie between 0 h and the horizon "
                                                         f"({end:g} h)")
    return PopulationSpec(spec, regimen, int(n), int(seed), population_grid(regimen, end, extra=samples), **kw)


def covariates_of(pspec: PopulationSpec, start: int, stop: int) -> Covariates:
    """The covariates subjects start..stop-1 get."""
    if pspec.covariate_table is not None:
        return covariates_from_table(pspec.covariate_table, start, stop)
    return sample_covariates(pspec.seed, start, stop)


@dataclass
class SliceValues:
    """Simulated outputs of subjects start..stop-1 on the population grid."""

    start: int
    covariates: Covariates
    built: BuiltModel
    names: list[str]
    values: np.ndarray  # (S, T, len(names))
    parent: str
    metabolite: str | None
    effect: str | None
    relief: LongLastingRelief | None
    course_builts: list[BuiltModel] | None = None
    """With course-to-course variability, the model of each course (``built`` is the first course's)."""
    course_of_time: np.ndarray | None = None
    """With course-to-course variability, the course (0-based) each grid time belongs to."""

    def output(self, name: str) -> np.ndarray:
        return self.values[:, :, self.names.index(name)]


def simulate_slice(pspec: PopulationSpec, start: int, stop: int) -> SliceValues:
    """Concentrations (parent, metabolite, effect site, relief site) of subjects start..stop-1."""
    cov = covariates_of(pspec, start, stop)
    etas = sample_etas(pspec.spec, pspec.seed, start, stop)
    starts = [c.start for c in pspec.courses]
    course_builts = None
    if eta_parameters(pspec.spec, occasion=True):
        course_builts = [build(pspec.spec, cov, _add_course_effects(etas, sample_course_etas(
            pspec.spec, pspec.seed, start, stop, k)), pspec.overrides) for k in range(len(starts))]
        builts = course_builts
    else:
        builts = [build(pspec.spec, cov, etas, pspec.overrides)]
    parent, metabolite, effect = analyte_outputs(pspec.spec)
    effect = effect if pspec.effect_site else None
    layer = relief_layer(pspec.spec)
    names = list(dict.fromkeys(n for n in (parent, metabolite, effect, layer.input if layer else None) if n))
    values = regimen_outputs(pspec.regimen, builts, cov.weight, pspec.times, names, starts)
    course_of_time = None
    if course_builts is not None:
        course_of_time = np.maximum(np.searchsorted(starts, pspec.times, side="right") - 1, 0)
    return SliceValues(start, cov, builts[0], names, values, parent, metabolite, effect, layer, course_builts,
                       course_of_time)


def _add_course_effects(etas: dict[str, np.ndarray], course: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Between-patient plus between-course effects: P = TV exp(eta + kappa)."""
    out = dict(etas)
    for name, kappa in course.items():
        out[name] = out[name] + kappa if name in out else kappa
    return out


def regimen_outputs(regimen: Regimen, builts: Sequence[BuiltModel], weights: np.ndarray, times: np.ndarray,
                    names: list[str], starts: Sequence[float] = (0.0,)) -> np.ndarray:
    """Outputs (S, T, len(names)) of a possibly per-kg regimen, by superposition of absolute and per-kg doses.

    ``builts`` holds one model, or one per course (course k from ``starts[k]``) for course-to-course variability.
    """
    s = builts[0].n_subjects
    groups = split_per_kg(regimen, weights)
    out = None if len(groups) == 1 else np.zeros((s, len(times), len(names)))
    for members, absolute, per_kg in groups:
        sub = [_take(b, members) for b in builts] if len(members) != s else list(builts)
        part = _solve(sub, starts, absolute, times, names)
        per_kg_part = _solve(sub, starts, per_kg, times, names)
        if per_kg_part is not None:
            per_kg_part *= weights[members, None, None]
            part = per_kg_part if part is None else part + per_kg_part
        if part is None:
            part = np.zeros((len(members), len(times), len(names)))
        if out is None:
            return part
        out[members] = part
    return out


def split_per_kg(regimen: Regimen, weights: np.ndarray) -> list[tuple[np.ndarray, Regimen, Regimen]]:
    """Groups of subjects with the same rate-capping pattern: (members, absolute events, per-kg events at 1 kg)."""
    capped_events = [i for i, e in enumerate(regimen.events) if e.per_kg and e.max_rate is not None and e.rate > 0]
    pattern = np.zeros((len(weights), len(capped_events)), dtype=bool)
    for j, i in enumerate(capped_events):
        e = regimen.events[i]
        pattern[:, j] = e.rate * weights > e.max_rate
    keys = np.unique(pattern, axis=0) if capped_events else [np.zeros(0, dtype=bool)]
    groups = []
    for key in keys:
        members = np.flatnonzero((pattern == key).all(axis=1)) if capped_events else np.arange(len(weights))
        capped = {capped_events[j] for j, on in enumerate(key) if on}
        absolute, per_kg = [], []
        for i, e in enumerate(regimen.events):
            if not e.per_kg:
                absolute.append(e)
            elif i in capped:
                hours = e.amount / e.rate
                absolute.append(replace(e, rate=e.max_rate, amount=e.max_rate * hours, per_kg=False, max_rate=None))
            else:
                per_kg.append(replace(e, per_kg=False, max_rate=None))
        groups.append((members, Regimen(tuple(absolute), drug=regimen.drug),
                       Regimen(tuple(per_kg), drug=regimen.drug)))
    return groups


def _take(built: BuiltModel, idx: np.ndarray) -> BuiltModel:
    params = {k: v[idx] for k, v in built.params.items()}
    return BuiltModel(built.spec, built.structure, params, len(idx), built.route_parts)


def _solve(builts: Sequence[BuiltModel], starts: Sequence[float], regimen: Regimen, times: np.ndarray,
           names: list[str]) -> np.ndarray | None:
    if not regimen.events:
        return None
    built = builts[0]
    if len(builts) > 1:
        records, parts = regimen_records(expand_repeats(regimen), built.route_parts)
        return solve_by_occasion(builts, starts, records, parts, times, names)
    records, parts = regimen_records(regimen, built.route_parts)
    schedule = compile_schedule(records, built.modifiers(parts), built.structure.n_states)
    return solve(built.rate_matrix(), schedule, times, built.readout(names))
