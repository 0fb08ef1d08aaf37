"""The exact engine against a 50-digit reference on random models and regimens.

The reference walks the same compiled schedule (its event semantics are tested by hand elsewhere) and
propagates every stretch with mpmath's matrix exponential of the augmented matrix [[K, r], [0, 0]] at
50 significant digits, so its own error is nil at double precision. The engine must agree to 1e-10 of
each output's peak: a closed form evaluated in double precision loses a few hundred ulps at most, while
any slip (a wrong branch, cancellation, a grid mistaken for an even one) shows far above that. Rates
are drawn freely and also nearly equal to k10, which makes K nearly defective.
"""

from __future__ import annotations

import mpmath as mp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ketaplan.engine.exact import solve
from ketaplan.engine.schedule import DoseModifiers, DoseRecords, Schedule, compile_schedule
from ketaplan.engine.system import EffectLink, LinearStructure, Transfer

DIGITS = 50


def reference(k: np.ndarray, schedule: Schedule, times: np.ndarray) -> np.ndarray:
    """Amounts (T, n) of subject 0 at ``times`` (each after every boundary at or before it), in 50 digits."""
    n = k.shape[0]
    with mp.workdps(DIGITS):
        kk = mp.matrix(k.tolist())
        a = mp.matrix(n, 1)
        r = [mp.mpf(0)] * n
        t_prev = mp.mpf(0)
        states = []  # (time, amounts, rates) after each boundary
        for j in range(schedule.n_boundaries):
            t = float(schedule.time[0, j])
            if not np.isfinite(t):
                break
            a = _advance(kk, a, r, mp.mpf(t) - t_prev)
            t_prev = mp.mpf(t)
            assert schedule.ss_kind[0, j] == 0
            if schedule.reset[0, j]:
                a, r = mp.matrix(n, 1), [mp.mpf(0)] * n
            c = int(schedule.cmt[0, j])
            a[c] += mp.mpf(float(schedule.bolus[0, j]))
            r[c] += mp.mpf(float(schedule.drate[0, j]))
            states.append((t, a.copy(), list(r)))
        out = np.zeros((len(times), n))
        for i, t in enumerate(times):
            before = [s for s in states if s[0] <= t]
            if not before:
                continue
            tb, ab, rb = before[-1]
            at = _advance(kk, ab, rb, mp.mpf(float(t)) - mp.mpf(tb))
            out[i] = [float(x) for x in at]
    return out


def _advance(kk, a, r, tau):
    if tau == 0:
        return a.copy()
    n = kk.rows
    aug = mp.zeros(n + 1, n + 1)
    for i in range(n):
        for j in range(n):
            aug[i, j] = kk[i, j]
        aug[i, n] = r[i]
    e = mp.expm(aug * tau)
    ext = mp.matrix(n + 1, 1)
    for i in range(n):
        ext[i] = a[i]
    ext[n] = 1
    moved = e * ext
    return mp.matrix([moved[i] for i in range(n)])


rate_const = st.floats(0.01, 5.0)
near_tie = st.sampled_from([None, None, None, 0.0, 1e-15, 1e-12])


