"""Population estimation of a library model's relief parameters, with a responder mixture and priors.

What a clinic learns from its record (:mod:`ketaplan.course.learn`): the typical relief C50, the half-life
of the slow relief site, Emax and the Hill coefficient, the typical baseline pain, the day-to-day SD of a
pain score, the probability of responding, and the between-patient variances of C50, half-life and
baseline. The PK stays at its published typical values for each patient's covariates (measured levels
inform a patient's own forecast, not the population relief values, and are left out here).

Each patient's pain scores are a mixture of a responder (relief as the model says) and a non-responder (no
relief: the baseline alone, in closed form), each integrated over the random effects with Laplace's
approximation at the conditional mode, with the observation-level curvature of -2 log L (an
interval-censored normal: score k covers k - 0.5 to k + 0.5) through G = d prediction / d eta:

    OFV_i = -2 log[ p exp(-O_resp/2) + (1 - p) exp(-O_non/2) ],
    O = phi(eta-hat) + log det Omega + log det(G' D G + Omega^-1),   phi(eta) = -2 log L(y | eta) + eta' Omega^-1 eta

(constants left out, as NONMEM's objective). The published values enter as priors in the manner of NONMEM's
$PRIOR NWPRI: normal priors on the (log- or logit-transformed) typical values, and for each estimated
variance an inverse-Wishart with nu degrees of freedom centred on the published variance:
-2 log p(omega) = (nu + 2) log omega + nu omega_0 / omega. ``weight`` scales every prior's precision and
nu at once (0: no prior, the clinic's data alone).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize
from scipy.special import logsumexp

from ketaplan.errors import InputError
from ketaplan.estimation.library_cohort import BoundCohort, relief_table
from ketaplan.individualize.likelihood import log_interval_probability

ETA_STEP = 1e-4
THETA_STEP = 1e-4
INNER_TOLERANCE = 1e-8
"""A mode is found when the next Newton step would lower phi by less than this (objective units)."""
MAX_INNER = 40
HALF_LOG_2PI = 0.5 * np.log(2 * np.pi)
STOP_IMPROVEMENT = 1e-3
"""The search stops when three iterations together lower the objective by less than this."""


@dataclass(frozen=True)
class Learnable:
    """A typical value to learn: the model parameter, its scale, and the prior from the publication."""

    name: str
    transform: str  # "log" or "logit"
    prior_sd: float  # SD of the prior on the transformed scale (the published value is its mean)
    source: str


@dataclass(frozen=True)
class Prior:
    """The published values as priors: per typical value an SD, per learned variance nu, all times ``weight``."""

    learnables: tuple[Learnable, ...]
    variances: tuple[str, ...]  # parameters whose between-patient variance is learned
    nu: float
    weight: float = 1.0


@dataclass
class LearnedValues:
    """Population values on their natural scales: typical values (own units) and variances (log scale)."""

    typical: dict[str, float]
    variances: dict[str, float]


@dataclass
class LearningResult:
    """What estimation gave: the values, their uncertainty and how the objective changed."""

    published: LearnedValues
    learned: LearnedValues
    ofv: float  # -2 log L at the learned values (no prior)
    ofv_published: float  # -2 log L at the published values
    penalty: float  # the prior's -2 log p at the learned values
    covariance: np.ndarray | None  # of the transformed vector (learnables, then log variances)
    names: list[str]
    converged: bool
    message: str
    iterations: int
    p_responder: np.ndarray  # (N,) posterior probability that each patient responds
    eta: np.ndarray  # (N, m) responder conditional modes at the learned values
    shrinkage: dict[str, float] = field(default_factory=dict)


class Objective:
    """The mixture-Laplace objective of a bound cohort, batched over parameter vectors."""

    def __init__(self, bound: BoundCohort, prior: Prior) -> None:
        self.bound, self.prior = bound, prior
        self.names = [lv.name for lv in prior.learnables]
        self.published = {name: float(bound.spec.parameters[name].value) for name in self.names}
        eta_names = list(bound.eta_names)
        missing = [v for v in prior.variances if v not in eta_names]
        if missing:
            raise InputError("learn variance", missing[0], f"model {bound.spec.id} has between-patient variability on "
                             f"{', '.join(eta_names)}")
        self.var_index = [eta_names.index(v) for v in prior.variances]
        self.omega0 = bound.omega
        self.eta = np.zeros((bound.n_patients, 2, len(eta_names)))  # warm starts per component
        self.p_name = bound.relief.p_response
        self.sd_name = bound.relief.score_sd
        self.table = relief_table(bound)
        self.scores = _score_bounds(bound)

    # ------------------------------------------------------------------ parameter vector
    def initial(self) -> np.ndarray:
        u = [_forward(self.published[lv.name], lv.transform) for lv in self.prior.learnables]
        u += [float(np.log(self.omega0[i, i])) for i in self.var_index]
        return np.array(u)

    def values(self, u: np.ndarray) -> LearnedValues:
        k = len(self.prior.learnables)
        typical = {lv.name: _backward(u[j], lv.transform) for j, lv in enumerate(self.prior.learnables)}
        variances = {name: float(np.exp(u[k + j])) for j, name in enumerate(self.prior.variances)}
        return LearnedValues(typical, variances)

    def omega(self, u: np.ndarray) -> np.ndarray:
        om = self.omega0.copy()
        k = len(self.prior.learnables)
        for j, i in enumerate(self.var_index):
            om[i, i] = np.exp(u[k + j])
        return om

    def penalty(self, u: np.ndarray) -> float:
        """-2 log prior (up to a constant): normal on transformed typical values, inverse-Wishart per variance."""
        w = self.prior.weight
        if w == 0:
            return 0.0
        u0 = self.initial()
        k = len(self.prior.learnables)
        sd = np.array([lv.prior_sd for lv in self.prior.learnables])
        typical = float(np.sum(w * ((u[:k] - u0[:k]) / sd) ** 2))
        nu = w * self.prior.nu
        log_var, log_var0 = u[k:], u0[k:]
        wishart = float(np.sum((nu + 2) * log_var + nu * np.exp(log_var0 - log_var)))
        return typical + wishart

    # ------------------------------------------------------------------ likelihood pieces
    def _factors(self, values: list[LearnedValues]) -> dict[str, np.ndarray]:
        """Factors (K,) on the published typical values of every learned parameter."""
        return {n: np.array([v.typical[n] / self.published[n] for v in values]) for n in self.names
                if n not in (self.p_name, self.sd_name)}

    def _score_sd(self, values: list[LearnedValues]) -> np.ndarray:
        if self.sd_name in self.names:
            return np.array([v.typical[self.sd_name] for v in values])
        return np.full(len(values), float(self.bound.spec.parameters[self.sd_name].value))

    def _p_response(self, values: list[LearnedValues]) -> np.ndarray:
        if self.p_name in self.names:
            return np.array([v.typical[self.p_name] for v in values])
        return np.full(len(values), float(self.bound.spec.parameters[self.p_name].value))

    def evaluate(self, us: list[np.ndarray], eta0: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
        """-2 log L (K,) and per patient (K, N) for K parameter vectors (no prior), with the modes found."""
        values = [self.values(u) for u in us]
        omegas = np.stack([self.omega(u) for u in us])
        k, n, m = len(us), self.bound.n_patients, len(self.bound.eta_names)
        start = np.broadcast_to(self.eta if eta0 is None else eta0, (k, n, 2, m)).copy()
        factors = self._factors(values)
        sd = self._score_sd(values)
        eta_r, o_r = self._laplace(omegas, start[:, :, 0], sd, lambda e, a: self._predict(factors, e, a))
        b = self.base_index
        keep = [b]
        eta_n, o_n = self._laplace(omegas[:, keep][:, :, keep], start[:, :, 1, keep], sd,
                                   lambda e, a: self._baseline_only(factors, e, a))
        modes = np.zeros((k, n, 2, m))
        modes[:, :, 0] = eta_r
        modes[:, :, 1, b] = eta_n[..., 0]
        p = np.clip(self._p_response(values), 1e-12, 1 - 1e-12)[:, None]
        stacked = np.stack([np.log(p) - o_r / 2, np.log1p(-p) - o_n / 2], axis=0)
        per = -2 * logsumexp(stacked, axis=0)
        post = np.exp(stacked[0] - logsumexp(stacked, axis=0))
        per = np.where(np.isfinite(per), per, np.inf)
        return per.sum(axis=1), per, {"eta": modes, "p_responder": post}

    @property
    def base_index(self) -> int:
        return list(self.bound.eta_names).index(self.bound.relief.baseline)

    def _laplace(self, omegas, eta0, sd, predict) -> tuple[np.ndarray, np.ndarray]:
        """Conditional modes (K, N, m) by batched Newton steps, and the Laplace objective (K, N).

        ``predict(eta, active)`` gives predictions (K, N, W), their first derivatives (K, N, W, m) in eta and
        a function that contracts weights (K, N, W) with their second derivatives to (K, N, m, m). The
        Hessian of phi is exact (closed form) where it is positive definite, the first-order form elsewhere,
        so the steps converge quadratically.
        """
        k, n, m = eta0.shape
        omega_inv = np.linalg.inv(omegas)
        logdet = np.linalg.slogdet(omegas)[1][:, None]
        eta = eta0.copy()
        best_phi = np.full((k, n), np.inf)
        best = eta.copy()
        best_hess = np.broadcast_to(omega_inv[:, None], (k, n, m, m)).copy()
        active = np.ones((k, n), dtype=bool)
        step = np.zeros_like(eta)
        halvings = np.zeros((k, n), dtype=int)
        for _ in range(MAX_INNER):
            pred, g, curvature = predict(eta, active)
            neg2, dl, d2l = self._obs_terms(pred, sd)
            phi = neg2 + np.einsum("kna,kab,knb->kn", eta, omega_inv, eta)
            phi = np.where(active & np.isfinite(phi), phi, np.inf)
            better = active & (phi <= best_phi + 1e-10 * np.abs(np.where(np.isfinite(best_phi), best_phi, 0)))
            grad = np.einsum("knw,knwa->kna", dl, g) + 2 * np.einsum("kab,knb->kna", omega_inv, eta)
            first = 0.5 * np.einsum("knw,knwa,knwb->knab", d2l, g, g) + omega_inv[:, None]
            exact = first + 0.5 * curvature(dl)
            positive = np.all(np.linalg.eigvalsh(np.where(np.isfinite(exact), exact, 0.0)) > 0, axis=-1)
            hess = np.where(positive[..., None, None], exact, first)  # phi's Hessian / 2
            best[better], best_phi[better], best_hess[better] = eta[better], phi[better], hess[better]
            with np.errstate(all="ignore"):
                newton = -np.linalg.solve(2 * hess, grad[..., None])[..., 0]
            newton = np.where(np.isfinite(newton), newton, 0.0)
            expected_decrease = -0.5 * np.einsum("kna,kna->kn", grad, newton)
            done = better & (expected_decrease < INNER_TOLERANCE)
            worse = active & ~better
            halvings = np.where(worse, halvings + 1, 0)
            step = np.where(better[..., None], newton, np.where(worse[..., None], step / 2, step))
            stalled = worse & (np.max(np.abs(step), axis=-1) < 1e-7)  # at the noise floor of phi: the best stands
            active &= ~done & ~stalled & (halvings < 25)
            if not active.any():
                break
            eta = np.where(active[..., None], best + step, best)
        sign, logdet_hess = np.linalg.slogdet(best_hess)
        objective = best_phi + logdet + logdet_hess
        return best, np.where(sign > 0, objective, np.inf)

    def _predict(self, factors, eta, active):
        """Responder pain scores (K, N, W) at eta with their first (K, N, W, m) and second (K, N, W, m, m)
        derivatives in eta, in closed form from the relief-site table: pain = B e^eta_B (1 - E sigma(z)),
        z = gamma (log Ce(u) - log C50 - eta_C), u = log half-life + eta_T (sigma the logistic function)."""
        b = self.bound
        layer = b.relief
        k, n, m = eta.shape
        names = list(b.eta_names)

        def typical(ref):
            if not isinstance(ref, str):
                return np.full((k, n), float(ref))
            return b.typical[ref][None, :] * factors.get(ref, np.ones(k))[:, None]

        def effect(ref):
            return eta[..., names.index(ref)] if isinstance(ref, str) and ref in names else np.zeros((k, n))

        half_life = b.relief_half_life
        u = np.log(typical(half_life)) + effect(half_life)
        log_ce, d_u, d_uu = self.table.at(u.ravel(), np.tile(np.arange(n), k))
        log_ce, d_u, d_uu = (a.reshape(k, n, -1) for a in (log_ce, d_u, d_uu))
        gamma = typical(layer.gamma)[..., None]
        z = gamma * (log_ce - np.log(typical(layer.c50))[..., None] - effect(layer.c50)[..., None])
        with np.errstate(over="ignore"):
            sig = np.where(np.isfinite(z), 1 / (1 + np.exp(-z)), 0.0)
        emax = typical(layer.emax)[..., None]
        h, h1, h2 = emax * sig, emax * sig * (1 - sig), emax * sig * (1 - sig) * (1 - 2 * sig)
        amplitude = (typical(layer.baseline) * np.exp(effect(layer.baseline)))[..., None]
        pred = amplitude * (1 - h)
        w = pred.shape[-1]
        slopes = {}  # eta index -> dz/d eta (K, N, W) of the logistic's argument
        if isinstance(layer.c50, str) and layer.c50 in names:
            slopes[names.index(layer.c50)] = np.broadcast_to(-gamma, (k, n, w))
        t_index = names.index(half_life) if half_life in names else None
        if t_index is not None:
            slopes[t_index] = gamma * d_u
        g = np.zeros((k, n, w, m))
        for j, dz in slopes.items():
            g[..., j] = -amplitude * h1 * dz
        b_index = names.index(layer.baseline) if layer.baseline in names else None
        if b_index is not None:
            g[..., b_index] = pred

        def curvature(weights: np.ndarray) -> np.ndarray:
            """sum over scores of weight x d2 pred / d eta_a d eta_b, (K, N, m, m). An overflowing amplitude
            gives NaN here, and the Laplace step then takes the first-order form."""
            out = np.zeros((k, n, m, m))
            with np.errstate(invalid="ignore"):
                a_h1, a_h2 = amplitude * h1 * weights, amplitude * h2 * weights
                for a, dza in slopes.items():
                    for c, dzc in slopes.items():
                        if c <= a:
                            term = -np.einsum("knw,knw->kn", a_h2, dza * dzc)
                            if a == c == t_index:
                                term -= np.einsum("knw,knw->kn", a_h1, gamma * d_uu)
                            out[..., a, c] = out[..., c, a] = term
                if b_index is not None:  # pred is linear in exp(eta_B): d/d eta_B repeats the first derivative
                    for a in range(m):
                        out[..., a, b_index] = out[..., b_index, a] = np.einsum("knw,knw->kn", weights, g[..., a])
            return out

        return pred, g, curvature

    def _baseline_only(self, factors, eta, active):
        """A non-responder's pain score is the baseline alone: B exp(eta) at every time (so are its derivatives)."""
        b = self.bound
        name = b.relief.baseline
        base = b.typical[name][None, :] * factors.get(name, np.ones(len(eta)))[:, None] * np.exp(eta[..., 0])
        pred = np.broadcast_to(base[..., None], (*base.shape, b.obs_time.shape[1]))
        return pred, pred[..., None], lambda weights: (weights * pred).sum(axis=-1)[..., None, None]

    def _obs_terms(self, pred: np.ndarray, score_sd: np.ndarray):
        """Per patient -2 log L (K, N) of the pain scores and, per score, its first and second derivative in the
        prediction, in closed form. For a score k (latent value in k - 0.5 .. k + 0.5) with a = (lo - pred) / s,
        b = (hi - pred) / s and L = Phi(b) - Phi(a): d(-2 log L)/d pred = -2 (phi(a) - phi(b)) / (s L) and
        d2 = -2 [(a phi(a) - b phi(b)) / (s^2 L) - ((phi(a) - phi(b)) / (s L))^2], with phi / L formed in logs
        so that both stay finite far in the tails."""
        y, lo, hi, continuous, used = self.scores
        s = score_sd[:, None, None]
        a, b = (lo - pred) / s, (hi - pred) / s
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            log_l = log_interval_probability(a, b)
            ra = np.where(np.isfinite(a), np.exp(-0.5 * a * a - HALF_LOG_2PI - log_l), 0.0)
            rb = np.where(np.isfinite(b), np.exp(-0.5 * b * b - HALF_LOG_2PI - log_l), 0.0)
            slope = (ra - rb) / s
            bend = (np.where(np.isfinite(a), a * ra, 0.0) - np.where(np.isfinite(b), b * rb, 0.0)) / s**2
            interval = (-2 * log_l, -2 * slope, -2 * (bend - slope**2))
            z = (y - pred) / s
            density = (2 * np.log(s) + z**2, -2 * z / s, np.broadcast_to(2 / s**2, pred.shape))
        f0, d1, d2 = (np.where(continuous, c, i) for c, i in zip(density, interval, strict=True))
        total = np.where(used, f0, 0.0).sum(axis=-1)
        return total, np.where(used, d1, 0.0), np.where(used, np.maximum(d2, 1e-9), 0.0)


