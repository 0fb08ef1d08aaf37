"""Simulated clinics with a known truth, for checking what learning recovers (tests, benchmarks, demos).

Each virtual patient gets covariates like the adults with neuropathic pain of the built-in population,
random effects from the model's variability, and a responder draw; courses of 20 mg/h IV for 5 days are
repeated when the patient's true relief falls below 30 % (between 4 and 20 weeks later; non-responders
stop after two courses); one plasma level per course, drawn on day 2-4 of the infusion with the model's
residual error; and a weekly pain score (an integer: the true score plus a normal day-to-day error,
rounded and kept within 0-10) with about a third of the weeks missing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ketaplan.engine.build import Covariates
from ketaplan.estimation.library_cohort import Cohort, CohortPatient, bind
from ketaplan.individualize.observations import PAIN, Observations
from ketaplan.models.spec import ModelSpec
from ketaplan.population.variability import eta_parameters, omega_matrix
from ketaplan.regimen.events import DoseEvent, Regimen
from ketaplan.simulation.run import analyte_outputs

WEEK = 168.0
RATE, DAYS = 20.0, 5


@dataclass(frozen=True)
class Truth:
    """The values a simulated clinic is drawn from (factors on the model's typical values, and its variability)."""

    typical: Mapping[str, float]
    p_response: float
    years: float = 3.0
    missing_weeks: float = 0.33


def simulate_cohort(spec: ModelSpec, truth: Truth, n: int, seed: int) -> tuple[Cohort, np.ndarray]:
    """A clinic of ``n`` patients drawn from ``truth``; also returns who responds (bool, (n,))."""
    rng = np.random.default_rng(seed)
    weight = np.clip(79 * np.exp(rng.normal(0, 0.24, n)), 45, 160)
    age = np.clip(rng.normal(52, 12, n), 18, 85)
    sex = rng.choice(np.array(["female", "male"], dtype=object), n, p=[0.7, 0.3])
    names = eta_parameters(spec)
    eta = rng.multivariate_normal(np.zeros(len(names)), omega_matrix(spec), size=n)
    responder = rng.random(n) < truth.p_response
    parent = analyte_outputs(spec)[0]
    patients = []
    horizon = truth.years * 52 * WEEK
    for i in range(n):
        cov = Covariates.of(weight[i], age[i], sex[i])
        courses = _courses(spec, truth, cov, eta[i], names, responder[i], horizon, rng)
        regimen = Regimen(tuple(DoseEvent(time=t, amount=RATE * DAYS * 24, rate=RATE) for t in courses))
        level_times = np.array([t + 24 * rng.uniform(2, 4) for t in courses])
        weeks = np.arange(0, horizon, WEEK)[1:]
        diary = weeks[rng.random(len(weeks)) > truth.missing_weeks]
        times = np.concatenate([[0.0], level_times, diary])
        outputs = np.array([PAIN] + [parent] * len(level_times) + [PAIN] * len(diary), dtype=object)
        placeholder = Observations.of(times, outputs, np.zeros(len(times)))
        patients.append(CohortPatient(i + 1, regimen, cov, placeholder))
    cohort = Cohort(tuple(patients), "simulated clinic")
    return _with_values(spec, truth, cohort, eta, responder, rng), responder


def _courses(spec, truth, cov, eta, names, responder, horizon, rng) -> list[float]:
    """Course start times: the next one when relief falls below 30 % (4-20 weeks), two for non-responders."""
    starts = [0.0]
    while True:
        if not responder and len(starts) == 2:
            return starts
        days = starts[-1] + 24.0 * np.arange(20 * 7)
        trial = Cohort((CohortPatient(0, Regimen(tuple(DoseEvent(time=t, amount=RATE * DAYS * 24, rate=RATE)
                                                          for t in starts)), cov,
                                      Observations.of(days, [PAIN] * len(days), np.zeros(len(days)))),))
        bound = bind(spec, trial)
        relief = _relief(bound, spec, truth, eta[None], np.array([True]))[0] if responder else None
        if relief is None:
            gap = 8 * WEEK
        else:
            end = starts[-1] + DAYS * 24
            t = bound.obs_time[0]
            after = (t > end) & (relief < 0.3)
            gap = np.clip((t[after][0] if after.any() else t[-1]) - starts[-1] + WEEK, 4 * WEEK, 20 * WEEK)
        nxt = starts[-1] + float(gap) + 24 * rng.uniform(-3, 3)
        if nxt + DAYS * 24 > horizon:
            return starts
        starts.append(nxt)


def _relief(bound, spec, truth, eta, responder) -> np.ndarray:
    """The true relief (1 - pain / baseline) at the bound cohort's times."""
    factors = {name: np.full(len(eta), truth.typical[name] / float(spec.parameters[name].value))
               for name in truth.typical}
    who = np.zeros(len(eta), dtype=int)
    pain = bound.predict(factors, eta, who, responder)
    baseline = bound.predict(factors, eta, who, np.zeros(len(eta), dtype=bool))
    return 1 - pain / baseline


def _with_values(spec, truth, cohort, eta, responder, rng) -> Cohort:
    """The cohort with measured values drawn from the truth (levels with residual error, integer scores)."""
    bound = bind(spec, cohort)
    n = len(cohort)
    factors = {name: np.full(n, truth.typical[name] / float(spec.parameters[name].value)) for name in truth.typical}
    pred = bound.predict(factors, eta, np.arange(n), responder)
    sd_name = bound.relief.score_sd
    score_sd = truth.typical.get(sd_name, float(spec.parameters[sd_name].value))
    patients = []
    for i, p in enumerate(cohort.patients):
        o = p.observations
        f = pred[i, : len(o)]
        values = np.empty(len(o))
        score = o.output == PAIN
        values[score] = np.clip(np.round(f[score] + rng.normal(0, score_sd, score.sum())), 0, 10)
        for name, (prop, add) in bound.residual.items():
            hit = o.output == name
            sd = np.sqrt((prop * f[hit]) ** 2 + add**2)
            values[hit] = np.maximum(f[hit] + rng.normal(0, 1, hit.sum()) * sd, 0.1)
        patients.append(CohortPatient(p.id, p.regimen, p.covariates, Observations.of(o.time, o.output, values)))
    return Cohort(tuple(patients), cohort.label)
