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

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.special import logsumexp

from ketaplan.errors import InputError
from ketaplan.estimation.library_cohort import BoundCohort, ReliefTable, relief_table
from ketaplan.individualize.likelihood import log_interval_probability

ETA_STEP = 1e-4
THETA_STEP = 1e-4
INNER_TOLERANCE = 1e-8
"""A mode is found when the next Newton step would lower phi by less than this (objective units)."""
MAX_INNER = 40
HALF_LOG_2PI = 0.5 * np.log(2 * np.pi)
STOP_IMPROVEMENT = 1e-2
"""The search stops when two iterations in a row lower the objective by less than about this: within about
0.02 of its minimum, where the values differ from the optimum by about a seventh of their standard error."""


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


@dataclass(frozen=True)
class Scores:
    """Pain scores laid out per patient (N, W): value, interval, whether continuous, and weight (0: unused)."""

    y: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    continuous: np.ndarray
    weight: np.ndarray


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
    vector: np.ndarray | None = None  # the learned values on the estimation scale (a warm start for refits)


class Objective:
    """The mixture-Laplace objective of a bound cohort, batched over parameter vectors."""

    def __init__(self, bound: BoundCohort, prior: Prior, table: ReliefTable | None = None) -> None:
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
        self.table = relief_table(bound) if table is None else table
        self.scores = _score_bounds(bound)
        self.distinct = _distinct(self.scores)

    # ------------------------------------------------------------------ parameter vector
    def initial(self) -> np.ndarray:
        u = [to_estimation_scale(self.published[lv.name], lv.transform) for lv in self.prior.learnables]
        u += [float(np.log(self.omega0[i, i])) for i in self.var_index]
        return np.array(u)

    def values(self, u: np.ndarray) -> LearnedValues:
        k = len(self.prior.learnables)
        typical = {lv.name: from_estimation_scale(u[j], lv.transform) for j, lv in enumerate(self.prior.learnables)}
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
        # the inverse-Wishart term relative to its value at the published variance, so the penalty is 0 there
        wishart = float(np.sum((nu + 2) * (log_var - log_var0) + nu * (np.exp(log_var0 - log_var) - 1)))
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
        """-2 log L (K,) and per patient (K, N) for K parameter vectors (no prior), with the modes found.

        A trial step far out (a variance near 0, an exponent that overflows) gives an infinite objective, not a
        warning: the search then steps back."""
        with np.errstate(all="ignore"):
            return self._evaluate(us, eta0)

    def _evaluate(self, us: list[np.ndarray], eta0: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, dict]:
        values = [self.values(u) for u in us]
        omegas = np.stack([self.omega(u) for u in us])
        usable = _usable_omegas(omegas)  # a step to a variance of 0 or infinity is a step to an infinite objective
        omegas[~usable] = np.eye(omegas.shape[-1])
        k, n, m = len(us), self.bound.n_patients, len(self.bound.eta_names)
        start = np.broadcast_to(self.eta if eta0 is None else eta0, (k, n, 2, m)).copy()
        factors = self._factors(values)
        sd = self._score_sd(values)
        eta_r, o_r = self._laplace(omegas, start[:, :, 0], sd, lambda e, kk, nn: self._predict(factors, e, kk, nn),
                                   self.scores)
        b = self.base_index
        keep = [b]
        eta_n, o_n = self._laplace(omegas[:, keep][:, :, keep], start[:, :, 1, keep], sd,
                                   lambda e, kk, nn: self._baseline_only(factors, e, kk, nn), self.distinct)
        modes = np.zeros((k, n, 2, m))
        modes[:, :, 0] = eta_r
        modes[:, :, 1, b] = eta_n[..., 0]
        p = np.clip(self._p_response(values), 1e-12, 1 - 1e-12)[:, None]
        stacked = np.stack([np.log(p) - o_r / 2, np.log1p(-p) - o_n / 2], axis=0)
        per = -2 * logsumexp(stacked, axis=0)
        post = np.exp(stacked[0] - logsumexp(stacked, axis=0))
        per = np.where(np.isfinite(per) & usable[:, None], per, np.inf)
        return per.sum(axis=1), per, {"eta": modes, "p_responder": post}

    @property
    def base_index(self) -> int:
        return list(self.bound.eta_names).index(self.bound.relief.baseline)

    def _laplace(self, omegas, eta0, sd, predict, scores: Scores) -> tuple[np.ndarray, np.ndarray]:
        """Conditional modes (K, N, m) by batched Newton steps, and the Laplace objective (K, N).

        The K x N (parameter vector, patient) pairs are laid out as rows; each step recomputes only the rows
        still moving. ``predict(eta, kk, nn)`` gives predictions (R, W) for rows of parameter vectors ``kk``
        and patients ``nn``, their first derivatives (R, W, m) in eta and a function that contracts weights
        (R, W) with their second derivatives to (R, m, m). The Hessian of phi is exact (closed form) where it
        is positive definite, the first-order form elsewhere, so the steps converge quadratically.
        """
        k, n, m = eta0.shape
        kk, nn = np.repeat(np.arange(k), n), np.tile(np.arange(n), k)
        omega_inv = np.linalg.inv(omegas)[kk]
        logdet = np.linalg.slogdet(omegas)[1][kk]
        eta = eta0.reshape(-1, m).copy()
        best_phi = np.full(len(eta), np.inf)
        best = eta.copy()
        best_hess = omega_inv.copy()
        step = np.zeros_like(eta)
        halvings = np.zeros(len(eta), dtype=int)
        rows = np.arange(len(eta))
        for _ in range(MAX_INNER):
            e, oi = eta[rows], omega_inv[rows]
            pred, g, curvature = predict(e, kk[rows], nn[rows])
            neg2, dl, d2l = self._obs_terms(pred, sd[kk[rows]], scores, nn[rows])
            phi = neg2 + np.einsum("ra,rab,rb->r", e, oi, e)
            phi = np.where(np.isfinite(phi), phi, np.inf)
            before = best_phi[rows]
            better = phi <= before + 1e-10 * np.abs(np.where(np.isfinite(before), before, 0))
            grad = np.einsum("rw,rwa->ra", dl, g) + 2 * np.einsum("rab,rb->ra", oi, e)
            first = 0.5 * np.einsum("rw,rwa,rwb->rab", d2l, g, g) + oi
            exact = first + 0.5 * curvature(dl)
            positive = np.all(np.linalg.eigvalsh(np.where(np.isfinite(exact), exact, 0.0)) > 0, axis=-1)
            hess = np.where(positive[:, None, None], exact, first)  # phi's Hessian / 2
            hess = np.where(np.isfinite(hess).all(axis=(-2, -1))[:, None, None], hess, oi)
            improved = rows[better]
            best[improved], best_phi[improved], best_hess[improved] = e[better], phi[better], hess[better]
            with np.errstate(all="ignore"):
                try:
                    newton = -np.linalg.solve(2 * hess, grad[..., None])[..., 0]
                except np.linalg.LinAlgError:  # a singular row (underflowed curvature): its pseudo-inverse
                    newton = -(np.linalg.pinv(2 * hess) @ grad[..., None])[..., 0]
            newton = np.where(np.isfinite(newton), newton, 0.0)
            expected_decrease = -0.5 * np.einsum("ra,ra->r", grad, newton)
            done = better & (expected_decrease < INNER_TOLERANCE)
            halvings[rows] = np.where(better, 0, halvings[rows] + 1)
            step[rows] = np.where(better[:, None], newton, step[rows] / 2)
            stalled = ~better & (np.max(np.abs(step[rows]), axis=-1) < 1e-7)  # at phi's noise floor: best stands
            rows = rows[~done & ~stalled & (halvings[rows] < 25)]
            if not rows.size:
                break
            eta[rows] = best[rows] + step[rows]
        sign, logdet_hess = np.linalg.slogdet(best_hess)
        objective = np.where(sign > 0, best_phi + logdet + logdet_hess, np.inf)
        return best.reshape(k, n, m), objective.reshape(k, n)

    def _predict(self, factors, eta, kk, nn):
        """Responder pain scores (R, W) at eta (R, m) for rows of parameter vectors ``kk`` and patients ``nn``,
        with their first derivatives (R, W, m) in eta and a contraction of their second derivatives, in closed
        form from the relief-site table: pain = B e^eta_B (1 - E sigma(z)), z = gamma (log Ce(u) - log C50 -
        eta_C), u = log half-life + eta_T (sigma the logistic function)."""
        b = self.bound
        layer = b.relief
        r, m = eta.shape
        names = list(b.eta_names)

        def typical(ref):
            if not isinstance(ref, str):
                return np.full(r, float(ref))
            return b.typical[ref][nn] * factors[ref][kk] if ref in factors else b.typical[ref][nn]

        def effect(ref):
            return eta[:, names.index(ref)] if isinstance(ref, str) and ref in names else np.zeros(r)

        half_life = b.relief_half_life
        u = np.log(typical(half_life)) + effect(half_life)
        log_ce, d_u, d_uu = self.table.at(u, nn)
        gamma = typical(layer.gamma)[:, None]
        z = gamma * (log_ce - np.log(typical(layer.c50))[:, None] - effect(layer.c50)[:, None])
        with np.errstate(over="ignore"):
            sig = np.where(np.isfinite(z), 1 / (1 + np.exp(-z)), 0.0)
        emax = typical(layer.emax)[:, None]
        h, h1, h2 = emax * sig, emax * sig * (1 - sig), emax * sig * (1 - sig) * (1 - 2 * sig)
        with np.errstate(over="ignore", invalid="ignore"):
            amplitude = (typical(layer.baseline) * np.exp(effect(layer.baseline)))[:, None]
            pred = amplitude * (1 - h)
        w = pred.shape[-1]
        slopes = {}  # eta index -> dz/d eta (R, W) of the logistic's argument
        if isinstance(layer.c50, str) and layer.c50 in names:
            slopes[names.index(layer.c50)] = np.broadcast_to(-gamma, (r, w))
        t_index = names.index(half_life) if half_life in names else None
        if t_index is not None:
            slopes[t_index] = gamma * d_u
        g = np.zeros((r, w, m))
        with np.errstate(invalid="ignore"):
            for j, dz in slopes.items():
                g[..., j] = -amplitude * h1 * dz
        b_index = names.index(layer.baseline) if layer.baseline in names else None
        if b_index is not None:
            g[..., b_index] = pred

        def curvature(weights: np.ndarray) -> np.ndarray:
            """sum over scores of weight x d2 pred / d eta_a d eta_b, (R, m, m). An overflowing amplitude
            gives NaN here, and the Laplace step then takes the first-order form."""
            out = np.zeros((r, m, m))
            with np.errstate(invalid="ignore"):
                a_h1, a_h2 = amplitude * h1 * weights, amplitude * h2 * weights
                for a, dza in slopes.items():
                    for c, dzc in slopes.items():
                        if c <= a:
                            term = -np.einsum("rw,rw->r", a_h2, dza * dzc)
                            if a == c == t_index:
                                term -= np.einsum("rw,rw->r", a_h1, gamma * d_uu)
                            out[:, a, c] = out[:, c, a] = term
                if b_index is not None:  # pred is linear in exp(eta_B): d/d eta_B repeats the first derivative
                    for a in range(m):
                        out[:, a, b_index] = out[:, b_index, a] = np.einsum("rw,rw->r", weights, g[..., a])
            return out

        return pred, g, curvature

    def _baseline_only(self, factors, eta, kk, nn):
        """A non-responder's pain score is the baseline alone, B exp(eta), at every time (so are its
        derivatives); it is read against each patient's distinct scores (:attr:`distinct`)."""
        b = self.bound
        name = b.relief.baseline
        base = b.typical[name][nn] * np.exp(eta[:, 0])
        if name in factors:
            base = base * factors[name][kk]
        pred = np.broadcast_to(base[:, None], (len(base), self.distinct.y.shape[1]))
        return pred, pred[..., None], lambda weights: (weights * pred).sum(axis=-1)[:, None, None]

    def _obs_terms(self, pred: np.ndarray, score_sd: np.ndarray, scores: Scores, nn: np.ndarray):
        """Per row -2 log L (R,) of patient ``nn``'s pain scores and, per score, its first and second derivative
        in the prediction (R, W), in closed form, each times the score's weight. For a score k (latent value in
        k - 0.5 .. k + 0.5) with a = (lo - pred) / s, b = (hi - pred) / s and L = Phi(b) - Phi(a):
        d(-2 log L)/d pred = -2 (phi(a) - phi(b)) / (s L) and
        d2 = -2 [(a phi(a) - b phi(b)) / (s^2 L) - ((phi(a) - phi(b)) / (s L))^2], with phi / L formed in logs
        so that both stay finite far in the tails."""
        y, lo, hi, continuous, weight = (getattr(scores, f)[nn] for f in ("y", "lo", "hi", "continuous", "weight"))
        s = score_sd[:, None]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            a, b = (lo - pred) / s, (hi - pred) / s
            log_l = log_interval_probability(a, b)
            ra = np.where(np.isfinite(a), np.exp(-0.5 * a * a - HALF_LOG_2PI - log_l), 0.0)
            rb = np.where(np.isfinite(b), np.exp(-0.5 * b * b - HALF_LOG_2PI - log_l), 0.0)
            slope = (ra - rb) / s
            bend = (np.where(np.isfinite(a), a * ra, 0.0) - np.where(np.isfinite(b), b * rb, 0.0)) / s**2
            interval = (-2 * log_l, -2 * slope, -2 * (bend - slope**2))
            z = (y - pred) / s
            density = (2 * np.log(s) + z**2, -2 * z / s, np.broadcast_to(2 / s**2, pred.shape))
        f0, d1, d2 = (np.where(continuous, c, i) for c, i in zip(density, interval, strict=True))
        used = weight > 0
        with np.errstate(invalid="ignore"):
            total = np.where(used, weight * f0, 0.0).sum(axis=-1)
            return total, np.where(used, weight * d1, 0.0), np.where(used, weight * np.maximum(d2, 1e-9), 0.0)


