"""How long relief lasts after each course, as a distribution over patients, and how well that predicts when
a clinic gave the next course.

A relief distribution (:class:`ReliefSpread`) is a set of population values of the relief layer: typical C50,
relief-site half-life, Emax and Hill coefficient, the between-patient variances of log C50 and log half-life,
and the probability of responding. With the PK at each patient's typical values, relief after a course
depends on these only through the relief site's half-life, so the relief-site concentration is tabulated once
on a grid of half-lives (:func:`~ketaplan.estimation.library_cohort.relief_table`) and every draw is read from
it. Relief is then Emax sigma(gamma (log Ce - log C50)): it falls below a threshold r where log Ce falls below
log C50 + logit(r / Emax) / gamma.

:func:`predicted_gaps` gives, for each course of each patient, drawn relief durations (days from the end of
the course until relief falls below the threshold) of a responder; :func:`gap_errors` compares their median
and 90 % interval with the gaps the clinic actually left before the next course.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ketaplan.engine.build import Covariates, parameter_values
from ketaplan.estimation.library_cohort import Cohort, CohortPatient, bind, relief_table
from ketaplan.individualize.observations import PAIN, Observations
from ketaplan.models.spec import ModelSpec
from ketaplan.population.variability import eta_parameters, omega_matrix
from ketaplan.regimen.courses import administrations, group_courses
from ketaplan.regimen.events import Regimen
from ketaplan.simulation.run import relief_layer

DAY = 24.0
HORIZON_DAYS = 26 * 7
"""Relief lasting longer than this (half a year) after a course is reported as 'beyond'."""


@dataclass(frozen=True)
class ReliefSpread:
    """Population values of a relief layer: typical C50 and half-life as factors on the model's published
    values, Emax and the Hill coefficient, the between-patient variances of log C50 and log half-life, and
    the probability of responding."""

    c50_factor: float
    half_life_factor: float
    emax: float
    gamma: float
    var_c50: float
    var_half_life: float
    p_response: float

    @staticmethod
    def of(spec: ModelSpec, typical: Mapping[str, float] | None = None,
           variances: Mapping[str, float] | None = None) -> ReliefSpread:
        """The spread of ``spec``'s relief layer, with ``typical`` values (model units) and ``variances`` (by
        parameter name) replacing the model's own where given (a learned model)."""
        layer = relief_layer(spec)
        half_life = _half_life_name(spec)
        typical, variances = dict(typical or {}), dict(variances or {})
        names, omega = list(eta_parameters(spec)), omega_matrix(spec)

        def value(ref) -> float:
            if not isinstance(ref, str):
                return float(ref)
            return float(typical.get(ref, spec.parameters[ref].value))

        def factor(ref) -> float:
            return value(ref) / float(spec.parameters[ref].value) if isinstance(ref, str) else 1.0

        def variance(ref) -> float:
            if not isinstance(ref, str):
                return 0.0
            if ref in variances:
                return float(variances[ref])
            return float(omega[names.index(ref), names.index(ref)]) if ref in names else 0.0

        return ReliefSpread(factor(layer.c50), factor(half_life), value(layer.emax), value(layer.gamma),
                            variance(layer.c50), variance(half_life), value(layer.p_response))


def _half_life_name(spec: ModelSpec) -> str:
    layer = relief_layer(spec)
    return next(e for e in spec.effect_sites if e.name == layer.input).half_life


def half_life_range(spec: ModelSpec, spreads: Sequence[ReliefSpread], sds: float = 3.5) -> tuple[float, float]:
    """Half-lives (h) covering every spread's typical value +- ``sds`` between-patient SDs: the grid a
    relief-site table needs (draws beyond it are read at its edge)."""
    name = _half_life_name(spec)
    base = float(parameter_values(spec, Covariates.of(70.0, 50.0, "female"))[name][0])
    lo = min(base * s.half_life_factor * np.exp(-sds * np.sqrt(s.var_half_life)) for s in spreads)
    hi = max(base * s.half_life_factor * np.exp(sds * np.sqrt(s.var_half_life)) for s in spreads)
    return float(max(lo, 6.0)), float(max(hi, 2 * lo, 12.0))


@dataclass(frozen=True)
class CourseGaps:
    """For every course followed by another: the patient (index in the cohort), the course's end (h) and
    the time (h) the clinic waited from that end to the start of the next course."""

    patient: np.ndarray
    course: np.ndarray
    end_h: np.ndarray
    observed_h: np.ndarray

    def __len__(self) -> int:
        return len(self.patient)


def course_gaps(cohort: Cohort) -> CourseGaps:
    """The gaps between consecutive courses of every patient."""
    rows = []
    for i, p in enumerate(cohort.patients):
        courses = _courses(p)
        for j in range(len(courses) - 1):
            rows.append((i, j, courses[j].end, courses[j + 1].start - courses[j].end))
    if not rows:
        return CourseGaps(np.zeros(0, int), np.zeros(0, int), np.zeros(0), np.zeros(0))
    patient, course, end, gap = (np.array(c) for c in zip(*rows, strict=True))
    return CourseGaps(patient.astype(int), course.astype(int), end.astype(float), gap.astype(float))


