"""The clinic-learning objective's pieces against independent computations.

* Predicted pain scores from the relief-site table against the engine itself (``BoundCohort.predict``).
* Their first derivatives in eta and their second derivatives (contracted with weights, as the Laplace step
  uses them) against central differences.
* The interval-censored score likelihood's derivatives in the prediction against central differences.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from ketaplan.estimation.library_cohort import bind
from ketaplan.estimation.library_estimation import Learnable, Objective, Prior
from ketaplan.estimation.simulated_cohort import Truth, simulate_cohort
from ketaplan.regimen.text import parse_regimen
from ketaplan.simulation.run import model_for

PRIORS = Path(__file__).parent.parent / "src" / "ketaplan" / "estimation" / "priors" / "dahan_2011_crps_pkpd.yaml"


def published_prior(weight: float = 1.0) -> Prior:
    raw = yaml.safe_load(PRIORS.read_text())
    return Prior(tuple(Learnable(d["name"], d["transform"], d["sd"], d["source"]) for d in raw["learn"]),
                 tuple(raw["variances"]["parameters"]), raw["variances"]["nu"], weight)


@pytest.fixture(scope="module")
def small():
    spec = model_for(parse_regimen("20 mg/h IV for 5 d"))
    cohort, _ = simulate_cohort(spec, Truth({"RELIEF_C50": 0.4, "RELIEF_HALF_LIFE": 20.0}, 0.7), 6, seed=3)
    prior = published_prior()
    bound = bind(spec, cohort, prior.variances)
    fn = Objective(bound, prior)
    return bound, fn, fn._factors([fn.values(fn.initial())])


def test_scores_from_the_table_match_the_engine(small):
    bound, fn, factors = small
    eta = np.random.default_rng(0).normal(0, 0.5, (1, 6, 3))
    pred, _g, _c = fn._predict(factors, eta, np.ones((1, 6), bool))
    direct = bound.predict({k: v for k, v in factors.items()}, eta[0], np.arange(6), np.ones(6, bool))
    scores = bound.obs_mask & (bound.obs_kind == -1)
    # the table's Hermite interpolation is good to about 5e-7 of the concentration; pain scores are 0-10
    assert np.max(np.abs(direct - pred[0])[scores]) < 1e-5


def test_first_and_second_derivatives_in_eta(small):
    bound, fn, factors = small
    rng = np.random.default_rng(1)
    eta = rng.normal(0, 0.5, (1, 6, 3))
    weights = rng.normal(size=(1, 6, bound.obs_time.shape[1]))
    act = np.ones((1, 6), bool)
    _pred, g, curvature = fn._predict(factors, eta, act)
    h = 1e-5
    second = curvature(weights)
    for j in range(3):
        e = np.zeros(3)
        e[j] = h
        pp, gp, _ = fn._predict(factors, eta + e, act)
        pm, gm, _ = fn._predict(factors, eta - e, act)
        scale = np.max(np.abs(g)) + 1e-12
        assert np.max(np.abs((pp - pm) / (2 * h) - g[..., j])) < 1e-6 * scale
        numeric = np.einsum("knw,knwa->kna", weights, (gp - gm) / (2 * h))  # d/d eta_j of sum w g_a
        assert np.allclose(second[..., :, j], numeric, rtol=1e-5, atol=1e-6 * np.abs(numeric).max())


def test_score_likelihood_derivatives(small):
    _bound, fn, _factors = small
    rng = np.random.default_rng(2)
    y = fn.scores[0]
    pred = np.clip(y + rng.normal(0, 2, y.shape), -3, 13)
    pred = np.concatenate([pred, pred + 6, pred - 6])  # far in both tails too
    sd = np.array([1.3, 1.3, 1.3])
    f0, d1, d2 = fn._obs_terms(pred, sd)
    h = 1e-5
    used = fn.scores[4]
    for k in range(3):
        up, down = pred.copy(), pred.copy()
        for w in np.flatnonzero(used[0].any(axis=0))[:40]:
            up[k, :, w] += h
            down[k, :, w] -= h
        fu, fd = fn._obs_terms(up, sd)[0], fn._obs_terms(down, sd)[0]
        # every column moved at once: the change of each patient's total is the sum of its columns' slopes
        cols = np.flatnonzero(used[0].any(axis=0))[:40]
        numeric = (fu[k] - fd[k]) / (2 * h)
        assert np.allclose(numeric, d1[k][:, cols].sum(axis=-1), rtol=1e-5, atol=1e-5)
        numeric2 = (fu[k] - 2 * f0[k] + fd[k]) / h**2
        assert np.allclose(numeric2, d2[k][:, cols].sum(axis=-1), rtol=1e-3, atol=1e-2)
    assert np.all(np.isfinite(d1)) and np.all(d2 >= 0)
