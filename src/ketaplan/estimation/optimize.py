"""The outer search: minimise the objective over THETA, OMEGA and SIGMA on the unconstrained scale.

scipy's BFGS takes the objective and its gradient; the gradient is a central difference whose 2p + 1
parameter sets are evaluated in one batch (each with its ETA modes, warm-started from the last ones).
Each iteration is reported to ``on_iteration`` as it happens.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize

from ketaplan.estimation.data import EstimationData
from ketaplan.estimation.objective import objective
from ketaplan.estimation.parameters import Estimates, ParameterSpace

STEP = 1e-4
"""Central-difference step on the unconstrained scale (relative changes of 1e-4)."""


@dataclass
class Iteration:
    """One iteration of the search: its objective and parameters (natural scale, NONMEM names)."""

    iteration: int
    ofv: float
    parameters: dict[str, float]
    gradient_norm: float
    evaluations: int


@dataclass
class SearchResult:
    estimates: Estimates
    eta: np.ndarray  # (N, m) conditional modes at the estimates
    ofv: float
    converged: bool
    message: str
    iterations: list[Iteration] = field(default_factory=list)
    evaluations: int = 0


class _Objective:
    """The objective and its batched central-difference gradient, remembering the last ETA modes."""

    def __init__(self, data: EstimationData, space: ParameterSpace, method: str, start: Estimates) -> None:
        self.data, self.space, self.method, self.start = data, space, method, start
        self.u0 = space.to_unconstrained(start)
        self.eta = np.zeros((data.n_individuals, data.model.n_eta))
        self.evaluations = 0
        self.last: tuple[float, np.ndarray, np.ndarray] | None = None

    def estimates(self, x: np.ndarray) -> Estimates:
        return self.space.from_unconstrained(self.u0 + x, self.start)

    def value_and_gradient(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        p = len(x)
        shifts = [np.zeros(p)]
        for i in range(p):
            e = np.zeros(p)
            e[i] = STEP
            shifts += [e, -e]
        points = [self.estimates(x + s) for s in shifts]
        warm = np.broadcast_to(self.eta, (len(points), *self.eta.shape)).copy()
        ofv, _per, cond = objective(self.data, points, warm, self.method)
        self.evaluations += len(points)
        if not np.isfinite(ofv[0]):
            return float("inf"), np.zeros(p)
        self.eta = cond.eta[0]
        plus, minus = ofv[1::2], ofv[2::2]
        grad = np.where(np.isfinite(plus) & np.isfinite(minus), (plus - minus) / (2 * STEP), 0.0)
        self.last = (float(ofv[0]), grad, x.copy())
        return float(ofv[0]), grad


def search(data: EstimationData, space: ParameterSpace, method: str, start: Estimates,
           on_iteration: Callable[[Iteration], None] | None = None, max_iterations: int = 500) -> SearchResult:
    """Minimise the objective of ``method`` from ``start``; reports every iteration to ``on_iteration``."""
    fn = _Objective(data, space, method, start)
    iterations: list[Iteration] = []

    def record(x: np.ndarray, ofv: float, grad: np.ndarray) -> None:
        est = fn.estimates(x)
        item = Iteration(len(iterations), ofv, dict(zip(space.free_names(), space.natural(est), strict=True)),
                         float(np.max(np.abs(grad))) if len(grad) else 0.0, fn.evaluations)
        iterations.append(item)
        if on_iteration is not None:
            on_iteration(item)

    x0 = np.zeros(space.size)
    ofv0, grad0 = fn.value_and_gradient(x0)
    if not np.isfinite(ofv0):
        raise_infinite(fn, x0)
    record(x0, ofv0, grad0)

    def callback(intermediate_result) -> None:
        _ofv, grad, _x = fn.last
        record(intermediate_result.x, float(intermediate_result.fun), grad)

    result = minimize(fn.value_and_gradient, x0, jac=True, method="BFGS", callback=callback,
                      options={"gtol": 1e-3, "maxiter": max_iterations, "xrtol": 1e-7})
    final = fn.estimates(result.x)
    ofv, _per, cond = objective(data, [final], fn.eta[None], method)
    converged = bool(result.success) or (result.status == 2 and iterations and iterations[-1].gradient_norm < 0.05)
    return SearchResult(final, cond.eta[0], float(ofv[0]), converged, str(result.message), iterations,
                        fn.evaluations)


def raise_infinite(fn: _Objective, x: np.ndarray) -> None:
    from ketaplan.errors import InputError

    raise InputError("initial estimates", "these values", "the objective cannot be computed there (a parameter "
                     "is invalid for some individual, or a prediction is zero with proportional error); check the "
                     "initial THETA values and the model's expressions")
