"""Many patients under one library model (PK, effect sites, long-lasting relief), predicted in one engine call.

A :class:`Cohort` is what a clinic's record or a dataset gives: each patient's regimen, covariates and
measurements (levels and pain scores). :func:`bind` prepares everything that does not depend on the
population values being estimated: each patient's typical parameters, the dose schedules of all patients
compiled at once, and the measurements laid out on an (patients, width) grid. :meth:`BoundCohort.predict`
then gives, for a batch of (patient, population values, random effects) rows, the expected level of each
measured analyte and the expected pain score (baseline x (1 - relief) for a responder, baseline for a
non-responder).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ketaplan.engine.build import Covariates, build_from_parameters, parameter_values
from ketaplan.engine.dosing import regimen_records
from ketaplan.engine.exact import solve
from ketaplan.engine.pd import hill
from ketaplan.engine.schedule import DoseModifiers, DoseRecords, Schedule, compile_batch
from ketaplan.errors import InputError
from ketaplan.individualize.observations import PAIN, Observations
from ketaplan.limits import LEARNING_CELLS
from ketaplan.models.spec import LongLastingRelief, ModelSpec
from ketaplan.population.variability import eta_parameters, omega_matrix
from ketaplan.regimen.events import Regimen
from ketaplan.simulation.run import relief_layer


@dataclass(frozen=True)
class CohortPatient:
    """One patient: an identifier, the doses given, covariates and measurements (times in h)."""

    id: object
    regimen: Regimen
    covariates: Covariates
    observations: Observations


@dataclass(frozen=True)
class Cohort:
    """Patients treated with one drug form, to be described by one library model."""

    patients: tuple[CohortPatient, ...]
    label: str = "cohort"

    def __len__(self) -> int:
        return len(self.patients)

    def take(self, idx: Sequence[int]) -> Cohort:
        return Cohort(tuple(self.patients[i] for i in idx), self.label)


@dataclass
class BoundCohort:
    """A cohort prepared for a model: everything independent of the population values."""

    spec: ModelSpec
    cohort: Cohort
    relief: LongLastingRelief
    typical: dict[str, np.ndarray]  # (N,) internal units, the published population values
    eta_names: tuple[str, ...]
    omega: np.ndarray  # published between-patient covariance of eta_names
    schedule: Schedule
    outputs: tuple[str, ...]  # engine outputs: the measured analytes and the relief site
    obs_time: np.ndarray  # (N, W)
    obs_kind: np.ndarray  # (N, W) index into outputs, or -1 for a pain score
    obs_value: np.ndarray
    obs_blq: np.ndarray
    obs_lloq: np.ndarray
    obs_mask: np.ndarray
    residual: dict[str, tuple[float, float]]  # analyte -> (proportional SD, additive SD)
    batches: dict[bytes, Schedule] = field(default_factory=dict, repr=False)

    @property
    def n_patients(self) -> int:
        return len(self.cohort)

    @property
    def relief_half_life(self) -> str:
        """The parameter holding the relief site's half-life."""
        site = next(e for e in self.spec.effect_sites if e.name == self.relief.input)
        if site.half_life is None:
            raise InputError("model", self.spec.id, "learning needs the relief site given by a half-life")
        return site.half_life

    def take(self, idx: Sequence[int]) -> BoundCohort:
        """The same cohort restricted to patients ``idx`` (for held-out checks), without binding again."""
        idx = np.asarray(idx, dtype=int)
        return BoundCohort(self.spec, self.cohort.take(idx), self.relief,
                           {k: v[idx] for k, v in self.typical.items()}, self.eta_names, self.omega,
                           self.schedule.take(idx), self.outputs, self.obs_time[idx], self.obs_kind[idx],
                           self.obs_value[idx], self.obs_blq[idx], self.obs_lloq[idx], self.obs_mask[idx],
                           self.residual)

    def schedule_of(self, who: np.ndarray) -> Schedule:
        """The schedules of rows ``who`` (remembered: an estimation asks for the same rows again and again)."""
        key = np.asarray(who, dtype=np.int64).tobytes()
        if key not in self.batches:
            if len(self.batches) >= 6:
                self.batches.pop(next(iter(self.batches)))
            self.batches[key] = self.schedule.take(np.asarray(who))
        return self.batches[key]

    def predict(self, values: Mapping[str, np.ndarray], eta: np.ndarray, who: np.ndarray,
                responder: np.ndarray) -> np.ndarray:
        """Expected measurements (B, W): ``values`` maps parameter names to factors (B,) on their published
        typical values, ``eta`` (B, m) the random effects of ``eta_names``, ``responder`` (B,) bool."""
        who = np.asarray(who)
        params = {name: v[who] for name, v in self.typical.items()}
        for name, factor in values.items():
            params[name] = params[name] * factor
        for j, name in enumerate(self.eta_names):
            params[name] = params[name] * np.exp(eta[:, j])
        built = build_from_parameters(self.spec, params, len(who))
        levels = solve(built.rate_matrix(), self.schedule_of(who), self.obs_time[who], built.readout(self.outputs))
        kind = self.obs_kind[who]
        picked = np.take_along_axis(levels, np.maximum(kind, 0)[..., None], axis=2)[..., 0]
        relief_site = levels[:, :, self.outputs.index(self.relief.input)]
        layer = self.relief

        def value(ref):
            return params[ref][:, None] if isinstance(ref, str) else float(ref)

        relief = value(layer.emax) * hill(relief_site, value(layer.c50), value(layer.gamma))
        relief = np.where(np.asarray(responder)[:, None], relief, 0.0)
        pain = value(layer.baseline) * (1.0 - relief)
        return np.where(kind < 0, pain, picked)


