"""-2 log likelihood of one patient's measurements given predictions, for a batch of parameter sets.

* Levels: normal with SD sqrt((prop x prediction)^2 + add^2) (NONMEM's Y = F (1 + EPS1) + EPS2);
  a level below the limit of quantification contributes -2 log P(Y < LLOQ) (Beal's M3 method).
* Pain scores (NRS 0-10, integers): an interval-censored normal around the prediction (score k
  means the latent value lies in k - 0.5 .. k + 0.5; 0 and 10 are open-ended), so predictions near
  the ends of the scale are handled without leaving it. A non-integer score (a VAS read to one
  decimal) uses the normal density, censored at 0 and 10.

As in NONMEM's objective function, constants (n log 2 pi) are left out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import log_ndtr

from ketaplan.individualize.observations import Observations

SD_FLOOR = 1e-3
"""Smallest residual SD of a level (ng/mL), so a purely proportional error stays finite near zero."""


@dataclass(frozen=True)
class ResidualModel:
    """Residual error per observation: proportional and additive SD for levels, SD for scores."""

    proportional: np.ndarray
    additive: np.ndarray
    score_sd: np.ndarray


def log_interval_probability(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """log(Phi(hi) - Phi(lo)) for lo < hi, accurate in both tails."""
    lo, hi = np.broadcast_arrays(lo, hi)
    upper = lo > 0  # use the mirrored form in the upper tail
    a = np.where(upper, -hi, lo)
    b = np.where(upper, -lo, hi)
    log_b = log_ndtr(b)
    log_a = log_ndtr(a)
    return log_b + np.log1p(-np.exp(np.minimum(log_a - log_b, 0.0)))


def neg2_log_likelihood(pred: np.ndarray, obs: Observations, residual: ResidualModel) -> np.ndarray:
    """-2 log L (S,) of the observations for predictions ``pred`` (S, n_obs)."""
    total = np.zeros(pred.shape[0])
    score = obs.is_score
    level = ~score
    if level.any():
        f = pred[:, level]
        prop = residual.proportional[level]
        sd = np.sqrt(np.where(prop > 0, (prop * f) ** 2, 0.0) + residual.additive[level] ** 2)
        sd = np.maximum(sd, SD_FLOOR)
        blq = obs.blq[level]
        y = obs.value[level]
        z = (y - f) / sd
        normal = 2 * np.log(sd) + z**2
        if blq.any():
            censored = -2 * log_ndtr((obs.lloq[level] - f) / sd)
            normal = np.where(blq, censored, normal)
        total += normal.sum(axis=1)
    if score.any():
        f = pred[:, score]
        sd = residual.score_sd[score]
        y = obs.value[score]
        integer = np.isclose(y, np.round(y))
        lo = np.where(y <= 0, -np.inf, np.where(integer, y - 0.5, y))
        hi = np.where(y >= 10, np.inf, np.where(integer, y + 0.5, y))
        with np.errstate(divide="ignore"):  # zero-width intervals of non-integer scores are not used
            interval = -2 * log_interval_probability((lo - f) / sd, (hi - f) / sd)
        density = 2 * np.log(sd) + ((y - f) / sd) ** 2
        continuous = ~integer & (y > 0) & (y < 10)
        total += np.where(continuous, density, interval).sum(axis=1)
    return total
