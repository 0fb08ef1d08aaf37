"""SAEM: stochastic approximation EM as Monolix, nlmixr2 and NONMEM run it, and the objective by importance sampling.

Each iteration k (Kuhn & Lavielle, ESAIM P&S 2004;8:115 and CSDA 2005;49:1020; Delyon, Lavielle & Moulines,
Ann Stat 1999;27:94):

1. **E-step by MCMC**, every individual and chain in one engine call per move, with the Monolix/saemix
   kernels: ``kernels[0]`` draws from the prior N(0, OMEGA) accepted on the likelihood ratio,
   ``kernels[1]`` random-walk Metropolis moves of all ETAs at once, ``kernels[2]`` sweeps of one-ETA
   moves; the random-walk step sizes adapt after each iteration, s <- s (1 + 0.4 (rate - 0.4)), toward
   40 % acceptance (saemix's rule; NONMEM's IACCEPT=0.4).
2. **Stochastic approximation** of the sufficient statistics, s <- s + gamma_k (S(eta_k) - s), with
   gamma_k = 1 for the ``burn_in`` iterations and 1/j for the j-th of the ``em`` iterations after them
   (the first ``warmup`` iterations only sample).
3. **M-step.** Where an ETA enters a single parameter as P = g(THETA, covariates) exp(ETA) or
   g + ETA (mu-referencing, found by sympy), the chains hold the individual parameter phi = mu + ETA
   with mu = log g (or g), as Monolix does: THETAs that enter only through mu (covariate effects
   included) then minimise sum_i (s1_i - mu_i)' OMEGA^-1 (s1_i - mu_i) over the statistics, with no
   engine call, and OMEGA = (1/N) sum_i E[(phi_i - mu_i)(phi_i - mu_i)'] in closed form, restricted to
   its blocks (diagonal, full, FIX). During the first half of the burn-in a variance may shrink by at
   most 5 % per iteration (Monolix's simulated annealing). Proportional, additive and exponential
   residual variances are closed-form means of the SA statistics; a combined model, and THETAs that act
   on the predictions directly (no ETA, or an ETA that is not mu-referenced), are moved by the
   stochastic approximation of the maximiser, theta <- theta + gamma_k delta, with delta one Fisher-
   scoring step on the complete-data -2 log L at the current samples (residual variances: their exact
   minimiser at the current samples).

After the iterations: the conditional mean and covariance of each individual's ETAs from
``posterior_iterations`` further MCMC iterations at the estimates, and -2 log L by importance sampling
(NONMEM's IMP, Monolix's IS): ``is_samples`` draws per individual from a multivariate t (``is_df``
degrees of freedom) centred at the conditional mean with the conditional covariance as its scale,
-2 log L_i = -2 log mean_s p(y_i|eta_s) p(eta_s) / q(eta_s) without the n_i log(2 pi) constant,
and its Monte Carlo standard error by the delta method. Everything is seeded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import sympy
from scipy.optimize import minimize
from scipy.special import gammaln, logsumexp

from ketaplan.errors import InputError
from ketaplan.estimation.data import EstimationData
from ketaplan.estimation.objective import dv_scale, residual_variance
from ketaplan.estimation.optimize import Iteration
from ketaplan.estimation.parameters import Estimates, ParameterSpace
from ketaplan.estimation.predictions import predict
from ketaplan.nonmem.expressions import compile_expressions, eta_symbol, theta_symbol

TARGET_ACCEPTANCE = 0.4
ADAPTATION = 0.4
ANNEALING = 0.95
THETA_STEP = 1e-4
"""Central-difference step on the unconstrained THETA scale for the Fisher-scoring step."""
MAX_THETA_STEP = 1.0
"""Largest Fisher-scoring move on the unconstrained scale (a factor e on a log-transformed THETA)."""
IS_BATCH_ROWS = 60_000


@dataclass(frozen=True)
class SaemOptions:
    """Iteration counts and Monte Carlo sizes (nlmixr2's saemControl defaults: 200 + 300 iterations, 3 chains,
    two moves of each kernel)."""

    burn_in: int = 200
    em: int = 300
    warmup: int = 5
    chains: int = 3
    kernels: tuple[int, int, int] = (2, 2, 2)
    posterior_iterations: int = 50
    is_samples: int = 3000
    is_df: float = 5.0


@dataclass(frozen=True)
class Referencing:
    """How the ETAs enter the model: phi_i = mu_i(THETA) + eta_i for the mu-referenced ones (mu = 0 otherwise)."""

    referenced: np.ndarray  # (m,) bool
    mu: Callable[[np.ndarray], np.ndarray]  # theta (P,) -> (N, m)
    mu_jacobian: Callable[[np.ndarray], np.ndarray]  # theta (P,) -> (N, m, P), d mu / d THETA
    prior_thetas: tuple[int, ...]  # free THETAs that enter only through mu
    data_thetas: tuple[int, ...]  # free THETAs that change the predictions at fixed phi


@dataclass
class Chains:
    """The MCMC state: ETAs of every chain and individual, their predictions (DV scale) and log p(y | eta)."""

    eta: np.ndarray  # (C, N, m)
    h: np.ndarray  # (C, N, W)
    loglik: np.ndarray  # (C, N), without the 2 pi constant
    steps: np.ndarray  # (2, m) random-walk scales of the joint and the one-ETA kernels
    accepted: np.ndarray = field(default_factory=lambda: np.zeros(3))
    proposed: np.ndarray = field(default_factory=lambda: np.zeros(3))
    calls: int = 0


@dataclass
class Statistics:
    """Stochastic approximations of the sufficient statistics."""

    s1: np.ndarray  # (N, m) E[phi_i]
    s2: np.ndarray  # (m, m) sum_i E[phi_i phi_i']
    residual: float  # sum of squared (scaled) residuals


@dataclass
class ImportanceSampling:
    """-2 log L by importance sampling, its Monte Carlo standard error, and the proposal it used."""

    ofv: float
    se: float
    individual: np.ndarray  # (N,) -2 log L_i
    mean: np.ndarray  # (N, m) conditional means of the ETAs
    cov: np.ndarray  # (N, m, m) conditional covariances
    effective: np.ndarray  # (N,) effective sample sizes


@dataclass
class SaemResult:
    estimates: Estimates
    objective: ImportanceSampling
    iterations: list[Iteration]
    acceptance: np.ndarray  # (3,) acceptance rates of the kernels over the run
    engine_calls: int


# ---------------------------------------------------------------------------------------------- referencing
def referencing(data: EstimationData, space: ParameterSpace) -> Referencing:
    """Find the mu-referenced ETAs (P = g exp(ETA) or g + ETA, ETA in no other expression) and sort the THETAs."""
    model = data.model
    m = model.n_eta
    exprs = {k: sympy.sympify(e.expr) for k, e in model.expressions.items()}
    etas = [eta_symbol(k + 1) for k in range(m)]
    mu_exprs: dict[str, sympy.Expr] = {}
    referenced = np.zeros(m, dtype=bool)
    carriers: set[str] = set()
    for k, eta in enumerate(etas):
        found = _referenced_form(exprs, eta, etas) if data.per_individual else None
        if found is not None:
            name, mu = found
            referenced[k] = True
            mu_exprs[f"MU{k + 1}"] = mu
            carriers.add(name)
    n_theta = len(model.thetas)
    in_mu = {i for e in mu_exprs.values() for i in _theta_numbers(e, n_theta)}
    in_data = {i for name, e in exprs.items() if name not in carriers for i in _theta_numbers(e, n_theta)}
    free = set(space.theta_free)
    derivatives = {f"{name}_{i}": sympy.diff(e, theta_symbol(i + 1)) for name, e in mu_exprs.items()
                   for i in _theta_numbers(e, n_theta)}
    evaluate = compile_expressions({**mu_exprs, **derivatives}, n_theta, m, tuple(sorted(data.covariates))) \
        if mu_exprs else None
    n = data.n_individuals

    def values(theta: np.ndarray) -> dict[str, np.ndarray]:
        return evaluate(theta, np.zeros((n, m)), data.covariates) if evaluate is not None else {}

    def mu(theta: np.ndarray) -> np.ndarray:
        out = np.zeros((n, m))
        for name, v in values(theta).items():
            if "_" not in name:
                out[:, int(name[2:]) - 1] = v
        return out

    def mu_jacobian(theta: np.ndarray) -> np.ndarray:
        out = np.zeros((n, m, n_theta))
        for name, v in values(theta).items():
            if "_" in name:
                k, i = name[2:].split("_")
                out[:, int(k) - 1, int(i)] = v
        return out

    return Referencing(referenced, mu, mu_jacobian, tuple(sorted((in_mu - in_data) & free)),
                       tuple(sorted(in_data & free)))


def _referenced_form(exprs: dict[str, sympy.Expr], eta: sympy.Symbol, etas: list[sympy.Symbol],
                     ) -> tuple[str, sympy.Expr] | None:
    """(parameter, mu) when ``eta`` enters exactly one expression as g exp(eta) or g + eta, g free of ETAs."""
    holders = [name for name, e in exprs.items() if e.has(eta)]
    if len(holders) != 1:
        return None
    f = exprs[holders[0]]
    g = f.subs(eta, 0)
    if any(g.has(other) for other in etas):
        return None
    derivative = sympy.diff(f, eta)
    if sympy.simplify(derivative - f) == 0:
        return holders[0], sympy.log(g)
    if sympy.simplify(derivative - 1) == 0:
        return holders[0], g
    return None


def _theta_numbers(expr: sympy.Expr, n_theta: int) -> set[int]:
    return {i for i in range(n_theta) if expr.has(theta_symbol(i + 1))}


# ---------------------------------------------------------------------------------------------- likelihood
def log_likelihood(data: EstimationData, sigma: dict[str, float], h: np.ndarray) -> np.ndarray:
    """log p(y_i | eta) without the 2 pi constant, for predictions h (..., N, W) on the DV scale; -inf if invalid."""
    r = residual_variance(sigma, h, data.model.sigma.kind)[0]
    with np.errstate(all="ignore"):
        terms = np.where(data.obs_mask, np.log(r) + (data.dv - h) ** 2 / r, 0.0)
        ll = -0.5 * terms.sum(axis=-1)
    return np.where(np.isfinite(ll), ll, -np.inf)


def _predict_chains(data: EstimationData, theta: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """Predictions on the DV scale (..., N, W) for ETAs (..., N, m) and one THETA, in one engine call."""
    lead = eta.shape[:-2]
    n, m = eta.shape[-2:]
    rows = int(np.prod(lead, dtype=int)) * n
    who = np.tile(np.arange(n), rows // n)
    f = predict(data, np.broadcast_to(theta, (rows, len(theta))), eta.reshape(rows, m), who)
    return dv_scale(data, f).reshape(*lead, n, -1)


def _prior_quadratic(eta: np.ndarray, omega_inv: np.ndarray) -> np.ndarray:
    return np.einsum("...a,ab,...b->...", eta, omega_inv, eta)


# ---------------------------------------------------------------------------------------------- E-step
def start_chains(data: EstimationData, est: Estimates, chains: int) -> Chains:
    """All chains at ETA = 0, with random-walk scales starting at the ETAs' standard deviations."""
    eta = np.zeros((chains, data.n_individuals, data.model.n_eta))
    h = _predict_chains(data, est.theta, eta)
    sd = np.sqrt(np.diag(est.omega))
    return Chains(eta, h, log_likelihood(data, est.sigma, h), np.stack([sd, sd]), calls=1)


