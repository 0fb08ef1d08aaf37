"""Recovery of known parameters: 200 virtual patients simulated from the model, each fitted alone.

Patients' random effects are drawn from the prior, so averaged over patients the MAP error has mean 0
(Bayesian unbiasedness) and 90 % Laplace intervals should cover the truth about 90 % of the time.
"""

from __future__ import annotations

import numpy as np
import pytest

from ketaplan.engine.build import Covariates
from ketaplan.individualize.estimate import fit
from ketaplan.individualize.observations import PAIN, Observations
from ketaplan.individualize.problem import spec_problem
from ketaplan.regimen.text import parse_regimen
from ketaplan.simulation.run import model_for

N_PATIENTS = 200
REGIMEN = parse_regimen("20 mg/h IV for 5 d")
LEVEL_TIMES = [2.0, 24.0, 72.0, 118.0, 122.0, 126.0]
NK_TIMES = [24.0, 72.0, 118.0, 126.0]
SCORE_TIMES = [0.0] + [120.0 + 168.0 * w for w in range(1, 11)]


@pytest.fixture(scope="module")
def recovery():
    return simulate_and_fit()


def simulate_and_fit():
    """Truth, MAP and Laplace SD of each patient's random effects."""
    spec = model_for(REGIMEN)
    rng = np.random.default_rng(20261125)
    times = LEVEL_TIMES + NK_TIMES + SCORE_TIMES
    outputs = ["ketamine"] * len(LEVEL_TIMES) + ["norketamine"] * len(NK_TIMES) + [PAIN] * len(SCORE_TIMES)
    template = Observations.of(times, outputs, np.ones(len(times)))
    truths, estimates, sds = [], [], []
    for i in range(N_PATIENTS):
        cov = Covariates.of(float(rng.uniform(55, 105)), float(rng.uniform(25, 75)), "female" if i % 2 else "male")
        problem, _ = spec_problem(spec, REGIMEN, cov, template)
        eta = rng.multivariate_normal(np.zeros(problem.k), problem.omega)
        pred = problem.predict(eta[None])[0]
        value = pred.copy()
        level = ~template.is_score
        value[level] = pred[level] * (1 + problem.residual.proportional[level] * rng.standard_normal(level.sum()))
        score = template.is_score
        value[score] = np.clip(np.round(pred[score] + problem.residual.score_sd[score] * rng.standard_normal(
            score.sum())), 0, 10)
        problem, _ = spec_problem(spec, REGIMEN, cov, Observations.of(times, outputs, value))
        est = fit(problem)
        truths.append(eta)
        estimates.append(est.eta)
        sds.append(est.sd)
    return problem.eta_names, np.array(truths), np.array(estimates), np.array(sds)


def test_estimates_are_unbiased_within_monte_carlo_error(recovery):
    names, truth, est, _ = recovery
    error = est - truth
    se = error.std(axis=0, ddof=1) / np.sqrt(len(error))
    for j, name in enumerate(names):
        assert abs(error[:, j].mean()) < 3 * se[j], (name, error[:, j].mean(), se[j])


def test_ninety_percent_intervals_cover_the_truth_85_to_95_percent(recovery):
    names, truth, est, sd = recovery
    covered = np.abs(est - truth) <= 1.6449 * sd
    assert 0.85 <= covered.mean() <= 0.95, covered.mean(axis=0)
    for j, name in enumerate(names):  # per parameter, with room for 200-patient binomial noise (SE 2.1 %)
        assert 0.82 <= covered[:, j].mean() <= 0.97, (name, covered[:, j].mean())


def test_the_data_inform_what_they_should(recovery):
    """Levels pin clearance; the diary narrows the relief C50."""
    names, _, _, sd = recovery
    prior_sd = {"k10": 0.368, "RELIEF_C50": 0.472}
    assert np.median(sd[:, names.index("k10")]) < 0.5 * prior_sd["k10"]
    assert np.median(sd[:, names.index("RELIEF_C50")]) < 0.95 * prior_sd["RELIEF_C50"]