def learn(bound: BoundCohort, prior: Prior, on_iteration: Callable[[int, float], None] | None = None,
          max_iterations: int = 200, start: np.ndarray | None = None, covariance: bool = True,
          table: ReliefTable | None = None) -> LearningResult:
    """The population values that minimise -2 log L + the prior's -2 log p, with their uncertainty.

    ``start`` (a previous result's ``vector``) starts the search elsewhere than at the published values;
    ``table`` is the cohort's relief-site table when it is already known (held-out refits)."""
    fn = Objective(bound, prior, table)
    u0 = fn.initial()
    x = np.zeros(len(u0)) if start is None else np.asarray(start, dtype=float) - u0
    published = fn.values(u0)
    ofv_published = float(fn.evaluate([u0])[0][0])
    x, iterations, converged, message = _scoring_search(fn, u0, x, max_iterations, on_iteration)
    u = u0 + x
    total, _per, info = fn.evaluate([u])
    cov = _covariance(fn, u) if covariance else None
    return LearningResult(published, fn.values(u), float(total[0]), ofv_published, fn.penalty(u), cov,
                          [*fn.names, *(f"omega {v}" for v in prior.variances)], converged, message, iterations,
                          info["p_responder"][0], info["eta"][0, :, 0],
                          _shrinkage(fn, u, info["eta"][0, :, 0], info["p_responder"][0]), u)