def learn(bound: BoundCohort, prior: Prior, on_iteration: Callable[[int, float], None] | None = None,
          max_iterations: int = 200, start: np.ndarray | None = None, covariance: bool = True) -> LearningResult:
    """The population values that minimise -2 log L + the prior's -2 log p, with their uncertainty."""
    fn = Objective(bound, prior)
    u0 = fn.initial()
    x_start = (np.zeros(len(u0)) if start is None else start - u0)
    published = fn.values(u0)
    ofv_published = float(fn.evaluate([u0])[0][0])
    state = {"iterations": 0}

    def value_and_gradient(x: np.ndarray) -> tuple[float, np.ndarray]:
        p = len(x)
        points = [u0 + x] + [u0 + x + s * THETA_STEP * e for e in np.eye(p) for s in (1, -1)]
        total, _per, info = fn.evaluate(points)
        if np.isfinite(total[0]):
            fn.eta = info["eta"][0]
        penalties = np.array([fn.penalty(pt) for pt in points])
        values = total + penalties
        if not np.isfinite(values[0]):
            return float("inf"), np.zeros(p)
        plus, minus = values[1::2], values[2::2]
        grad = np.where(np.isfinite(plus) & np.isfinite(minus), (plus - minus) / (2 * THETA_STEP), 0.0)
        return float(values[0]), grad

    history: list[float] = []

    def callback(intermediate_result) -> None:
        state["iterations"] += 1
        history.append(float(intermediate_result.fun))
        if on_iteration is not None:
            on_iteration(state["iterations"], history[-1])
        if len(history) > 3 and history[-4] - history[-1] < STOP_IMPROVEMENT:
            state["settled"] = True
            raise StopIteration  # three iterations gained less than the objective's own noise

    result = minimize(value_and_gradient, x_start, jac=True, method="BFGS", callback=callback,
                      options={"gtol": 1e-3, "maxiter": max_iterations})
    u = u0 + result.x
    total, _per, info = fn.evaluate([u])
    cov = _covariance(fn, u) if covariance else None
    return LearningResult(published, fn.values(u), float(total[0]), ofv_published, fn.penalty(u), cov,
                          [*fn.names, *(f"omega {v}" for v in prior.variances)],
                          bool(result.success) or state.get("settled", False),
                          str(result.message), state["iterations"], info["p_responder"][0], info["eta"][0, :, 0],
                          _shrinkage(fn, u, info["eta"][0, :, 0]))