def _metropolis(data: EstimationData, est: Estimates, chains: Chains, proposal: np.ndarray, omega_inv: np.ndarray,
                rng: np.random.Generator, prior_in_ratio: bool) -> np.ndarray:
    """Accept or reject ``proposal`` for every (chain, individual); returns the acceptance mask."""
    h = _predict_chains(data, est.theta, proposal)
    chains.calls += 1
    loglik = log_likelihood(data, est.sigma, h)
    with np.errstate(invalid="ignore"):
        ratio = loglik - chains.loglik
        if prior_in_ratio:
            ratio += -0.5 * (_prior_quadratic(proposal, omega_inv) - _prior_quadratic(chains.eta, omega_inv))
    accept = np.log(rng.random(ratio.shape)) < np.where(np.isnan(ratio), -np.inf, ratio)
    chains.eta = np.where(accept[..., None], proposal, chains.eta)
    chains.h = np.where(accept[..., None], h, chains.h)
    chains.loglik = np.where(accept, loglik, chains.loglik)
    return accept


def mcmc_iteration(data: EstimationData, est: Estimates, chains: Chains, kernels: tuple[int, int, int],
                   rng: np.random.Generator) -> None:
    """One E-step: prior draws, joint random walks and one-ETA random walks, then step-size adaptation."""
    omega_inv = np.linalg.inv(est.omega)
    chol = np.linalg.cholesky(est.omega)
    shape = chains.eta.shape
    for _ in range(kernels[0]):
        accept = _metropolis(data, est, chains, rng.standard_normal(shape) @ chol.T, omega_inv, rng, False)
        chains.accepted[0] += accept.sum()
        chains.proposed[0] += accept.size
    rate = []
    for _ in range(kernels[1]):
        proposal = chains.eta + rng.standard_normal(shape) * chains.steps[0]
        accept = _metropolis(data, est, chains, proposal, omega_inv, rng, True)
        rate.append(accept.mean())
        chains.accepted[1] += accept.sum()
        chains.proposed[1] += accept.size
    if rate:
        chains.steps[0] *= 1 + ADAPTATION * (np.mean(rate) - TARGET_ACCEPTANCE)
    component_rate = np.zeros(shape[-1])
    for _ in range(kernels[2]):
        for k in range(shape[-1]):
            proposal = chains.eta.copy()
            proposal[..., k] += rng.standard_normal(shape[:-1]) * chains.steps[1, k]
            accept = _metropolis(data, est, chains, proposal, omega_inv, rng, True)
            component_rate[k] += accept.mean() / kernels[2]
            chains.accepted[2] += accept.sum()
            chains.proposed[2] += accept.size
    if kernels[2]:
        chains.steps[1] *= 1 + ADAPTATION * (component_rate - TARGET_ACCEPTANCE)


