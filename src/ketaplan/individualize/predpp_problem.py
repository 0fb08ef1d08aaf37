"""Estimation problems from a PREDPP model file extended with ``omega`` and ``sigma``.

So that individual estimates can be checked against NONMEM's conditional (POSTHOC / FOCE-I)
estimates for the same model and data::

    advan: 3
    CL: 5            # typical values: numbers or dataset columns
    V1: 20
    Q: 2
    V2: 40
    omega:           # variances of log-normal random effects: P_i = TV_i x exp(ETA_i), in this order
      CL: 0.09
      V1: 0.04
      CL~V1: 0.012   # an optional covariance
    sigma:           # residual variances: Y = IPRED (1 + EPS1) + EPS2
      proportional: 0.01
      additive: 0.25

ETA1, ETA2, ... follow the order of the variances in ``omega``. With ``transform: log`` the dataset's
DV are natural logs of the levels and Y = log(IPRED) + EPS1 (log-transform-both-sides; give only an
additive variance); a BLQ limit is then a log too.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ketaplan.engine.exact import solve
from ketaplan.engine.schedule import Schedule
from ketaplan.errors import InputError
from ketaplan.individualize.likelihood import ResidualModel
from ketaplan.individualize.observations import Observations, check_observations
from ketaplan.individualize.problem import Problem
from ketaplan.nonmem.dataset import Individual, column_map, numeric_column
from ketaplan.nonmem.predpp import PredppModel, micro_parameters, primary_parameters, resolve_parameter, row_modifiers
from ketaplan.nonmem.random_effects import log_transform
from ketaplan.nonmem.random_effects import parse_omega as effects_omega
from ketaplan.nonmem.random_effects import parse_sigma as effects_sigma
from ketaplan.nonmem.simulate import individual_schedule, record_segments

OUTPUT = "IPRED"


def parse_omega(model: PredppModel) -> tuple[tuple[str, ...], np.ndarray]:
    """Names (in ETA order) and the covariance matrix of the random effects of a model file: variances keyed by
    parameter names (P = TV x exp(ETA)), read by :func:`ketaplan.nonmem.random_effects.parse_omega`."""
    raw = model.extra.get("omega")
    if not isinstance(raw, dict) or not raw or "block" in {str(k).lower() for k in raw}:
        raise InputError("MODEL omega", raw, "give variances of the random effects, e.g. omega: {CL: 0.09, V1: 0.04}")
    spec, _ = effects_omega(raw, tuple(model.parameters))
    return spec.labels, spec.matrix


def parse_sigma(model: PredppModel) -> tuple[float, float]:
    """Proportional and additive residual SDs from the variances in ``sigma``."""
    raw = model.extra.get("sigma")
    if not isinstance(raw, dict) or not raw:
        raise InputError("MODEL sigma", raw, "give residual variances, e.g. sigma: {proportional: 0.01, "
                         "additive: 0.25}")
    spec = effects_sigma(raw, model.extra.get("transform"))
    if "exponential" in spec.variances:
        raise InputError("MODEL sigma", raw, "fit takes proportional and additive variances (with transform: log, "
                         "an additive one on the log scale)")
    return float(np.sqrt(spec.variances.get("proportional", 0.0))), float(np.sqrt(spec.variances.get("additive",
                                                                                                    0.0)))


def individual_observations(data: pd.DataFrame, ind: Individual) -> tuple[Observations, np.ndarray]:
    """Observation records (EVID 0, MDV 0) of one individual and their positions among its records."""
    cols = column_map(data)
    rows = ind.rows
    mdv = numeric_column(data, cols["MDV"])[rows] if "MDV" in cols else np.zeros(len(rows))
    dv = numeric_column(data, cols["DV"])[rows] if "DV" in cols else np.full(len(rows), np.nan)
    blq = numeric_column(data, cols["BLQ"])[rows] if "BLQ" in cols else np.zeros(len(rows))
    lloq = numeric_column(data, cols["LLOQ"])[rows] if "LLOQ" in cols else np.full(len(rows), np.nan)
    is_blq = np.nan_to_num(blq) == 1
    keep = (ind.evid == 0) & ((np.nan_to_num(mdv) == 0) | is_blq)
    lloq = np.where(is_blq & ~np.isfinite(lloq), dv, lloq)
    pos = np.flatnonzero(keep)
    return Observations.of(ind.time[pos], np.full(len(pos), "", dtype=object), dv[pos], is_blq[pos], lloq[pos],
                           rows[pos]), pos


def predpp_problem(model: PredppModel, data: pd.DataFrame, ind: Individual) -> Problem:
    """The estimation problem of one individual of a NONMEM dataset under a PREDPP model with omega/sigma."""
    names, omega = parse_omega(model)
    prop, add = parse_sigma(model)
    sub = data.iloc[ind.rows].reset_index(drop=True)
    primary = primary_parameters(model, sub)
    scale = resolve_parameter(model.scale, sub, "scale", model)
    schedule = individual_schedule(ind, model, row_modifiers(model, data))
    obs, positions = individual_observations(data, ind)
    obs = Observations(obs.time, np.full(len(obs), OUTPUT, dtype=object), obs.value, obs.blq, obs.lloq, obs.row)
    doses = np.flatnonzero(np.isin(ind.evid, [1, 4]) & (ind.amt > 0))
    log_scale = log_transform(model.extra.get("transform"))
    if log_scale and prop > 0:
        raise InputError("MODEL sigma proportional", prop**2, "with transform: log give only an additive variance "
                         "(on the log scale)")
    check_observations(obs, float(ind.time[doses].min()) if len(doses) else None, {OUTPUT}, log_scale=log_scale)
    typical = np.array([float(primary[n][0]) for n in names])
    varying = any(not np.all(v == v[0]) for v in primary.values())
    notes = []
    if varying:
        # NONMEM's rule: the parameters of the record at the end of each interval hold over the interval
        schedule, segment_rows = record_segments(ind, schedule)
        notes.append("Parameters change between this individual's records (time-varying covariates); the "
                     "population and individual values shown are those of its first record.")
    else:
        segment_rows = np.zeros(1, dtype=np.int64)
        primary = {k: v[:1] for k, v in primary.items()}
    structure = model.structure()
    central = model.advan.central
    times = ind.time[positions]
    readout = np.zeros((1, model.n_states))
    readout[0, central] = 1.0

    def values_at(etas: np.ndarray, rows: np.ndarray) -> dict[str, np.ndarray]:
        """Primary parameters (S, len(rows)) at these record positions: TV(record) x exp(ETA)."""
        out = {k: np.broadcast_to(v[rows], (len(etas), len(rows))) for k, v in primary.items()}
        for j, name in enumerate(names):
            out[name] = out[name] * np.exp(etas[:, j : j + 1])
        return out

    def predict(etas: np.ndarray) -> np.ndarray:
        s = len(etas)
        micro = micro_parameters(model, values_at(etas, segment_rows))
        k = structure.rate_matrix({n: micro[n] for n in structure.parameter_names()})  # (S, segments, n, n)
        k = k if varying else k[:, 0]
        vc = micro_parameters(model, values_at(etas, positions if varying else segment_rows))["VC"]
        amounts = solve(k, repeat_schedule(schedule, s), times, readout, positions[None, :].repeat(s, axis=0))
        out = amounts[:, :, 0] * scale[positions] / vc
        if log_scale:
            return np.log(np.maximum(out, 1e-300))  # a zero level (before any drug) stays finite
        return out

    residual = ResidualModel(np.full(len(obs), prop), np.full(len(obs), add), np.ones(len(obs)))
    return Problem(names, omega, typical, tuple("" for _ in names), obs, residual, predict, f"ID {ind.id}",
                   notes=notes)


def repeat_schedule(schedule: Schedule, s: int) -> Schedule:
    """The schedule of one subject repeated for s parameter sets."""
    fields = {name: np.repeat(getattr(schedule, name), s, axis=0) for name in schedule.__dataclass_fields__
              if name != "n_states"}
    return Schedule(**fields, n_states=schedule.n_states)
