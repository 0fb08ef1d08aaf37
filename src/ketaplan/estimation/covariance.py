"""The covariance step, as NONMEM's $COVARIANCE: R, S and the sandwich R^-1 S R^-1 on the natural scale.

R is half the second derivative of the objective (-2 log L) with respect to the estimated parameters
(THETA, the OMEGA and SIGMA elements themselves), S a quarter of the sum over individuals of the
products of their objective's gradients; both by central differences whose parameter sets are
evaluated in one batch, each with its ETA modes re-estimated. The covariance of the estimates is
R^-1 S R^-1 (NONMEM's default); R^-1 alone is available as ``r_inverse``. Standard errors, relative
standard errors (%), the correlation matrix and its condition number (largest over smallest
eigenvalue, as NONMEM prints with PRINT=E) follow. A step that cannot be completed says why.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ketaplan.estimation.data import EstimationData
from ketaplan.estimation.objective import objective
from ketaplan.estimation.parameters import Estimates, ParameterSpace

RELATIVE_STEP = 1e-3
"""Central-difference step, relative to each parameter's magnitude."""


@dataclass
class CovarianceStep:
    """The covariance step's matrices and what follows from them (None where it failed)."""

    names: list[str]
    r: np.ndarray | None
    s: np.ndarray | None
    covariance: np.ndarray | None
    r_inverse: np.ndarray | None
    se: np.ndarray | None
    rse_percent: np.ndarray | None
    correlation: np.ndarray | None
    condition_number: float | None
    eigenvalues: np.ndarray | None
    failure: str | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None


def covariance_step(data: EstimationData, space: ParameterSpace, est: Estimates, eta: np.ndarray,
                    method: str) -> CovarianceStep:
    """R, S, the sandwich covariance and standard errors at the estimates ``est`` (ETA modes ``eta``)."""
    names = space.free_names()
    x = space.natural(est)
    p = len(x)
    if p == 0:
        return _failed(names, "there are no estimated parameters")
    h = RELATIVE_STEP * np.maximum(np.abs(x), 1e-8)
    shifts = [np.zeros(p)]
    for i in range(p):
        for si in (1, -1):
            d = np.zeros(p)
            d[i] = si * h[i]
            shifts.append(d)
    pairs = [(i, j) for i in range(p) for j in range(i)]
    for i, j in pairs:
        for si, sj in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
            d = np.zeros(p)
            d[i], d[j] = si * h[i], sj * h[j]
            shifts.append(d)
    points = [space.from_natural(x + d, est) for d in shifts]
    invalid = [k for k, pt in enumerate(points) if not _valid(pt)]
    if invalid:
        return _failed(names, f"{names[np.argmax(np.abs(shifts[invalid[0]]))]} is too close to its limit for the "
                       "numerical derivatives (for example a variance near 0)")
    warm = np.broadcast_to(eta, (len(points), *eta.shape)).copy()
    ofv, per, _cond = objective(data, points, warm, method)
    if not np.all(np.isfinite(ofv)):
        return _failed(names, "the objective could not be computed next to the estimates")
    f0 = ofv[0]
    plus, minus = ofv[1:2 * p + 1:2], ofv[2:2 * p + 1:2]
    hess = np.diag((plus - 2 * f0 + minus) / h**2)
    cross = ofv[2 * p + 1:].reshape(len(pairs), 4) if pairs else np.zeros((0, 4))
    for (i, j), (pp, pm, mp, mm) in zip(pairs, cross, strict=True):
        hess[i, j] = hess[j, i] = (pp - pm - mp + mm) / (4 * h[i] * h[j])
    grads = (per[1:2 * p + 1:2] - per[2:2 * p + 1:2]) / (2 * h[:, None])  # (p, N)
    r = hess / 2
    s = grads @ grads.T / 4
    return _summarise(names, x, r, s)


def _valid(est: Estimates) -> bool:
    if np.any(np.linalg.eigvalsh(est.omega) <= 0) if est.omega.size else False:
        return False
    return all(v > 0 for v in est.sigma.values() if v != 0) and all(v >= 0 for v in est.sigma.values())


def _summarise(names: list[str], x: np.ndarray, r: np.ndarray, s: np.ndarray) -> CovarianceStep:
    eig_r = np.linalg.eigvalsh(r)
    if eig_r.min() <= 0:
        weakest = names[int(np.argmax(np.abs(np.linalg.eigh(r)[1][:, 0])))]
        return CovarianceStep(names, r, s, None, None, None, None, None, None, None,
                              f"the R matrix (the curvature of the objective) is not positive definite, so the "
                              f"estimates are not a well-defined minimum; the flattest direction involves {weakest}")
    r_inv = np.linalg.inv(r)
    cov = r_inv @ s @ r_inv
    cov = 0.5 * (cov + cov.T)
    var = np.diag(cov)
    if np.any(var <= 0):
        return CovarianceStep(names, r, s, cov, r_inv, None, None, None, None, None,
                              f"the S matrix is singular ({names[int(np.argmin(var))]} has no variance across "
                              "individuals)")
    se = np.sqrt(var)
    with np.errstate(divide="ignore"):
        rse = np.where(x != 0, 100 * se / np.abs(x), np.inf)
    corr = cov / np.outer(se, se)
    eig = np.linalg.eigvalsh(corr)
    return CovarianceStep(names, r, s, cov, r_inv, se, rse, corr, float(eig.max() / eig.min()), eig)


def _failed(names: list[str], why: str) -> CovarianceStep:
    return CovarianceStep(names, None, None, None, None, None, None, None, None, None, why)