# ---------------------------------------------------------------------------------------------- M-step
def _residual_statistic(data: EstimationData, chains: Chains) -> float:
    """Mean over chains of the squared residuals (relative ones for proportional error)."""
    e = np.where(data.obs_mask, data.dv - chains.h, 0.0)
    if data.model.sigma.kind == "proportional":
        e = np.where(data.obs_mask, e / np.where(data.obs_mask, chains.h, 1.0), 0.0)
    return float(np.sum(e * e) / len(chains.h))


def _statistics(data: EstimationData, chains: Chains, mu: np.ndarray) -> Statistics:
    phi = chains.eta + mu
    return Statistics(phi.mean(axis=0), np.einsum("cna,cnb->ab", phi, phi) / len(phi),
                      _residual_statistic(data, chains))


def _approximate(old: Statistics, new: Statistics, gamma: float) -> Statistics:
    return Statistics(old.s1 + gamma * (new.s1 - old.s1), old.s2 + gamma * (new.s2 - old.s2),
                      old.residual + gamma * (new.residual - old.residual))


def _prior_thetas(space: ParameterSpace, ref: Referencing, est: Estimates, stats: Statistics) -> np.ndarray:
    """THETAs entering only through mu: minimise sum_i (s1_i - mu_i)' OMEGA^-1 (s1_i - mu_i)."""
    theta = est.theta.copy()
    idx = list(ref.prior_thetas)
    if not idx:
        return theta
    whitening = np.linalg.inv(np.linalg.cholesky(est.omega))
    lower = np.array([space.model.thetas[i].lower for i in idx])
    upper = np.array([space.model.thetas[i].upper for i in idx])

    def trial(x: np.ndarray) -> np.ndarray:
        out = theta.copy()
        out[idx] = x
        return out

    def residuals(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r = (stats.s1 - ref.mu(trial(x))) @ whitening.T
        d = -np.einsum("ab,nbp->nap", whitening, ref.mu_jacobian(trial(x))[:, :, idx])
        return r.ravel(), d.reshape(-1, len(idx))

    theta[idx] = _gauss_newton(residuals, theta[idx], lower, upper)
    return theta


def _gauss_newton(residuals: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]], x: np.ndarray,
                  lower: np.ndarray, upper: np.ndarray, iterations: int = 50) -> np.ndarray:
    """Minimise |r(x)|^2 within (lower, upper) by Gauss-Newton steps, halved until inside and downhill."""
    r, jac = residuals(x)
    cost = r @ r
    for _ in range(iterations):
        step = np.linalg.lstsq(jac, -r, rcond=None)[0]
        t = 1.0
        while t > 1e-6:
            trial = x + t * step
            if np.all((trial > lower) & (trial < upper)):
                r_new, jac_new = residuals(trial)
                if np.all(np.isfinite(r_new)) and r_new @ r_new <= cost:
                    break
            t /= 2
        else:
            return x
        x, r, jac, cost = trial, r_new, jac_new, r_new @ r_new
        if np.all(np.abs(t * step) <= 1e-10 * (1 + np.abs(x))):
            break
    return x