def _courses(p: CohortPatient):
    return group_courses(administrations(p.regimen.resolve(float(p.covariates.weight[0]))))


def after_courses(spec: ModelSpec, cohort: Cohort, gaps: CourseGaps, half_lives_h: tuple[float, float]) -> tuple:
    """The relief-site table of each gap's patient after its course: one pseudo-patient per gap with the
    doses up to the end of that course and times every other day from the course end to the horizon (log Ce
    falls almost linearly between them), on a grid of relief half-lives spanning ``half_lives_h``."""
    grid = np.arange(0.0, HORIZON_DAYS + 1, 2.0) * DAY
    pseudo = []
    for i, j, end in zip(gaps.patient, gaps.course, gaps.end_h, strict=True):
        p = cohort.patients[i]
        events = tuple(e for e in p.regimen.events if e.time < end)
        regimen = Regimen(events, drug=p.regimen.drug)
        times = end + grid
        pseudo.append(CohortPatient((p.id, int(j)), regimen, p.covariates,
                                    Observations.of(times, [PAIN] * len(times), np.zeros(len(times)))))
    bound = bind(spec, Cohort(tuple(pseudo), "gaps"), random_effects=())
    return bound, relief_table(bound, half_lives_h, spacing=0.1), grid


def predicted_gaps(table: tuple, spread: ReliefSpread, threshold: float = 0.3, draws: int = 200,
                   seed: int = 1) -> np.ndarray:
    """Relief durations (days; inf beyond the horizon; 0 when relief never reaches the threshold) of a
    responder after each gap's course (``table`` from :func:`after_courses`), for ``draws`` patients drawn
    from ``spread``: (gaps, draws)."""
    bound, tab, grid = table
    n = bound.n_patients
    rng = np.random.default_rng(seed)
    eta_c = rng.normal(0.0, np.sqrt(spread.var_c50), draws)
    eta_t = rng.normal(0.0, np.sqrt(spread.var_half_life), draws)
    out = np.zeros((n, draws))
    if spread.emax <= threshold:
        return out
    layer, half_life = bound.relief, bound.relief_half_life
    shift = np.log(threshold / spread.emax / (1 - threshold / spread.emax)) / spread.gamma
    log_c50 = np.log(bound.typical[layer.c50] * spread.c50_factor)
    log_half_life = np.log(bound.typical[half_life] * spread.half_life_factor)
    who = np.arange(n)
    for d in range(draws):  # relief < threshold where log Ce < log C50 + eta_C + shift
        log_ce = tab.at(log_half_life + eta_t[d], who)[0]
        out[:, d] = _first_fall(grid / DAY, log_ce, log_c50 + eta_c[d] + shift)
    return out


def _first_fall(days: np.ndarray, log_ce: np.ndarray, level: np.ndarray) -> np.ndarray:
    """Days (rows,) until log Ce, having been at or above ``level``, first falls below it (linear between
    days); 0 when it never reaches the level, inf when it is still above it at the horizon."""
    level = np.asarray(level, dtype=float).reshape(-1, 1)
    above = log_ce >= level
    reached = above.any(axis=1)
    peak = np.argmax(np.where(np.isfinite(log_ce), log_ce, -np.inf), axis=1)
    after = np.arange(log_ce.shape[1])[None, :] >= peak[:, None]
    below = after & ~above
    has = below.any(axis=1)
    k = np.argmax(below, axis=1)
    prev = np.maximum(k - 1, 0)
    rows = np.arange(len(k))
    y0, y1 = log_ce[rows, prev], log_ce[rows, k]
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.clip(np.where(np.isfinite(y1) & (y0 != y1), (y0 - level[:, 0]) / (y0 - y1), 1.0), 0.0, 1.0)
    t = days[prev] + frac * (days[k] - days[prev])
    return np.where(~reached, 0.0, np.where(has, t, np.inf))


@dataclass(frozen=True)
class GapErrors:
    """How a model's median relief duration predicts the gap the clinic left, over the gaps of responders."""

    n_gaps: int
    median_abs_error_weeks: float
    coverage_90: float  # share of observed gaps inside the model's 90 % interval

    def as_dict(self) -> dict:
        return {"gaps": self.n_gaps, "median_abs_error_weeks": self.median_abs_error_weeks,
                "coverage_90": self.coverage_90}


def gap_errors(observed_h: np.ndarray, drawn_days: np.ndarray) -> GapErrors:
    """Median absolute error (weeks) of the drawn durations' median against the observed gaps, and how many
    observed gaps fall inside the 5-95 % range of the draws."""
    if len(observed_h) == 0:
        return GapErrors(0, float("nan"), float("nan"))
    observed = observed_h / DAY
    q = np.quantile(drawn_days, [0.05, 0.5, 0.95], axis=1, method="inverted_cdf")
    median = np.minimum(q[1], HORIZON_DAYS)
    error = np.abs(median - observed) / 7.0
    inside = (observed >= q[0]) & (observed <= q[2])
    return GapErrors(len(observed), float(np.median(error)), float(np.mean(inside)))
