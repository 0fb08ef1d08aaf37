"""Numerical integration of the same systems with :func:`scipy.integrate.solve_ivp`.

This path shares nothing with the exact solver but the compiled schedule: it integrates
dA/dt = K A + r stretch by stretch between boundaries, and finds steady states by giving the
dose pattern again and again until the amounts stop changing. It is the independent check of
the exact engine and the way in for nonlinear models, so it favours clarity over speed.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np
from scipy.integrate import solve_ivp

from ketaplan.engine.schedule import Schedule, running_infusions

Rhs = Callable[[float, np.ndarray, np.ndarray], np.ndarray]


def solve_ode(
    k: np.ndarray,
    schedule: Schedule,
    times: np.ndarray,
    readout: np.ndarray,
    orders: np.ndarray | None = None,
    *,
    method: str = "LSODA",
    rtol: float = 1e-10,
    atol: float = 1e-14,
    rhs: Rhs | None = None,
    max_ss_intervals: int = 5000,
) -> np.ndarray:
    """Outputs ``readout @ A(t)`` like :func:`ketaplan.engine.exact.solve`, by ODE integration.

    ``k`` is (S, n, n). ``rhs(t, A, r)`` replaces the linear right-hand side K A + r when given
    (for nonlinear models); it must be a function of one subject's state.
    """
    s_all = schedule.n_subjects
    times = np.broadcast_to(np.asarray(times, dtype=float), (s_all, np.shape(times)[-1]))
    if orders is None:
        orders = np.full(times.shape, np.iinfo(np.int64).max)
    orders = np.broadcast_to(np.asarray(orders), times.shape)
    readout = np.broadcast_to(readout, (s_all, *np.shape(readout)[-2:]))
    out = np.empty((s_all, times.shape[1], readout.shape[1]))
    for s in range(s_all):
        ks = k[s]
        f = rhs if rhs is not None else (lambda t, a, r, ks=ks: ks @ a + r)
        jac = None if rhs is not None else (lambda t, a, ks=ks: ks)
        states = _subject(jac, f, schedule.take(slice(s, s + 1)), times[s], orders[s], method, rtol, atol,
                          max_ss_intervals)
        out[s] = states @ readout[s].T
    return out


def _integrate(f, a0, r, t0, t1, t_eval, method, rtol, atol, jac):
    """Integrate from t0 to t1; returns the end state and the states at sorted ``t_eval``."""
    t_eval = np.asarray(t_eval, dtype=float)
    if t1 <= t0:
        return a0.copy(), np.repeat(a0[None], len(t_eval), axis=0)
    unique, inverse = np.unique(t_eval, return_inverse=True)
    grid = unique if len(unique) and unique[-1] == t1 else np.append(unique, t1)
    sol = solve_ivp(lambda t, a: f(t, a, r), (t0, t1), a0, method=method, t_eval=grid, rtol=rtol,
                    atol=atol, jac=jac)
    if not sol.success:
        raise RuntimeError(f"solve_ivp failed between {t0} and {t1} h: {sol.message}")
    values = sol.y.T[inverse.reshape(-1)] if len(t_eval) else np.zeros((0, len(a0)))
    return sol.y[:, -1], values


def _subject(jac, f, sch: Schedule, times, orders, method, rtol, atol, max_ss):
    n = sch.n_states
    a = np.zeros(n)
    r = np.zeros(n)
    changes: list[list[float]] = [[] for _ in range(n)]  # rate changes since the last reset, per state
    t_prev = -np.inf
    result = np.zeros((len(times), n))
    keys_b = list(zip(sch.time[0], sch.order[0], strict=True))
    done = np.zeros(len(times), dtype=bool)
    for j, (tb, ob) in enumerate(keys_b):
        if not np.isfinite(tb):
            break
        # outputs strictly before this boundary's key, after the previous boundary
        before = ~done & ((times < tb) | ((times == tb) & (orders < ob)))
        idx = np.flatnonzero(before)
        if j == 0:
            result[idx] = 0.0
        else:
            a, vals = _integrate(f, a, r, t_prev, tb, times[idx], method, rtol, atol, jac)
            result[idx] = vals
        done |= before
        t_prev = tb
        if sch.reset[0, j]:
            a[:] = 0.0
            r[:] = 0.0
            changes = [[] for _ in range(n)]
        if sch.ss_kind[0, j] > 0:
            a = a + _steady_state_by_repetition(f, sch, j, n, method, rtol, atol, max_ss, jac)
        a[sch.cmt[0, j]] += sch.bolus[0, j]
        c = sch.cmt[0, j]
        changes[c].append(float(sch.drate[0, j]))
        r[c] = math.fsum(changes[c])  # correctly rounded: a large pulse leaves no residue behind
    idx = np.flatnonzero(~done)
    if len(idx):
        if not np.isfinite(t_prev):
            result[idx] = 0.0
        else:
            _, vals = _integrate(f, a, r, t_prev, times[idx].max(), times[idx], method, rtol, atol, jac)
            result[idx] = vals
    return result


def _steady_state_by_repetition(f, sch, j, n, method, rtol, atol, max_ss, jac):
    """Amounts at the record time after many identical intervals, starting from empty."""
    cmt = sch.cmt[0, j]
    ii = sch.ss_ii[0, j]
    lag = sch.ss_lag[0, j]
    if ii == 0:
        r = np.zeros(n)
        r[cmt] = sch.ss_rate[0, j]
        return _run_to_constant_steady_state(f, r, n, method, rtol, atol, max_ss, jac)
    dur = sch.ss_duration[0, j]
    rate = sch.ss_rate[0, j]
    amount = sch.ss_amount[0, j]
    a = np.zeros(n)
    previous = None
    # each cycle: dose at phase 0 (bolus or infusion start), observe after II - lag
    r_on = np.zeros(n)
    r_on[cmt] = rate
    for _ in range(max_ss):
        a_start = a.copy()
        if rate > 0:
            a = _periodic_infusion(f, a, r_on, dur, ii, ii, method, rtol, atol, jac)
        else:
            a[cmt] += amount
            a, _ = _integrate(f, a, np.zeros(n), 0.0, ii, np.array([]), method, rtol, atol, jac)
        if previous is not None and _settled(a, a_start, rtol):
            break
        previous = a_start
    else:
        raise RuntimeError("steady state not reached by repetition")
    # a is the state just before a dose at steady state (phase II); shift to phase II - lag
    return _shift_phase(f, a, cmt, amount, rate, dur, ii, lag, n, method, rtol, atol, jac)


def _periodic_infusion(f, a, r_on, dur, ii, phase_end, method, rtol, atol, jac):
    """Integrate from phase 0 (an infusion starts) to ``phase_end`` of a steady cycle.

    Infusions overlap when dur > ii: at phase p, #{m >= 0: 0 <= p + m*ii < dur} of them run.
    """
    starts_back = range(int(np.ceil(dur / ii)) + 1)
    edges = sorted({0.0, phase_end} | {float(dur - m * ii) for m in starts_back if 0.0 < dur - m * ii < phase_end})
    for lo, hi in itertools.pairwise(edges):
        mid = 0.5 * (lo + hi)
        count = sum(1 for m in starts_back if 0 <= mid + m * ii < dur)
        a, _ = _integrate(f, a, r_on * count, lo, hi, np.array([]), method, rtol, atol, jac)
    return a


def _shift_phase(f, a, cmt, amount, rate, dur, ii, lag, n, method, rtol, atol, jac):
    """From phase II (just before a dose) on to phase II - lag of the next cycle."""
    if lag == 0:
        return a
    if rate > 0:
        r_on = np.zeros(n)
        r_on[cmt] = rate
        return _periodic_infusion(f, a.copy(), r_on, dur, ii, ii - lag, method, rtol, atol, jac)
    out = a.copy()
    out[cmt] += amount
    out, _ = _integrate(f, out, np.zeros(n), 0.0, ii - lag, np.array([]), method, rtol, atol, jac)
    return out


def _settled(new: np.ndarray, old: np.ndarray, rtol: float) -> bool:
    """Two successive cycles agree to what the integrator can tell apart: 1e-12, or ten times its own ``rtol``
    when that is coarser. (With a fixed 1e-12 a cycle integrated at rtol 1e-10 could differ from the one before
    by the adaptive steps' own noise for ever: 5,000 cycles and a RuntimeError for a 2-compartment system with
    an 8-hour interval, as a hypothesis run drew.)"""
    tol = max(1e-12, 10.0 * rtol)
    return bool(np.allclose(new, old, rtol=tol, atol=0.1 * tol * max(1.0, np.abs(new).max())))


def _run_to_constant_steady_state(f, r, n, method, rtol, atol, max_ss, jac):
    a = np.zeros(n)
    horizon = 24.0
    for _ in range(max_ss):
        nxt, _ = _integrate(f, a, r, 0.0, horizon, np.array([]), method, rtol, atol, jac)
        if _settled(nxt, a, rtol):
            return nxt
        a = nxt
        horizon *= 1.5
    raise RuntimeError("constant-infusion steady state not reached")


__all__ = ["running_infusions", "solve_ode"]
