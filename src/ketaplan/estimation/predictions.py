"""Batched individual predictions: many (individual, THETA, ETA) combinations in one call of the exact engine.

A batch row b is individual ``who[b]`` with parameters THETA ``theta[b]`` and ETA ``eta[b]``; its prediction
is IPRED = SCALE x A(central) / V(central) at the individual's observation records. Rows whose parameters
are not valid (not finite, a volume <= 0, a negative rate) predict NaN, so that an optimiser backs away.
"""

from __future__ import annotations

import numpy as np

from ketaplan.engine.exact import solve
from ketaplan.estimation.data import EstimationData
from ketaplan.nonmem.predpp import micro_parameters
from ketaplan.nonmem.simulate import batch_schedule, record_segments

_SAFE = 1.0  # stand-in value for invalid parameters while the engine runs; their rows are discarded


def parameters(data: EstimationData, theta: np.ndarray, eta: np.ndarray, who: np.ndarray) -> dict[str, np.ndarray]:
    """Every model expression for each batch row (per individual; covariates at its first record)."""
    cols = {k: v[who] for k, v in data.covariates.items()} if data.per_individual else \
        {k: v[data.records.starts[who]] for k, v in data.covariates.items()}
    theta = np.asarray(theta, dtype=float)
    theta_parts = theta.T if theta.ndim == 2 else theta
    return data.evaluate(theta_parts, eta, cols)


def predict(data: EstimationData, theta: np.ndarray, eta: np.ndarray, who: np.ndarray) -> np.ndarray:
    """IPRED (B, W) at the observation grid of each row's individual; NaN where the parameters are invalid."""
    who = np.asarray(who)
    eta = np.asarray(eta, dtype=float).reshape(len(who), data.model.n_eta)
    if not data.per_individual:
        return _predict_by_record(data, np.broadcast_to(theta, (len(who), len(data.model.thetas))), eta, who)
    values = parameters(data, theta, eta, who)
    pm = data.model.predpp
    primary = {name: np.array(values[name], dtype=float) for name in pm.parameters}
    scale = np.asarray(values["SCALE"], dtype=float)
    valid = np.isfinite(scale)
    for name, v in primary.items():
        valid &= np.isfinite(v) & ((v > 0) if name.startswith("V") else (v >= 0))
    for v in primary.values():
        v[~valid] = _SAFE
    micro = micro_parameters(pm, primary)
    structure = pm.structure()
    k = structure.rate_matrix({n: micro[n] for n in structure.parameter_names()})
    readout = np.zeros((1, pm.n_states))
    readout[0, pm.advan.central] = 1.0
    plan = data.plan_of(who) if data.schedule is not None else None
    if plan is not None:  # few doses and levels per individual: one vectorised sum (see engine.superposition)
        amounts, bad = plan.solve(k, readout)
        amounts = amounts[:, :, 0]
        if bad.any():
            rows = np.flatnonzero(bad)
            amounts[rows] = solve(k[rows], data.schedule_of(who[rows]), data.obs_time[who[rows]], readout,
                                  data.obs_local[who[rows]])[:, :, 0]
    else:
        schedule = data.schedule_of(who) if data.schedule is not None else _schedules(data, values, who)
        amounts = solve(k, schedule, data.obs_time[who], readout, data.obs_local[who])[:, :, 0]
    ipred = amounts * (scale / micro["VC"])[:, None]
    ipred[~valid] = np.nan
    return ipred


def _schedules(data: EstimationData, values: dict[str, np.ndarray], who: np.ndarray):
    """Schedules compiled for this batch when the dose modifiers depend on THETA or ETA; ``values`` holds the
    modifiers per batch row (constant within it) or per record of the selected individuals."""
    pm = data.model.predpp
    selected = data.records.select(who)
    lengths = np.diff(selected.starts)
    mods = {}
    for key in pm.modifiers:
        v = np.asarray(values[f"{key[0]}{key[1]}"], dtype=float)
        mods[key] = np.repeat(np.broadcast_to(v, (len(who),)), lengths) if v.size <= len(who) else v
    return batch_schedule(selected, pm, mods)


def _predict_by_record(data: EstimationData, theta: np.ndarray, eta: np.ndarray, who: np.ndarray) -> np.ndarray:
    """Parameters that change between an individual's records: one rate matrix per record interval."""
    pm = data.model.predpp
    structure = pm.structure()
    out = np.full((len(who), data.obs_time.shape[1]), np.nan)
    readout = np.zeros((1, pm.n_states))
    readout[0, pm.advan.central] = 1.0
    for b, i in enumerate(who):
        ind = data.records.individual(int(i))
        cols = {k: v[ind.rows] for k, v in data.covariates.items()}
        values = data.evaluate(theta[b], np.broadcast_to(eta[b], (ind.n_records, data.model.n_eta)), cols)
        primary = {name: np.asarray(values[name], dtype=float) for name in pm.parameters}
        if not all(np.all(np.isfinite(v) & ((v > 0) if n.startswith("V") else (v >= 0))) for n, v in primary.items()):
            continue
        schedule = data.schedule.take(slice(i, i + 1)) if data.schedule is not None else \
            _schedules(data, values, np.array([i]))
        live = int(np.isfinite(schedule.time[0]).sum())
        trimmed = type(schedule)(**{f: getattr(schedule, f)[:, :live] for f in _FIELDS}, n_states=schedule.n_states)
        merged, seg_rows = record_segments(ind, trimmed)
        micro = micro_parameters(pm, {n: v[seg_rows] for n, v in primary.items()})
        k = structure.rate_matrix({n: micro[n] for n in structure.parameter_names()})
        mask = data.obs_mask[i]
        local = data.obs_local[i][mask]
        amounts = solve(k[None], merged, ind.time[local][None, :], readout, local[None, :])[0, :, 0]
        vc = micro_parameters(pm, {n: v[local] for n, v in primary.items()})["VC"]
        out[b, : mask.sum()] = amounts * np.asarray(values["SCALE"], dtype=float)[local] / vc
    return out


_FIELDS = ("time", "order", "cmt", "bolus", "drate", "reset", "ss_kind", "ss_amount", "ss_rate", "ss_duration",
           "ss_ii", "ss_lag")
