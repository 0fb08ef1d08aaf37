"""How long relief lasts after each course and when the next one is due, over the patients the model
describes: a median with a 90 % interval instead of one typical patient's line.

The patient's random effects (PK and relief: C50, relief-site half-life) are drawn from the model's
between-patient variability (or a fitted patient's posterior); relief is computed for each draw as a
responder, and each course's duration is the time from its end until relief falls below the threshold. The
probability of response (the model's mixture) is reported beside it: a non-responder gets no relief worth
timing a next course for. Parameter uncertainty of the population values is not included (the published
models give none; a learned model's covariance could be added)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ketaplan.individualize.problem import SpecModel, prior_problem, random_effects
from ketaplan.models.spec import ModelSpec
from ketaplan.population.metrics import relief_days
from ketaplan.regimen.courses import administrations, group_courses
from ketaplan.regimen.events import Regimen
from ketaplan.simulation.patient import Patient
from ketaplan.simulation.run import relief_layer

if TYPE_CHECKING:  # the estimation module (SciPy's optimisers and distributions) is needed only for a fit
    from ketaplan.individualize.estimate import Estimate

DRAWS = 400
WEEKS_AFTER_LAST = 30
QUANTILES = (0.05, 0.5, 0.95)


@dataclass(frozen=True)
class CourseSpread:
    """Relief after one course: days (p5, p50, p95; inf = still above the threshold when the next course
    starts or at the horizon), the due time (h from the first dose) of the same quantiles."""

    course: int
    days: tuple[float, float, float]
    due_h: tuple[float, float, float]
    share_beyond: float  # responders still relieved when the next course starts (or at the horizon)
    drawn_days: np.ndarray  # every draw's duration (days; inf as above)

    def share_at_least(self, days: float) -> float:
        """The share of responders whose relief lasts at least ``days``."""
        return float(np.mean(self.drawn_days >= days))


@dataclass(frozen=True)
class ReliefSpreadResult:
    p_response: float
    threshold: float
    draws: int
    courses: tuple[CourseSpread, ...]


def prior_model(spec: ModelSpec, regimen: Regimen, patient: Patient) -> SpecModel:
    """The model of a patient with nothing measured yet."""
    covariates = patient.covariates()
    return SpecModel(spec, regimen, covariates, random_effects(spec, regimen, covariates)[0])


def relief_spread(spec: ModelSpec, regimen: Regimen, patient: Patient, threshold: float = 0.3,
                  draws: int = DRAWS, seed: int = 1, estimate: Estimate | None = None,
                  model: SpecModel | None = None) -> ReliefSpreadResult | None:
    """Per course, the spread of relief duration and next-course time over ``draws`` patients like this one
    (or over a fitted patient's posterior: ``estimate`` and ``model``); None without a relief layer."""
    layer = relief_layer(spec)
    if layer is None:
        return None
    if estimate is None or model is None:  # the population: random effects drawn from omega
        model = prior_model(spec, regimen, patient)
        omega = prior_problem(model).omega
        rng = np.random.default_rng(seed)
        etas = rng.multivariate_normal(np.zeros(len(omega)), omega, size=draws, method="eigh") if len(omega) \
            else np.zeros((draws, 0))
    else:
        etas = estimate.draws(draws, seed)
    courses = group_courses(administrations(regimen.resolve(float(patient.weight))))
    ends = [c.end for c in courses]
    untils = [c.start for c in courses[1:]] + [ends[-1] + WEEKS_AFTER_LAST * 168.0]
    grid = np.unique(np.concatenate([np.arange(e, u + 1e-9, 12.0) for e, u in zip(ends, untils, strict=True)]
                                    + [np.array(untils)]))
    relief = model.curves(etas, grid, ["relief"])["relief"]
    out = []
    for k, (end, until) in enumerate(zip(ends, untils, strict=True)):
        days, censored = relief_days(grid, relief, end, until, threshold)
        days = np.where(censored, np.inf, days)
        q = np.quantile(days, QUANTILES, method="inverted_cdf")
        out.append(CourseSpread(k + 1, tuple(float(x) for x in q), tuple(float(end + 24 * d) for d in q),
                                float(np.mean(censored)), days))
    p = layer.p_response
    p_response = float(spec.parameters[p].value) if isinstance(p, str) else float(p)
    return ReliefSpreadResult(p_response, threshold, draws, tuple(out))
