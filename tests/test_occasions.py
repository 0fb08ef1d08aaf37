"""Course-to-course (inter-occasion) variability: the occasion-wise engine and fits with per-course effects."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy.integrate import solve_ivp

from ketaplan.engine.build import Covariates, build
from ketaplan.engine.dosing import regimen_records
from ketaplan.engine.occasions import expand_repeats, solve_by_occasion
from ketaplan.errors import InputError
from ketaplan.individualize.estimate import fit
from ketaplan.individualize.observations import Observations
from ketaplan.individualize.problem import occasion_name, spec_problem
from ketaplan.models.spec import Variability
from ketaplan.population.model_run import make_spec
from ketaplan.regimen.text import parse_regimen
from ketaplan.simulation.run import model_for

REGIMEN = parse_regimen("20 mg/h IV for 2 d every 3 weeks x 3")
STARTS = [0.0, 504.0, 1008.0]


def with_iov(omega: float = 0.09):
    spec = model_for(REGIMEN)
    block = Variability(parameters=("k10",), omega=((omega,),), source="test: 30 % CV between courses",
                        occasion=True)
    return spec.model_copy(update={"variability": (*spec.variability, block)})


def test_occasion_wise_solution_equals_piecewise_ode_integration():
    spec = model_for(REGIMEN)
    cov = Covariates.of(75.0, 50, "female")
    factors = [1.0, 1.6, 0.7]
    builts = [build(spec, cov, {"k10": np.array([np.log(f)])}) for f in factors]
    names = ["ketamine", "norketamine", "relief_site"]
    times = np.linspace(0.0, 1500.0, 301)
    records, parts = regimen_records(expand_repeats(REGIMEN), builts[0].route_parts)
    exact = solve_by_occasion(builts, STARTS, records, parts, times, names)[0]
    # independent: dA/dt = K_k A + r(t), integrated by solve_ivp with the matrix of each course
    central = builts[0].route_parts["iv"][0][0]
    ks = [b.rate_matrix()[0] for b in builts]
    n = ks[0].shape[0]

    def rhs(t, a):
        k = ks[int(np.searchsorted(STARTS, t, side="right")) - 1]
        r = np.zeros(n)
        if any(s <= t < s + 48.0 for s in STARTS):
            r[central] = 20.0
        return k @ a + r

    breaks = sorted({0.0, *STARTS, *(s + 48.0 for s in STARTS), times[-1]})
    a = np.zeros(n)
    sol = np.zeros((len(times), n))
    for lo, hi in itertools.pairwise(breaks):
        inside = (times >= lo) & (times <= hi)
        r = solve_ivp(rhs, (lo, hi), a, method="LSODA", rtol=1e-10, atol=1e-14, t_eval=times[inside],
                      first_step=1e-6)
        sol[inside] = r.y.T
        a = solve_ivp(rhs, (lo, hi), a, method="LSODA", rtol=1e-10, atol=1e-14).y[:, -1]
    # the amounts of each course's own solution, read out with each time's readout
    course = np.searchsorted(STARTS, times, side="right") - 1
    readouts = [b.readout(names)[0] for b in builts]
    ode = np.array([readouts[c] @ sol[i] for i, c in enumerate(course)])
    scale = np.abs(ode).max(axis=0)
    assert np.max(np.abs(exact - ode) / scale) < 1e-6


def test_per_course_effects_are_estimated_from_levels_of_each_course():
    spec = with_iov()
    cov = Covariates.of(80.0, 59, "male")
    times = [t + s for s in STARTS for t in (6.0, 24.0, 47.0, 50.0)]
    template = Observations.of(times, ["ketamine"] * len(times), np.ones(len(times)))
    problem, _ = spec_problem(spec, REGIMEN, cov, template)
    assert occasion_name("k10", 3) in problem.eta_names
    truth = np.zeros(problem.k)
    index = {n: i for i, n in enumerate(problem.eta_names)}
    truth[index["k10"]] = 0.2
    kappas = {1: 0.3, 2: -0.25, 3: 0.05}
    for k, v in kappas.items():
        truth[index[occasion_name("k10", k)]] = v
    pred = problem.predict(truth[None])[0]
    rng = np.random.default_rng(4)
    obs = Observations.of(times, ["ketamine"] * len(times), pred * (1 + 0.05 * rng.standard_normal(len(pred))))
    fitted = fit(spec_problem(spec, REGIMEN, cov, obs)[0])
    table = fitted.table().set_index("parameter")
    for k, v in kappas.items():
        row = table.loc[occasion_name("k10", k)]
        assert row["unit"] == "factor"
        total = fitted.eta[index["k10"]] + row["eta"]
        assert abs(total - (0.2 + v)) < 0.08  # each course's clearance is recovered
    # the courses really differ: course 1 and course 2 factors are on opposite sides
    assert table.loc[occasion_name("k10", 1), "eta"] > table.loc[occasion_name("k10", 2), "eta"] + 0.3


def with_iov_on_clearance_and_relief():
    spec = with_iov()
    block = Variability(parameters=("RELIEF_C50",), omega=((0.25,),), source="test: 50 % CV between courses",
                        occasion=True)
    return spec.model_copy(update={"variability": (*spec.variability, block)})


def test_a_virtual_population_with_course_to_course_variability_equals_each_patient_solved_alone():
    """Per-course clearance and relief C50: every subject's row equals a one-patient simulation with the same
    between-patient and between-course effects (drawn per subject, so chunking cannot change them)."""
    from ketaplan.individualize.problem import SpecModel
    from ketaplan.population.metrics import relief_days
    from ketaplan.population.model_run import covariates_of
    from ketaplan.population.run import run_population
    from ketaplan.population.variability import eta_parameters, sample_course_etas, sample_etas

    spec = with_iov_on_clearance_and_relief()
    pspec = make_spec(REGIMEN, spec, n=30, seed=5)
    rows = run_population(pspec, chunk=7).subjects
    pd.testing.assert_frame_equal(rows, run_population(pspec, chunk=30).subjects)
    t = pspec.times
    between, within = eta_parameters(spec), eta_parameters(spec, occasion=True)
    names = tuple(between) + tuple(occasion_name(p, k) for k in (1, 2, 3) for p in within)
    peaks = []
    for i in range(0, 30, 3):
        iiv = sample_etas(spec, 5, i, i + 1)
        iov = [sample_course_etas(spec, 5, i, i + 1, k) for k in range(3)]
        etas = np.array([[iiv[p][0] for p in between] + [iov[k][p][0] for k in range(3) for p in within]])
        model = SpecModel(spec, REGIMEN, covariates_of(pspec, i, i + 1), names)
        curves = model.curves(etas, t, ["ketamine", "relief"])
        c = curves["ketamine"][0]
        assert rows.loc[i, "cmax_ng_ml"] == pytest.approx(c.max(), rel=1e-9)
        assert rows.loc[i, "auc_ng_h_ml"] == pytest.approx(np.trapezoid(c, t), rel=1e-9)
        days, _ = relief_days(t, curves["relief"], STARTS[0] + 48.0, STARTS[1], pspec.relief_threshold)
        assert rows.loc[i, "relief_days_first"] == pytest.approx(days[0], rel=1e-9, abs=1e-9)
        peaks.append([c[np.searchsorted(t, s + 48.0)] for s in STARTS])
    ratios = np.array(peaks)[:, 1] / np.array(peaks)[:, 0]
    assert np.std(np.log(ratios)) > 0.1  # the courses of one patient really differ


def test_a_population_with_course_to_course_variability_refuses_steady_state_doses():
    from dataclasses import replace

    from ketaplan.regimen.events import Regimen

    ss = Regimen((replace(REGIMEN.events[0], ss=1, ii=504.0, addl=0),), drug=REGIMEN.drug)
    with pytest.raises(InputError, match="steady-state doses cannot be combined"):
        make_spec(ss, with_iov(), n=10)


def test_a_fit_with_no_data_in_the_latest_course_and_population_shrinkage_over_different_course_counts():
    from ketaplan.individualize.api import PatientFit, population_shrinkage
    from ketaplan.individualize.dataset import FitCase
    from ketaplan.planning.next_course import next_course, rate_for_level

    spec = with_iov()
    cov = Covariates.of(80.0, 59, "male")
    times = [6.0, 24.0, 510.0, 528.0]  # courses 1 and 2 only; course 3 has started without samples yet
    obs = Observations.of(times, ["ketamine"] * 4, [150.0, 160.0, 140.0, 150.0])
    problem, model = spec_problem(spec, REGIMEN, cov, obs)
    est = fit(problem)
    assert est.converged and np.isfinite(est.objective)
    assert next_course(est, model).due_h[1] > 1008.0
    r = rate_for_level(est, model, 150.0)
    assert r.level_interval_ng_ml[0] < 150.0 < r.level_interval_ng_ml[1]
    two = parse_regimen("20 mg/h IV for 2 d every 3 weeks x 2")
    p2, m2 = spec_problem(spec, two, cov, Observations.of(times, ["ketamine"] * 4, [120.0, 130.0, 150.0, 170.0]))
    fits = [PatientFit(FitCase("a", 1, problem, model, None), est),
            PatientFit(FitCase("b", 2, p2, m2, None), fit(p2))]
    shrink = population_shrinkage(fits)
    assert "k10" in shrink and not any("course" in k for k in shrink)
