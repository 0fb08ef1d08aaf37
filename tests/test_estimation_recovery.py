"""Simulation and re-estimation: 100 datasets drawn from a known 2-compartment model with correlated ETAs and
combined error, each estimated with FOCE-I and its covariance step.

The data are simulated here in closed form (eigen-decomposition of the 2 x 2 rate matrix), independently of
the engine. Checked: every run converges; the fixed effects are unbiased within their Monte Carlo error and
their Wald intervals cover the truth about 95 % of the time (over the runs with a covariance step; a run whose
estimate lies on the boundary, ETAs correlated 1, has none, as in NONMEM); the variances, whose maximum-likelihood
estimates carry a known small-sample downward bias (with 60 subjects a few per cent; FOCE-I agrees with the
exact likelihood here), are within 12 % and their intervals on the log scale (Wald intervals of a
variance are skewed) cover about 95 %.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd
import pytest

import ketaplan

TRUTH = {"THETA(1)": 5.0, "THETA(2)": 20.0, "THETA(3)": 10.0, "THETA(4)": 40.0, "OMEGA(1,1)": 0.04,
         "OMEGA(2,1)": 0.02, "OMEGA(2,2)": 0.06, "SIGMA(1,1)": 0.01, "SIGMA(2,2)": 0.04}
MODEL = {"advan": 3,
         "theta": [{"init": 4.0, "lower": 0}, {"init": 25.0, "lower": 0}, {"init": 8.0, "lower": 0},
                   {"init": 50.0, "lower": 0}],
         "parameters": {"CL": "THETA(1) * exp(ETA(1))", "V1": "THETA(2) * exp(ETA(2))", "Q": "THETA(3)",
                        "V2": "THETA(4)"},
         "omega": [{"block": [[0.05], [0.01, 0.1]]}], "sigma": {"proportional": 0.02, "additive": 0.1}}
TIMES = (0.25, 0.5, 1, 2, 4, 8, 12, 24, 48)
REPLICATES = 100
SUBJECTS = 60
VARIANCES = ("OMEGA(1,1)", "OMEGA(2,2)", "SIGMA(1,1)", "SIGMA(2,2)")


def simulate(seed: int) -> pd.DataFrame:
    """IV bolus of 100 mg; the truth above; Y = F (1 + EPS1) + EPS2."""
    rng = np.random.default_rng(seed)
    om = np.array([[TRUTH["OMEGA(1,1)"], TRUTH["OMEGA(2,1)"]], [TRUTH["OMEGA(2,1)"], TRUTH["OMEGA(2,2)"]]])
    eta = rng.multivariate_normal([0, 0], om, size=SUBJECTS)
    rows = []
    for i in range(SUBJECTS):
        cl, v1 = TRUTH["THETA(1)"] * np.exp(eta[i, 0]), TRUTH["THETA(2)"] * np.exp(eta[i, 1])
        q, v2 = TRUTH["THETA(3)"], TRUTH["THETA(4)"]
        lam, vec = np.linalg.eig(np.array([[-(cl + q) / v1, q / v2], [q / v1, -q / v2]]))
        c0 = np.linalg.solve(vec, [100.0, 0.0])
        rows.append({"ID": i + 1, "TIME": 0.0, "AMT": 100.0, "EVID": 1, "MDV": 1, "DV": 0.0})
        for t in TIMES:
            f = (vec @ (c0 * np.exp(lam * t)))[0] / v1
            y = f * (1 + rng.normal(0, np.sqrt(TRUTH["SIGMA(1,1)"]))) + rng.normal(0, np.sqrt(TRUTH["SIGMA(2,2)"]))
            rows.append({"ID": i + 1, "TIME": t, "AMT": 0.0, "EVID": 0, "MDV": 0, "DV": y})
    return pd.DataFrame(rows)


def fit(seed: int) -> dict:
    result = ketaplan.estimate(simulate(seed), MODEL)
    doc = result.to_json_dict()
    return {"converged": result.converged, **doc["theta"], **doc["omega"], **doc["sigma"],
            **{f"se {k}": v for k, v in doc["se"].items()},
            "boundary": any("almost perfectly correlated" in str(w) for w in result.warnings)}


@pytest.fixture(scope="module")
def replicates() -> pd.DataFrame:
    with ProcessPoolExecutor(max_workers=2) as pool:
        return pd.DataFrame(list(pool.map(fit, range(REPLICATES))))


def test_every_replicate_converges_and_the_covariance_step_fails_only_on_the_boundary(replicates):
    """Some datasets have their maximum likelihood at a correlation of 1 between the ETAs (seed 42 here: both
    the default and the true initial estimates end there). There the covariance step cannot be done, as in
    NONMEM; the run must say so, and it must stay rare."""
    assert replicates["converged"].all()
    without = replicates.filter(like="se ").isna().any(axis=1)
    assert (replicates["boundary"][without]).all()
    assert without.mean() <= 0.03


@pytest.mark.parametrize("name", ["THETA(1)", "THETA(2)", "THETA(3)", "THETA(4)", "OMEGA(2,1)"])
def test_fixed_effects_are_unbiased_and_their_intervals_cover(replicates, name):
    est, truth = replicates[name], TRUTH[name]
    mcse = est.std() / np.sqrt(len(est))
    assert abs(est.mean() - truth) < 3 * mcse
    with_se = replicates[replicates[f"se {name}"].notna()]
    est, se = with_se[name], with_se[f"se {name}"]
    cover = ((est - 1.96 * se <= truth) & (truth <= est + 1.96 * se)).mean()
    assert 0.85 <= cover <= 1.0


@pytest.mark.parametrize("name", VARIANCES)
def test_variances_are_close_and_their_log_scale_intervals_cover(replicates, name):
    est, truth = replicates[name], TRUTH[name]
    assert abs(est.mean() / truth - 1) < 0.12
    with_se = replicates[replicates[f"se {name}"].notna()]
    est, se = with_se[name], with_se[f"se {name}"]
    s = se / est
    cover = ((est * np.exp(-1.96 * s) <= truth) & (truth <= est * np.exp(1.96 * s))).mean()
    assert 0.85 <= cover <= 1.0