@st.composite
def cases(draw):
    n_periph = draw(st.integers(0, 2))
    depot, metabolite, effect = draw(st.booleans()), draw(st.booleans()), draw(st.booleans())
    k10 = draw(rate_const)

    def near_k10():
        gap = draw(near_tie)
        return draw(rate_const) if gap is None else k10 * (1 + gap)

    states = (["depot"] if depot else []) + ["central"] + [f"p{i}" for i in range(n_periph)]
    transfers = [Transfer("central", "met" if metabolite else None, "k10", "fm" if metabolite else 1.0)]
    params = {"k10": k10, "V": draw(st.floats(1, 100)), "fm": draw(st.floats(0.1, 1.0))}
    if depot:
        transfers.append(Transfer("depot", "central", "ka"))
        params["ka"] = near_k10()
    for i in range(n_periph):
        transfers += [Transfer("central", f"p{i}", f"kc{i}"), Transfer(f"p{i}", "central", f"kp{i}")]
        params[f"kc{i}"], params[f"kp{i}"] = draw(rate_const), draw(rate_const)
    if metabolite:
        states.append("met")
        transfers.append(Transfer("met", None, "km"))
        params["km"] = near_k10()
    effects = []
    if effect:
        states.append("effect")
        effects.append(EffectLink("effect", "central", "ke0", "V"))
        params["ke0"] = near_k10()
    structure = LinearStructure(tuple(states), tuple(transfers), tuple(effects))
    dosable = [i for i, s in enumerate(states) if s != "effect"]
    n_doses = draw(st.integers(1, 4))
    times = sorted(draw(st.lists(st.floats(0, 48).map(lambda x: round(x, 3)), min_size=n_doses,
                                 max_size=n_doses)))
    amounts = draw(st.lists(st.floats(1, 500), min_size=n_doses, max_size=n_doses))
    cmts = draw(st.lists(st.sampled_from(dosable), min_size=n_doses, max_size=n_doses))
    rates = [draw(st.sampled_from([0.0, round(draw(st.floats(1, 100)), 2)])) for _ in range(n_doses)]
    addl = [draw(st.integers(0, 2)) for _ in range(n_doses)]
    records = DoseRecords.from_lists(times, amounts, cmts, rate=rates, ii=[12.0 if n else 0.0 for n in addl],
                                     addl=addl)
    f = draw(st.floats(0.3, 1.0))
    lag = draw(st.sampled_from([0.0, 0.5, 1.25]))
    grid = draw(st.sampled_from(["even", "geometric", "doses"]))
    return structure, params, records, f, lag, grid


def compiled(case):
    """A drawn case as the engine takes it: rate matrix, compiled schedule, output times, number of states."""
    structure, params, records, f, lag, grid = case
    n = structure.n_states
    ones = np.ones((1, len(records)))
    mods = DoseModifiers(f * ones, lag * ones, np.full_like(ones, np.nan), np.full_like(ones, np.nan))
    schedule = compile_schedule(records, mods, n)
    k = structure.rate_matrix({key: np.atleast_1d(v) for key, v in params.items()})
    if grid == "even":
        t = np.linspace(0.0, 120.0, 121)
    elif grid == "geometric":
        t = np.concatenate([[0.0], np.geomspace(1e-3, 120.0, 150)])
    else:  # every boundary time, and just after it
        b = schedule.time[0][np.isfinite(schedule.time[0])]
        t = np.unique(np.concatenate([b, b + 1e-3, [120.0]]))
    return k, schedule, t, n


@settings(max_examples=25)
@given(cases())
def test_exact_engine_agrees_with_a_50_digit_reference(case):
    k, schedule, t, n = compiled(case)
    exact = solve(k, schedule, t, np.eye(n))[0]
    assert scaled_error(exact, reference(k[0], schedule, t)) < 1e-10


PEAK_FLOOR = 1e-3
"""Each state is judged against its own peak, but not below this share of the largest amount anywhere: the
modal solution mixes all compartments, so its absolute error is some hundreds of machine epsilons of the
largest amount (2.2e-16 x the eigenvectors' condition, up to a few hundred for the systems drawn here), which
is 1e-10 of a state holding 1e-3 of it. (A floor of 1e-5 allowed only 4.5 epsilons; CI drew an effect
compartment holding 2.3e-4 of the largest amount with a condition of about 120: 1.1e-10.)"""


def scaled_error(values: np.ndarray, ref: np.ndarray) -> float:
    """Largest |values - ref| over each state's peak, the peak floored at PEAK_FLOOR of the largest amount."""
    peak = np.abs(ref).max(axis=0)
    peak = np.maximum(peak, PEAK_FLOOR * peak.max())
    return float(np.max(np.abs(values - ref) / peak))