def _omega(model_omega, old: np.ndarray, stats: Statistics, mu: np.ndarray, anneal: bool) -> np.ndarray:
    """(1/N) sum_i E[(phi_i - mu_i)(phi_i - mu_i)'] within the blocks; FIX blocks keep their values."""
    n = len(mu)
    full = (stats.s2 - stats.s1.T @ mu - mu.T @ stats.s1 + mu.T @ mu) / n
    out = np.zeros_like(old)
    for block in model_omega.blocks:
        sl = slice(block.start, block.start + block.size)
        if block.fixed:
            out[sl, sl] = old[sl, sl]
            continue
        part = np.diag(np.diag(full[sl, sl])) if block.diagonal else full[sl, sl]
        if anneal:
            part = part + np.diag(np.maximum(0.0, ANNEALING * np.diag(old[sl, sl]) - np.diag(part)))
        out[sl, sl] = part
    return 0.5 * (out + out.T)


def _sigma(data: EstimationData, est: Estimates, chains: Chains, stats: Statistics, gamma: float,
           anneal: bool) -> dict[str, float]:
    """Residual variances: closed form for one kind, the SA of the exact maximiser for a combined model."""
    spec = data.model.sigma
    free = [k for k in spec.order if k not in spec.fixed]
    if not free:
        return est.sigma
    sigma = dict(est.sigma)
    if spec.kind == "combined":
        target = _combined_maximiser(data, est.sigma, free, chains.h)
        for k in free:
            sigma[k] = est.sigma[k] + gamma * (target[k] - est.sigma[k])
    else:
        sigma[free[0]] = stats.residual / data.n_observations
    if anneal:
        for k in free:
            sigma[k] = max(sigma[k], ANNEALING * est.sigma[k])
    return sigma


