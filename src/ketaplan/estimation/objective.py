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
    hessian: np.ndarray  # (K, N, m, m) second derivative of phi at eta-hat (the Laplace method's)


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


def evaluate_h(data: EstimationData, points: list[Estimates], eta: np.ndarray, order: int,
               rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """h (K, N, W) at eta (K, N, m); with ``order`` >= 1 also G = dh/deta (K, N, W, m), with 2 also the second
    derivatives (K, N, W, m, m), all by central differences in one engine call.

    With ``rows`` (a (K, N) mask) only those (parameter set, individual) pairs are computed; the others
    are NaN.
    """
    k, n, m = eta.shape
    w = data.obs_time.shape[1]
    rows = np.ones((k, n), dtype=bool) if rows is None else rows
    kk, nn = np.nonzero(rows)
    h = np.full((k, n, w), np.nan)
    g = np.full((k, n, w, m), np.nan) if order >= 1 else None
    hh = np.full((k, n, w, m, m), np.nan) if order >= 2 else None
    if len(kk) == 0:
        return h, g, hh
    eye = np.eye(m) * ETA_STEP
    offsets = [np.zeros(m)]
    if order >= 1:
        for j in range(m):
            offsets += [eye[j], -eye[j]]
    pairs = [(a, b) for a in range(m) for b in range(a)] if order >= 2 else []
    offsets += [eye[a] + eye[b] for a, b in pairs]
    variants = len(offsets)
    all_eta = eta[kk, nn][:, None, :] + np.array(offsets)[None, :, :]  # (R, V, m)
    who = np.repeat(nn, variants)
    thetas = np.stack([p.theta for p in points])  # (K, P)
    f = predict(data, np.repeat(thetas[kk], variants, axis=0), all_eta.reshape(-1, m), who).reshape(
        len(kk), variants, w)
    hv = dv_scale(data, f)
    h0 = hv[:, 0]
    h[kk, nn] = h0
    if order >= 1:
        plus, minus = hv[:, 1:2 * m + 1:2], hv[:, 2:2 * m + 1:2]  # (R, m, W)
        g[kk, nn] = np.moveaxis((plus - minus) / (2 * ETA_STEP), 1, 2)
    if order >= 2:
        second = np.zeros((len(kk), w, m, m))
        for j in range(m):
            second[:, :, j, j] = (plus[:, j] - 2 * h0 + minus[:, j]) / ETA_STEP**2
        for q, (a, b) in enumerate(pairs):  # h(+a+b) - h(+a) - h(+b) + h: forward cross difference
            cross = (hv[:, 2 * m + 1 + q] - plus[:, a] - plus[:, b] + h0) / ETA_STEP**2
            second[:, :, a, b] = second[:, :, b, a] = cross
        hh[kk, nn] = second
    return h, g, hh


def conditional_modes(data: EstimationData, points: list[Estimates], eta0: np.ndarray, interaction: bool,
                      ) -> Conditional:
    """eta-hat for every (parameter set, individual), by batched Newton steps with step halving.

    Each iteration evaluates h, G and the second derivatives of h only where the mode is not yet found;
    a step that raises phi is halved from the best point so far, otherwise the next Newton step starts
    there. The Hessian of phi is exact up to the central differences (the expected information stands in
    where it is not positive definite), so convergence is quadratic.
    """
    kind = data.model.sigma.kind
    y, mask = data.dv[None], data.obs_mask[None]
    omega_inv = np.stack([np.linalg.inv(p.omega) for p in points])  # (K, m, m)
    sigmas = [p.sigma for p in points]
    k, n, m = eta0.shape
    w = y.shape[-1]
    r_fixed = None
    if not interaction:  # FOCE: residual variances at eta = 0
        h_zero = evaluate_h(data, points, np.zeros_like(eta0), order=0)[0]
        r_fixed = _variances(sigmas, h_zero, kind)[0]
    best = Conditional(eta0.copy(), np.full((k, n, w), np.nan), np.zeros((k, n, w, m)), np.ones((k, n, w)),
                       np.full((k, n), np.inf), np.zeros((k, n), dtype=bool), np.zeros((k, n, m, m)))
    trial = eta0.copy()
    step = np.zeros_like(eta0)
    active = np.ones((k, n), dtype=bool)
    halvings = np.zeros((k, n), dtype=int)
    for _ in range(MAX_INNER):
        h, g, hh = evaluate_h(data, points, trial, order=2, rows=active)
        r, dr = _variances(sigmas, h, kind) if r_fixed is None else (r_fixed, np.zeros_like(h))
        phi = _phi(y, mask, h, r, trial, omega_inv)
        better = active & (phi <= best.phi + 1e-12 * np.abs(np.where(np.isfinite(best.phi), best.phi, 0.0)))
        newton, hessian = _newton_step(y, mask, h, g, hh, r, dr, trial, omega_inv, sigmas, kind, r_fixed is None)
        for name, value in (("eta", trial), ("h", h), ("g", g), ("r", r), ("phi", phi), ("hessian", hessian)):
            getattr(best, name)[better] = value[better]
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


def _newton_step(y, mask, h, g, hh, r, dr, eta, omega_inv, sigmas, kind, interaction):
    """The Newton step on phi and phi's Hessian (K, N, m, m), exact where positive definite."""
    e = np.where(mask, y - h, 0.0)
    ok = np.where(mask & (r > 0), r, 1.0)  # a zero variance (zero prediction, proportional error) is phi = inf
    with np.errstate(all="ignore"):
        weight = np.where(mask, (dr / ok) * (1 - e * e / ok) - 2 * e / ok, 0.0)  # dphi/dh
    gs = np.where(np.isfinite(g), g, 0.0)
    hhs = np.where(np.isfinite(hh), hh, 0.0)
    grad = np.einsum("knw,knwm->knm", weight, gs) + 2 * np.einsum("kab,knb->kna", omega_inv, eta)
    d2r = np.stack([np.full_like(h[i], 2 * s.get("proportional", 0.0)) if interaction and
                    kind in ("proportional", "combined") else np.zeros_like(h[i]) for i, s in enumerate(sigmas)])
    with np.errstate(all="ignore"):
        curvature = np.where(mask, d2r / ok - (dr / ok) ** 2 + 2 / ok + 4 * e * dr / ok**2 - e * e * d2r / ok**2
                             + 2 * e * e * dr**2 / ok**3, 0.0)  # d2phi/dh2
    prior = 2 * omega_inv[:, None]
    exact = np.einsum("knw,knwa,knwb->knab", curvature, gs, gs) + np.einsum("knw,knwab->knab", weight, hhs) + prior
    fallback = np.einsum("knw,knwa,knwb->knab", 2 * _information(mask, r, dr), gs, gs) + prior
    positive = np.all(np.linalg.eigvalsh(np.where(np.isfinite(exact), exact, 0.0)) > 0, axis=-1)
    hess = np.where(positive[..., None, None], exact, fallback)
    with np.errstate(all="ignore"):
        step = -np.linalg.solve(hess, grad[..., None])[..., 0]
    return np.where(np.isfinite(step), step, 0.0), hess


def _information(mask: np.ndarray, r: np.ndarray, dr: np.ndarray) -> np.ndarray:
    """Fisher information of each observation about h: 1/R + (dR/dh / R)^2 / 2 (the variance's own share)."""
    ok = np.where(mask & (r > 0), r, 1.0)
    return np.where(mask, 1 / ok + 0.5 * (dr / ok) ** 2, 0.0)


def _variances(sigmas: list[dict], h: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    parts = [residual_variance(s, h[i], kind) for i, s in enumerate(sigmas)]
    return np.stack([p[0] for p in parts]), np.stack([p[1] for p in parts])


def _phi(y, mask, h, r, eta, omega_inv) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(mask, np.log(r) + (y - h) ** 2 / r, 0.0)
    phi = terms.sum(axis=-1) + np.einsum("kna,kab,knb->kn", eta, omega_inv, eta)
    return np.where(np.isfinite(phi), phi, np.inf)


def information_hessian(data: EstimationData, points: list[Estimates], cond: Conditional) -> np.ndarray:
    """G' I G + Omega^-1 at eta-hat (K, N, m, m): the first-order Hessian of phi / 2 that FOCE-I uses."""
    mask = data.obs_mask[None]
    dr = _variances([p.sigma for p in points], cond.h, data.model.sigma.kind)[1]
    omega_inv = np.stack([np.linalg.inv(p.omega) for p in points])
    g = np.where(np.isfinite(cond.g), cond.g, 0.0)
    return np.einsum("knw,knwa,knwb->knab", _information(mask, cond.r, dr), g, g) + omega_inv[:, None]


def individual_ofv(data: EstimationData, points: list[Estimates], cond: Conditional, method: str) -> np.ndarray:
    """Each individual's contribution (K, N) to the objective of ``method`` at its conditional modes."""
    mask = data.obs_mask[None]
    kind = data.model.sigma.kind
    omegas = np.stack([p.omega for p in points])
    logdet_omega = np.linalg.slogdet(omegas)[1][:, None]
    if method in ("foce-i", "laplace"):
        h_inner = information_hessian(data, points, cond) if method == "foce-i" else cond.hessian / 2
        with np.errstate(invalid="ignore"):  # a trial step may leave NaN in a Hessian: that candidate is refused
            sign, logdet = np.linalg.slogdet(h_inner)
        value = cond.phi + logdet_omega + logdet
        return np.where((sign > 0) & np.isfinite(value), value, np.inf)  # not positive definite: no mode there
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


def objective(data: EstimationData, points: list[Estimates], eta0: np.ndarray, method: str
              ) -> tuple[np.ndarray, np.ndarray, Conditional]:
    """OFV (K,) and its individual contributions (K, N) for K parameter sets; eta0 (K, N, m) warm starts."""
    if method == "fo":
        zero = np.zeros_like(eta0)
        h, g, _ = evaluate_h(data, points, zero, order=1)
        r = _variances([p.sigma for p in points], h, data.model.sigma.kind)[0]
        omega_inv = np.stack([np.linalg.inv(p.omega) for p in points])
        m = eta0.shape[-1]
        cond = Conditional(zero, h, g, r, _phi(data.dv[None], data.obs_mask[None], h, r, zero, omega_inv),
                           np.ones(eta0.shape[:2], dtype=bool), np.zeros((*eta0.shape[:2], m, m)))
    else:
        cond = conditional_modes(data, points, eta0, interaction=method != "foce")
    per = individual_ofv(data, points, cond, method)
    return per.sum(axis=1), per, cond
