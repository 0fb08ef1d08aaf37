"""The exact engine against scipy's solve_ivp (rtol 1e-10) on random models and random regimens.

The ODE path shares only the compiled schedule with the exact engine; it integrates each stretch
numerically and finds steady states by repeating the dose pattern. Agreement is asserted to
1e-6 relative (plus 1e-9 of the peak): the integrator's global error at rtol 1e-10 over many
steps stays well below that, while any error in a closed form would be far larger.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ketaplan.engine.exact import solve
from ketaplan.engine.ode import solve_ode
from ketaplan.engine.schedule import DoseModifiers, DoseRecords, compile_schedule
from ketaplan.engine.system import EffectLink, LinearStructure, Transfer

rate_const = st.floats(0.02, 3.0)
near_tie = st.sampled_from([None, None, 0.0, 2.2e-16, 1e-15, 1e-12])
"""Relative gap of a rate to k10 (None: drawn freely): nearly equal rates make K nearly defective."""


def _rate_near_k10(draw, k10):
    gap = draw(near_tie)
    return draw(rate_const) if gap is None else k10 * (1 + gap)


@st.composite
def models(draw):
    n_periph = draw(st.integers(0, 2))
    depot = draw(st.booleans())
    metabolite = draw(st.booleans())
    effect = draw(st.booleans())
    states = (["depot"] if depot else []) + ["central"] + [f"p{i}" for i in range(n_periph)]
    transfers = [Transfer("central", None, "k10")]
    params = {"k10": draw(rate_const), "V": draw(st.floats(1, 100))}
    if depot:
        transfers.append(Transfer("depot", "central", "ka"))
        params["ka"] = _rate_near_k10(draw, params["k10"])
    for i in range(n_periph):
        transfers += [Transfer("central", f"p{i}", f"kc{i}"), Transfer(f"p{i}", "central", f"kp{i}")]
        params[f"kc{i}"], params[f"kp{i}"] = draw(rate_const), draw(rate_const)
    effects = []
    if metabolite:
        states.append("met")
        transfers[0] = Transfer("central", "met", "k10", "fm")
        transfers.append(Transfer("met", None, "km"))
        params["fm"], params["km"] = draw(st.floats(0.1, 1.0)), _rate_near_k10(draw, params["k10"])
    if effect:
        states.append("effect")
        effects.append(EffectLink("effect", "central", "ke0", "V"))
        params["ke0"] = _rate_near_k10(draw, params["k10"])
    return LinearStructure(tuple(states), tuple(transfers), tuple(effects)), params


@st.composite
def regimens(draw, n_states):
    n = draw(st.integers(1, 4))
    times = sorted(draw(st.lists(st.floats(0, 36).map(lambda x: round(x, 2)), min_size=n, max_size=n)))
    amount = draw(st.lists(st.floats(1, 500), min_size=n, max_size=n))
    cmt = draw(st.lists(st.integers(0, n_states - 1), min_size=n, max_size=n))
    rate = [draw(st.sampled_from([0.0, round(draw(st.floats(2, 80)), 1)])) for _ in range(n)]
    ii = [draw(st.sampled_from([0.0, 8.0, 12.0, 24.0])) for _ in range(n)]
    addl = [draw(st.integers(0, 3)) if i > 0 else 0 for i in ii]
    ss = [draw(st.sampled_from([0, 0, 1, 2])) if i > 0 else 0 for i in ii]
    f = draw(st.floats(0.2, 1.0))
    lag = draw(st.sampled_from([0.0, 0.0, 0.75, 2.5]))
    records = DoseRecords.from_lists(times, amount, cmt, rate=rate, ii=ii, addl=addl, ss=ss)
    return records, f, lag


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_exact_engine_matches_solve_ivp(data):
    structure, params = data.draw(models())
    dosable = [i for i, s in enumerate(structure.states) if s != "effect"]
    records, f, lag = data.draw(regimens(len(dosable)))
    records = DoseRecords.from_lists(records.time, records.amount, [dosable[c] for c in records.cmt],
                                     rate=records.rate, ii=records.ii, addl=records.addl, ss=records.ss)
    n = structure.n_states
    mods = DoseModifiers(np.full((1, len(records)), f), np.full((1, len(records)), lag),
                         np.full((1, len(records)), np.nan), np.full((1, len(records)), np.nan))
    sched = compile_schedule(records, mods, n)
    k = structure.rate_matrix({key: np.atleast_1d(v) for key, v in params.items()})
    t = np.linspace(0, 96, 97)
    exact = solve(k, sched, t, np.eye(n))
    ode = solve_ode(k, sched, t, np.eye(n), rtol=1e-10, atol=1e-12)
    scale = max(1.0, float(np.max(np.abs(exact))))
    np.testing.assert_allclose(exact, ode, rtol=1e-6, atol=1e-9 * scale)


def test_ode_path_for_a_three_compartment_metabolite_effect_model():
    """A fixed, ketamine-like system (3 cmt + metabolite + effect) over two 5-day infusions."""
    structure = LinearStructure(
        ("central", "p1", "p2", "met", "effect"),
        (Transfer("central", "met", "k10", "y"), Transfer("central", "p1", "k12"), Transfer("p1", "central", "k21"),
         Transfer("central", "p2", "k13"), Transfer("p2", "central", "k31"), Transfer("met", None, "km")),
        (EffectLink("effect", "central", "ke0", "V"),))
    params = {"k10": 26.3, "k12": 35.5, "k21": 14.8, "k13": 35.4, "k31": 0.876, "km": 0.58, "y": 0.94,
              "ke0": 3.5, "V": 4.4}
    records = DoseRecords.from_lists([0], [2400], [0], rate=[20], ii=[336], addl=[1])
    sched = compile_schedule(records, DoseModifiers.neutral(1, 1), 5)
    k = structure.rate_matrix({key: np.atleast_1d(v) for key, v in params.items()})
    t = np.linspace(0, 500, 251)
    exact = solve(k, sched, t, np.eye(5))
    ode = solve_ode(k, sched, t, np.eye(5), method="Radau", rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(exact, ode, rtol=1e-6, atol=1e-9 * np.max(exact))


def test_a_steady_state_the_ode_path_settles_to_its_own_tolerance():
    """The ODE path's steady state (successive cycles until they agree to ten times the integrator's rtol) at a
    coarser rtol than the other tests, against the exact engine. (``--hypothesis-seed=14`` on the test above drew
    a case where the old rule, a fixed 1e-12 while integrating at rtol 1e-10, repeated the 8-hour cycle 5,000
    times and gave up: the adaptive steps' noise kept successive cycles apart.)"""
    structure = LinearStructure(("depot", "central", "p0"), (
        Transfer("central", None, "k10"), Transfer("depot", "central", "ka"), Transfer("central", "p0", "kc0"),
        Transfer("p0", "central", "kp0")))
    params = {"k10": 2.0985029530223933, "ka": 1.3, "kc0": 1.727378789019975, "kp0": 0.5239787614928694}
    records = DoseRecords.from_lists([0.0], [313.32743176], [1], ii=[8.0], ss=[1])
    sched = compile_schedule(records, DoseModifiers.neutral(1, 1), 3)
    k = structure.rate_matrix({key: np.atleast_1d(v) for key, v in params.items()})
    t = np.linspace(0, 96, 97)
    exact = solve(k, sched, t, np.eye(3))
    ode = solve_ode(k, sched, t, np.eye(3), rtol=1e-8, atol=1e-10, max_ss_intervals=300)
    np.testing.assert_allclose(exact, ode, rtol=1e-5, atol=1e-7 * float(np.max(np.abs(exact))))
