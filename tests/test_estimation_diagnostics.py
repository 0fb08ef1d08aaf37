"""Diagnostics of a population fit against NONMEM 7.4's phenobarbital run and against direct computations.

NONMEM's numbers come from pharmpy's example models (pharmpy-core, pharmpy/internals/example_models):
pheno.tab ($TABLE ID TIME DV CIPREDI PRED RES CWRES at the final FOCE-I estimates, 744 records, 155
observations), pheno.lst (ETABAR, ETASHRINKSD, EPSSHRINKSD) and pheno.ext (final estimates).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.linalg
from scipy.stats import norm

from ketaplan.estimation.api import estimate
from ketaplan.estimation.data import population_model, prepare
from ketaplan.estimation.diagnostics import npde, residuals
from ketaplan.estimation.parameters import ParameterSpace
from ketaplan.estimation.replicates import simulate_replicates
from ketaplan.nonmem.predpp import load_model

DATA = Path(__file__).parent / "data"

# pheno.tab rows (0-based record, TIME, PRED, CIPREDI, RES, CWRES); records 0 and 12 are doses.
NONMEM_ROWS = [
    (0, 0.0, 18.143, 18.044, None, None),
    (1, 2.0, 17.970, 17.881, -0.67046, -0.40104),
    (11, 112.5, 28.649, 28.966, 2.3510, 0.58781),
    (12, 0.0, 10.160, 11.592, None, None),
    (13, 2.0, 10.063, 11.485, -0.36346, -1.2788),
    (19, 63.5, 18.402, 21.153, 6.1975, 1.6707),
    (366, 61.5, 31.342, 24.270, -14.642, -3.2237),
    (460, 99.0, 26.442, 32.001, 11.558, 2.2408),
    (550, 95.5, 25.823, 18.950, -11.923, -3.1989),
]
# pheno.tab summed: PRED over all 744 records; CWRES and CWRES^2 and RES over the 155 observations.
NONMEM_PRED_SUM = 19981.4965
NONMEM_CWRES_SUM, NONMEM_CWRES_SQUARES = -0.616614, 155.417216
NONMEM_RES_SUM = 19.992361
# pheno.lst: ETABAR, ETASHRINKSD(%), EPSSHRINKSD(%).
NONMEM_ETABAR = (1.6884e-03, -1.1976e-03)
NONMEM_ETA_SHRINKAGE = (47.580, 13.581)
NONMEM_EPS_SHRINKAGE = 21.198


@pytest.fixture(scope="module")
def pheno():
    return estimate(DATA / "pheno.csv", DATA / "pheno.yaml", covariance=False)


@pytest.fixture(scope="module")
def pheno_table(pheno):
    return pheno.table(npde_replicates=500, seed=3)


def test_pred_and_ipred_on_every_record_match_nonmem(pheno_table):
    table = pheno_table
    assert len(table) == 744 and (table["MDV"] == 0).sum() == 155
    assert table["PRED"].sum() == pytest.approx(NONMEM_PRED_SUM, rel=1e-4)
    for row, time, pred, ipred, _res, _cwres in NONMEM_ROWS:
        assert table["TIME"][row] == time
        assert table["PRED"][row] == pytest.approx(pred, rel=1.2e-4)  # 5 printed digits, estimates to 2e-5
        assert table["IPRED"][row] == pytest.approx(ipred, rel=1.2e-4)


def test_res_and_cwres_match_nonmem(pheno_table):
    obs = pheno_table[pheno_table["MDV"] == 0]
    for row, _time, _pred, _ipred, res, cwres in NONMEM_ROWS:
        if res is None:
            assert np.isnan(pheno_table.loc[row, ["RES", "WRES", "CWRES", "IWRES", "NPDE"]].astype(float)).all()
            continue
        assert pheno_table["RES"][row] == pytest.approx(res, abs=2e-3)
        assert pheno_table["CWRES"][row] == pytest.approx(cwres, abs=1e-3)
    assert obs["CWRES"].sum() == pytest.approx(NONMEM_CWRES_SUM, abs=0.01)  # 155 values, each within 2e-4
    assert (obs["CWRES"] ** 2).sum() == pytest.approx(NONMEM_CWRES_SQUARES, rel=1e-4)
    assert obs["RES"].sum() == pytest.approx(NONMEM_RES_SUM, abs=0.08)  # PRED 2e-5 relative apart x 155


def test_shrinkage_and_etabar_match_nonmem(pheno):
    shrink = pheno.shrinkage()
    assert shrink["ETA(1)"] == pytest.approx(NONMEM_ETA_SHRINKAGE[0], abs=0.01)
    assert shrink["ETA(2)"] == pytest.approx(NONMEM_ETA_SHRINKAGE[1], abs=0.01)
    assert shrink["EPS"] == pytest.approx(NONMEM_EPS_SHRINKAGE, abs=0.01)
    etabar = pheno.etabar()
    assert etabar["ETA(1)"] == pytest.approx(NONMEM_ETABAR[0], abs=2e-5)
    assert etabar["ETA(2)"] == pytest.approx(NONMEM_ETABAR[1], abs=2e-5)
    assert pheno.to_json_dict()["shrinkage_sd_percent"] == shrink


def test_npde_of_the_fit_is_roughly_standard_normal(pheno_table):
    values = pheno_table["NPDE"].dropna()
    assert len(values) == 155
    assert abs(values.mean()) < 0.2 and 0.75 < values.var() < 1.25


# ------------------------------------------------------------------ direct computations on a small model
BOLUS = {"advan": 1, "theta": [{"init": 2.0, "lower": 0}, {"init": 20.0, "lower": 0}],
         "parameters": {"CL": "THETA(1) * exp(ETA(1))", "V": "THETA(2) * exp(ETA(2))"},
         "omega": [0.09, 0.04], "sigma": {"proportional": 0.02, "additive": 0.05}}
DOSE = 100.0


def _bolus_frame() -> pd.DataFrame:
    rows = []
    observations = {1: [(1.0, 4.1), (4.0, 3.0), (12.0, 1.1)], 2: [(0.5, 5.9), (6.0, 2.0)], 3: [(2.0, 3.5)]}
    for i, obs in observations.items():
        rows.append({"ID": i, "TIME": 0.0, "AMT": DOSE, "DV": 0.0, "EVID": 1, "MDV": 1})
        rows += [{"ID": i, "TIME": t, "AMT": 0.0, "DV": y, "EVID": 0, "MDV": 0} for t, y in obs]
    return pd.DataFrame(rows)


def _analytic(est, eta: np.ndarray, t: np.ndarray):
    """f = D/V exp(-CL/V t) and its derivatives with respect to ETA(1) (CL) and ETA(2) (V)."""
    cl, v = est.theta[0] * np.exp(eta[0]), est.theta[1] * np.exp(eta[1])
    k = cl / v
    f = DOSE / v * np.exp(-k * t)
    return f, np.column_stack([-f * k * t, f * (k * t - 1)])


def _inverse_root(v: np.ndarray) -> np.ndarray:
    return np.linalg.inv(np.real(scipy.linalg.sqrtm(v)))


@pytest.fixture(scope="module")
def bolus():
    model = population_model(load_model(BOLUS))
    data = prepare(model, _bolus_frame())
    est = ParameterSpace(model).initial()
    return data, est


def test_wres_and_cwres_against_analytic_derivatives(bolus):
    data, est = bolus
    eta = np.array([[0.1, -0.2], [-0.3, 0.15], [0.05, 0.05]])
    res = residuals(data, est, eta)
    sp, sa = est.sigma["proportional"], est.sigma["additive"]
    for i in range(3):
        mask = data.obs_mask[i]
        t, y = data.obs_time[i][mask], data.dv[i][mask]
        f0, g0 = _analytic(est, np.zeros(2), t)
        wres = _inverse_root(g0 @ est.omega @ g0.T + np.diag(sp * f0**2 + sa)) @ (y - f0)
        np.testing.assert_allclose(res.wres[i][mask], wres, rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(res.pred[i][mask], f0, rtol=1e-10)
        fh, gh = _analytic(est, eta[i], t)
        cwres = _inverse_root(gh @ est.omega @ gh.T + np.diag(sp * fh**2 + sa)) @ (y - fh + gh @ eta[i])
        np.testing.assert_allclose(res.cwres[i][mask], cwres, rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(res.iwres[i][mask], (y - fh) / np.sqrt(sp * fh**2 + sa), rtol=1e-10)
        assert np.isnan(res.cwres[i][~mask]).all()


def test_cwres_is_wres_at_zero_etas(bolus):
    data, est = bolus
    res = residuals(data, est, np.zeros((3, 2)))
    np.testing.assert_allclose(res.cwres, res.wres, rtol=1e-12, equal_nan=True)


def test_npde_direct_computation():
    rng = np.random.default_rng(5)
    k = 200
    mask = np.array([[True, True, True], [True, False, False]])
    sims = rng.normal(size=(k, 2, 3)) @ np.array([[1.0, 0.6, 0.2], [0.0, 0.8, 0.5], [0.0, 0.0, 0.7]])
    sims[:, ~mask] = np.nan
    observed = np.array([[0.3, -1.2, 9.0], [0.4, np.nan, np.nan]])
    got = npde(observed, sims, mask)
    for i in range(2):
        n = mask[i].sum()
        s = sims[:, i, :n]
        mean = s.mean(axis=0)
        chol = np.linalg.cholesky(np.cov(s, rowvar=False).reshape(n, n))
        obs_star = scipy.linalg.solve_triangular(chol, observed[i, :n] - mean, lower=True)
        sim_star = scipy.linalg.solve_triangular(chol, (s - mean).T, lower=True).T
        pde = np.array([np.mean(sim_star[:, j] < obs_star[j]) for j in range(n)])
        pde = np.where(pde == 0, 1 / (2 * k), np.where(pde == 1, 1 - 1 / (2 * k), pde))
        np.testing.assert_allclose(got[i, :n], norm.ppf(pde), rtol=1e-12)
    assert got[0, 2] == pytest.approx(norm.ppf(1 - 1 / (2 * k)))  # far above every simulation
    assert np.isnan(got[1, 1:]).all()


def test_npde_of_data_simulated_from_the_model_is_standard_normal(bolus):
    data, est = bolus
    observed = simulate_replicates(data, est, 300, seed=11)  # 300 datasets standing in for one large one
    sims = simulate_replicates(data, est, 400, seed=12)
    values = np.concatenate([npde(observed[r], sims, data.obs_mask)[data.obs_mask] for r in range(300)])
    assert abs(values.mean()) < 0.05 and abs(values.std() - 1) < 0.05
    assert abs(np.mean(values < norm.ppf(0.05)) - 0.05) < 0.015


def test_replicates_follow_the_seed_and_the_model(bolus):
    data, est = bolus
    a = simulate_replicates(data, est, 2000, seed=1)
    np.testing.assert_array_equal(a, simulate_replicates(data, est, 2000, seed=1))
    assert not np.allclose(a[:, data.obs_mask], simulate_replicates(data, est, 2000, seed=2)[:, data.obs_mask])
    assert np.isnan(a[:, ~data.obs_mask]).all()
    # the third individual's single observation at 2 h: mean near f(0) and a variance near the FO one
    f0, g0 = _analytic(est, np.zeros(2), np.array([2.0]))
    fo_variance = g0 @ est.omega @ g0.T + est.sigma["proportional"] * f0**2 + est.sigma["additive"]
    assert a[:, 2, 0].mean() == pytest.approx(f0[0], rel=0.03)
    assert a[:, 2, 0].var() == pytest.approx(fo_variance[0, 0], rel=0.15)


def test_exponential_error_residuals_on_the_log_scale():
    model = {**BOLUS, "sigma": {"exponential": 0.04}}
    result = estimate(_bolus_frame(), model, evaluate=True, covariance=False)
    table = result.table(npde_replicates=0)
    obs = table[table["MDV"] == 0]
    np.testing.assert_allclose(obs["RES"], np.log(obs["DV"]) - np.log(obs["PRED"]), rtol=1e-12)
    np.testing.assert_allclose(obs["IWRES"], (np.log(obs["DV"]) - np.log(obs["IPRED"])) / 0.2, rtol=1e-10)
    assert obs["PRED"].iloc[0] == pytest.approx(DOSE / 20.0 * np.exp(-0.1), rel=1e-10)  # natural scale
    assert table["NPDE"].isna().all()


def test_fo_reports_posthoc_etas(bolus):
    result = estimate(_bolus_frame(), BOLUS, method="fo", evaluate=True, covariance=False)
    foce = estimate(_bolus_frame(), BOLUS, method="foce-i", evaluate=True, covariance=False)
    np.testing.assert_allclose(result.etas, foce.etas, atol=1e-7)
    assert np.all(result.eta_sd > 0)
