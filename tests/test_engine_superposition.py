"""Superposition (a sum over the boundaries before each output) against the 50-digit reference and the
boundary-by-boundary engine, on the random models and regimens of test_engine_high_precision.

Tolerance: 1e-10 of each output's peak (floored at 1e-3 of the largest amount), as for the engine. Where K is
nearly defective (rates equal to within 1e-12) the eigenvectors are ill-conditioned: such subjects are handed
back (the ``bad`` mask) and must then be solved by the engine, exactly as the engine itself does.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings

from ketaplan.engine.exact import solve
from ketaplan.engine.schedule import DoseModifiers, DoseRecords, compile_schedule
from ketaplan.engine.superposition import SuperpositionPlan
from test_engine_high_precision import cases, compiled, reference, scaled_error


@settings(max_examples=40, deadline=None)
@given(cases())
def test_superposition_agrees_with_a_50_digit_reference(case):
    k, schedule, t, n = compiled(case)
    plan = SuperpositionPlan.build(schedule, t[None, :], np.full((1, len(t)), np.iinfo(np.int64).max))
    values, bad = plan.solve(k, np.eye(n))
    if bad[0]:
        return  # handed back: the engine's matrix-exponential path serves it (tested there)
    assert scaled_error(values[0], reference(k[0], schedule, t)) < 1e-10


def test_a_short_infusion_into_a_slow_compartment_loses_nothing():
    """CI drew this: 0.3 mg over 14 s into a peripheral compartment whose mode is 0.015 /h. Summed over the rate's
    two changes (start, end), the infusion's terms were 1/(lambda d) = 17,000 times its result and cancelled to
    3.3e-10 of a small state's peak; summed over the stretch between them they do not cancel."""
    from ketaplan.engine.system import LinearStructure, Transfer

    structure = LinearStructure(("central", "p0", "p1"), (
        Transfer("central", None, "k10"), Transfer("central", "p0", "kc0"), Transfer("p0", "central", "kp0"),
        Transfer("central", "p1", "kc1"), Transfer("p1", "central", "kp1")))
    params = {"k10": 1.0, "V": 3.7379740987836376, "fm": 0.1, "kc0": 0.015625, "kp0": 0.015625,
              "kc1": 0.015625, "kp1": 0.015625}
    records = DoseRecords.from_lists([0.0], [1.0], [2], rate=[77.44])
    k, schedule, t, n = compiled((structure, params, records, 0.3, 0.0, "even"))
    values, bad = SuperpositionPlan.build(schedule, t[None, :], np.full((1, len(t)), np.iinfo(np.int64).max)
                                          ).solve(k, np.eye(n))
    assert not bad[0]
    assert scaled_error(values[0], reference(k[0], schedule, t)) < 1e-10


def test_an_ill_conditioned_system_is_handed_back_to_the_engine():
    """CI drew this: a depot whose rate is within 3e-5 of k10 (eigenvector condition ~4e4); summed through the
    modes, the metabolite at the dose's own time came out 3e-11 where it is 0 (1.3e-10 of its peak)."""
    from ketaplan.engine.system import LinearStructure, Transfer

    structure = LinearStructure(("depot", "central", "met"), (
        Transfer("central", "met", "k10", "fm"), Transfer("depot", "central", "ka"), Transfer("met", None, "km")))
    params = {"k10": 2.4763416654332016, "V": 1.0, "fm": 0.9062009344603951, "ka": 2.476411578240706,
              "km": 2.00001}
    records = DoseRecords.from_lists([0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0, 0, 0])
    k, schedule, t, n = compiled((structure, params, records, 0.3, 0.0, "even"))
    _, bad = SuperpositionPlan.build(schedule, t[None, :], np.full((1, len(t)), np.iinfo(np.int64).max)
                                     ).solve(k, np.eye(n))
    assert bad[0]
    assert scaled_error(solve(k, schedule, t, np.eye(n))[0], reference(k[0], schedule, t)) < 1e-10