def _combined_maximiser(data: EstimationData, sigma: dict[str, float], free: list[str], h: np.ndarray,
                        ) -> dict[str, float]:
    """Additive and proportional variances maximising the likelihood of the current samples."""
    mask = np.broadcast_to(data.obs_mask, h.shape)
    h2 = np.where(mask, h, 0.0) ** 2
    e2 = np.where(mask, data.dv - h, 0.0) ** 2

    def value(x: np.ndarray) -> tuple[float, np.ndarray]:
        s = {**sigma, **dict(zip(free, np.exp(x), strict=True))}
        r = np.where(mask, s["additive"] + s["proportional"] * h2, 1.0)
        d = np.where(mask, 1 / r - e2 / r**2, 0.0)  # d(log r + e2/r)/dr
        parts = {"additive": d.sum(), "proportional": (d * h2).sum()}
        return float(np.where(mask, np.log(r) + e2 / r, 0.0).sum()), np.array([parts[k] * s[k] for k in free])

    fit = minimize(value, np.log([max(sigma[k], 1e-12) for k in free]), jac=True, method="L-BFGS-B")
    return {**sigma, **dict(zip(free, np.exp(fit.x), strict=True))}


def _data_thetas(data: EstimationData, space: ParameterSpace, ref: Referencing, est: Estimates, chains: Chains,
                 gamma: float) -> np.ndarray:
    """THETAs acting on the predictions: theta + gamma x one Fisher-scoring step of the complete-data -2 log L."""
    idx = list(ref.data_thetas)
    if not idx:
        return est.theta
    base_u = space.to_unconstrained(est)
    positions = [space.theta_free.index(i) for i in idx]
    shifts = [np.zeros(len(idx))]
    for j in range(len(idx)):
        e = np.zeros(len(idx))
        e[j] = THETA_STEP
        shifts += [e, -e]

    def theta_at(shift: np.ndarray) -> np.ndarray:
        u = base_u.copy()
        u[positions] += shift
        return space.from_unconstrained(u, est).theta

    thetas = [theta_at(s) for s in shifts]
    phi = chains.eta + ref.mu(est.theta)
    etas = np.stack([phi - ref.mu(t) for t in thetas])  # (V, C, N, m)
    h = _predict_all(data, np.stack(thetas), etas)
    chains.calls += 1
    kind = data.model.sigma.kind
    mask = data.obs_mask
    r, dr = residual_variance(est.sigma, h[0], kind)
    ok = np.where(mask, r, 1.0)
    e = np.where(mask, data.dv - h[0], 0.0)
    slope = np.where(mask, (dr / ok) * (1 - e * e / ok) - 2 * e / ok, 0.0)  # d(log R + e^2/R)/dh
    information = np.where(mask, 2 / ok + (dr / ok) ** 2, 0.0)
    jac = (h[1::2] - h[2::2]) / (2 * THETA_STEP)  # (p, C, N, W)
    jac = np.where(np.isfinite(jac) & mask, jac, 0.0)
    omega_inv = np.linalg.inv(est.omega)
    q = etas[0] @ omega_inv  # d(eta' Omega^-1 eta)/d eta / 2
    jac_eta = (etas[1::2] - etas[2::2]) / (2 * THETA_STEP)  # (p, C, N, m)
    grad = np.einsum("pcnw,cnw->p", jac, slope) + 2 * np.einsum("pcna,cna->p", jac_eta, q)
    hess = np.einsum("pcnw,cnw,qcnw->pq", jac, information, jac) \
        + 2 * np.einsum("pcna,ab,qcnb->pq", jac_eta, omega_inv, jac_eta)
    with np.errstate(all="ignore"):
        delta = -np.linalg.lstsq(hess, grad, rcond=None)[0]
    delta = np.clip(np.where(np.isfinite(delta), delta, 0.0), -MAX_THETA_STEP, MAX_THETA_STEP)
    return theta_at(gamma * delta)


