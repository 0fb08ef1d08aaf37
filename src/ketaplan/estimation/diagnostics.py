"""Per-record diagnostics as NONMEM and the npde package define them, and ETA and EPS shrinkage.

With y the observations on the residual model's scale (natural, or log for exponential error), h(eta)
the predictions on that scale, G = dh/deta, R(h) the residual variance and eta-hat the EBEs:

* PRED = h(0) and IPRED = h(eta-hat), on every record (doses too, after the dose as in NONMEM's tables),
  reported on the scale of the dataset's DV (natural unless the model says ``transform: log``);
* RES = y - PRED;
* WRES (NONMEM's, first order at eta = 0): V^-1/2 RES with V = G(0) OMEGA G(0)' + diag R(PRED);
* CWRES (Hooker, Staatz and Karlsson, Pharm Res 2007;24:2187): V^-1/2 (y - IPRED + G eta-hat) with
  V = G OMEGA G' + diag R, G at eta-hat and R at IPRED (at PRED for FOCE without interaction, whose
  objective holds R there). V^-1/2 is the symmetric inverse square root, as NONMEM computes it: with it
  the phenobarbital CWRES equal NONMEM's table to its printed digits;
* IWRES = (y - IPRED) / sqrt(R(IPRED));
* NPDE (Brendel et al., Pharm Res 2006;23:2036; Comets et al., Comput Methods Programs Biomed
  2008;90:154): K replicates of the dataset are simulated from the model; each individual's observed and
  simulated vectors are decorrelated with the simulated mean E and covariance V = L L' (Cholesky, the npde
  package's default): y* = L^-1 (y - E); pde is the fraction of simulated y* below the observed one (0 and
  1 moved to 1/(2K) and 1 - 1/(2K)), NPDE its standard normal quantile.

Shrinkage as NONMEM 7.4 prints it: ETASHRINKSD = 100 (1 - SD(eta-hat) / sqrt(OMEGA(k,k))), the SD over
individuals with divisor N; EPSSHRINKSD = 100 (1 - sqrt(mean IWRES^2)), over all observations (the
phenobarbital run's 47.580 %, 13.581 % and 21.198 % are reproduced this way).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import ndtri

from ketaplan.estimation.data import EstimationData
from ketaplan.estimation.objective import dv_scale, evaluate_h, residual_variance
from ketaplan.estimation.parameters import Estimates
from ketaplan.estimation.predictions import predict
from ketaplan.nonmem.dataset import column_map, numeric_column

COLUMNS = ("PRED", "IPRED", "RES", "WRES", "CWRES", "IWRES", "NPDE")


@dataclass(frozen=True)
class Residuals:
    """Observation-grid (N, W) arrays on the residual model's scale; NaN in the padding."""

    pred: np.ndarray
    ipred: np.ndarray
    res: np.ndarray
    wres: np.ndarray
    cwres: np.ndarray
    iwres: np.ndarray


def residuals(data: EstimationData, est: Estimates, eta: np.ndarray, interaction: bool = True) -> Residuals:
    """PRED, IPRED, RES, WRES, CWRES and IWRES at the observations, for EBEs ``eta`` (N, m)."""
    kind = data.model.sigma.kind
    zero = np.zeros((1, *eta.shape))
    h0, g0, _ = evaluate_h(data, [est], zero, order=1)
    hh, gh, _ = evaluate_h(data, [est], np.asarray(eta, dtype=float)[None], order=1)
    h0, g0, hh, gh = h0[0], g0[0], hh[0], gh[0]
    r0 = residual_variance(est.sigma, h0, kind)[0]
    rh = residual_variance(est.sigma, hh, kind)[0]
    y = np.where(data.obs_mask, data.dv, np.nan)
    res = y - h0
    wres = weighted(res, g0, est.omega, r0, data.obs_mask)
    conditional = y - hh + np.einsum("nwm,nm->nw", gh, eta)
    cwres = weighted(conditional, gh, est.omega, rh if interaction else r0, data.obs_mask)
    with np.errstate(invalid="ignore", divide="ignore"):
        iwres = (y - hh) / np.sqrt(rh)
    pad = ~data.obs_mask
    for a in (h0, hh):
        a[pad] = np.nan
    return Residuals(h0, hh, res, wres, cwres, iwres)