DAMPING = (0.0, 0.3, 3.0, 30.0)
"""Levenberg-Marquardt damping factors tried at once in every iteration (each a share of the diagonal)."""


VARIANCE_RANGE = (1e-10, 1e6)
"""Between-patient variances (log scale) the objective is evaluated at; outside, it is infinite."""


def _usable_omegas(omegas: np.ndarray) -> np.ndarray:
    """Per matrix (K, m, m): finite, with every eigenvalue inside :data:`VARIANCE_RANGE`."""
    finite = np.isfinite(omegas).all(axis=(-2, -1))
    eig = np.linalg.eigvalsh(np.where(finite[:, None, None], omegas, 0.0))
    return finite & (eig.min(axis=-1) > VARIANCE_RANGE[0]) & (eig.max(axis=-1) < VARIANCE_RANGE[1])


def _scoring_search(fn: Objective, u0: np.ndarray, x: np.ndarray, max_iterations: int,
                    on_iteration: Callable[[int, float], None] | None) -> tuple[np.ndarray, int, bool, str]:
    """Minimise the objective by Fisher scoring: each patient's -2 log L is differentiated on its own (central
    differences, one batch), and the sum of the outer products of these per-patient gradients (centred on
    their mean, so that far from the optimum the common gradient does not swamp them), halved, with the
    prior's curvature, stands in for the Hessian (Berndt-Hall-Hall-Hausman). Steps with a few Levenberg-
    Marquardt dampings and one twice as long are tried together and the best taken; the search ends when
    two iterations in a row gain less than about :data:`STOP_IMPROVEMENT`."""
    p = len(x)
    eye = np.eye(p)
    previous = np.inf
    for iteration in range(1, max_iterations + 1):
        points = [u0 + x] + [u0 + x + THETA_STEP * e for e in eye]
        total, per, info = fn.evaluate(points)
        penalties = np.array([fn.penalty(pt) for pt in points])
        values = total + penalties
        if not np.isfinite(values[0]):
            return x, iteration, False, "the objective is not finite at the start of the search"
        fn.eta = info["eta"][0]
        # forward differences: their error, half the step times the curvature, moves the optimum found by
        # about half the step (5e-5 on the estimation scale), far below any standard error
        grad = (values[1:] - values[0]) / THETA_STEP
        per_grad = (per[1:] - per[0]) / THETA_STEP  # (p, N)
        per_grad = np.where(np.isfinite(per_grad), per_grad, 0.0)
        centred = per_grad - per_grad.mean(axis=1, keepdims=True)  # far from the optimum the mean gradient
        hess = 0.5 * centred @ centred.T + _penalty_hessian(fn, u0 + x)  # would swamp the outer product
        diagonal = np.diag(np.maximum(np.diag(hess), 1e-8))
        steps = []
        for damping in DAMPING:
            try:
                steps.append(np.linalg.solve(hess + damping * diagonal, -grad))
            except np.linalg.LinAlgError:
                continue
        if steps:
            steps.append(2 * steps[0])  # a longer step, for the stretches where the information is overstated
        candidates = [u0 + x + st for st in steps]
        tried = fn.evaluate(candidates)[0] + np.array([fn.penalty(c) for c in candidates])
        tried = np.where(np.isfinite(tried), tried, np.inf)
        best = int(np.argmin(tried))
        if on_iteration is not None:
            on_iteration(iteration, float(min(tried[best], values[0])))
        if tried[best] >= values[0]:
            return x, iteration, True, "no step lowers the objective further"
        x = x + steps[best]
        gain = values[0] - tried[best]
        if gain < STOP_IMPROVEMENT and previous < 3 * STOP_IMPROVEMENT:
            return x, iteration, True, "converged: the last iterations gained less than the objective's noise"
        previous = gain
    return x, max_iterations, False, f"stopped after {max_iterations} iterations"


