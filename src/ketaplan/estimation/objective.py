"""NONMEM's objective functions, -2 log L without the n log(2 pi) constant, for many parameter sets at once.

For individual i with observations y (on the DV scale: natural, or log for exponential error), model
predictions h(eta) and residual variances R(h) (additive s_a, proportional s_p h^2, combined, or s_e on
the log scale), the conditional objective is

    phi(eta) = sum_j [log R_j + (y_j - h_j)^2 / R_j] + eta' Omega^-1 eta

and eta-hat minimises it (the mode of the posterior; FOCE without interaction holds R at eta = 0). With
G = dh/deta at eta-hat (central differences of the exact engine) and a first-order Hessian H (Wang,
J Pharmacokinet Pharmacodyn 2007;34:575), each individual contributes

* FOCE-I:  phi(eta-hat) + log det Omega + log det H, with R at eta-hat and H = G' I G + Omega^-1, where
           I = 1/R + (dR/dh / R)^2 / 2 is each observation's Fisher information (the variance's own share
           included: this reproduces NONMEM's objective for phenobarbital to 1e-7);
* FOCE:    log det V + r' V^-1 r, V = G Omega G' + R(0), r = y - h(eta-hat) + G eta-hat;
* FO:      the same at eta = 0;
* Laplace: phi(eta-hat) + log det Omega + log det(Hphi / 2), with Hphi the full second derivative of phi.

Everything is batched: K parameter sets x N individuals x (2m + 1) ETA points go through one engine call.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ketaplan.estimation.data import EstimationData
from ketaplan.estimation.parameters import Estimates
from ketaplan.estimation.predictions import predict

METHODS = ("foce-i", "foce", "fo", "laplace")
ETA_STEP = 1e-4
"""Central-difference step on ETA for G = dh/deta (exact engine: error about 1e-8 relative)."""
INNER_TOLERANCE = 1e-9
MAX_INNER = 60


@dataclass
class Conditional:
    """Per (parameter set, individual): eta-hat, h and G there, the residual variances, phi."""

    eta: np.ndarray  # (K, N, m)
    h: np.ndarray  # (K, N, W)
    g: np.ndarray  # (K, N, W, m)
    r: np.ndarray  # (K, N, W) residual variances used in phi
    phi: np.ndarray  # (K, N)
    converged: np.ndarray  # (K, N)


def dv_scale(data: EstimationData, f: np.ndarray) -> np.ndarray:
    """Predictions on the scale of the (possibly log-transformed) DV."""
    if data.model.sigma.kind == "exponential" and not data.model.sigma.log_dv:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(f > 0, np.log(np.where(f > 0, f, 1.0)), np.nan)
    if data.model.sigma.log_dv:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(np.maximum(f, 1e-300))
    return f


def residual_variance(sigma: dict[str, float], h: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """R and dR/dh for predictions h on the DV scale."""
    if kind in ("exponential", "additive"):
        value = sigma.get("exponential", sigma.get("additive", 0.0))
        return np.full_like(h, value), np.zeros_like(h)
    sp = sigma.get("proportional", 0.0)
    return sp * h * h + sigma.get("additive", 0.0), 2.0 * sp * h


def evaluate_h(data: EstimationData, points: list[Estimates], eta: np.ndarray, with_g: bool,
               rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """h (K, N, W) at eta (K, N, m), and G (K, N, W, m) by central differences when ``with_g``.

    With ``rows`` (a (K, N) mask) only those (parameter set, individual) pairs are computed; the others
    are NaN.
    """
    k, n, m = eta.shape
    w = data.obs_time.shape[1]
    rows = np.ones((k, n), dtype=bool) if rows is None else rows
    kk, nn = np.nonzero(rows)
    h = np.full((k, n, w), np.nan)
    g = np.full((k, n, w, m), np.nan) if with_g else None
    if len(kk) == 0:
        return h, g
    thetas = np.stack([p.theta for p in points])  # (K, P)
    offsets = [np.zeros(m)]
    if with_g:
        for j in range(m):
            e = np.zeros(m)
            e[j] = ETA_STEP
            offsets += [e, -e]
    variants = len(offsets)
    all_eta = eta[kk, nn][:, None, :] + np.array(offsets)[None, :, :]  # (R, V, m)
    who = np.repeat(nn, variants)
    theta_rows = np.repeat(thetas[kk], variants, axis=0)
    f = predict(data, theta_rows, all_eta.reshape(-1, m), who).reshape(len(kk), variants, w)
    hv = dv_scale(data, f)
    h[kk, nn] = hv[:, 0]
    if with_g:
        g[kk, nn] = np.moveaxis((hv[:, 1::2] - hv[:, 2::2]) / (2 * ETA_STEP), 1, 2)
    return h, g


def conditional_modes(data: EstimationData, points: list[Estimates], eta0: np.ndarray, interaction: bool,
                      ) -> Conditional:
    """eta-hat for every (parameter set, individual), by batched Newton steps with step halving.

    Each iteration evaluates h and G only where the mode is not yet found; a step that raises phi is
    halved from the best point so far, otherwise the next Newton step starts there. The Hessian is the
    second derivative of phi with respect to h (positive parts; the expected information where it is
    not) through G: near-quadratic convergence also with proportional error.
    """
    kind = data.model.sigma.kind
    y, mask = data.dv[None], data.obs_mask[None]
    omega_inv = np.stack([np.linalg.inv(p.omega) for p in points])  # (K, m, m)
    sigmas = [p.sigma for p in points]
    k, n, m = eta0.shape
    r_fixed = None
    if not interaction:  # FOCE: residual variances at eta = 0
        h_zero, _ = evaluate_h(data, points, np.zeros_like(eta0), with_g=False)
        r_fixed = _variances(sigmas, h_zero, kind)[0]
    best = Conditional(eta0.copy(), np.full_like(y * np.ones((k, n, 1)), np.nan), np.zeros((k, n, y.shape[-1], m)),
                       np.ones((k, n, y.shape[-1])), np.full((k, n), np.inf), np.zeros((k, n), dtype=bool))
    trial = eta0.copy()
    step = np.zeros_like(eta0)
    active = np.ones((k, n), dtype=bool)
    halvings = np.zeros((k, n), dtype=int)
    for _ in range(MAX_INNER):
        h, g = evaluate_h(data, points, trial, with_g=True, rows=active)
        r, dr = _variances(sigmas, h, kind) if r_fixed is None else (r_fixed, np.zeros_like(h))
        phi = _phi(y, mask, h, r, trial, omega_inv)
        better = active & (phi <= best.phi + 1e-12 * np.abs(np.where(np.isfinite(best.phi), best.phi, 0.0)))
        for name, value in (("eta", trial), ("h", h), ("g", g), ("r", r), ("phi", phi)):
            getattr(best, name)[better] = value[better]
        newton = _newton_step(y, mask, h, g, r, dr, trial, omega_inv, sigmas, kind, r_fixed is None)
        done = better & (np.max(np.abs(newton), axis=-1) < INNER_TOLERANCE)
        best.converged |= done
        worse = active & ~better
        halvings = np.where(worse, halvings + 1, 0)
        step = np.where(better[..., None], newton, np.where(worse[..., None], step / 2, step))
        active &= ~done & (halvings < 30)
        if not active.any():
            break
        trial = np.where(active[..., None], best.eta + step, best.eta)
    return best


def _newton_step(y, mask, h, g, r, dr, eta, omega_inv, sigmas, kind, interaction) -> np.ndarray:
    e = np.where(mask, y - h, 0.0)
    ok = np.where(mask, r, 1.0)
    weight = np.where(mask, (dr / ok) * (1 - e * e / ok) - 2 * e / ok, 0.0)  # dphi/dh
    gs = np.where(np.isfinite(g), g, 0.0)
    grad = np.einsum("knw,knwm->knm", weight, gs) + 2 * np.einsum("kab,knb->kna", omega_inv, eta)
    curvature = 2 * _information(mask, r, dr)
    if interaction:
        d2r = np.stack([np.full_like(h[i], 2 * s.get("proportional", 0.0)) if kind in ("proportional", "combined")
                        else np.zeros_like(h[i]) for i, s in enumerate(sigmas)])
        exact = (d2r / ok - (dr / ok) ** 2 + 2 / ok + 4 * e * dr / ok**2 - e * e * d2r / ok**2
                 + 2 * e * e * dr**2 / ok**3)
        curvature = np.where(mask & (exact > 0), exact, curvature)
    hess = np.einsum("knw,knwa,knwb->knab", curvature, gs, gs) + 2 * omega_inv[:, None]
    with np.errstate(all="ignore"):
        step = -np.linalg.solve(hess, grad[..., None])[..., 0]
    return np.where(np.isfinite(step), step, 0.0)


def _information(mask: np.ndarray, r: np.ndarray, dr: np.ndarray) -> np.ndarray:
    """Fisher information of each observation about h: 1/R + (dR/dh / R)^2 / 2 (the variance's own share)."""
    ok = np.where(mask, r, 1.0)
    return np.where(mask, 1 / ok + 0.5 * (dr / ok) ** 2, 0.0)


def _variances(sigmas: list[dict], h: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    parts = [residual_variance(s, h[i], kind) for i, s in enumerate(sigmas)]
    return np.stack([p[0] for p in parts]), np.stack([p[1] for p in parts])


def _phi(y, mask, h, r, eta, omega_inv) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(mask, np.log(r) + (y - h) ** 2 / r, 0.0)
    phi = terms.sum(axis=-1) + np.einsum("kna,kab,knb->kn", eta, omega_inv, eta)
    return np.where(np.isfinite(phi), phi, np.inf)


def individual_ofv(data: EstimationData, points: list[Estimates], cond: Conditional, method: str) -> np.ndarray:
    """Each individual's contribution (K, N) to the objective of ``method`` at its conditional modes."""
    mask = data.obs_mask[None]
    kind = data.model.sigma.kind
    omegas = np.stack([p.omega for p in points])
    omega_inv = np.linalg.inv(omegas)
    logdet_omega = np.linalg.slogdet(omegas)[1][:, None]
    if method in ("foce-i", "laplace"):
        if method == "foce-i":
            dr = _variances([p.sigma for p in points], cond.h, kind)[1]
            h_inner = np.einsum("knw,knwa,knwb->knab", _information(mask, cond.r, dr), cond.g, cond.g) \
                + omega_inv[:, None]
        else:
            h_inner = laplace_hessian(data, points, cond) / 2
        return cond.phi + logdet_omega + np.linalg.slogdet(h_inner)[1]
    r = cond.r if method == "foce" else None
    g = cond.g
    eta = cond.eta
    h = cond.h
    if method == "fo":
        r = _variances([p.sigma for p in points], h, kind)[0]
    resid = np.where(mask, data.dv[None] - h + np.einsum("knwm,knm->knw", g, eta), 0.0)
    g = np.where(mask[..., None], g, 0.0)  # padding: no covariance, variance 1 (log 1 = 0, residual 0)
    v = np.einsum("knwa,kab,knvb->knwv", g, omegas, g)
    idx = np.arange(v.shape[-1])
    v[..., idx, idx] += np.where(mask, r, 1.0)
    sign, logdet = np.linalg.slogdet(v)
    quad = np.einsum("knw,knw->kn", resid, np.linalg.solve(v, resid[..., None])[..., 0])
    return np.where(sign > 0, logdet + quad, np.inf)


def laplace_hessian(data: EstimationData, points: list[Estimates], cond: Conditional) -> np.ndarray:
    """The full second derivative of phi at eta-hat (K, N, m, m), by central differences of its gradient."""
    k, n, m = cond.eta.shape
    kind = data.model.sigma.kind
    omega_inv = np.stack([np.linalg.inv(p.omega) for p in points])
    sigmas = [p.sigma for p in points]
    y, mask = data.dv[None], data.obs_mask[None]
    step = 1e-3
    hess = np.zeros((k, n, m, m))
    for j in range(m):
        grads = []
        for sign in (1, -1):
            eta = cond.eta.copy()
            eta[..., j] += sign * step
            h, g = evaluate_h(data, points, eta, with_g=True)
            r, dr = _variances(sigmas, h, kind)
            e = np.where(mask, y - h, 0.0)
            ok = np.where(mask, r, 1.0)
            weight = np.where(mask, (dr / ok) * (1 - e * e / ok) - 2 * e / ok, 0.0)
            grads.append(np.einsum("knw,knwm->knm", weight, g) + 2 * np.einsum("kab,knb->kna", omega_inv, eta))
        hess[..., j] = (grads[0] - grads[1]) / (2 * step)
    return 0.5 * (hess + np.swapaxes(hess, -1, -2))


def objective(data: EstimationData, points: list[Estimates], eta0: np.ndarray, method: str
              ) -> tuple[np.ndarray, np.ndarray, Conditional]:
    """OFV (K,) and its individual contributions (K, N) for K parameter sets; eta0 (K, N, m) warm starts."""
    if method == "fo":
        zero = np.zeros_like(eta0)
        h, g = evaluate_h(data, points, zero, with_g=True)
        r = _variances([p.sigma for p in points], h, data.model.sigma.kind)[0]
        omega_inv = np.stack([np.linalg.inv(p.omega) for p in points])
        cond = Conditional(zero, h, g, r, _phi(data.dv[None], data.obs_mask[None], h, r, zero, omega_inv),
                           np.ones(eta0.shape[:2], dtype=bool))
    else:
        cond = conditional_modes(data, points, eta0, interaction=method != "foce")
    per = individual_ofv(data, points, cond, method)
    return per.sum(axis=1), per, cond