def weighted(resid: np.ndarray, g: np.ndarray, omega: np.ndarray, r: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """V^-1/2 resid per individual with V = G OMEGA G' + diag R (symmetric inverse square root)."""
    g = np.where(mask[..., None], g, 0.0)
    v = np.einsum("nwa,ab,nvb->nwv", g, omega, g)
    idx = np.arange(v.shape[-1])
    v[:, idx, idx] += np.where(mask, r, 1.0)
    with np.errstate(invalid="ignore"):
        values, vectors = np.linalg.eigh(np.where(np.isfinite(v), v, 0.0))
        proj = np.einsum("nwk,nw->nk", vectors, np.where(mask, resid, 0.0)) / np.sqrt(values)
    out = np.einsum("nwk,nk->nw", vectors, proj)
    bad = ~np.all(np.isfinite(v), axis=(1, 2)) | (values.min(axis=1) <= 0)
    out[bad] = np.nan
    out[~mask] = np.nan
    return out


def npde(observed: np.ndarray, simulated: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """NPDE (N, W) from observations (N, W) and K simulated replicates (K, N, W) on the same scale.

    An individual whose simulated covariance is not positive definite (an observation that never varies)
    or whose replicates hold an invalid prediction gets NaN.
    """
    k = simulated.shape[0]
    sims = np.where(mask, simulated, 0.0)
    usable = np.all(np.isfinite(sims), axis=(0, 2))
    sims[:, ~usable] = 0.0
    mean = sims.mean(axis=0)
    dev = sims - mean
    cov = np.einsum("knw,knv->nwv", dev, dev) / max(k - 1, 1)
    idx = np.arange(cov.shape[-1])
    cov[:, idx, idx] += np.where(mask, 0.0, 1.0)
    positive = np.linalg.eigvalsh(cov).min(axis=1) > 0
    usable &= positive
    cov[~positive] = np.eye(cov.shape[-1])
    chol = np.linalg.cholesky(cov)
    obs_star = np.linalg.solve(chol, np.where(mask, observed - mean, 0.0)[..., None])[..., 0]
    sim_star = np.linalg.solve(chol[None], dev[..., None])[..., 0]  # (K, N, W)
    pde = (sim_star < obs_star[None]).mean(axis=0)
    pde = np.clip(pde, 1 / (2 * k), 1 - 1 / (2 * k))
    out = ndtri(pde)
    out[~mask | ~usable[:, None]] = np.nan
    return out


def eta_shrinkage(eta: np.ndarray, omega: np.ndarray) -> np.ndarray:
    """ETASHRINKSD (%) per ETA: 100 (1 - SD(eta-hat) / sqrt(OMEGA(k,k))), SD with divisor N (NONMEM)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return 100 * (1 - eta.std(axis=0) / np.sqrt(np.diag(omega)))


def eps_shrinkage(iwres: np.ndarray) -> float:
    """EPSSHRINKSD (%): 100 (1 - sqrt(mean IWRES^2)) over the observations (NONMEM)."""
    values = iwres[np.isfinite(iwres)]
    return float(100 * (1 - np.sqrt(np.mean(values**2)))) if len(values) else float("nan")


def every_record(data: EstimationData) -> EstimationData:
    """The same data with every record (doses included) as a prediction point, for PRED and IPRED."""
    records = data.records
    lengths = np.diff(records.starts)
    width = int(lengths.max())
    slot = np.arange(records.n_rows) - np.repeat(records.starts[:-1], lengths)
    subject = records.subject
    shape = (records.n_individuals, width)
    rows = np.full(shape, -1)
    rows[subject, slot] = np.arange(records.n_rows)
    time = np.repeat(records.time[records.starts[1:] - 1][:, None], width, axis=1)
    time[subject, slot] = records.time
    local = np.full(shape, np.iinfo(np.int64).max)
    local[subject, slot] = slot
    return data.at_grid(rows, rows >= 0, np.zeros(shape), local, time)


def record_predictions(data: EstimationData, est: Estimates, eta: np.ndarray) -> np.ndarray:
    """Predictions (rows,) at every dataset record for ETAs ``eta`` (N, m), on the scale of the DV column."""
    grid = every_record(data)
    f = predict(grid, est.theta, eta, np.arange(data.n_individuals))
    values = dv_scale(data, f) if data.model.sigma.log_dv else f
    out = np.full(data.records.n_rows, np.nan)
    out[grid.obs_rows[grid.obs_mask]] = values[grid.obs_mask]
    return out


def record_table(data: EstimationData, est: Estimates, eta: np.ndarray, resid: Residuals,
                 npde_values: np.ndarray | None) -> pd.DataFrame:
    """One row per dataset record: ID, TIME, DV, MDV and :data:`COLUMNS` (observation columns NaN elsewhere)."""
    records = data.records
    rows = data.obs_rows[data.obs_mask]
    mdv = np.ones(records.n_rows, dtype=int)
    mdv[rows] = 0
    dv = np.full(records.n_rows, np.nan)
    dv[rows] = numeric_column(data.frame, column_map(data.frame)["DV"], "DV")[rows]
    table = pd.DataFrame({"ID": records.ids[records.subject], "TIME": records.time, "DV": dv, "MDV": mdv,
                          "PRED": record_predictions(data, est, np.zeros_like(eta)),
                          "IPRED": record_predictions(data, est, eta)})
    for name, values in (("RES", resid.res), ("WRES", resid.wres), ("CWRES", resid.cwres),
                         ("IWRES", resid.iwres), ("NPDE", npde_values)):
        column = np.full(records.n_rows, np.nan)
        if values is not None:
            column[rows] = values[data.obs_mask]
        table[name] = column
    return table