def _penalty_hessian(fn: Objective, u: np.ndarray, h: float = 1e-4) -> np.ndarray:
    """The prior's -2 log p curvature by central differences (the penalty is cheap: no likelihood)."""
    p = len(u)
    eye = np.eye(p) * h
    out = np.zeros((p, p))
    for i in range(p):
        for j in range(i + 1):
            v = (fn.penalty(u + eye[i] + eye[j]) - fn.penalty(u + eye[i] - eye[j]) - fn.penalty(u - eye[i] + eye[j])
                 + fn.penalty(u - eye[i] - eye[j])) / (4 * h * h)
            out[i, j] = out[j, i] = v
    return out


COVARIANCE_STEP = 1e-2
"""Step of the second differences on the estimation scale: large enough that the objective's noise from the
inner mode searches (about 1e-7 per patient) stays far below the curvature it measures."""


def _covariance(fn: Objective, u: np.ndarray) -> np.ndarray | None:
    """Inverse of half the Hessian of -2 log L - 2 log p on the estimation scale, by forward second
    differences (1 + p + p(p + 1) / 2 points, evaluated in batches; their error, about the step times the
    third derivative, is about 1 % of the curvature, 0.5 % of a standard error)."""
    p, h = len(u), COVARIANCE_STEP
    eye = np.eye(p) * h
    pairs = [(i, j) for i in range(p) for j in range(i + 1)]
    points = [u, *(u + e for e in eye), *(u + eye[i] + eye[j] for i, j in pairs)]
    total = np.concatenate([fn.evaluate(points[c:c + 40])[0] for c in range(0, len(points), 40)])
    values = total + np.array([fn.penalty(pt) for pt in points])
    f0, single = values[0], values[1:p + 1]
    hess = np.zeros((p, p))
    for (i, j), fij in zip(pairs, values[p + 1:], strict=True):
        hess[i, j] = hess[j, i] = (fij - single[i] - single[j] + f0) / h**2
    if not np.all(np.isfinite(hess)) or np.linalg.eigvalsh(hess).min() <= 0:
        return None
    return np.linalg.inv(hess / 2)