def _covariance(fn: Objective, u: np.ndarray) -> np.ndarray | None:
    """Inverse of half the Hessian of -2 log L - 2 log p on the transformed scale (forward second differences,
    1 + 2p + p(p - 1)/2 evaluations in batches)."""
    p = len(u)
    h = 1e-3
    eye = np.eye(p) * h
    pairs = [(i, j) for i in range(p) for j in range(i)]
    points = [u, *(u + e for e in eye), *(u + 2 * e for e in eye), *(u + eye[i] + eye[j] for i, j in pairs)]
    total = np.concatenate([fn.evaluate(points[c:c + 24])[0] for c in range(0, len(points), 24)])
    values = total + np.array([fn.penalty(pt) for pt in points])
    f0, f1, f2 = values[0], values[1:p + 1], values[p + 1:2 * p + 1]
    hess = np.diag((f2 - 2 * f1 + f0) / h**2)
    for (i, j), fij in zip(pairs, values[2 * p + 1:], strict=True):
        hess[i, j] = hess[j, i] = (fij - f1[i] - f1[j] + f0) / h**2
    if not np.all(np.isfinite(hess)) or np.linalg.eigvalsh(hess).min() <= 0:
        return None
    return np.linalg.inv(hess / 2)


def _shrinkage(fn: Objective, u: np.ndarray, eta: np.ndarray) -> dict[str, float]:
    """ETA shrinkage (%) of each learned variance: 100 (1 - SD(eta-hat) / omega SD), over the patients."""
    om = fn.omega(u)
    out = {}
    for name, i in zip(fn.prior.variances, fn.var_index, strict=True):
        out[name] = float(100 * (1 - np.std(eta[:, i]) / np.sqrt(om[i, i]))) if len(eta) > 1 else 100.0
    return out


def _score_bounds(bound: BoundCohort) -> tuple[np.ndarray, ...]:
    """Each pain score's value, interval (score k: k - 0.5 .. k + 0.5; 0 and 10 open-ended), whether it is
    read as continuous (a non-integer VAS) and whether it counts (a score, not padding or a level)."""
    y = bound.obs_value
    integer = np.isclose(y, np.round(y))
    lo = np.where(y <= 0, -np.inf, np.where(integer, y - 0.5, y))
    hi = np.where(y >= 10, np.inf, np.where(integer, y + 0.5, y))
    continuous = ~integer & (y > 0) & (y < 10)
    used = bound.obs_mask & (bound.obs_kind == -1)
    return y[None], lo[None], hi[None], continuous[None], used[None]


def _forward(value: float, transform: str) -> float:
    if transform == "log":
        return float(np.log(value))
    p = min(max(value, 1e-9), 1 - 1e-9)
    return float(np.log(p / (1 - p)))


def _backward(u: float, transform: str) -> float:
    return float(np.exp(u)) if transform == "log" else float(1 / (1 + np.exp(-u)))


def learned_spec_values(result: LearningResult) -> Mapping[str, float]:
    """The learned typical values by model parameter (own units)."""
    return dict(result.learned.typical)
