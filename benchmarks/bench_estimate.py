"""Estimation benchmark: phenobarbital FOCE-I end to end, a 2-compartment model on 200 subjects, and the cost of
one objective evaluation against the same objective with ``solve_ivp`` per subject, in the same run.

1. Phenobarbital (59 neonates, 155 levels; NONMEM's classic example), FOCE-I from NONMEM's initial values
   with the covariance step: wall time (target <= 3 s here), objective evaluations, OFV against NONMEM's
   586.27605629.
2. A 2-compartment IV model (CL, V1 with correlated ETAs; combined error) on 200 simulated subjects x 9
   levels: wall time and evaluations.
3. One FOCE-I objective evaluation of phenobarbital (conditional modes from ETA = 0, then the objective):
   ketaplan's batched exact engine against a per-subject implementation of the same algorithm whose
   predictions come from ``scipy.integrate.solve_ivp`` (LSODA, rtol 1e-8) integrated between doses, on the
   first 10 subjects, per subject. Target: ratio >= 50.

Run: python benchmarks/bench_estimate.py
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.integrate import solve_ivp
from scipy.optimize import minimize

import ketaplan
from ketaplan.estimation.data import population_model, prepare
from ketaplan.estimation.objective import objective
from ketaplan.estimation.parameters import ParameterSpace
from ketaplan.nonmem.predpp import load_model

DATA = Path(__file__).parent.parent / "tests" / "data"
N_REFERENCE = 10
TWO_CMT = {"advan": 3,
           "theta": [{"init": 4.0, "lower": 0}, {"init": 25.0, "lower": 0}, {"init": 8.0, "lower": 0},
                     {"init": 50.0, "lower": 0}],
           "parameters": {"CL": "THETA(1) * exp(ETA(1))", "V1": "THETA(2) * exp(ETA(2))", "Q": "THETA(3)",
                          "V2": "THETA(4)"},
           "omega": [{"block": [[0.05], [0.01, 0.1]]}], "sigma": {"proportional": 0.02, "additive": 0.1}}
TIMES = [0.25, 0.5, 1, 2, 4, 8, 12, 24, 48]


def two_compartment_data(n: int, seed: int = 1) -> pd.DataFrame:
    """IV bolus of 100 mg, 9 levels; CL 5, V1 20, Q 10, V2 40; omega CL 0.09, V1 0.16, cov 0.045; 10 % + 0.2."""
    rng = np.random.default_rng(seed)
    eta = rng.multivariate_normal([0, 0], [[0.09, 0.045], [0.045, 0.16]], size=n)
    rows = []
    for i in range(n):
        cl, v1, q, v2 = 5.0 * np.exp(eta[i, 0]), 20.0 * np.exp(eta[i, 1]), 10.0, 40.0
        k = np.array([[-(cl + q) / v1, q / v2], [q / v1, -q / v2]])
        lam, vec = np.linalg.eig(k)
        c0 = np.linalg.solve(vec, [100.0, 0.0])
        rows.append({"ID": i + 1, "TIME": 0.0, "AMT": 100.0, "EVID": 1, "DV": 0.0, "MDV": 1})
        for t in TIMES:
            f = (vec @ (c0 * np.exp(lam * t)))[0] / v1
            rows.append({"ID": i + 1, "TIME": t, "AMT": 0.0, "EVID": 0, "MDV": 0,
                         "DV": f * (1 + rng.normal(0, 0.1)) + rng.normal(0, 0.2)})
    return pd.DataFrame(rows)


def reference_objective(frame: pd.DataFrame, theta, omega, sigma) -> float:
    """The FOCE-I objective of phenobarbital, subject by subject, predictions by solve_ivp between doses."""
    total = 0.0
    omega_inv = np.linalg.inv(omega)
    for _, sub in list(frame.groupby("ID", sort=False))[:N_REFERENCE]:
        wgt, apgr = sub["WGT"].iloc[0], sub["APGR"].iloc[0]
        doses = sub[sub["AMT"] > 0]
        obs = sub[sub["AMT"] == 0]

        def predict(eta, doses=doses, obs=obs, wgt=wgt, apgr=apgr):
            cl = theta[0] * wgt * np.exp(eta[0])
            v = theta[1] * wgt * (1 + theta[2] * (apgr < 5)) * np.exp(eta[1])
            bounds = sorted(set(doses["TIME"]) | {obs["TIME"].max()})
            amount, out = 0.0, {}
            for lo, hi in zip(bounds, [*bounds[1:], bounds[-1]], strict=True):
                amount += doses.loc[doses["TIME"] == lo, "AMT"].sum()
                inside = obs["TIME"][(obs["TIME"] >= lo) & (obs["TIME"] <= hi)].to_numpy()
                if hi > lo:
                    sol = solve_ivp(lambda t, a, k=cl / v: -k * a, (lo, hi), [amount], method="LSODA", rtol=1e-8,
                                    atol=1e-12, t_eval=np.unique(np.append(inside, hi)))
                    out.update(dict(zip(sol.t, sol.y[0] / v, strict=True)))
                    amount = sol.y[0, -1]
                else:
                    out.update({t: amount / v for t in inside})
            return np.array([out[t] for t in obs["TIME"]]), obs["DV"].to_numpy()

        def phi(eta, predict=predict):
            f, y = predict(eta)
            r = sigma * f**2
            return float(np.sum(np.log(r) + (y - f) ** 2 / r) + eta @ omega_inv @ eta)

        eta = minimize(phi, np.zeros(2), method="Nelder-Mead", options={"xatol": 1e-8, "fatol": 1e-10}).x
        f, _ = predict(eta)
        g = np.stack([(predict(eta + d)[0] - predict(eta - d)[0]) / 2e-4 for d in np.eye(2) * 1e-4], axis=1)
        r, dr = sigma * f**2, 2 * sigma * f
        h = g.T @ ((1 / r + 0.5 * (dr / r) ** 2)[:, None] * g) + omega_inv
        total += phi(eta) + np.linalg.slogdet(omega)[1] + np.linalg.slogdet(h)[1]
    return total


def main() -> None:
    t0 = time.perf_counter()
    result = ketaplan.estimate(DATA / "pheno.csv", DATA / "pheno.yaml")
    pheno_time = time.perf_counter() - t0
    print(f"phenobarbital FOCE-I with the covariance step: {pheno_time:.2f} s (target <= 3 s), "
          f"{result.evaluations} objective evaluations in {len(result.iterations) - 1} iterations; OFV "
          f"{result.ofv:.6f} (NONMEM 586.276056)")

    data = two_compartment_data(200)
    t0 = time.perf_counter()
    two = ketaplan.estimate(data, TWO_CMT)
    print(f"2-compartment, 200 subjects x 9 levels, FOCE-I with the covariance step: {time.perf_counter() - t0:.2f} s, "
          f"{two.evaluations} objective evaluations, converged {two.converged}")

    model = population_model(load_model(DATA / "pheno.yaml"))
    frame = pd.read_csv(DATA / "pheno.csv")
    prepared = prepare(model, frame)
    est = ParameterSpace(model).initial()
    zero = np.zeros((1, prepared.n_individuals, 2))
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        objective(prepared, [est], zero, "foce-i")
        times.append(time.perf_counter() - t0)
    ours = min(times) / prepared.n_individuals
    t0 = time.perf_counter()
    ref_value = reference_objective(frame, est.theta, est.omega, est.sigma["proportional"])
    ref = (time.perf_counter() - t0) / N_REFERENCE
    per = objective(prepared, [est], zero, "foce-i")[1][0, :N_REFERENCE].sum()
    print(f"one FOCE-I objective evaluation: ketaplan {ours * 1e3:.2f} ms/subject, solve_ivp per subject "
          f"{ref * 1e3:.0f} ms/subject; ratio {ref / ours:.0f} (target >= 50); the two agree to "
          f"{abs(per - ref_value):.1e} on the first {N_REFERENCE} subjects")


if __name__ == "__main__":
    main()