def _shrinkage(fn: Objective, u: np.ndarray, eta: np.ndarray, p_responder: np.ndarray) -> dict[str, float]:
    """ETA shrinkage (%) of each learned variance: 100 (1 - SD(eta-hat) / omega SD), the SD over the patients
    weighted by their probability of responding (a non-responder's responder mode says nothing about C50 or
    the half-life: it runs off to explain the absent relief)."""
    om = fn.omega(u)
    weights = np.asarray(p_responder, dtype=float)
    out = {}
    for name, i in zip(fn.prior.variances, fn.var_index, strict=True):
        if len(eta) < 2 or weights.sum() <= 0:
            out[name] = 100.0
            continue
        sd = np.sqrt(np.sum(weights * eta[:, i] ** 2) / weights.sum())
        out[name] = float(100 * (1 - sd / np.sqrt(om[i, i])))
    return out


def _scores(y: np.ndarray, weight: np.ndarray) -> Scores:
    """Pain scores (N, W) with their intervals: score k covers k - 0.5 .. k + 0.5 (0 and 10 open-ended); a
    non-integer score (a VAS) is read as continuous."""
    y = np.where(weight > 0, y, 5.0)
    integer = np.isclose(y, np.round(y))
    lo = np.where(y <= 0, -np.inf, np.where(integer, y - 0.5, y))
    hi = np.where(y >= 10, np.inf, np.where(integer, y + 0.5, y))
    return Scores(y, lo, hi, ~integer & (y > 0) & (y < 10), weight)


