"""Prediction-corrected visual predictive check (Bergstrand, Hooker, Wallin and Karlsson, AAPS J 2011;13:143).

The observations are binned by time (bin edges at quantiles of the observation times, so the bins
hold about equally many observations). Each observed and simulated value is prediction-corrected with
the population prediction PRED of its record and the median PRED of its bin:

    pcY = Y x PRED_bin / PRED        (natural scale, lower bound 0)
    pcY = Y + PRED_bin - PRED         (log scale: exponential error or a log-transformed DV)

so that differences in dose and covariates within a bin no longer widen it. Per bin the 5th, 50th and
95th percentiles of the observed pcY are set against the same percentiles of every simulated replicate,
summarised by the median and a 95 % interval over the replicates. Percentiles interpolate linearly
(numpy's default, R's type 7).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ketaplan.estimation.data import EstimationData
from ketaplan.estimation.objective import dv_scale
from ketaplan.estimation.parameters import Estimates
from ketaplan.estimation.predictions import predict
from ketaplan.estimation.replicates import simulate_replicates

PERCENTILES = (5.0, 50.0, 95.0)
INTERVAL = 95.0
MAX_BINS = 10
PER_BIN = 20
"""Default binning: about this many observations per bin, at most :data:`MAX_BINS` bins."""


@dataclass(frozen=True)
class VPC:
    """A (prediction-corrected) VPC: ``bins`` has one row per bin (edges, median time, count, the observed
    percentiles ``obs_p5``.., and for the simulated ones ``sim_p5_lo``, ``sim_p5_med``, ``sim_p5_hi``..);
    ``observations`` has the observations (TIME, DV, BIN), prediction-corrected when ``corrected``."""

    bins: pd.DataFrame
    observations: pd.DataFrame
    corrected: bool
    log_scale: bool
    n_replicates: int
    percentiles: tuple[float, ...] = PERCENTILES
    interval: float = INTERVAL


def default_bins(n_observations: int) -> int:
    """About :data:`PER_BIN` observations per bin, between 1 and :data:`MAX_BINS` bins."""
    return int(np.clip(n_observations // PER_BIN, 1, MAX_BINS))


def time_bins(time: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Bin edges at quantiles of ``time`` (repeated edges merged) and each time's bin (0-based)."""
    edges = np.unique(np.quantile(time, np.linspace(0, 1, n_bins + 1)))
    if len(edges) == 1:
        edges = np.array([edges[0], edges[0]])
    index = np.clip(np.searchsorted(edges, time, side="right") - 1, 0, len(edges) - 2)
    return edges, index


def correct(values: np.ndarray, pred: np.ndarray, bin_pred: np.ndarray, log_scale: bool) -> np.ndarray:
    """Prediction correction of ``values`` (..., n) with PRED (n,) and its bin's median PRED (n,)."""
    if log_scale:
        return values + (bin_pred - pred)
    with np.errstate(divide="ignore", invalid="ignore"):
        return values * (bin_pred / pred)


def vpc_statistics(time: np.ndarray, observed: np.ndarray, pred: np.ndarray, simulated: np.ndarray,
                   n_bins: int | None = None, corrected: bool = True, log_scale: bool = False) -> VPC:
    """The VPC of observations (n,) at ``time`` with population predictions ``pred`` (n,) and K simulated
    replicates ``simulated`` (K, n), all on the model's scale (log values when ``log_scale``)."""
    time, observed, pred = (np.asarray(a, dtype=float) for a in (time, observed, pred))
    simulated = np.asarray(simulated, dtype=float)
    edges, index = time_bins(time, n_bins or default_bins(len(time)))
    n = len(edges) - 1
    members = [index == b for b in range(n)]
    bin_pred = np.zeros_like(pred)
    for sel in members:
        if sel.any():
            bin_pred[sel] = np.median(pred[sel])
    obs = correct(observed, pred, bin_pred, log_scale) if corrected else observed
    sim = correct(simulated, pred, bin_pred, log_scale) if corrected else simulated
    tail = (100 - INTERVAL) / 2
    rows = []
    for b, sel in enumerate(members):
        row = {"bin": b + 1, "time_lo": edges[b], "time_hi": edges[b + 1],
               "time": float(np.median(time[sel])) if sel.any() else np.nan, "n": int(sel.sum())}
        for p in PERCENTILES:
            key = _name(p)
            row[f"obs_{key}"] = float(_percentile(obs[sel], p)) if sel.any() else np.nan
            per_replicate = _percentile(sim[:, sel], p, axis=1) if sel.any() else np.full(len(sim), np.nan)
            lo, med, hi = _percentile(per_replicate, [tail, 50.0, 100 - tail])
            row[f"sim_{key}_lo"], row[f"sim_{key}_med"], row[f"sim_{key}_hi"] = lo, med, hi
        rows.append(row)
    bins = pd.DataFrame(rows)
    points = pd.DataFrame({"TIME": time, "DV": obs, "BIN": index + 1})
    return VPC(bins, points, corrected, log_scale, len(simulated))


def dataset_vpc(data: EstimationData, est: Estimates, n_replicates: int = 1000, seed: int = 1,
                n_bins: int | None = None, simulated: np.ndarray | None = None, corrected: bool = True) -> VPC:
    """The VPC of ``data`` under the estimates ``est``: ``n_replicates`` datasets simulated with ``seed``
    (or the replicates ``simulated`` (K, N, W) of :func:`~ketaplan.estimation.replicates.simulate_replicates`).
    Values are shown on the DV column's scale (natural unless the model says ``transform: log``)."""
    if simulated is None:
        simulated = simulate_replicates(data, est, n_replicates, seed)
    mask = data.obs_mask
    n, m = data.n_individuals, data.model.n_eta
    pred = dv_scale(data, predict(data, est.theta, np.zeros((n, m)), np.arange(n)))
    log_scale = data.model.sigma.kind == "exponential"
    result = vpc_statistics(data.obs_time[mask], data.dv[mask], pred[mask], simulated[:, mask], n_bins, corrected,
                            log_scale)
    return natural_scale(result) if not data.model.sigma.log_dv else result


def natural_scale(vpc: VPC) -> VPC:
    """A log-scale VPC with its values exponentiated (percentiles commute with exp)."""
    if not vpc.log_scale:
        return vpc
    bins = vpc.bins.copy()
    value_columns = [c for c in bins if c.startswith(("obs_", "sim_"))]
    bins[value_columns] = np.exp(bins[value_columns])
    points = vpc.observations.assign(DV=np.exp(vpc.observations["DV"]))
    return VPC(bins, points, vpc.corrected, False, vpc.n_replicates)


def _percentile(values: np.ndarray, q, axis: int | None = None) -> np.ndarray:
    """Percentiles that skip NaN (an invalid simulated prediction); numpy's fast path when there is none."""
    if np.isnan(values).any():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN slice gives NaN
            return np.nanpercentile(values, q, axis=axis)
    return np.percentile(values, q, axis=axis)


def _name(p: float) -> str:
    return f"p{p:g}"