def _predict_all(data: EstimationData, thetas: np.ndarray, etas: np.ndarray) -> np.ndarray:
    """Predictions (V, C, N, W) for V THETA vectors, each with its own ETAs (V, C, N, m), in one engine call."""
    v, c, n, m = etas.shape
    who = np.tile(np.arange(n), v * c)
    f = predict(data, np.repeat(thetas, c * n, axis=0), etas.reshape(-1, m), who)
    return dv_scale(data, f).reshape(v, c, n, -1)


# ---------------------------------------------------------------------------------------------- the run
def saem(data: EstimationData, space: ParameterSpace, start: Estimates, options: SaemOptions = SaemOptions(),
         seed: int = 0, on_iteration: Callable[[Iteration], None] | None = None) -> SaemResult:
    """SAEM from ``start``; each iteration is reported (its ``ofv`` is the complete-data -2 log L, NONMEM's
    SAEMOBJ, and ``evaluations`` counts engine calls), then the objective by importance sampling."""
    _check_omega(start)
    rng = np.random.default_rng(seed)
    ref = referencing(data, space)
    est = start
    chains = start_chains(data, est, options.chains)
    stats: Statistics | None = None
    iterations: list[Iteration] = []
    total = options.warmup + options.burn_in + options.em
    for k in range(total):
        mcmc_iteration(data, est, chains, options.kernels, rng)
        if k < options.warmup:
            continue
        j = k - options.warmup - options.burn_in
        gamma = 1.0 if j < 0 else 1.0 / (j + 1)
        anneal = k - options.warmup < options.burn_in // 2
        mu = ref.mu(est.theta)
        new = _statistics(data, chains, mu)
        stats = new if stats is None else _approximate(stats, new, gamma)
        est = _m_step(data, space, ref, est, chains, stats, gamma, anneal)
        item = Iteration(len(iterations), complete_ofv(data, est, chains),
                         dict(zip(space.free_names(), map(float, space.natural(est)), strict=True)),
                         float("nan"), chains.calls)
        iterations.append(item)
        if on_iteration is not None:
            on_iteration(item)
    objective = importance_objective(data, est, chains, options, rng)
    return SaemResult(est, objective, iterations, chains.accepted / np.maximum(chains.proposed, 1), chains.calls)


