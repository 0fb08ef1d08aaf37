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
    eta = np.random.default_rng(0).normal(0, 0.5, (6, 3))
    pred, _g, _c = fn._predict(factors, eta, np.zeros(6, int), np.arange(6))
    direct = bound.predict({k: v for k, v in factors.items()}, eta, np.arange(6), np.ones(6, bool))
    scores = bound.obs_mask & (bound.obs_kind == -1)
    # the table's Hermite interpolation is good to about 5e-7 of the concentration; pain scores are 0-10
    assert np.max(np.abs(direct - pred)[scores]) < 1e-5


def test_first_and_second_derivatives_in_eta(small):
    bound, fn, factors = small
    rng = np.random.default_rng(1)
    eta = rng.normal(0, 0.5, (6, 3))
    weights = rng.normal(size=(6, bound.obs_time.shape[1]))
    rows = (np.zeros(6, int), np.arange(6))
    _pred, g, curvature = fn._predict(factors, eta, *rows)
    h = 1e-5
    second = curvature(weights)
    for j in range(3):
        e = np.zeros(3)
        e[j] = h
        pp, gp, _ = fn._predict(factors, eta + e, *rows)
        pm, gm, _ = fn._predict(factors, eta - e, *rows)
        scale = np.max(np.abs(g)) + 1e-12
        assert np.max(np.abs((pp - pm) / (2 * h) - g[..., j])) < 1e-6 * scale
        numeric = np.einsum("rw,rwa->ra", weights, (gp - gm) / (2 * h))  # d/d eta_j of sum w g_a
        assert np.allclose(second[..., :, j], numeric, rtol=1e-5, atol=1e-6 * np.abs(numeric).max())


def test_score_likelihood_derivatives(small):
    _bound, fn, _factors = small
    rng = np.random.default_rng(2)
    y = fn.scores.y
    pred = np.clip(y + rng.normal(0, 2, y.shape), -3, 13)
    pred = np.concatenate([pred, pred + 6, pred - 6])  # far in both tails too
    nn = np.tile(np.arange(len(y)), 3)
    sd = np.full(len(nn), 1.3)
    f0, d1, d2 = fn._obs_terms(pred, sd, fn.scores, nn)
    h = 1e-5
    cols = np.flatnonzero((fn.scores.weight > 0).any(axis=0))[:40]
    up, down = pred.copy(), pred.copy()
    up[:, cols] += h
    down[:, cols] -= h
    fu, fd = fn._obs_terms(up, sd, fn.scores, nn)[0], fn._obs_terms(down, sd, fn.scores, nn)[0]
    # every column moved at once: the change of each row's total is the sum of its columns' slopes
    assert np.allclose((fu - fd) / (2 * h), d1[:, cols].sum(axis=-1), rtol=1e-5, atol=1e-5)
    assert np.allclose((fu - 2 * f0 + fd) / h**2, d2[:, cols].sum(axis=-1), rtol=1e-3, atol=1e-2)
    assert np.all(np.isfinite(d1)) and np.all(d2 >= 0)


def test_distinct_scores_give_the_same_likelihood_for_a_constant_prediction(small):
    """A non-responder's prediction is the same at every time; reading it against each patient's distinct
    scores with their counts must give exactly the likelihood of all the scores in time order."""
    _bound, fn, _factors = small
    n = len(fn.scores.y)
    nn = np.arange(n)
    level = np.random.default_rng(3).uniform(1, 9, n)
    sd = np.full(n, 1.1)
    full = fn._obs_terms(np.repeat(level[:, None], fn.scores.y.shape[1], axis=1), sd, fn.scores, nn)
    short = fn._obs_terms(np.repeat(level[:, None], fn.distinct.y.shape[1], axis=1), sd, fn.distinct, nn)
    assert fn.distinct.y.shape[1] < fn.scores.y.shape[1] / 3
    assert np.allclose(full[0], short[0], rtol=1e-12)
    for a, b in zip(full[1:], short[1:], strict=True):
        assert np.allclose(a.sum(axis=-1), b.sum(axis=-1), rtol=1e-10)
