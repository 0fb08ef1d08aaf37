"""Simulate a NONMEM-style dataset with a PREDPP model, as NONMEM's $SIMULATION would.

The output keeps every input row in order and adds IPRED and the amounts A1..An (NONMEM
numbering). PK parameters follow NONMEM's rule for time-varying values: those of the record at
the end of an interval hold over the whole interval (next observation carried backward); dose
modifiers come from the dose record itself.

The whole table is checked, split and compiled at once (no Python loop over rows or individuals);
individuals whose parameters are constant are solved in one batch, the others one by one with a
rate matrix per record interval.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from ketaplan.engine.exact import solve
from ketaplan.engine.schedule import DoseModifiers, DoseRecords, Schedule, compile_batch
from ketaplan.errors import InputError
from ketaplan.finite import require_finite
from ketaplan.nonmem.dataset import DatasetRecords, Individual, check_records
from ketaplan.nonmem.predpp import PredppModel, load_model, micro_parameters, row_modifiers, row_parameters


def simulate_dataset(data: pd.DataFrame, model: Mapping | str | Path | PredppModel) -> pd.DataFrame:
    """IPRED and amounts for every row of a NONMEM-style dataset.

    ``model`` is a PREDPP model mapping or the path of its YAML file (see :mod:`ketaplan.nonmem.predpp`).
    Raises :class:`ketaplan.errors.InputError` naming the first bad row and column.
    """
    pm = model if isinstance(model, PredppModel) else load_model(model)
    frame = data.reset_index(drop=True)
    records = check_records(frame)
    params = row_parameters(pm, frame)
    amounts = simulate_records(records, pm, params, row_modifiers(pm, frame))
    ipred = np.divide(amounts[pm.advan.central], params[pm.central_volume_name])
    ipred *= params["SCALE"]
    added = {"IPRED": ipred} | {f"A{j + 1}": amounts[j] for j in range(pm.n_states)}
    require_finite(added)
    if any(name in data.columns for name in added):
        return data.assign(**added)  # replaces the old columns in place
    return pd.concat([data, pd.DataFrame(added, index=data.index, copy=False)], axis=1)


def simulate_records(records: DatasetRecords, pm: PredppModel, params: dict[str, np.ndarray],
                     mods: dict[tuple[str, int], np.ndarray]) -> np.ndarray:
    """Amounts (states, rows) at every record of a checked dataset.

    ``params`` are the model's own parameters from :func:`~ketaplan.nonmem.predpp.row_parameters` (a
    constant as a 0-d array, a column per row); ``mods`` the per-row dose modifiers.
    """
    schedule = batch_schedule(records, pm, mods)
    first = records.starts[:-1]
    changes = np.zeros(records.n_rows, dtype=bool)
    step = np.empty(max(records.n_rows - 1, 0), dtype=bool)
    for name in pm.parameters:
        p = params[name]
        if p.ndim:
            np.not_equal(p[1:], p[:-1], out=step)
            np.logical_or(changes[1:], step, out=changes[1:])
    changes[first] = False  # a new individual may start with other values
    constant = ~np.logical_or.reduceat(changes, first)
    group = np.flatnonzero(constant)
    if len(group) == records.n_individuals and _rectangular(records):
        return _solve_rectangular(records, schedule, _rate_matrices(pm, params, first))
    amounts = np.empty((pm.n_states, records.n_rows))
    for batch in _batches(np.diff(records.starts), group):
        _solve_group(records, batch, schedule.take(batch), _rate_matrices(pm, params, first[batch]), amounts)
    for i in np.flatnonzero(~constant):
        ind = records.individual(int(i))
        merged, seg_rows = record_segments(ind, _trimmed(schedule.take(slice(i, i + 1))))
        k = _rate_matrices(pm, params, ind.rows[seg_rows])
        result = solve(k[None], merged, ind.time[None, :], np.eye(pm.n_states), np.arange(ind.n_records)[None, :])
        amounts[:, ind.rows] = result[0].T
    return amounts


def _rate_matrices(pm: PredppModel, params: dict[str, np.ndarray], rows: np.ndarray) -> np.ndarray:
    """Rate matrices (len(rows), n, n) from the parameters at these rows."""
    at = {name: p[rows] if p.ndim else np.full(len(rows), float(p)) for name, p in params.items()}
    micro = micro_parameters(pm, {name: at[name] for name in pm.parameters})
    structure = pm.structure()
    return structure.rate_matrix({name: micro[name] for name in structure.parameter_names()})


PAD_ELEMENTS = 4_000_000
"""Most cells of one padded (individuals x records) grid: individuals are batched by their number of records,
so one individual with 400,000 records does not pad a thousand others to its length."""


def _batches(counts: np.ndarray, group: np.ndarray) -> list[np.ndarray]:
    """``group`` split into batches of individuals with similar record counts, each grid within PAD_ELEMENTS."""
    if len(group) == 0:
        return []
    ordered = group[np.argsort(counts[group], kind="stable")]
    widths = counts[ordered]
    out, begin = [], 0
    for end in range(1, len(ordered) + 1):
        if end == len(ordered) or (end + 1 - begin) * widths[end] > PAD_ELEMENTS:
            out.append(np.sort(ordered[begin:end]))
            begin = end
    return out


def _rectangular(records: DatasetRecords) -> bool:
    counts = np.diff(records.starts)
    return bool(np.all(counts == counts[0]))


def _solve_rectangular(records: DatasetRecords, schedule: Schedule, k: np.ndarray) -> np.ndarray:
    """Every individual constant and with as many records as the others: the records already form the
    (individuals, records) grid the engine evaluates, so nothing is scattered or gathered."""
    shape = (records.n_individuals, records.n_rows // records.n_individuals)
    by_state = np.empty((schedule.n_states, *shape))
    orders = np.broadcast_to(np.arange(shape[1]), shape)
    solve(k, schedule, records.time.reshape(shape), np.eye(schedule.n_states), orders,
          out=by_state.transpose(1, 0, 2))
    return by_state.reshape(schedule.n_states, -1)


def _solve_group(records: DatasetRecords, group: np.ndarray, schedule: Schedule, k: np.ndarray,
                 amounts: np.ndarray) -> None:
    """Solve individuals with constant parameters in one batch, each at its own record times.

    Their records are laid out as rows of a padded (individuals, width) grid (``flat`` is each record's
    position in it; padding repeats an individual's last time, which is cheap to evaluate).
    """
    width = int(np.diff(records.starts)[group].max())
    position = np.full(records.n_individuals, -1, dtype=np.int64)
    position[group] = np.arange(len(group))
    rows = np.flatnonzero(position[records.subject] >= 0)
    local = records.local[rows]
    flat = position[records.subject[rows]] * width + local
    times = np.repeat(records.time[records.starts[group + 1] - 1], width)
    times[flat] = records.time[rows]
    orders = np.full(len(group) * width, np.iinfo(np.int64).max)
    orders[flat] = local
    shape = (len(group), width)
    by_state = np.empty((schedule.n_states, *shape))
    solve(k, schedule, times.reshape(shape), np.eye(schedule.n_states), orders.reshape(shape),
          out=by_state.transpose(1, 0, 2))
    for j in range(schedule.n_states):
        amounts[j, rows] = by_state[j].reshape(-1).take(flat)


def batch_schedule(records: DatasetRecords, pm: PredppModel, mods: dict[tuple[str, int], np.ndarray]) -> Schedule:
    """The compiled dose schedules of every individual at once, with the per-row dose modifiers ``mods``."""
    default_cmt = 1 if pm.advan.depot else pm.advan.central + 1
    if records.cmt.max(initial=0) > pm.n_states:  # observations may name the output compartment n + 1
        cmt = np.where(records.cmt == 0, default_cmt, records.cmt)
        evid = records.column("evid")
        given, other = np.isin(evid, [1, 4]), ~np.isin(evid, [1, 3, 4])
        bad = np.flatnonzero((given & (cmt > pm.n_states)) | (other & (cmt > pm.n_states + 1)))
        if len(bad):
            i = bad[0]
            raise InputError(f"row {i + 1}, column CMT", int(cmt[i]),
                             f"advan {pm.advan.number} has compartments 1 to {pm.n_states}")
    item = records.items
    pick = np.flatnonzero(np.isin(item["evid"], [1, 3, 4]))
    rows = records.active[pick]
    dose_cmt = np.maximum(np.where(records.cmt[rows] == 0, default_cmt, records.cmt[rows]) - 1, 0)
    subject = records.subject_of(rows)
    dose_records = DoseRecords(
        time=records.time[rows], amount=item["amt"][pick], cmt=dose_cmt, rate=item["rate"][pick],
        duration=item["dur"][pick], ii=item["ii"][pick], addl=item["addl"][pick], ss=item["ss"][pick],
        evid=item["evid"][pick], order=rows - records.starts[subject])
    m = DoseModifiers.neutral(1, len(rows))
    targets = {"F": m.f, "ALAG": m.lag, "R": m.rate, "D": m.duration}
    for (kind, number), values in mods.items():
        hit = dose_cmt == number - 1
        targets[kind][0, hit] = values[rows[hit]]
    labels = np.char.add("row ", (rows + 1).astype(str)) if len(rows) else None
    return compile_batch(dose_records, subject, records.n_individuals, m, pm.n_states, labels)


def individual_schedule(ind: Individual, pm: PredppModel, mods: dict) -> Schedule:
    """The compiled dose schedule of one individual, with the per-row dose modifiers ``mods``."""
    active = np.flatnonzero(ind.evid != 0)
    items = {"evid": ind.evid, "amt": ind.amt, "rate": ind.rate, "dur": ind.dur, "ii": ind.ii, "addl": ind.addl,
             "ss": ind.ss}
    one = DatasetRecords(np.array([ind.id]), np.array([0, ind.n_records]), ind.time, ind.cmt, active,
                         {name: values[active] for name, values in items.items()})
    local_mods = {key: values[ind.rows] for key, values in mods.items()}
    try:
        return _trimmed(batch_schedule(one, pm, local_mods))
    except InputError as exc:
        raise _with_row(exc, ind) from None


def _with_row(exc: InputError, ind: Individual) -> InputError:
    """Translate 'row k' within the individual into the dataset row number."""
    field = exc.field
    if field.startswith("row "):
        head, _, rest = field.partition(",")
        head, colon, tail = head.partition(":")
        k = int(head.split()[1]) - 1
        field = f"row {ind.rows[k] + 1}" + colon + tail + ("," + rest if rest else "")
    return InputError(field, exc.value, exc.allowed)


def _trimmed(schedule: Schedule) -> Schedule:
    """A one-subject schedule without its padding boundaries."""
    live = int(np.isfinite(schedule.time[0]).sum())
    return Schedule(**{name: getattr(schedule, name)[:, :live] for name in _FIELDS}, n_states=schedule.n_states)


_FIELDS = ("time", "order", "cmt", "bolus", "drate", "reset", "ss_kind", "ss_amount", "ss_rate", "ss_duration",
           "ss_ii", "ss_lag")


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
    # segment after boundary j uses the first record whose (time, position) key is >= the boundary's key
    t, o = merged.time[0], merged.order[0]
    first_at = np.searchsorted(ind.time, t, side="left")
    first_after = np.searchsorted(ind.time, t, side="right")
    candidate = np.maximum(first_at, o)
    seg = np.where(candidate < first_after, candidate, first_after)
    seg_rows = np.append(np.minimum(seg, n_rec - 1), n_rec - 1).astype(np.int64)
    return merged, seg_rows


def _merge(a: Schedule, b: Schedule) -> Schedule:
    cat = {f: np.concatenate([getattr(a, f), getattr(b, f)], axis=1) for f in _FIELDS}
    # boundaries of a record act after a no-op at the same key; keep them stable after it
    position = np.concatenate([np.arange(a.n_boundaries) + b.n_boundaries, np.arange(b.n_boundaries)])
    order = np.lexsort((position, cat["order"][0], cat["time"][0]))
    return Schedule(**{f: v[:, order] for f, v in cat.items()}, n_states=a.n_states)
