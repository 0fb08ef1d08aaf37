"""The estimated parameters: THETA, OMEGA and SIGMA, named as NONMEM names them, and their unconstrained form.

The optimiser works on an unconstrained vector: a THETA with bounds through a logit or log of its
distance to the bound, each OMEGA block through the logarithm of its Cholesky diagonal and its
off-diagonal factors, each SIGMA through the log of its standard deviation. Estimates, standard errors
and the covariance step use the natural scale (THETA, the variances and covariances themselves), as
NONMEM reports them. Fixed items never enter the vector.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ketaplan.estimation.data import PopulationModel


@dataclass(frozen=True)
class Estimates:
    """One value of every population parameter."""

    theta: np.ndarray  # (P,)
    omega: np.ndarray  # (m, m)
    sigma: dict[str, float]  # residual variance by kind

    def with_(self, **changes) -> Estimates:
        return Estimates(**{"theta": self.theta, "omega": self.omega, "sigma": self.sigma, **changes})


@dataclass(frozen=True)
class ParameterSpace:
    """Which parameters are estimated, their NONMEM names, and the maps between the scales."""

    model: PopulationModel
    theta_free: tuple[int, ...] = field(init=False)
    omega_free: tuple[tuple[int, int], ...] = field(init=False)
    sigma_free: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "theta_free", tuple(i for i, t in enumerate(self.model.thetas) if not t.fixed))
        object.__setattr__(self, "omega_free", tuple(self.model.omega.free_elements()))
        sig = self.model.sigma
        object.__setattr__(self, "sigma_free", tuple(k for k in sig.order if k not in sig.fixed))

    # ------------------------------------------------------------------ names
    def theta_names(self) -> list[str]:
        return [f"THETA({i + 1})" for i in range(len(self.model.thetas))]

    def omega_names(self, elements: list[tuple[int, int]] | None = None) -> list[str]:
        chosen = self.model.omega.all_elements() if elements is None else elements
        return [f"OMEGA({i + 1},{j + 1})" for i, j in chosen]

    def sigma_names(self, kinds: tuple[str, ...] | None = None) -> list[str]:
        order = self.model.sigma.order
        return [f"SIGMA({order.index(k) + 1},{order.index(k) + 1})" for k in (order if kinds is None else kinds)]

    def free_names(self) -> list[str]:
        """NONMEM names of the estimated parameters, in vector order (THETA, OMEGA, SIGMA)."""
        return ([f"THETA({i + 1})" for i in self.theta_free] + self.omega_names(list(self.omega_free))
                + self.sigma_names(self.sigma_free))

    @property
    def size(self) -> int:
        return len(self.theta_free) + len(self.omega_free) + len(self.sigma_free)

    # ------------------------------------------------------------------ natural scale
    def initial(self) -> Estimates:
        m = self.model
        return Estimates(np.array([t.init for t in m.thetas]), m.omega.matrix.copy(), dict(m.sigma.variances))

    def natural(self, est: Estimates) -> np.ndarray:
        """The estimated parameters as NONMEM reports them (THETA, OMEGA(i,j), SIGMA(k,k))."""
        return np.concatenate([est.theta[list(self.theta_free)],
                               [est.omega[i, j] for i, j in self.omega_free],
                               [est.sigma[k] for k in self.sigma_free]])

    def from_natural(self, x: np.ndarray, base: Estimates) -> Estimates:
        x = np.asarray(x, dtype=float)
        nt, no = len(self.theta_free), len(self.omega_free)
        theta = base.theta.copy()
        theta[list(self.theta_free)] = x[:nt]
        omega = base.omega.copy()
        for (i, j), v in zip(self.omega_free, x[nt:nt + no], strict=True):
            omega[i, j] = omega[j, i] = v
        omega = self.model.omega.tied(omega)
        sigma = dict(base.sigma)
        for k, v in zip(self.sigma_free, x[nt + no:], strict=True):
            sigma[k] = float(v)
        return Estimates(theta, omega, sigma)

    # ------------------------------------------------------------------ unconstrained scale
    def to_unconstrained(self, est: Estimates) -> np.ndarray:
        thetas = self.model.thetas
        u = [_to_free(est.theta[i], thetas[i].lower, thetas[i].upper) for i in self.theta_free]
        for block in self.model.omega.blocks:
            if block.fixed or block.same_as is not None:
                continue
            sl = slice(block.start, block.start + block.size)
            if block.diagonal:
                u += list(0.5 * np.log(np.diag(est.omega[sl, sl])))
            else:
                chol = np.linalg.cholesky(est.omega[sl, sl])
                u += [np.log(chol[i, i]) if i == j else chol[i, j] for i in range(block.size) for j in range(i + 1)]
        u += [0.5 * np.log(est.sigma[k]) for k in self.sigma_free]
        return np.array(u, dtype=float)

    def from_unconstrained(self, u: np.ndarray, base: Estimates) -> Estimates:
        u = np.asarray(u, dtype=float)
        thetas = self.model.thetas
        theta = base.theta.copy()
        pos = 0
        for i in self.theta_free:
            theta[i] = _from_free(u[pos], thetas[i].lower, thetas[i].upper)
            pos += 1
        omega = base.omega.copy()
        for block in self.model.omega.blocks:
            if block.fixed or block.same_as is not None:
                continue
            sl = slice(block.start, block.start + block.size)
            if block.diagonal:
                omega[sl, sl] = np.diag(np.exp(2 * u[pos:pos + block.size]))
                pos += block.size
                continue
            chol = np.zeros((block.size, block.size))
            for i in range(block.size):
                for j in range(i + 1):
                    chol[i, j] = np.exp(u[pos]) if i == j else u[pos]
                    pos += 1
            omega[sl, sl] = chol @ chol.T
        omega = self.model.omega.tied(omega)
        sigma = dict(base.sigma)
        for k in self.sigma_free:
            sigma[k] = float(np.exp(2 * u[pos]))
            pos += 1
        return Estimates(theta, omega, sigma)

    def at_bound(self, est: Estimates, tolerance: float = 1e-3) -> list[str]:
        """Names of THETAs within ``tolerance`` (relative to the bound's scale) of a bound."""
        out = []
        for i in self.theta_free:
            t = self.model.thetas[i]
            for bound in (t.lower, t.upper):
                if np.isfinite(bound) and abs(est.theta[i] - bound) <= tolerance * max(1.0, abs(bound)):
                    out.append(f"THETA({i + 1})")
        return out


def _to_free(value: float, lower: float, upper: float) -> float:
    if np.isfinite(lower) and np.isfinite(upper):
        p = (value - lower) / (upper - lower)
        return float(np.log(p / (1 - p)))
    if np.isfinite(lower):
        return float(np.log(value - lower))
    if np.isfinite(upper):
        return float(np.log(upper - value))
    return float(value)


def _from_free(u: float, lower: float, upper: float) -> float:
    if np.isfinite(lower) and np.isfinite(upper):
        return float(lower + (upper - lower) / (1 + np.exp(-u)))
    if np.isfinite(lower):
        return float(lower + np.exp(u))
    if np.isfinite(upper):
        return float(upper - np.exp(u))
    return float(u)