def _score_bounds(bound: BoundCohort) -> Scores:
    """Every pain score of the cohort in time order, weight 1 (padding and levels weight 0)."""
    used = bound.obs_mask & (bound.obs_kind == -1)
    return _scores(bound.obs_value, used.astype(float))


def _distinct(scores: Scores) -> Scores:
    """Each patient's distinct scores weighted by how often they occur: enough where the prediction is the
    same at every time (a non-responder), and about ten times fewer columns."""
    rows = []
    for y, w in zip(scores.y, scores.weight, strict=True):
        values, counts = np.unique(y[w > 0], return_counts=True)
        rows.append((values, counts))
    width = max(1, max(len(v) for v, _ in rows))
    y = np.full((len(rows), width), 5.0)
    weight = np.zeros((len(rows), width))
    for i, (values, counts) in enumerate(rows):
        y[i, :len(values)], weight[i, :len(values)] = values, counts
    return _scores(y, weight)


def to_estimation_scale(value: float, transform: str) -> float:
    """A typical value on its estimation scale: log, or logit for a fraction (kept inside 1e-9..1 - 1e-9)."""
    if transform == "log":
        return float(np.log(value))
    p = min(max(value, 1e-9), 1 - 1e-9)
    return float(np.log(p / (1 - p)))


def from_estimation_scale(u: float, transform: str) -> float:
    """The inverse of :func:`to_estimation_scale`."""
    with np.errstate(over="ignore"):  # a value beyond double range is infinite (or 0), as it should read
        return float(np.exp(u)) if transform == "log" else float(1 / (1 + np.exp(-u)))
