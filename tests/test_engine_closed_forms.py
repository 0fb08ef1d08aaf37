"""The exact engine against closed-form solutions and the properties every linear system has."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import one_compartment, run, two_compartment
from ketaplan.engine.exact import contributing_states, solve
from ketaplan.engine.schedule import DoseModifiers, DoseRecords, compile_schedule
from ketaplan.engine.system import LinearStructure, Transfer

# Exact engine vs closed form: both are exact, so agreement is limited by floating point only;
# 1e-10 relative leaves room for cancellation in sums of exponentials.
EXACT = 1e-10


def test_one_compartment_infusion_closed_form():
    k, v, rate, dur = 0.3, 12.0, 20.0, 5.0
    t = np.linspace(0, 24, 97)
    c = run(one_compartment(), {"k": k}, DoseRecords.from_lists([0], [rate * dur], [0], rate=[rate]), t, volume=v)
    during = rate / (k * v) * (1 - np.exp(-k * t))
    after = rate / (k * v) * (1 - np.exp(-k * dur)) * np.exp(-k * (t - dur))
    expected = np.where(t <= dur, during, after)
    np.testing.assert_allclose(c, expected, rtol=EXACT, atol=1e-12)


def test_bateman_function_oral_dose():
    ka, k, v, dose = 1.2, 0.15, 30.0, 100.0
    t = np.linspace(0, 48, 193)
    c = run(one_compartment(True), {"ka": ka, "k": k}, DoseRecords.from_lists([0], [dose], [0]), t, volume=v)
    expected = dose * ka / (v * (ka - k)) * (np.exp(-k * t) - np.exp(-ka * t))
    np.testing.assert_allclose(c, expected, rtol=EXACT, atol=1e-12)


def test_bateman_limit_when_ka_equals_k():
    """Defective rate matrix: the engine switches to matrix exponentials and stays exact."""
    k, v, dose = 0.4, 10.0, 50.0
    t = np.linspace(0, 30, 61)
    c = run(one_compartment(True), {"ka": k, "k": k}, DoseRecords.from_lists([0], [dose], [0]), t, volume=v)
    expected = dose * k * t * np.exp(-k * t) / v
    np.testing.assert_allclose(c, expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("gap", [2.2e-16, 4.4e-16, 1e-15, 1e-13, 1e-11, 1e-9])
def test_metabolite_rate_within_a_hair_of_the_parent_rate(gap):
    """depot -> central -> metabolite with km = k10 (1 + gap): a nearly defective, triangular K.

    scipy's expm cancels on such matrices (it put the metabolite 56 % low for gap 2e-16; found by
    hypothesis in CI). Reference: the km = k10 closed form
    M(t) = ka k/(k - ka) e^(-k t) [(e^((k - ka) t) - 1)/(k - ka) - t], off by O(gap) relative.
    """
    ka, k = 1.0, 0.02
    structure = LinearStructure(("depot", "central", "met"),
                                (Transfer("depot", "central", "ka"), Transfer("central", "met", "k10"),
                                 Transfer("met", None, "km")), ())
    kmat = structure.rate_matrix({"ka": np.array([ka]), "k10": np.array([k]), "km": np.array([k * (1 + gap)])})
    sched = compile_schedule(DoseRecords.from_lists([0], [1.0], [0]), DoseModifiers.neutral(1, 1), 3)
    t = np.linspace(0, 96, 97)
    met = solve(kmat, sched, t, np.eye(3)[2:])[0, :, 0]
    d = k - ka
    expected = ka * k / d * np.exp(-k * t) * (np.expm1(d * t) / d - t)
    np.testing.assert_allclose(met, expected, rtol=1e-8 + 10 * gap, atol=1e-14)


def test_a_graded_output_grid_is_not_mistaken_for_an_evenly_spaced_one():
    """np.geomspace steps change so slowly that neighbouring steps look equal; evaluating such a grid as
    evenly spaced put points at the wrong times (8 % of the peak). Reference: expm(K t) A0 at each time."""
    from ketaplan.engine.propagators import expm_general

    structure = LinearStructure(("depot", "central", "peripheral"), (
        Transfer("depot", "central", "ka"), Transfer("central", None, "k10"),
        Transfer("central", "peripheral", "k12"), Transfer("peripheral", "central", "k21")))
    params = {"ka": 2.0, "k10": 0.2, "k12": 0.1, "k21": 0.05}
    t = np.geomspace(1e-3, 1e4, 30000)
    c = run(structure, params, DoseRecords.from_lists([0], [100.0], [0]), t)
    k = structure.rate_matrix({key: np.atleast_1d(v) for key, v in params.items()})[0]
    pick = np.arange(0, len(t), 97)
    expected = expm_general(k[None] * t[pick, None, None])[:, 1, 0] * 100.0
    np.testing.assert_allclose(c[pick], expected, rtol=0, atol=1e-10 * np.max(c))


def test_clock_time_grids_after_a_late_dose_are_still_evaluated_as_evenly_spaced():
    """Times since a boundary at 1e4 h carry the clock's rounding (1e-12 h): the even-grid test allows for it,
    so such grids keep the fast block evaluation, and give the same values as point-by-point evaluation."""
    from ketaplan.engine.propagators import _even_pieces

    boundary = 1e4 - 1e-3
    times = 1e4 + 0.01 * np.arange(101)
    assert _even_pieces(times - boundary, boundary) == [(0, 101, pytest.approx(0.01, rel=1e-9))]
    records = DoseRecords.from_lists([0, boundary], [50.0, 100.0], [0, 0], rate=[0.0, 400.0])
    grid = run(one_compartment(), {"k": 0.2}, records, times)
    pointwise = np.array([run(one_compartment(), {"k": 0.2}, records, [t])[0] for t in times[::10]])
    np.testing.assert_allclose(grid[::10], pointwise, rtol=1e-12)


@pytest.mark.parametrize(("ode", "rtol"), [(False, 1e-9), (True, 1e-5)])
def test_a_huge_short_pulse_leaves_no_infusion_running_after_it(ode, rtol):
    """Rates are kept as changes (+rate, -rate); summed in plain floats a 1e12 mg/h pulse over 1e-10 h left
    a residue that kept infusing after every infusion had ended (7.6e-4 at 500 h instead of 1.5e-9).
    The pulse lasts 2^-33 h so that its end time 1 + 2^-33 is exact and it delivers exactly 100. solve_ivp
    integrates the pulse itself only to ~4e-6 (the bug was off by a factor of 5e5 at 500 h)."""
    k, rate = 0.05, 1.2345 / 48
    records = DoseRecords.from_lists([0, 1], [1.2345, 100.0], [0, 0], rate=[rate, 100.0 * 2.0**33])
    t = np.array([47.9, 100.0, 500.0])
    c = run(one_compartment(), {"k": k}, records, t, ode=ode)
    background = rate / k * np.expm1(k * np.minimum(t, 48.0)) * np.exp(-k * t)
    pulse = 100.0 * np.exp(-k * (t - 1.0))  # a bolus; the pulse's 1e-10 h changes this by ~3e-12
    np.testing.assert_allclose(c, background + pulse, rtol=rtol)


def test_the_level_at_the_start_of_a_very_short_infusion_does_not_depend_on_the_batch():
    """At a boundary the output is the amounts themselves; written as p e^0 + c it lost the digits that
    a 1e11 mg/h input cancels (30.11938 instead of 30.11942), but only on the shared-grid path."""
    records = DoseRecords.from_lists([0, 12], [100.0, 100.0], [0, 0], rate=[0.0, 1e11])
    t = np.linspace(0, 96, 97)
    c = run(one_compartment(), {"k": 0.1}, records, t)
    alone = run(one_compartment(), {"k": 0.1}, records, [12.0])
    assert c[12] == pytest.approx(100.0 * np.exp(-1.2), rel=1e-13)
    assert alone[0] == pytest.approx(100.0 * np.exp(-1.2), rel=1e-13)


def test_a_very_slow_compartment_seen_seconds_into_an_infusion_keeps_its_digits():
    """k = 2e-5 /h: written as e^(-k t)(z0 + w/k) - w/k the first seconds of an infusion lose eps/(k t) (1e-6);
    such slow modes are evaluated as e^(-k t) z0 + phi1 w."""
    k = 2e-5
    t = np.linspace(0, 1e-3, 101)
    c = run(one_compartment(), {"k": k}, DoseRecords.from_lists([0], [1.0], [0], rate=[1.0]), t)
    np.testing.assert_allclose(c, -np.expm1(-k * t) / k, rtol=1e-13, atol=0)


def test_two_compartment_bolus_biexponential():
    k10, k12, k21, v, dose = 0.5, 0.8, 0.2, 15.0, 100.0
    s = k10 + k12 + k21
    alpha = (s + np.sqrt(s * s - 4 * k10 * k21)) / 2
    beta = (s - np.sqrt(s * s - 4 * k10 * k21)) / 2
    a = dose / v * (alpha - k21) / (alpha - beta)
    b = dose / v * (k21 - beta) / (alpha - beta)
    t = np.linspace(0, 24, 49)
    c = run(two_compartment(), {"k10": k10, "k12": k12, "k21": k21}, DoseRecords.from_lists([0], [dose], [0]), t,
            volume=v)
    np.testing.assert_allclose(c, a * np.exp(-alpha * t) + b * np.exp(-beta * t), rtol=EXACT, atol=1e-12)


def test_effect_compartment_closed_form():
    """dCe/dt = ke0 (C - Ce) after a 1-compartment bolus: Ce = C0 ke0/(ke0-k) (e^-kt - e^-ke0 t)."""
    from ketaplan.engine.system import EffectLink

    k, ke0, v, dose = 0.2, 1.5, 10.0, 50.0
    structure = LinearStructure(("central", "effect"), (Transfer("central", None, "k"),),
                                (EffectLink("effect", "central", "ke0", "V"),))
    t = np.linspace(0, 20, 41)
    ce = run(structure, {"k": k, "ke0": ke0, "V": v}, DoseRecords.from_lists([0], [dose], [0]), t, observe="effect")
    expected = dose / v * ke0 / (ke0 - k) * (np.exp(-k * t) - np.exp(-ke0 * t))
    np.testing.assert_allclose(ce, expected, rtol=EXACT, atol=1e-12)


def test_metabolite_formation_closed_form():
    """Parent 1-cmt -> metabolite 1-cmt with yield y: Am = y k D/(km-k) (e^-kt - e^-km t)."""
    k, km, y, dose = 0.3, 0.1, 0.8 * 223.70 / 237.73, 100.0
    structure = LinearStructure(("parent", "metabolite"), (
        Transfer("parent", "metabolite", "k", "y"), Transfer("metabolite", None, "km")))
    t = np.linspace(0, 48, 97)
    am = run(structure, {"k": k, "km": km, "y": y}, DoseRecords.from_lists([0], [dose], [0]), t, observe="metabolite")
    np.testing.assert_allclose(am, y * k * dose / (km - k) * (np.exp(-k * t) - np.exp(-km * t)), rtol=EXACT,
                               atol=1e-12)


def test_states_no_output_depends_on_are_left_out_with_their_doses():
    """Parent (2 compartments) -> metabolite, and an effect site; doses into the parent and, by infusion and a
    steady state, into the metabolite. Outputs that need fewer states equal those of the whole system."""
    from ketaplan.engine.system import EffectLink

    structure = LinearStructure(("central", "peripheral", "metabolite", "effect"), (
        Transfer("central", "metabolite", "k10", "y"), Transfer("central", "peripheral", "k12"),
        Transfer("peripheral", "central", "k21"), Transfer("metabolite", None, "km")),
        (EffectLink("effect", "central", "ke0", "V"),))
    rng = np.random.default_rng(3)
    params = {name: rng.uniform(0.05, 2.0, 5) for name in ("k10", "k12", "k21", "km", "ke0", "y", "V")}
    k = structure.rate_matrix(params)
    records = DoseRecords.from_lists([0.0, 2.0, 30.0], [100.0, 50.0, 20.0], [0, 2, 2], rate=[0.0, 10.0, 0.0],
                                     ii=[0.0, 0.0, 12.0], ss=[0, 0, 2])
    sched = compile_schedule(records, DoseModifiers.neutral(5, 3), 4)
    t = np.linspace(0.0, 60.0, 241)
    whole = solve(k, sched, t, np.eye(4)[None].repeat(5, axis=0))
    for states, expected in (([0], [1, 1, 0, 0]), ([2], [1, 1, 1, 0]), ([3], [1, 1, 0, 1]), ([1, 3], [1, 1, 0, 1])):
        readout = np.eye(4)[states][None].repeat(5, axis=0)
        assert contributing_states(k, readout).tolist() == [bool(x) for x in expected]
        np.testing.assert_allclose(solve(k, sched, t, readout), whole[..., states], rtol=1e-12,
                                   atol=1e-13 * np.abs(whole[..., states]).max())


def _random_regimen(draw):
    n = draw(st.integers(1, 4))
    times = sorted(draw(st.lists(st.floats(0, 48), min_size=n, max_size=n)))
    amounts = draw(st.lists(st.floats(1, 500), min_size=n, max_size=n))
    rates = [draw(st.sampled_from([0.0, draw(st.floats(1, 100))])) for _ in range(n)]
    return DoseRecords.from_lists(times, amounts, [0] * n, rate=rates)


@st.composite
def regimens(draw):
    return _random_regimen(draw)


@settings(max_examples=40, deadline=None)
@given(regimens(), st.floats(0.1, 20), st.floats(0.01, 2), st.floats(0.01, 2), st.floats(0.01, 2))
def test_linearity_in_dose(records, scale, k10, k12, k21):
    params = {"k10": k10, "k12": k12, "k21": k21}
    t = np.linspace(0, 72, 73)
    base = run(two_compartment(), params, records, t)
    scaled = DoseRecords.from_lists(records.time, records.amount * scale, records.cmt, rate=records.rate * scale)
    np.testing.assert_allclose(run(two_compartment(), params, scaled, t), scale * base, rtol=1e-9, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(regimens(), regimens(), st.floats(0.01, 2), st.floats(0.01, 2), st.floats(0.01, 2))
def test_superposition_of_regimens(a, b, k10, k12, k21):
    params = {"k10": k10, "k12": k12, "k21": k21}
    t = np.linspace(0, 72, 73)
    both = DoseRecords.from_lists(np.r_[a.time, b.time], np.r_[a.amount, b.amount], np.r_[a.cmt, b.cmt],
                                  rate=np.r_[a.rate, b.rate])
    order = np.argsort(both.time, kind="stable")
    both = DoseRecords.from_lists(both.time[order], both.amount[order], both.cmt[order], rate=both.rate[order])
    total = run(two_compartment(), params, a, t) + run(two_compartment(), params, b, t)
    np.testing.assert_allclose(run(two_compartment(), params, both, t), total, rtol=1e-9, atol=1e-10)


@settings(max_examples=40, deadline=None)
@given(regimens(), st.floats(0.01, 2), st.floats(0.01, 2), st.floats(0.01, 2), st.floats(0.05, 3))
def test_mass_balance(records, k10, k12, k21, ka):
    """Everything given is either still in the body or has been eliminated (a sink compartment)."""
    structure = LinearStructure(("depot", "central", "peripheral", "eliminated"), (
        Transfer("depot", "central", "ka"), Transfer("central", "eliminated", "k10"),
        Transfer("central", "peripheral", "k12"), Transfer("peripheral", "central", "k21")))
    sched = compile_schedule(records, DoseModifiers.neutral(1, len(records)), 4)
    k = structure.rate_matrix({n: np.atleast_1d(v) for n, v in
                               {"ka": ka, "k10": k10, "k12": k12, "k21": k21}.items()})
    t = np.linspace(0, 200, 201)
    amounts = solve(k, sched, t, np.eye(4))[0]
    given_by_t = np.array([
        sum(min(max(tt - t0, 0.0) * r, a) if r > 0 else (a if tt >= t0 else 0.0)
            for t0, a, r in zip(records.time, records.amount, records.rate, strict=True)) for tt in t])
    np.testing.assert_allclose(amounts.sum(axis=1), given_by_t, rtol=1e-9, atol=1e-9)
    # independent: eliminated amount = integral of k10 * central (trapezoid on a fine grid)
    fine = np.linspace(0, 200, 40001)
    central = solve(k, sched, fine, np.eye(4)[[1]])[0, :, 0]
    integral = np.sum((central[1:] + central[:-1]) / 2 * np.diff(fine)) * k10
    assert abs(integral - amounts[-1, 3]) <= 1e-4 * max(1.0, amounts[-1, 3])


@settings(max_examples=25, deadline=None)
@given(st.floats(1, 200), st.floats(2, 48), st.floats(0.02, 1), st.floats(0.1, 3), st.floats(0, 1))
def test_steady_state_equals_limit_of_repeated_doses(dose, ii, k, ka, infusion_fraction):
    """SS=1 gives the same profile over an interval as the last of many identical doses."""
    rate = dose / (infusion_fraction * ii) if infusion_fraction > 0.05 else 0.0
    structure = one_compartment(True)
    params = {"k": k, "ka": ka}
    n = int(np.ceil(30 / (k * ii))) + 2  # approach to steady state left: below exp(-30)
    t_last = (n - 1) * ii
    t = t_last + np.linspace(0, ii, 13)
    many = run(structure, params, DoseRecords.from_lists([0], [dose], [1], rate=[rate], ii=[ii], addl=[n - 1]), t)
    ss = run(structure, params, DoseRecords.from_lists([t_last], [dose], [1], rate=[rate], ii=[ii], ss=[1]), t)
    np.testing.assert_allclose(ss, many, rtol=1e-8, atol=1e-10 * max(1.0, np.max(np.abs(many))))


def test_batched_subjects_match_one_by_one(rng):
    structure = two_compartment()
    n = 50
    params = {"k10": rng.uniform(0.05, 1, n), "k12": rng.uniform(0.05, 1, n), "k21": rng.uniform(0.05, 1, n)}
    records = DoseRecords.from_lists([0, 10], [100, 50], [0, 0], rate=[20, 0], ii=[24, 0], addl=[2, 0])
    sched = compile_schedule(records, DoseModifiers.neutral(n, 2), 2)
    t = np.linspace(0, 80, 81)
    batch = solve(structure.rate_matrix(params), sched, t, np.array([[1.0, 0.0]]))[:, :, 0]
    for i in range(0, n, 7):
        one = run(structure, {key: v[i] for key, v in params.items()}, records, t)
        np.testing.assert_allclose(batch[i], one, rtol=1e-12, atol=1e-14)