@dataclass(frozen=True)
class ReliefTable:
    """Each patient's relief-site concentration at its measurement times for a grid of relief half-lives.

    With the PK at each patient's typical values, the relief-site concentration depends on the population
    values only through the log half-life u; it is computed exactly once on an even grid of u and read
    between the knots by cubic Hermite interpolation of log Ce, whose knot slopes come from a not-a-knot
    cubic spline (pain scores within about 1e-6 of the engine on the default grid of 0.1; tested).
    """

    u: np.ndarray  # (G,) log half-life, internal units (h)
    log_ce: np.ndarray  # (G, N, W); -inf where the concentration is 0 (before the first dose)
    slope: np.ndarray  # (G, N, W) d log Ce / du at the knots

    def take(self, idx: Sequence[int]) -> ReliefTable:
        """The table of patients ``idx`` only."""
        idx = np.asarray(idx, dtype=int)
        return ReliefTable(self.u, self.log_ce[:, idx], self.slope[:, idx])

    def at(self, u: np.ndarray, who: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """log Ce and its first and second derivative in u, for rows (B,) at log half-lives u (B,): each (B, W)."""
        step = self.u[1] - self.u[0]
        x = np.clip((u - self.u[0]) / step, 0.0, len(self.u) - 1 - 1e-9)
        i = np.floor(x).astype(int)
        s = (x - i)[:, None]
        y0, y1 = self.log_ce[i, who], self.log_ce[i + 1, who]
        m0, m1 = self.slope[i, who] * step, self.slope[i + 1, who] * step
        finite = np.isfinite(y0) & np.isfinite(y1)
        y0, y1 = np.where(finite, y0, 0.0), np.where(finite, y1, 0.0)
        h00, h10, h01, h11 = 2 * s**3 - 3 * s**2 + 1, s**3 - 2 * s**2 + s, -2 * s**3 + 3 * s**2, s**3 - s**2
        d00, d10, d01, d11 = 6 * s**2 - 6 * s, 3 * s**2 - 4 * s + 1, -6 * s**2 + 6 * s, 3 * s**2 - 2 * s
        e00, e10, e01, e11 = 12 * s - 6, 6 * s - 4, -12 * s + 6, 6 * s - 2
        value = h00 * y0 + h10 * m0 + h01 * y1 + h11 * m1
        first = (d00 * y0 + d10 * m0 + d01 * y1 + d11 * m1) / step
        second = (e00 * y0 + e10 * m0 + e01 * y1 + e11 * m1) / step**2
        return np.where(finite, value, -np.inf), np.where(finite, first, 0.0), np.where(finite, second, 0.0)


def relief_table(bound: BoundCohort, half_life_range_h: tuple[float, float] = (12.0, 24_000.0),
                 spacing: float = 0.1) -> ReliefTable:
    """The relief-site concentration of every patient on a grid of relief half-lives (one engine call).

    The default grid runs from half a day to 1,000 days; an estimate outside it is read at its edge.
    """
    from scipy.interpolate import CubicSpline

    lo, hi = np.log(half_life_range_h[0]), np.log(half_life_range_h[1])
    u = np.linspace(lo, hi, int(np.ceil((hi - lo) / spacing)) + 1)
    n, g = bound.n_patients, len(u)
    LEARNING_CELLS.check("learning", g * n * bound.obs_time.shape[1],
                         "learn from fewer patients, or leave out the longest records")
    who = np.tile(np.arange(n), g)
    params = {name: v[who] for name, v in bound.typical.items()}
    name = bound.relief_half_life
    params[name] = np.exp(np.repeat(u, n))
    built = build_from_parameters(bound.spec, params, len(who))
    site = bound.outputs.index(bound.relief.input)
    ce = solve(built.rate_matrix(), bound.schedule_of(who), bound.obs_time[who], built.readout(bound.outputs))
    ce = ce[:, :, site].reshape(g, n, -1)
    with np.errstate(divide="ignore"):
        log_ce = np.where(ce > 0, np.log(np.maximum(ce, 1e-300)), -np.inf)
    finite = np.all(np.isfinite(log_ce), axis=0)
    spline = CubicSpline(u, np.where(finite[None], log_ce, 0.0), axis=0)
    slope = np.where(finite[None], spline(u, 1), 0.0)
    return ReliefTable(u, np.where(finite[None], log_ce, -np.inf), slope)


def bind(spec: ModelSpec, cohort: Cohort, random_effects: Sequence[str] | None = None) -> BoundCohort:
    """Prepare ``cohort`` for ``spec`` (a PK model with a long-lasting relief layer attached).

    ``random_effects`` names the parameters whose between-patient effects are integrated (default: all with
    variability in the model); the others stay at their typical values for each patient's covariates.
    """
    if len(cohort) == 0:
        raise InputError("cohort", "no patients", "learning needs at least one patient with measurements")
    relief = relief_layer(spec)
    if relief is None or relief.baseline is None:
        raise InputError("model", spec.id, "learning relief needs a model with a long-lasting relief layer and a "
                         "baseline pain parameter")
    covariates = _stack(cohort)
    typical = parameter_values(spec, covariates)
    every = list(eta_parameters(spec))
    names = tuple(every if random_effects is None else random_effects)
    unknown = [n for n in names if n not in every]
    if unknown:
        raise InputError("random effects", unknown[0], f"model {spec.id} has between-patient variability on "
                         f"{', '.join(every)}")
    keep = [every.index(n) for n in names]
    omega = omega_matrix(spec)[np.ix_(keep, keep)]
    measured = sorted({o for p in cohort.patients for o in p.observations.output if o != PAIN})
    unknown = [o for o in measured if o not in spec.observables]
    if unknown:
        raise InputError("measurements", unknown[0], f"model {spec.id} has no output {unknown[0]}; it predicts "
                         f"{', '.join(spec.observables)}")
    outputs = tuple(dict.fromkeys([*measured, relief.input]))
    residual = {}
    for o in measured:
        err = spec.residual_error.get(o)
        if err is None:
            raise InputError("model", spec.id, f"has no residual error for {o}; levels of {o} cannot be used")
        residual[o] = (float(err.proportional), float(err.additive))
    schedule = _schedules(spec, cohort, typical)
    width = max(1, max(len(p.observations) for p in cohort.patients))
    shape = (len(cohort), width)
    obs_time = np.zeros(shape)
    obs_kind = np.full(shape, -2)
    obs_value = np.zeros(shape)
    obs_blq = np.zeros(shape, dtype=bool)
    obs_lloq = np.full(shape, np.nan)
    mask = np.zeros(shape, dtype=bool)
    for i, p in enumerate(cohort.patients):
        o = p.observations
        n = len(o)
        last = float(o.time.max()) if n else 0.0
        obs_time[i] = last
        obs_time[i, :n] = o.time
        obs_kind[i, :n] = [-1 if name == PAIN else outputs.index(name) for name in o.output]
        obs_value[i, :n] = o.value
        obs_blq[i, :n] = o.blq
        obs_lloq[i, :n] = o.lloq
        mask[i, :n] = True
    obs_kind[~mask] = -1  # padding: a pain score that is never counted
    return BoundCohort(spec, cohort, relief, typical, names, omega, schedule, outputs, obs_time, obs_kind,
                       obs_value, obs_blq, obs_lloq, mask, residual)


def _stack(cohort: Cohort) -> Covariates:
    parts = [p.covariates for p in cohort.patients]
    fields = ("weight", "age", "sex", "height")
    return Covariates(**{f: np.concatenate([np.asarray(getattr(c, f)) for c in parts]) for f in fields})


def _schedules(spec: ModelSpec, cohort: Cohort, typical: dict[str, np.ndarray]) -> Schedule:
    """Every patient's doses compiled at once (bioavailability and lags at their typical values)."""
    pieces, subjects, mods = [], [], []
    n = len(cohort)
    for i, p in enumerate(cohort.patients):
        single = {k: v[i:i + 1] for k, v in typical.items()}
        built = build_from_parameters(spec, single, 1)
        records, parts = regimen_records(p.regimen, built.route_parts, float(p.covariates.weight[0]))
        pieces.append(records)
        subjects.append(np.full(len(records), i))
        mods.append(built.modifiers(parts))
    fields = ("time", "amount", "cmt", "rate", "duration", "ii", "addl", "ss", "evid", "order")
    records = DoseRecords(*(np.concatenate([getattr(r, f) for r in pieces]) for f in fields))
    modifiers = DoseModifiers(*(np.concatenate([getattr(m, f) for m in mods], axis=1)
                                for f in ("f", "lag", "rate", "duration")))
    n_states = len(spec.state_names)
    return compile_batch(records, np.concatenate(subjects), n, modifiers, n_states)
