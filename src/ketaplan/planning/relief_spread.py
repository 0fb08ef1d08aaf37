"""How long relief lasts after each course and when the next one is due, over the patients the model
describes: a median with a 90 % interval instead of one typical patient's line.

The patient's random effects (PK and relief: C50, relief-site half-life) are drawn from the model's
between-patient variability (or a fitted patient's posterior); relief is computed for each draw as a
responder, and each course's duration is the time from its end until relief falls below the threshold. The
probability of response (the model's mixture) is reported beside it: a non-responder gets no relief worth
timing a next course for.

Where the model says how sure its typical values are (a learned model's covariance step,
:class:`~ketaplan.models.spec.TypicalUncertainty`), each drawn patient also gets their own draw of the
typical values: on the log scale a typical value's error adds to the patient's random effect, so the interval
covers both the spread between patients and the uncertainty of the population values; the probability of
response then gets its own 90 % interval. A fitted patient's posterior (``estimate``) was found with the same
population prior (:func:`~ketaplan.individualize.problem.spec_problem`), so it includes that uncertainty where
their data do not inform it. The published models give no joint uncertainty, so their intervals are
between-patient variability only. Uncertainty of the variances themselves is not drawn."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ketaplan.individualize.problem import SpecModel, population_effects, prior_problem
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
Z90 = 1.6448536269514722
"""Standard normal quantile of 0.95: a central 90 % interval is the estimate +/- Z90 SD."""


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
    p_response_90: tuple[float, float] | None = None  # with parameter uncertainty of the probability itself
    parameter_uncertainty: bool = False  # the typical values' uncertainty is in the intervals


def prior_model(spec: ModelSpec, regimen: Regimen, patient: Patient) -> SpecModel:
    """The model of a patient with nothing measured yet."""
    covariates = patient.covariates()
    return SpecModel(spec, regimen, covariates, population_effects(spec, regimen, covariates)[0])


def relief_spread(spec: ModelSpec, regimen: Regimen, patient: Patient, threshold: float = 0.3,
                  draws: int = DRAWS, seed: int = 1, estimate: Estimate | None = None,
                  model: SpecModel | None = None) -> ReliefSpreadResult | None:
    """Per course, the spread of relief duration and next-course time over ``draws`` patients like this one
    (or over a fitted patient's posterior: ``estimate`` and ``model``); None without a relief layer."""
    layer = relief_layer(spec)
    if layer is None:
        return None
    p_response, p_response_90 = response_probability(spec, layer.p_response)
    uncertain = spec.uncertainty is not None
    if estimate is None or model is None:  # the population: random effects (and typical-value errors) drawn
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
    return ReliefSpreadResult(p_response, threshold, draws, tuple(out), p_response_90, uncertain)


def response_probability(spec: ModelSpec, p_response: str | float) -> tuple[float, tuple[float, float] | None]:
    """The probability of response and, where the model gives its uncertainty (logit scale), its 90 % interval."""
    p = float(spec.parameters[p_response].value) if isinstance(p_response, str) else float(p_response)
    u = spec.uncertainty
    if u is None or p_response not in u.parameters or not 0 < p < 1:
        return p, None
    j = u.parameters.index(p_response)
    if u.transforms[j] != "logit":
        return p, None
    half = Z90 * float(np.sqrt(u.covariance[j][j]))
    logit = np.log(p / (1.0 - p))
    return p, (float(1.0 / (1.0 + np.exp(-(logit - half)))), float(1.0 / (1.0 + np.exp(-(logit + half)))))