def _m_step(data: EstimationData, space: ParameterSpace, ref: Referencing, est: Estimates, chains: Chains,
            stats: Statistics, gamma: float, anneal: bool) -> Estimates:
    """THETA through mu, OMEGA, THETA on the predictions, SIGMA; the chains keep their phi (and predictions)."""
    phi = chains.eta + ref.mu(est.theta)
    theta = _prior_thetas(space, ref, est, stats)
    mu = ref.mu(theta)
    omega = _omega(data.model.omega, est.omega, stats, mu, anneal)
    est = est.with_(theta=theta, omega=omega)
    chains.eta = phi - mu
    if ref.data_thetas:
        est = est.with_(theta=_data_thetas(data, space, ref, est, chains, gamma))
        chains.eta = phi - ref.mu(est.theta)
        chains.h = _predict_chains(data, est.theta, chains.eta)
        chains.calls += 1
    est = est.with_(sigma=_sigma(data, est, chains, stats, gamma, anneal))
    chains.loglik = log_likelihood(data, est.sigma, chains.h)
    return est


def complete_ofv(data: EstimationData, est: Estimates, chains: Chains) -> float:
    """Complete-data -2 log L at the current samples (mean over chains), without constants."""
    omega_inv = np.linalg.inv(est.omega)
    per = -2 * chains.loglik + _prior_quadratic(chains.eta, omega_inv) + np.linalg.slogdet(est.omega)[1]
    return float(per.sum(axis=1).mean())


def _check_omega(est: Estimates) -> None:
    if est.omega.size == 0:
        raise InputError("MODEL omega", None, "SAEM samples the ETAs: the model needs at least one ETA")
    if np.linalg.eigvalsh(est.omega).min() <= 0:
        raise InputError("MODEL omega", "a zero variance", "SAEM needs every ETA variance > 0 (remove an ETA "
                         "whose variance is fixed at 0)")