@settings(max_examples=40, deadline=None)
@given(cases())
def test_superposition_agrees_with_the_engine_at_output_records_tied_to_doses(case):
    """Outputs at a dose's own time see the dose only when their order key says they come after it."""
    k, schedule, _t, n = compiled(case)
    live = schedule.time[0][np.isfinite(schedule.time[0])]
    times = np.repeat(live, 2)[None, :]
    orders = np.stack([schedule.order[0, : len(live)] - 1, schedule.order[0, : len(live)]], axis=1).ravel()[None, :]
    values, bad = SuperpositionPlan.build(schedule, times, orders).solve(k, np.eye(n))
    engine = solve(k, schedule, times, np.eye(n), orders)
    if not bad[0]:
        # Both paths are exact in exact arithmetic; in float64 each carries rounding of order
        # cond(eigenvectors) * eps, which reaches 1e-12 of the peak for stiff systems (CI found one).
        scale = max(np.abs(engine).max(), 1e-300)
        np.testing.assert_allclose(values, engine, rtol=0, atol=1e-10 * scale)


def test_infusions_that_ended_leave_nothing_behind_and_nearly_defective_systems_are_handed_back():
    """A 1e9 mg/h pulse over a 1 mg/h background: after both end, the running rate is exactly zero (no phantom
    infusion); two equal rates (a defective K) come back in the ``bad`` mask."""
    records = DoseRecords.from_lists([0.0, 1.0], [10.0, 1e9 * 1e-3], [0, 0], rate=[1.0, 1e9])
    schedule = compile_schedule(records, DoseModifiers.neutral(1, 2), 2)
    k = np.array([[[-1.0, 0.0], [1.0, -0.5]]])
    t = np.array([[0.5, 5.0, 50.0, 500.0]])
    plan = SuperpositionPlan.build(schedule, t, np.full(t.shape, np.iinfo(np.int64).max))
    assert np.all(plan.running[0, 2:] == 0.0)
    values, bad = plan.solve(k, np.eye(2))
    engine = solve(k, schedule, t, np.eye(2))
    assert not bad[0]
    np.testing.assert_allclose(values, engine, rtol=1e-9, atol=0)
    _, bad = plan.solve(np.array([[[-1.0, 0.0], [1.0, -1.0]]]), np.eye(2))
    assert bad[0]


def test_steady_states_and_resets_are_refused():
    records = DoseRecords.from_lists([0.0], [10.0], [0], ii=[12.0], ss=[1])
    schedule = compile_schedule(records, DoseModifiers.neutral(1, 1), 1)
    assert not SuperpositionPlan.applies(schedule)[0]
    with pytest.raises(ValueError, match="steady states"):
        SuperpositionPlan.build(schedule, np.array([[1.0]]), np.array([[0]]))


def test_estimation_gives_the_same_objective_through_either_path():
    """Phenobarbital's FOCE-I objective by superposition (the path it takes) and by the boundary loop."""
    from pathlib import Path

    import pandas as pd

    from ketaplan.estimation.data import population_model, prepare
    from ketaplan.estimation.objective import objective
    from ketaplan.estimation.parameters import ParameterSpace
    from ketaplan.nonmem.predpp import load_model

    data_dir = Path(__file__).parent / "data"
    model = population_model(load_model(data_dir / "pheno.yaml"))
    data = prepare(model, pd.read_csv(data_dir / "pheno.csv"))
    start = ParameterSpace(model).initial()
    zero = np.zeros((1, data.n_individuals, 2))
    assert data.plan_of(np.arange(data.n_individuals)) is not None
    by_sum = objective(data, [start], zero, "foce-i")[0][0]
    data.plans.clear()
    data.plans[b"all"] = None  # as for a dataset the plan does not suit
    by_loop = objective(data, [start], zero, "foce-i")[0][0]
    assert by_sum == pytest.approx(by_loop, abs=1e-8)
    assert by_sum == pytest.approx(587.36644, abs=0.01)  # NONMEM's initial objective


def test_plans_are_only_made_where_they_are_faster():
    few = compile_schedule(DoseRecords.from_lists([0.0, 12.0], [1.0, 1.0], [0, 0]), DoseModifiers.neutral(1, 2), 2)
    assert SuperpositionPlan.suits(few, np.array([[1.0, 13.0]]))
    many = compile_schedule(DoseRecords.from_lists(list(np.arange(200) * 12.0), [1.0] * 200, [0] * 200),
                            DoseModifiers.neutral(1, 200), 2)
    assert not SuperpositionPlan.suits(many, np.linspace(1, 2400, 20)[None, :])
