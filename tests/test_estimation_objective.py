"""The population objectives against NONMEM's published phenobarbital numbers and against an independent
FOCE-I written out per subject with scipy (closed-form one-compartment bolus predictions)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize

from ketaplan.estimation.data import population_model, prepare
from ketaplan.estimation.objective import objective
from ketaplan.estimation.parameters import ParameterSpace
from ketaplan.nonmem.predpp import load_model

DATA = Path(__file__).parent / "data"
# NONMEM 7.4.2, FOCE-I (METHOD=1 INTERACTION), phenobarbital (pheno.ext of pharmpy's example models):
# the objective at the initial estimates (iteration 0) and at the final ones.
NONMEM_INITIAL_OFV = 587.36644134661617
NONMEM_FINAL = {"theta": [4.69555e-03, 9.84258e-01, 1.58920e-01], "omega": [2.93508e-02, 2.79060e-02],
                "sigma": 1.32410e-02, "ofv": 586.27605628520962}


@pytest.fixture(scope="module")
def pheno():
    model = population_model(load_model(DATA / "pheno.yaml"))
    return model, prepare(model, pd.read_csv(DATA / "pheno.csv"))


def _final(space: ParameterSpace):
    est = space.initial()
    return est.with_(theta=np.array(NONMEM_FINAL["theta"]), omega=np.diag(NONMEM_FINAL["omega"]),
                     sigma={"proportional": NONMEM_FINAL["sigma"]})


def test_foce_i_objective_equals_nonmem_at_its_initial_and_final_estimates(pheno):
    model, data = pheno
    space = ParameterSpace(model)
    zero = np.zeros((1, data.n_individuals, 2))
    assert objective(data, [space.initial()], zero, "foce-i")[0][0] == pytest.approx(NONMEM_INITIAL_OFV, abs=1e-5)
    # NONMEM prints the final estimates to 6 digits: the objective there agrees to that precision
    assert objective(data, [_final(space)], zero, "foce-i")[0][0] == pytest.approx(NONMEM_FINAL["ofv"], abs=1e-4)


def _closed_form(frame: pd.DataFrame, cl: float, v: float) -> tuple[np.ndarray, np.ndarray]:
    """Observation times' concentrations for one subject: sum of bolus exponentials."""
    doses = frame[frame["AMT"] > 0]
    obs = frame[frame["AMT"] == 0]
    t = obs["TIME"].to_numpy()[:, None]
    td = doses["TIME"].to_numpy()[None, :]
    with np.errstate(over="ignore"):
        c = np.where(t >= td, doses["AMT"].to_numpy()[None, :] / v * np.exp(-cl / v * np.maximum(t - td, 0)), 0.0)
    return c.sum(axis=1), obs["DV"].to_numpy()


def _reference_foce_i(frame: pd.DataFrame, theta, omega, sigma) -> float:
    """FOCE-I for one subject written out: eta-hat by scipy BFGS, G by central differences, NONMEM's form."""
    wgt, apgr = frame["WGT"].iloc[0], frame["APGR"].iloc[0]

    def predict(eta):
        cl = theta[0] * wgt * np.exp(eta[0])
        v = theta[1] * wgt * (1 + theta[2] * (apgr < 5)) * np.exp(eta[1])
        return _closed_form(frame, cl, v)

    omega_inv = np.linalg.inv(omega)

    def phi(eta):
        f, y = predict(eta)
        r = sigma * f**2
        with np.errstate(all="ignore"):
            value = float(np.sum(np.log(r) + (y - f) ** 2 / r) + eta @ omega_inv @ eta)
        return value if np.isfinite(value) else np.inf

    grid = np.linspace(-1.5, 1.5, 21)
    start = min(((a, b) for a in grid for b in grid), key=lambda e: phi(np.array(e)))  # global, then polish
    eta = minimize(phi, np.array(start), method="Nelder-Mead",
                   options={"xatol": 1e-11, "fatol": 1e-14, "maxiter": 4000}).x
    f, _y = predict(eta)
    g = np.stack([(predict(eta + d)[0] - predict(eta - d)[0]) / 2e-5 for d in np.eye(2) * 1e-5], axis=1)
    r, dr = sigma * f**2, 2 * sigma * f
    info = 1 / r + 0.5 * (dr / r) ** 2
    h = g.T @ (info[:, None] * g) + omega_inv
    return phi(eta) + np.linalg.slogdet(omega)[1] + np.linalg.slogdet(h)[1]


def test_foce_i_objective_agrees_with_an_independent_per_subject_computation(pheno):
    model, data = pheno
    est = ParameterSpace(model).initial()
    frame = pd.read_csv(DATA / "pheno.csv")
    ours = objective(data, [est], np.zeros((1, data.n_individuals, 2)), "foce-i")[1][0]
    reference = np.array([_reference_foce_i(sub, est.theta, est.omega, est.sigma["proportional"])
                          for _, sub in frame.groupby("ID", sort=False)])
    np.testing.assert_allclose(ours, reference, atol=1e-6)
    assert ours.sum() == pytest.approx(NONMEM_INITIAL_OFV, abs=1e-5)


@pytest.mark.parametrize("method", ["foce", "fo", "laplace"])
def test_other_methods_are_finite_and_order_as_expected(pheno, method):
    model, data = pheno
    est = ParameterSpace(model).initial()
    ofv, per, _cond = objective(data, [est], np.zeros((1, data.n_individuals, 2)), method)
    assert np.isfinite(ofv[0]) and per.shape == (1, data.n_individuals)
    foce_i = objective(data, [est], np.zeros((1, data.n_individuals, 2)), "foce-i")[0][0]
    assert abs(ofv[0] - foce_i) < 15  # approximations of the same likelihood, not identical


def test_time_varying_covariates_follow_the_record_rule_of_simulate_dataset():
    """A weight that changes between records: predictions at ETA = 0 equal simulate-dataset's IPRED, which
    applies NONMEM's rule (the record at the end of an interval sets the parameters over it)."""
    from ketaplan.estimation.predictions import predict
    from ketaplan.nonmem.simulate import simulate_dataset

    frame = pd.read_csv(DATA / "pheno.csv").head(60).copy()
    frame["WGT"] = frame["WGT"] * (1 + 0.01 * np.arange(len(frame)) % 7)
    model = load_model(DATA / "pheno.yaml")
    pop = population_model(model)
    data = prepare(pop, frame)
    assert not data.per_individual
    est = ParameterSpace(pop).initial()
    who = np.arange(data.n_individuals)
    ours = predict(data, est.theta, np.zeros((len(who), 2)), who)
    simulated = simulate_dataset(frame, model)["IPRED"].to_numpy()
    expected = np.full(data.obs_rows.shape, np.nan)
    expected[data.obs_mask] = simulated[data.obs_rows[data.obs_mask]]
    np.testing.assert_allclose(ours[data.obs_mask], expected[data.obs_mask], rtol=1e-12)