# ---------------------------------------------------------------------------------------------- objective
def evaluate_objective(data: EstimationData, est: Estimates, options: SaemOptions = SaemOptions(), seed: int = 0,
                       ) -> tuple[ImportanceSampling, int]:
    """-2 log L by importance sampling at fixed estimates (NONMEM's IMP with EONLY=1): chains from ETA = 0,
    ``posterior_iterations`` iterations to forget the start, then :func:`importance_objective`; also
    returns the number of engine calls."""
    _check_omega(est)
    rng = np.random.default_rng(seed)
    chains = start_chains(data, est, options.chains)
    for _ in range(options.posterior_iterations):
        mcmc_iteration(data, est, chains, options.kernels, rng)
    return importance_objective(data, est, chains, options, rng), chains.calls


def importance_objective(data: EstimationData, est: Estimates, chains: Chains, options: SaemOptions,
                         rng: np.random.Generator) -> ImportanceSampling:
    """Conditional moments from ``posterior_iterations`` MCMC iterations at ``est``, then -2 log L by IS."""
    m = est.omega.shape[0]
    total = np.zeros(chains.eta.shape[1:])
    outer = np.zeros((*chains.eta.shape[1:], m))
    count = 0
    for _ in range(options.posterior_iterations):
        mcmc_iteration(data, est, chains, options.kernels, rng)
        total += chains.eta.sum(axis=0)
        outer += np.einsum("cna,cnb->nab", chains.eta, chains.eta)
        count += len(chains.eta)
    mean = total / count
    cov = outer / count - np.einsum("na,nb->nab", mean, mean)
    cov += np.eye(m) * 1e-6 * np.diag(est.omega)  # a floor where a chain barely moved
    return importance_sampling(data, est, mean, cov, options.is_samples, options.is_df, rng)


def importance_sampling(data: EstimationData, est: Estimates, mean: np.ndarray, cov: np.ndarray, samples: int,
                        df: float, rng: np.random.Generator) -> ImportanceSampling:
    """-2 log L = sum_i -2 log mean_s w_is, w = p(y_i | eta) p(eta) / q(eta), q a multivariate t (``df``)."""
    n, m = mean.shape
    chol = np.linalg.cholesky(cov)
    per_batch = max(1, IS_BATCH_ROWS // n)
    log_w = []
    for start in range(0, samples, per_batch):
        s = min(per_batch, samples - start)
        z = rng.standard_normal((s, n, m))
        scale = np.sqrt(rng.chisquare(df, (s, n, 1)) / df)
        eta = mean + np.einsum("nab,snb->sna", chol, z / scale)
        log_w.append(log_likelihood(data, est.sigma, _predict_chains(data, est.theta, eta))
                     + _normal_logpdf(eta, est.omega) - _t_logpdf(z / scale, chol, df))
    lw = np.concatenate(log_w)  # (S, N)
    log_l = logsumexp(lw, axis=0) - np.log(samples)
    w = np.exp(lw - lw.max(axis=0))
    relative_var = w.var(axis=0) / np.maximum(w.mean(axis=0), 1e-300) ** 2 / samples
    effective = w.sum(axis=0) ** 2 / np.maximum((w * w).sum(axis=0), 1e-300)
    individual = -2 * log_l
    return ImportanceSampling(float(individual.sum()), float(2 * np.sqrt(relative_var.sum())), individual, mean,
                              cov, effective)


def _normal_logpdf(eta: np.ndarray, omega: np.ndarray) -> np.ndarray:
    m = omega.shape[0]
    return -0.5 * (_prior_quadratic(eta, np.linalg.inv(omega)) + np.linalg.slogdet(omega)[1] + m * np.log(2 * np.pi))


def _t_logpdf(x: np.ndarray, chol: np.ndarray, df: float) -> np.ndarray:
    """Log density of the multivariate t with scale L L' at eta = mean + L x (x the standardised draw)."""
    m = x.shape[-1]
    logdet = 2 * np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(axis=-1)
    return (gammaln((df + m) / 2) - gammaln(df / 2) - 0.5 * m * np.log(df * np.pi) - 0.5 * logdet
            - 0.5 * (df + m) * np.log1p((x * x).sum(axis=-1) / df))
