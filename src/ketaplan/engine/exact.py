"""Exact solution of linear compartment systems under a compiled dosing schedule.

The system dA/dt = K A + r(t) has piecewise-constant input r between schedule boundaries, so
each stretch is solved in closed form (see :mod:`ketaplan.engine.propagators`). Subjects are
processed in chunks, vectorised within a chunk; the loop over boundaries visits dose events,
never output time points.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ketaplan.engine.propagators import ExpmPropagator, ModalPropagator
from ketaplan.engine.schedule import Schedule, add_rates

CHUNK_ELEMENTS = 3_000_000
"""Target size (subjects x times x states) of the temporaries of one chunk."""


def solve(
    k: np.ndarray,
    schedule: Schedule,
    times: np.ndarray,
    readout: np.ndarray,
    orders: np.ndarray | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Outputs ``readout @ A(t)`` for every subject and output time.

    Parameters
    ----------
    k:
        Rate matrices (per hour), (S, n, n); or (S, B + 1, n, n) for parameters that change at
        boundaries, where index 0 applies before the first boundary and index j + 1 after
        boundary j (a steady state set at boundary j uses index j).
    schedule:
        Compiled boundaries for the S subjects.
    times:
        Output times (h), (T,) shared by all subjects or (S, T).
    readout:
        (n_out, n) or (S, n_out, n) matrix turning amounts into outputs.
    orders:
        Order keys of the output times for ties with boundaries at the same time (an output sees
        boundaries whose (time, order) is <= its own); default: after everything at that time.
    out:
        Optional (S, n_out, T) array (any strides) to write the outputs into.

    Returns
    -------
    (S, T, n_out) array (a view of an (S, n_out, T) buffer, each output's time course contiguous).
    """
    keep = contributing_states(k, readout)
    if keep.any() and not keep.all():
        k, schedule, readout = _restrict(k, schedule, readout, keep)
    s_all, n = schedule.n_subjects, schedule.n_states
    times = np.broadcast_to(np.asarray(times, dtype=float), (s_all, np.shape(times)[-1]))
    if orders is None:
        orders = np.full(times.shape[-1], np.iinfo(np.int64).max)
    orders = np.broadcast_to(np.asarray(orders), times.shape)
    readout = np.broadcast_to(readout, (s_all, *np.shape(readout)[-2:]))
    buffer = np.empty((s_all, readout.shape[1], times.shape[1])) if out is None else out
    shared = _rows_equal(times) and _rows_equal(orders)
    chunk = max(1, CHUNK_ELEMENTS // max(1, times.shape[1] * n))
    for start in range(0, s_all, chunk):
        sl = slice(start, min(start + chunk, s_all))
        _solve_chunk(k[sl], schedule.take(sl), times[sl], orders[sl], readout[sl], shared, buffer[sl])
    return buffer.transpose(0, 2, 1)


def contributing_states(k: np.ndarray, readout: np.ndarray) -> np.ndarray:
    """Mask of the states the outputs depend on: those read out and every state with a path of rates into one."""
    n = k.shape[-1]
    feeds = np.any(np.reshape(k, (-1, n, n)) != 0, axis=0)  # feeds[i, j]: state j flows into state i
    keep = np.any(np.reshape(readout, (-1, n)) != 0, axis=0)
    while True:
        more = keep | feeds[keep].any(axis=0)
        if np.array_equal(more, keep):
            return keep
        keep = more


def _restrict(k: np.ndarray, schedule: Schedule, readout: np.ndarray, keep: np.ndarray
              ) -> tuple[np.ndarray, Schedule, np.ndarray]:
    """The system of the kept states; doses into the others cannot reach an output and are dropped."""
    dosed = keep[schedule.cmt]
    schedule = replace(schedule, cmt=np.where(dosed, np.cumsum(keep)[schedule.cmt] - 1, 0),
                       bolus=np.where(dosed, schedule.bolus, 0.0), drate=np.where(dosed, schedule.drate, 0.0),
                       ss_kind=np.where(dosed, schedule.ss_kind, 0), n_states=int(keep.sum()))
    return k[..., keep, :][..., keep], schedule, readout[..., keep]


def _rows_equal(a: np.ndarray) -> bool:
    """True when every row equals the first (cheap for broadcast views)."""
    if a.shape[0] <= 1 or a.strides[0] == 0:
        return True
    return bool(np.array_equal(a, np.broadcast_to(a[:1], a.shape)))


def _solve_chunk(k, schedule, times, orders, readout, shared_times, dest):
    """Solve one chunk of subjects into ``dest`` (S, n_out, T)."""
    varying = k.ndim == 4
    s = schedule.n_subjects
    n = schedule.n_states
    ks = k if varying else k[:, None]
    segments = ks.shape[1]
    modal, bad = ModalPropagator.decompose(ks.reshape(-1, n, n))
    bad = bad.reshape(s, segments).any(axis=1)
    groups = [(np.flatnonzero(~bad), False), (np.flatnonzero(bad), True)]
    for idx, matrix_exponential in groups:
        if len(idx) == 0:
            continue
        if matrix_exponential:
            props = [ExpmPropagator(ks[idx, j]) for j in range(segments)]
        else:
            props = [modal.take(np.ravel_multi_index((idx, np.full_like(idx, j)), (s, segments)))
                     for j in range(segments)]
        if len(idx) == s:
            _run(props, schedule, times, orders, readout, varying, shared_times, dest)
            continue
        target = np.empty((len(idx), *dest.shape[1:]))
        _run(props, schedule.take(idx), times[idx], orders[idx], readout[idx], varying, shared_times, target)
        dest[idx] = target


def _segment(props, j):
    """Propagator of segment j (index into the B + 1 segments), constant systems have one."""
    return props[j] if len(props) > 1 else props[0]


def _run(props, schedule: Schedule, times, orders, readout, varying, shared_times, dest):
    """Boundary loop for one homogeneous group of subjects, then evaluation at the outputs."""
    s, b, n = schedule.n_subjects, schedule.n_boundaries, schedule.n_states
    rows = np.arange(s)
    a = np.zeros((s, n))
    r = np.zeros((s, n))
    r_low = np.zeros((s, n))  # low part of the double-double running rates (see add_rates)
    a_after = np.zeros((s, b, n))
    r_after = np.zeros((s, b, n))
    t_prev = np.zeros(s)
    for j in range(b):
        t = schedule.time[:, j]
        live = np.isfinite(t)
        if not np.any(live):
            a_after[:, j:] = a[:, None]
            r_after[:, j:] = r[:, None]
            break
        if j > 0:
            tau = np.where(live, t - t_prev, 0.0)
            a = _segment(props, j).advance(a, r, tau)
        t_prev = np.where(live, t, t_prev)
        reset = schedule.reset[:, j] & live
        a[reset] = 0.0
        r[reset] = 0.0
        r_low[reset] = 0.0
        if np.any(schedule.ss_kind[:, j] > 0):
            a = a + _steady_state(_segment(props, j), schedule, j, n)
        cmt = schedule.cmt[:, j]
        a[rows, cmt] += np.where(live, schedule.bolus[:, j], 0.0)
        r[rows, cmt], r_low[rows, cmt] = add_rates(r[rows, cmt], r_low[rows, cmt],
                                                   np.where(live, schedule.drate[:, j], 0.0))
        a_after[:, j] = a
        r_after[:, j] = r
    if shared_times and not varying and isinstance(props[0], ModalPropagator) and _same_boundaries(schedule):
        _evaluate_shared(props[0], schedule, a_after, r_after, times[0], orders[0], readout, dest)
    else:
        dest[...] = np.swapaxes(_evaluate(props, schedule, a_after, r_after, times, orders, readout, varying), 1, 2)


def _same_boundaries(schedule: Schedule) -> bool:
    return _rows_equal(schedule.time) and _rows_equal(schedule.order)


def _evaluate_shared(prop: ModalPropagator, schedule, a_after, r_after, times, orders, readout, dest) -> None:
    """Fast path: all subjects share output times and boundary times, so each stretch between
    boundaries is a set of output columns evaluated for all subjects at once (into dest (S, n_out, T))."""
    if schedule.n_boundaries == 0:
        dest[...] = 0.0
        return
    j = _last_boundary(schedule.take(slice(0, 1)), times[None, :], orders[None, :])[0]
    coef = prop.output_coefficients(a_after, r_after, readout)
    by_segment = np.argsort(j, kind="stable")  # each segment's columns in one pass, not one scan per segment
    segments, firsts, counts = np.unique(j[by_segment], return_index=True, return_counts=True)
    for seg, first, count in zip(segments, firsts, counts, strict=True):
        cols = by_segment[first:first + count]
        sel = slice(cols[0], cols[-1] + 1) if cols[-1] - cols[0] + 1 == len(cols) else cols
        if seg < 0:
            dest[:, :, sel] = 0.0
            continue
        origin = float(schedule.time[0, seg])
        tau = times[sel] - origin
        if isinstance(sel, slice):
            coef.segment(prop.lam, seg, tau, dest[:, :, sel], origin)
        else:
            part = np.empty((dest.shape[0], dest.shape[1], len(cols)))
            coef.segment(prop.lam, seg, tau, part, origin)
            dest[:, :, sel] = part


def _steady_state(prop, schedule: Schedule, j: int, n: int) -> np.ndarray:
    """Steady-state amounts added at boundary j (zero for subjects without an SS item there)."""
    s = schedule.n_subjects
    kind = schedule.ss_kind[:, j]
    on = kind > 0
    cmt = schedule.cmt[:, j]
    unit = np.zeros((s, n))
    unit[np.arange(s), cmt] = 1.0
    ii_raw = schedule.ss_ii[:, j]
    constant = on & (ii_raw == 0)
    infusion = on & ~constant & (schedule.ss_rate[:, j] > 0)
    bolus = on & ~constant & ~infusion
    lag = np.where(on, schedule.ss_lag[:, j], 0.0)
    add = np.zeros((s, n))
    if np.any(constant):
        rate = np.where(constant, schedule.ss_rate[:, j], 0.0)
        add += np.where(constant[:, None], prop.steady_state_constant(unit * rate[:, None]), 0.0)
    if np.any(infusion):
        rate = np.where(infusion, schedule.ss_rate[:, j], 0.0)
        dur = np.where(infusion, schedule.ss_duration[:, j], 0.0)
        ii = np.where(infusion, ii_raw, 1.0)
        ss = prop.steady_state_infusion(unit * rate[:, None], dur, ii, np.where(infusion, lag, 0.0))
        add += np.where(infusion[:, None], ss, 0.0)
    if np.any(bolus):
        amount = np.where(bolus, schedule.ss_amount[:, j], 0.0)
        ii = np.where(bolus, ii_raw, 1.0)
        ss = prop.steady_state_bolus(unit * amount[:, None], ii, np.where(bolus, lag, 0.0))
        add += np.where(bolus[:, None], ss, 0.0)
    return add


def _last_boundary(schedule: Schedule, times, orders):
    """Index of the last boundary at or before each output (by (time, order)), -1 if none."""
    s, b = schedule.n_subjects, schedule.n_boundaries
    if b == 0:
        return np.full(times.shape, -1)
    bkeys = _complex_keys(schedule.time)
    okeys = _complex_keys(times)
    left = np.searchsorted(bkeys, okeys, side="left")
    right = np.searchsorted(bkeys, okeys, side="right")
    # boundaries at exactly the output's time count if their order is <= the output's order
    border = schedule.order.ravel()
    oorder = orders.ravel()
    count = left.copy()
    ties = right > left
    if np.any(ties):
        width = int((right - left).max())
        for step in range(width):
            pos = left + step
            inside = ties & (pos < right)
            ok = inside & (border[np.minimum(pos, border.size - 1)] <= oorder)
            count = np.where(ok, pos + 1, count)
    offsets = (np.arange(s) * b)[:, None]
    return count.reshape(times.shape) - offsets - 1


def _complex_keys(times: np.ndarray) -> np.ndarray:
    """(subject, time) pairs as complex numbers, which numpy orders lexicographically."""
    keys = np.empty(times.shape, dtype=complex)
    keys.real = np.arange(times.shape[0])[:, None]
    keys.imag = times
    return keys.ravel()


def _evaluate(props, schedule, a_after, r_after, times, orders, readout, varying):
    s, b, n = a_after.shape
    j = _last_boundary(schedule, times, orders)
    none = j < 0
    jc = np.maximum(j, 0)
    tb = np.take_along_axis(schedule.time, jc, axis=1) if b else np.zeros(times.shape)
    tau = np.where(none, 0.0, times - tb)
    if b and not varying and isinstance(props[0], ModalPropagator) and readout.shape[1] < n:
        # fewer outputs than states: per-boundary output coefficients, gathered per output time
        coef = props[0].output_coefficients(a_after, r_after, readout)
        values = coef.at(props[0].lam, jc, tau)
        return np.where(none[..., None], 0.0, values)
    a = np.take_along_axis(a_after, jc[..., None], axis=1) if b else np.zeros((*times.shape, n))
    r = np.take_along_axis(r_after, jc[..., None], axis=1) if b else np.zeros((*times.shape, n))
    a = np.where(none[..., None], 0.0, a)
    r = np.where(none[..., None], 0.0, r)
    if not varying or len(props) == 1:
        return props[0].evaluate(a, r, tau, readout)
    result = np.zeros((s, times.shape[1], readout.shape[1]))
    for seg in np.unique(jc + 1):
        mask = (jc + 1) == seg
        rows = np.flatnonzero(mask.any(axis=1))
        sub = props[seg].take(rows)
        m = mask[rows]
        vals = sub.evaluate(np.where(m[..., None], a[rows], 0.0), np.where(m[..., None], r[rows], 0.0),
                            np.where(m, tau[rows], 0.0), readout[rows])
        result[rows] = np.where(m[..., None], vals, result[rows])
    return result
