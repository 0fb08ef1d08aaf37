"""Simulate a NONMEM-style dataset with a PREDPP model, as NONMEM's $SIMULATION would.

The output keeps every input row in order and adds IPRED and the amounts A1..An (NONMEM
numbering). PK parameters follow NONMEM's rule for time-varying values: those of the record at
the end of an interval hold over the whole interval (next observation carried backward); dose
modifiers come from the dose record itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from ketaplan.engine.exact import solve
from ketaplan.engine.schedule import DoseModifiers, DoseRecords, Schedule, compile_schedule, pad_schedules
from ketaplan.errors import InputError
from ketaplan.nonmem.dataset import Individual, split_individuals
from ketaplan.nonmem.predpp import PredppModel, load_model, row_modifiers, row_parameters


def simulate_dataset(data: pd.DataFrame, model: Mapping | str | Path) -> pd.DataFrame:
    """IPRED and amounts for every row of a NONMEM-style dataset.

    ``model`` is a PREDPP model mapping or the path of its YAML file (see :mod:`ketaplan.nonmem.predpp`).
    Raises :class:`ketaplan.errors.InputError` naming the first bad row and column.
    """
    pm = model if isinstance(model, PredppModel) else load_model(model)
    frame = data.reset_index(drop=True)
    individuals = split_individuals(frame)
    params = row_parameters(pm, frame)
    mods = row_modifiers(pm, frame)
    n = pm.n_states
    structure = pm.structure()
    amounts = np.zeros((len(frame), n))
    constant, varying = [], []
    prepared = [individual_schedule(ind, pm, mods) for ind in individuals]
    for ind, sched in zip(individuals, prepared, strict=True):
        same = all(np.all(params[k][ind.rows] == params[k][ind.rows[0]]) for k in structure.parameter_names())
        (constant if same else varying).append((ind, sched))
    if constant:
        _solve_constant(constant, structure, params, amounts)
    for ind, sched in varying:
        _solve_varying(ind, sched, structure, params, amounts)
    central = pm.advan.central
    ipred = params["SCALE"] * amounts[:, central] / params["VC"]
    out = data.copy()
    out["IPRED"] = ipred
    for j in range(n):
        out[f"A{j + 1}"] = amounts[:, j]
    return out


def _records(ind: Individual, pm: PredppModel) -> tuple[DoseRecords, np.ndarray]:
    """Dose/reset records of one individual (0-based compartments) and their row positions."""
    dosing = np.isin(ind.evid, [1, 3, 4])
    default_cmt = 1 if pm.advan.depot else pm.advan.central + 1
    cmt = np.where(ind.cmt == 0, default_cmt, ind.cmt)
    bad = np.flatnonzero(dosing & np.isin(ind.evid, [1, 4]) & (cmt > pm.n_states))
    if len(bad):
        i = bad[0]
        raise InputError(f"row {ind.rows[i] + 1}, column CMT", int(cmt[i]),
                         f"advan {pm.advan.number} has compartments 1 to {pm.n_states}")
    obs_bad = np.flatnonzero(~dosing & (cmt > pm.n_states + 1))
    if len(obs_bad):
        i = obs_bad[0]
        raise InputError(f"row {ind.rows[i] + 1}, column CMT", int(cmt[i]),
                         f"advan {pm.advan.number} has compartments 1 to {pm.n_states}")
    idx = np.flatnonzero(dosing)
    records = DoseRecords.from_lists(
        time=ind.time[idx], amount=ind.amt[idx], cmt=np.maximum(cmt[idx] - 1, 0), rate=ind.rate[idx],
        duration=ind.dur[idx], ii=ind.ii[idx], addl=ind.addl[idx], ss=ind.ss[idx], evid=ind.evid[idx],
        order=idx)
    return records, idx


def individual_schedule(ind: Individual, pm: PredppModel, mods: dict) -> Schedule:
    """The compiled dose schedule of one individual, with the per-row dose modifiers ``mods``."""
    records, idx = _records(ind, pm)
    rows = ind.rows[idx]
    m = DoseModifiers.neutral(1, len(records))
    f, lag, rate, dur = (a.copy() for a in (m.f, m.lag, m.rate, m.duration))
    for (kind, cmt), values in mods.items():
        hit = records.cmt == cmt - 1
        target = {"F": f, "ALAG": lag, "R": rate, "D": dur}[kind]
        target[0, hit] = values[rows[hit]]
    try:
        return compile_schedule(records, DoseModifiers(f, lag, rate, dur), pm.n_states)
    except InputError as exc:
        raise _with_row(exc, ind) from None


def _with_row(exc: InputError, ind: Individual) -> InputError:
    """Translate 'record k' (position within the individual) into the dataset row number."""
    field = exc.field
    if field.startswith("record "):
        k = int(field.split()[1].rstrip(":")) - 1
        field = f"row {ind.rows[k] + 1}" + field[field.index(":"):]
    return InputError(field, exc.value, exc.allowed)


def _solve_constant(group, structure, params, amounts) -> None:
    first_rows = np.array([ind.rows[0] for ind, _ in group])
    k = structure.rate_matrix({name: params[name][first_rows] for name in structure.parameter_names()})
    schedule = pad_schedules([s for _, s in group])
    width = max(ind.n_records for ind, _ in group)
    times = np.zeros((len(group), width))
    orders = np.zeros((len(group), width), dtype=np.int64)
    for i, (ind, _) in enumerate(group):
        times[i, : ind.n_records] = ind.time
        orders[i, : ind.n_records] = np.arange(ind.n_records)
    eye = np.eye(structure.n_states)
    result = solve(k, schedule, times, eye, orders)
    for i, (ind, _) in enumerate(group):
        amounts[ind.rows] = result[i, : ind.n_records]


def _solve_varying(ind, schedule, structure, params, amounts) -> None:
    """Per-record parameters: one no-op boundary per record and a rate matrix per segment."""
    merged, seg_rows = record_segments(ind, schedule)
    rows = ind.rows[seg_rows]
    k = structure.rate_matrix({name: params[name][rows] for name in structure.parameter_names()})
    n_rec = ind.n_records
    result = solve(k[None], merged, ind.time[None, :], np.eye(structure.n_states), np.arange(n_rec)[None, :])
    amounts[ind.rows] = result[0]


def record_segments(ind: Individual, schedule: Schedule) -> tuple[Schedule, np.ndarray]:
    """``schedule`` with a no-op boundary at every record, and for each of its B + 1 segments the position
    (within the individual) of the record whose parameters hold there.

    NONMEM's rule: the record at the end of an interval sets the parameters over the whole interval. Outputs
    at record k must be solved with order key k.
    """
    n_rec = ind.n_records
    extra = Schedule(
        time=ind.time[None, :].astype(float), order=np.arange(n_rec)[None, :], cmt=np.zeros((1, n_rec), np.int64),
        bolus=np.zeros((1, n_rec)), drate=np.zeros((1, n_rec)), reset=np.zeros((1, n_rec), bool),
        ss_kind=np.zeros((1, n_rec), np.int64), ss_amount=np.zeros((1, n_rec)), ss_rate=np.zeros((1, n_rec)),
        ss_duration=np.zeros((1, n_rec)), ss_ii=np.zeros((1, n_rec)), ss_lag=np.zeros((1, n_rec)),
        n_states=schedule.n_states)
    merged = _merge(schedule, extra)
    # segment after boundary j uses the first record whose key is >= the key of boundary j + 1
    keys_t = merged.time[0]
    keys_o = merged.order[0]
    rec_t = ind.time
    rec_o = np.arange(n_rec)
    seg_rows = np.empty(merged.n_boundaries + 1, dtype=np.int64)
    for j in range(merged.n_boundaries + 1):
        if j < merged.n_boundaries:
            t, o = keys_t[j], keys_o[j]
            later = (rec_t > t) | ((rec_t == t) & (rec_o >= o))
            pos = np.flatnonzero(later)
            seg_rows[j] = pos[0] if len(pos) else n_rec - 1
        else:
            seg_rows[j] = n_rec - 1
    return merged, seg_rows


def _merge(a: Schedule, b: Schedule) -> Schedule:
    fields = ("time", "order", "cmt", "bolus", "drate", "reset", "ss_kind", "ss_amount", "ss_rate",
              "ss_duration", "ss_ii", "ss_lag")
    cat = {f: np.concatenate([getattr(a, f), getattr(b, f)], axis=1) for f in fields}
    # boundaries of a record act after a no-op at the same key; keep them stable after it
    position = np.concatenate([np.arange(a.n_boundaries) + b.n_boundaries, np.arange(b.n_boundaries)])
    order = np.lexsort((position, cat["order"][0], cat["time"][0]))
    return Schedule(**{f: v[:, order] for f, v in cat.items()}, n_states=a.n_states)
