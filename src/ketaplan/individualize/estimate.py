"""Maximum a posteriori estimates of one patient's random effects, with a Laplace approximation.

The objective is NONMEM's conditional objective for one individual: -2 log L(data | eta) +
eta' Omega^-1 eta. It is minimised by BFGS with central-difference gradients; the 2k + 1 parameter
sets of each gradient are predicted in one batched call of the exact engine. The Laplace covariance
is the inverse of half the Hessian at the mode (central differences, one batched call).

Shrinkage of a parameter for this patient is 1 - sqrt(1 - posterior var / prior var): the eta
shrinkage a population of patients with this design would show (Savic & Karlsson, AAPS J 2009;
for a linear-Gaussian model the identity is exact). Above 50 % the data say little about it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.stats import norm

from ketaplan.individualize.problem import Problem

GRADIENT_STEP = 1e-5
HESSIAN_STEP = 1e-3
SHRINKAGE_WARNING = 0.5
Z90 = norm.ppf(0.95)


@dataclass
class Estimate:
    """MAP random effects, their Laplace covariance and what follows from them."""

    problem: Problem
    eta: np.ndarray
    covariance: np.ndarray
    objective: float
    converged: bool
    iterations: int
    evaluations: int
    warnings: list[str] = field(default_factory=list)
    samples: np.ndarray | None = None  # posterior draws of eta (MCMC), if run
    diagnostics: dict | None = None

    @property
    def sd(self) -> np.ndarray:
        return np.sqrt(np.diag(self.covariance))

    @property
    def shrinkage(self) -> np.ndarray:
        ratio = np.diag(self.covariance) / np.diag(self.problem.omega)
        return 1.0 - np.sqrt(np.clip(1.0 - ratio, 0.0, 1.0))

    @property
    def values(self) -> np.ndarray:
        """Individual parameter values at the MAP (typical x exp(eta))."""
        return self.problem.typical * np.exp(self.eta)

    def interval(self, level: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
        """Equal-tailed interval of the individual parameter values (MCMC draws if present, else Laplace)."""
        tail = (1 - level) / 2
        if self.samples is not None:
            lo, hi = np.quantile(self.samples, [tail, 1 - tail], axis=0)
        else:
            z = norm.ppf(1 - tail)
            lo, hi = self.eta - z * self.sd, self.eta + z * self.sd
        return self.problem.typical * np.exp(lo), self.problem.typical * np.exp(hi)

    def draws(self, n: int, seed: int = 1) -> np.ndarray:
        """Posterior draws of eta (n, k): MCMC samples if present, else from the Laplace normal."""
        rng = np.random.default_rng(seed)
        if self.samples is not None:
            return self.samples[rng.choice(len(self.samples), size=n, replace=len(self.samples) < n)]
        return rng.multivariate_normal(self.eta, self.covariance, size=n, method="eigh")

    def log_evidence(self) -> float:
        """Laplace approximation of log p(data), up to the constants shared by models of the same data."""
        _, logdet_post = np.linalg.slogdet(self.covariance)
        _, logdet_prior = np.linalg.slogdet(self.problem.omega)
        return -0.5 * self.objective + 0.5 * (logdet_post - logdet_prior)

    def table(self) -> pd.DataFrame:
        """One row per random effect: population and individual values, 90 % interval, eta, shrinkage."""
        lo, hi = self.interval()
        p = self.problem
        return pd.DataFrame({
            "parameter": p.eta_names, "unit": p.units, "population": p.typical, "individual": self.values,
            "p5": lo, "p95": hi, "eta": self.eta, "eta_sd": self.sd, "omega_sd": np.sqrt(np.diag(p.omega)),
            "shrinkage": self.shrinkage,
        })


def prior_estimate(problem: Problem) -> Estimate:
    """The population prior as an estimate (eta 0, covariance omega): what is known before any measurement."""
    return Estimate(problem, np.zeros(problem.k), problem.omega.copy(), 0.0, True, 0, 0,
                    ["Nothing measured yet: this is the population forecast for this regimen."])


def fit(problem: Problem, start: np.ndarray | None = None) -> Estimate:
    """The MAP estimate of ``problem`` with its Laplace covariance and plain warnings."""
    k = problem.k
    x0 = np.zeros(k) if start is None else np.asarray(start, dtype=float)
    before = problem.evaluations
    steps = np.vstack([np.zeros(k), GRADIENT_STEP * np.eye(k), -GRADIENT_STEP * np.eye(k)])

    def value_and_gradient(x: np.ndarray) -> tuple[float, np.ndarray]:
        f = problem.objective(x + steps)
        if not np.all(np.isfinite(f)):
            return float(f[0]), np.zeros(k) if not np.isfinite(f[0]) else _one_sided(f, k)
        return float(f[0]), (f[1:k + 1] - f[k + 1:]) / (2 * GRADIENT_STEP)

    result = minimize(value_and_gradient, x0, jac=True, method="BFGS",
                      options={"gtol": 1e-4, "maxiter": 200 * max(k, 1)})
    eta = result.x
    covariance, curved = laplace_covariance(problem, eta)
    finite = bool(np.isfinite(result.fun))
    est = Estimate(problem, eta, covariance, float(result.fun), bool(result.success) and finite, int(result.nit),
                   problem.evaluations - before)
    est.warnings = _warnings(est, result)
    if not finite:
        est.warnings.insert(0, "The data cannot be fitted with this model (the objective is not finite at any "
                            "tried value); check the observations and their units.")
    elif not curved:
        est.warnings.append("The objective is not curved like a single peak at the estimate (a saddle or a "
                            "flat direction): the Laplace intervals are bounded by the prior; run with MCMC "
                            "(--mcmc) for reliable intervals.")
    return est


def _one_sided(f: np.ndarray, k: int) -> np.ndarray:
    forward = (f[1:k + 1] - f[0]) / GRADIENT_STEP
    backward = (f[0] - f[k + 1:]) / GRADIENT_STEP
    return np.where(np.isfinite(forward), forward, np.where(np.isfinite(backward), backward, 0.0))


def hessian(problem: Problem, eta: np.ndarray, h: float = HESSIAN_STEP) -> np.ndarray:
    """Central-difference Hessian of the objective at ``eta`` (all points in one batched call)."""
    k = len(eta)
    points = [np.zeros(k)]
    for i in range(k):
        for sign in (1, -1):
            e = np.zeros(k)
            e[i] = sign * h
            points.append(e)
    pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
    for i, j in pairs:
        for si, sj in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
            e = np.zeros(k)
            e[i], e[j] = si * h, sj * h
            points.append(e)
    f = problem.objective(eta + np.array(points))
    f0 = f[0]
    out = np.zeros((k, k))
    for i in range(k):
        out[i, i] = (f[1 + 2 * i] - 2 * f0 + f[2 + 2 * i]) / h**2
    base = 1 + 2 * k
    for n, (i, j) in enumerate(pairs):
        pp, pm, mp, mm = f[base + 4 * n: base + 4 * n + 4]
        out[i, j] = out[j, i] = (pp - pm - mp + mm) / (4 * h**2)
    return out


def laplace_covariance(problem: Problem, eta: np.ndarray) -> tuple[np.ndarray, bool]:
    """Inverse of half the Hessian of the objective (-2 log posterior), and whether that Hessian was curved.

    Half the Hessian is the prior precision Omega^-1 plus the data's precision. Where the data's part is
    not positive semi-definite (a saddle or numerical noise) its negative directions are set to 0, so the
    covariance is never wider than the prior; the flag then says the estimate is not a clean maximum.
    """
    k = len(eta)
    if k == 0:
        return np.zeros((0, 0)), True
    prior = problem.precision
    data = hessian(problem, eta) / 2.0 - prior
    if not np.all(np.isfinite(data)):  # the objective is not finite around the estimate: no curvature to use
        return problem.omega.copy(), False
    data = (data + data.T) / 2
    w, v = np.linalg.eigh(data)
    scale = max(1.0, float(np.max(np.abs(np.linalg.eigvalsh(prior)))))
    curved = bool(np.all(w > -1e-6 * scale))
    precision = (v * np.maximum(w, 0.0)) @ v.T + prior
    cov = np.linalg.inv(precision)
    return (cov + cov.T) / 2, curved


def _warnings(est: Estimate, result) -> list[str]:
    out = list(est.problem.notes)
    if not est.converged:
        out.append(f"The estimate did not converge ({result.message}); treat it with caution.")
    for name, sh in zip(est.problem.eta_names, est.shrinkage, strict=True):
        if sh > SHRINKAGE_WARNING:
            out.append(f"The data say little about '{name}' (shrinkage {sh:.0%}): its estimate stays near the "
                       "population value.")
    return out
