"""Replicates of a dataset simulated from a population model: the raw material of NPDE and VPCs.

Each replicate keeps the dataset's design (doses, times, covariates) and draws new ETA ~ N(0, OMEGA) for
every individual and new residual errors for every observation: on the DV scale (natural, or log for
exponential error) y = h(ETA) + sqrt(R(h)) z with z ~ N(0, 1), which is exactly Y = F (1 + EPS(1)) +
EPS(2) for the proportional, additive and combined models and log Y = log F + EPS(1) for the
exponential one. Predictions go through the estimation's batched engine call, a block of replicates at
a time; the draws depend only on the seed, the number of replicates and the dataset's shape.
"""

from __future__ import annotations

import numpy as np

from ketaplan.estimation.data import EstimationData
from ketaplan.estimation.objective import dv_scale, residual_variance
from ketaplan.estimation.parameters import Estimates
from ketaplan.estimation.predictions import predict

BLOCK_VALUES = 1_000_000
"""Predicted values per engine call (replicates x individuals x observation slots)."""


def omega_root(omega: np.ndarray) -> np.ndarray:
    """A matrix S with S S' = OMEGA (eigen-decomposition, so a fixed zero variance is allowed)."""
    if omega.size == 0:
        return omega
    w, u = np.linalg.eigh(omega)
    return u * np.sqrt(np.clip(w, 0.0, None))


def simulate_replicates(data: EstimationData, est: Estimates, n_replicates: int, seed: int) -> np.ndarray:
    """Simulated observations (K, N, W) on the DV scale, NaN in the padding and where a draw made the
    parameters invalid (a negative volume, say)."""
    if n_replicates < 1:
        raise ValueError("n_replicates must be at least 1")
    n, w = data.obs_mask.shape
    m = data.model.n_eta
    rng = np.random.default_rng(seed)
    root = omega_root(est.omega)
    kind = data.model.sigma.kind
    per_block = max(1, BLOCK_VALUES // max(1, n * w))
    out = np.empty((n_replicates, n, w))
    for first in range(0, n_replicates, per_block):
        k = min(per_block, n_replicates - first)
        eta = rng.standard_normal((k, n, m)) @ root.T
        z = rng.standard_normal((k, n, w))
        who = np.tile(np.arange(n), k)
        f = predict(data, est.theta, eta.reshape(k * n, m), who).reshape(k, n, w)
        h = dv_scale(data, f)
        variance = residual_variance(est.sigma, h, kind)[0]
        with np.errstate(invalid="ignore"):
            out[first:first + k] = h + np.sqrt(variance) * z
    out[:, ~data.obs_mask] = np.nan
    return out
