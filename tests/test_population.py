"""Virtual populations: brute-force checks of the streaming summaries, reproducibility, Dask, memory."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pandas as pd
import pytest

from ketaplan.engine.build import build
from ketaplan.engine.dosing import regimen_records
from ketaplan.engine.exact import solve
from ketaplan.engine.ode import solve_ode
from ketaplan.engine.schedule import compile_schedule
from ketaplan.errors import InputError
from ketaplan.models.thresholds import thresholds_for
from ketaplan.population.api import simulate_population
from ketaplan.population.covariates import BLOCK, builtin_population, sample_covariates
from ketaplan.population.metrics import hours_above, relief_days
from ketaplan.population.model_run import PopulationSpec, covariates_of, make_spec, simulate_slice
from ketaplan.population.run import run_population
from ketaplan.population.stream import BINS_PER_DECADE, Binning
from ketaplan.population.variability import omega_matrix, sample_etas
from ketaplan.regimen.text import parse_regimen
from ketaplan.simulation.course_levels import time_above, time_above_batch
from ketaplan.simulation.run import model_for

REPEAT = parse_regimen("20 mg/h IV for 5 d every 6 weeks x 2")
PER_KG = parse_regimen("0.3 mg/kg/h IV for 2 d (max 25 mg/h)")


@pytest.fixture(scope="module")
def spec():
    return model_for(REPEAT)


@pytest.fixture(scope="module")
def small(spec):
    """A 300-patient population and its full-resolution outputs (small enough to keep whole)."""
    pspec = make_spec(REPEAT, spec, n=300, seed=11)
    return pspec, run_population(pspec, chunk=128), simulate_slice(pspec, 0, 300)


def test_one_patient_matches_an_independent_ode_solution(spec, small):
    """The batched exact engine with sampled covariates and etas, against solve_ivp patient by patient."""
    pspec, _, sv = small
    names = sv.names
    for i in (0, 17, 256):
        cov = covariates_of(pspec, i, i + 1)
        built = build(spec, cov, sample_etas(spec, pspec.seed, i, i + 1))
        records, parts = regimen_records(REPEAT, built.route_parts)
        schedule = compile_schedule(records, built.modifiers(parts), built.structure.n_states)
        ode = solve_ode(built.rate_matrix(), schedule, pspec.times, built.readout(names))[0]
        scale = np.abs(ode).max(axis=0)
        assert np.max(np.abs(sv.values[i] - ode) / scale) < 1e-6


def in_window_during_doses(t, c) -> float:
    """Hours between the thresholds during the two 5-day infusions (0-120 h and 1008-1128 h), one patient."""
    th = thresholds_for("racemic")
    total = 0.0
    for lo, hi in ((0.0, 120.0), (1008.0, 1128.0)):
        inside = (t >= lo) & (t <= hi)
        total += time_above(t[inside], c[inside], th["analgesia"].value)
        total -= time_above(t[inside], c[inside], th["psychotomimetic"].value)
    return total


def test_per_subject_metrics_match_a_patient_by_patient_computation(small):
    pspec, result, sv = small
    t = pspec.times
    th = thresholds_for("racemic")
    s = result.subjects
    dosing_hours = 2 * 120.0
    for i in range(0, 300, 7):
        c = sv.output(sv.parent)[i]
        assert s.loc[i, "cmax_ng_ml"] == pytest.approx(c.max(), rel=1e-12)
        assert s.loc[i, "auc_ng_h_ml"] == pytest.approx(np.trapezoid(c, t), rel=1e-12)
        above_a = time_above(t, c, th["analgesia"].value)
        above_p = time_above(t, c, th["psychotomimetic"].value)
        assert s.loc[i, "hours_above_analgesia"] == pytest.approx(above_a, abs=1e-9)
        assert s.loc[i, "hours_above_psychotomimetic"] == pytest.approx(above_p, abs=1e-9)
        window = in_window_during_doses(t, c)
        assert s.loc[i, "hours_in_window"] == pytest.approx(window, abs=1e-9)
        assert s.loc[i, "target_attained"] == (window >= 0.8 * dosing_hours)
        assert s.loc[i, "psychotomimetic"] == (c.max() > th["psychotomimetic"].value)


def test_hours_above_from_crossings_equal_the_interval_by_interval_sum():
    """The population's run-and-crossing count against time_above_batch (every grid interval), with levels hit
    exactly, runs touching the first and last points, single points above and flat rows."""
    rng = np.random.default_rng(5)
    for trial in range(200):
        n = int(rng.integers(2, 50))
        t = np.cumsum(rng.uniform(0.01, 30.0, n)) - 5.0
        if trial % 2:
            c, level = rng.choice([0.0, 1.0, 2.0], size=(int(rng.integers(1, 30)), n)), 1.0
        else:
            c, level = rng.lognormal(0.0, 1.0, (int(rng.integers(1, 30)), n)), float(rng.lognormal(0.0, 1.0))
        inside = rng.random(n - 1) < 0.5
        expected, expected_inside = time_above_batch(t, c, level, inside)
        hours, hours_inside = hours_above(t, c, level, inside)
        np.testing.assert_allclose(hours, expected, rtol=0, atol=1e-9)
        np.testing.assert_allclose(hours_inside, expected_inside, rtol=0, atol=1e-9)
        assert np.array_equal(hours > 0, (c > level).any(axis=1))


def test_target_attainment_equals_the_brute_force_fraction(small):
    pspec, result, sv = small
    t = pspec.times
    attained = [in_window_during_doses(t, c) >= 0.8 * 240.0 for c in sv.output(sv.parent)]
    assert result.summary["probability_of_target_attainment"] == pytest.approx(np.mean(attained), abs=1e-15)
    # a real spread, not a degenerate case (0.14 at 20 mg/h with the Kamp clearance and the 100-150 ng/mL window)
    assert 0.05 < result.summary["probability_of_target_attainment"] < 0.95


def test_hours_above_on_the_population_grid_agree_with_a_one_minute_grid(spec):
    """The shared grid is fine enough: threshold times within 0.2 h (of 240 dosing hours) of a 1-minute grid."""
    pspec = make_spec(REPEAT, spec, n=20, seed=3, horizon=1200.0)
    coarse = simulate_slice(pspec, 0, 20)
    fine_times = np.arange(0.0, 1200.0 + 1e-9, 1 / 60)
    fine = simulate_slice(PopulationSpec(spec, REPEAT, 20, 3, fine_times), 0, 20)
    for level in (thresholds_for("racemic")["analgesia"].value, thresholds_for("racemic")["psychotomimetic"].value):
        for i in range(20):
            a = time_above(pspec.times, coarse.output(coarse.parent)[i], level)
            b = time_above(fine_times, fine.output(fine.parent)[i], level)
            assert abs(a - b) < 0.2


def test_percentile_bands_are_within_one_bin_of_exact_percentiles(small):
    pspec, result, sv = small
    idx = pspec.band_index
    for name in (sv.parent, sv.metabolite):
        exact = np.percentile(sv.output(name)[:, idx], [5, 50, 95], axis=0, method="inverted_cdf").T
        band = result.bands[name][["p5", "p50", "p95"]].to_numpy()
        ok = exact > 0.01
        assert ok.sum() > 100
        assert np.max(np.abs(np.log10(band[ok]) - np.log10(exact[ok]))) <= 1 / BINS_PER_DECADE + 1e-9
        assert np.all(band[exact == 0] == 0)
    relief = result.bands["relief"][["p5", "p50", "p95"]].to_numpy()
    layer = sv.relief
    ce = sv.output(layer.input)[:, idx]
    p = sv.built.params
    exact_relief = p[layer.emax][:, None] * ce / (p[layer.c50][:, None] + ce)  # gamma = 1 in Dahan 2011
    assert np.all(p[layer.gamma] == 1)
    exact = np.percentile(exact_relief, [5, 50, 95], axis=0, method="inverted_cdf").T
    assert np.max(np.abs(relief - exact)) <= 1 / 200 + 1e-9


def test_user_percentiles_are_reported(spec):
    pspec = make_spec(REPEAT, spec, n=200, seed=1)
    result = run_population(pspec, percentiles=(2.5, 25, 50, 75, 97.5))
    assert list(result.bands["ketamine"].columns) == ["time", "p2.5", "p25", "p50", "p75", "p97.5"]
    b = result.bands["ketamine"]
    assert np.all(b["p2.5"] <= b["p25"]) and np.all(b["p75"] <= b["p97.5"])


def test_results_do_not_depend_on_chunk_size(spec):
    pspec = make_spec(PER_KG, spec, n=900, seed=5)
    a = run_population(pspec, chunk=900)
    b = run_population(pspec, chunk=97)
    pd.testing.assert_frame_equal(a.subjects, b.subjects, check_exact=False, rtol=1e-12)
    for name in a.bands:
        pd.testing.assert_frame_equal(a.bands[name], b.bands[name], check_exact=False, rtol=1e-12)


def test_results_do_not_depend_on_the_block_size_within_a_chunk(spec, monkeypatch):
    from ketaplan.population import run

    pspec = make_spec(REPEAT, spec, n=700, seed=5)
    whole = run_population(pspec, chunk=700)
    monkeypatch.setattr(run, "BLOCK_VALUES", 37 * len(pspec.times))
    blocks = run_population(pspec, chunk=700)
    pd.testing.assert_frame_equal(whole.subjects, blocks.subjects, check_exact=False, rtol=1e-12)
    for name in whole.bands:
        pd.testing.assert_frame_equal(whole.bands[name], blocks.bands[name])


def test_the_seed_fixes_the_patients_and_changing_it_changes_them(spec):
    a = run_population(make_spec(REPEAT, spec, n=100, seed=8))
    b = run_population(make_spec(REPEAT, spec, n=100, seed=8))
    c = run_population(make_spec(REPEAT, spec, n=100, seed=9))
    pd.testing.assert_frame_equal(a.subjects, b.subjects)
    assert not np.allclose(a.subjects["weight"], c.subjects["weight"])


def test_subject_i_is_the_same_in_a_larger_population(spec):
    small_pop = run_population(make_spec(REPEAT, spec, n=50, seed=4)).subjects
    large_pop = run_population(make_spec(REPEAT, spec, n=BLOCK + 60, seed=4), chunk=1000).subjects
    pd.testing.assert_frame_equal(small_pop, large_pop.iloc[:50], check_exact=False, rtol=1e-12)


def test_per_kg_doses_with_a_rate_cap_equal_one_patient_simulations(spec):
    """Superposition of absolute and per-kg parts, and capped patients, against direct per-patient runs."""
    pspec = make_spec(PER_KG, spec, n=60, seed=2)
    sv = simulate_slice(pspec, 0, 60)
    weights = sv.covariates.weight
    assert (weights * 0.3 > 25).any() and (weights * 0.3 < 25).any()
    for i in range(60):
        resolved = PER_KG.resolve(float(weights[i]))
        built = build(spec, covariates_of(pspec, i, i + 1), sample_etas(spec, pspec.seed, i, i + 1))
        records, parts = regimen_records(resolved, built.route_parts)
        schedule = compile_schedule(records, built.modifiers(parts), built.structure.n_states)
        direct = solve(built.rate_matrix(), schedule, pspec.times, built.readout(sv.names))[0]
        np.testing.assert_allclose(sv.values[i], direct, rtol=1e-9, atol=1e-9 * np.abs(direct).max())


def test_dask_local_cluster_gives_the_local_result(spec):
    pspec = make_spec(PER_KG, spec, n=1500, seed=21)
    local = run_population(pspec, chunk=400)
    seen = []
    dist = run_population(pspec, chunk=400, workers=2, on_chunk=lambda done, total: seen.append((done, total)))
    pd.testing.assert_frame_equal(local.subjects, dist.subjects)
    for name in local.bands:
        pd.testing.assert_frame_equal(local.bands[name], dist.bands[name])
    assert seen[-1] == (4, 4)


def test_an_existing_scheduler_is_used_by_address(spec):
    from dask.distributed import LocalCluster

    pspec = make_spec(REPEAT, spec, n=300, seed=6)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        remote = run_population(pspec, chunk=100, scheduler=cluster.scheduler_address)
    pd.testing.assert_frame_equal(remote.subjects, run_population(pspec, chunk=100).subjects)


def test_memory_stays_bounded_far_below_full_resolution(spec):
    """40,000 patients x the 4-course grid would need over 1 GB at full resolution; the run stays under 200 MB."""
    regimen = parse_regimen("20 mg/h IV for 5 d every 11 weeks x 4")
    pspec = make_spec(regimen, spec, n=40_000, seed=1)
    full_resolution = pspec.n * len(pspec.times) * 4 * 8
    assert full_resolution > 1.0e9
    tracemalloc.start()
    try:
        result = run_population(pspec, chunk=2000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(result.subjects) == 40_000
    assert peak < 200e6, f"peak traced memory {peak / 1e6:.0f} MB"


def test_covariates_follow_the_built_in_distributions():
    pop = builtin_population()
    cov = sample_covariates(7, 0, 50_000)
    for name in ("age", "weight", "height"):
        lo, hi = pop[name]["bounds"]
        values = getattr(cov, name)
        assert values.min() >= lo and values.max() <= hi
        # truncation at about 2 SD moves the mean by well under one SD
        assert abs(values.mean() - pop[name]["mean"]) < 0.2 * pop[name]["sd"]
    female = np.mean(cov.sex == "female")
    assert abs(female - pop["female_fraction"]["value"]) < 0.01


def test_random_effects_have_the_model_covariance(spec):
    etas = sample_etas(spec, 3, 0, 200_000)
    names = list(etas)
    sample = np.cov(np.vstack([etas[n] for n in names]))
    omega = omega_matrix(spec)
    # sampling SE of a variance estimate is omega * sqrt(2/n) ~ 0.3 % of omega; 5 SE
    np.testing.assert_allclose(sample, omega, atol=5 * np.sqrt(2 / 200_000) * omega.max())
    assert len(names) >= 3


def test_residual_error_at_sampling_times_has_the_model_sd(spec):
    result = simulate_population(REPEAT, 20_000, seed=5, sample_times=(24.0, 150.0))
    s = result.subjects
    ratio = s["ketamine_obs_24h"] / s["ketamine_pred_24h"] - 1
    assert ratio.std() == pytest.approx(spec.residual_error["ketamine"].proportional, rel=0.03)
    nk = s["norketamine_obs_24h"] / s["norketamine_pred_24h"] - 1
    assert nk.std() == pytest.approx(spec.residual_error["norketamine"].proportional, rel=0.03)
    assert abs(np.corrcoef(ratio, nk)[0, 1]) < 0.03  # independent streams per observable
    c = simulate_slice(result.pspec, 0, 5).output("ketamine")
    np.testing.assert_allclose(s["ketamine_pred_150h"][:5], c[:, np.searchsorted(result.pspec.times, 150.0)])


def test_relief_read_on_part_of_the_grid_equals_relief_on_the_whole_grid(small):
    """Relief is evaluated only at the band times and after each course; the same numbers as on the whole grid."""
    from ketaplan.engine.pd import hill

    pspec, result, sv = small
    layer, p, t, courses = sv.relief, sv.built.params, pspec.times, pspec.courses
    relief = hill(sv.output(layer.input), p[layer.c50][:, None], p[layer.gamma][:, None])
    relief *= p[layer.emax][:, None]
    s = result.subjects
    days, censored = relief_days(t, relief, courses[0].end, courses[1].start, pspec.relief_threshold)
    np.testing.assert_array_equal(s["relief_days_first"], days)
    np.testing.assert_array_equal(s["relief_first_censored"], censored)
    np.testing.assert_array_equal(s["relief_maintained"], censored)
    np.testing.assert_array_equal(s["relief_at_end"], relief[:, np.searchsorted(t, courses[0].end)])
    assert 0 < censored.mean() < 1 and days.min() >= 0


def test_relief_days_interpolate_the_crossing_and_flag_censoring():
    t = np.array([0.0, 24.0, 48.0, 72.0, 96.0])
    relief = np.array([[0.5, 0.6, 0.4, 0.2, 0.1],   # peaks at 24 h, crosses 0.3 halfway between 48 and 72 h
                       [0.5, 0.5, 0.5, 0.5, 0.5],   # still relieved at the end: censored
                       [0.1, 0.2, 0.1, 0.0, 0.0]])  # never relieved
    days, censored = relief_days(t, relief, 0.0, 96.0, 0.3)
    np.testing.assert_allclose(days, [60.0 / 24, 4.0, 0.0])
    assert censored.tolist() == [False, True, False]


def test_responders_follow_the_model_response_probability(spec):
    result = simulate_population(REPEAT, 20_000, seed=2)
    p = spec.parameters["P_RESPONSE"].value
    assert result.summary["responder_fraction"] == pytest.approx(p, abs=4 * np.sqrt(p * (1 - p) / 20_000))


def test_user_covariates_are_used_and_cycled(tmp_path, spec):
    path = tmp_path / "patients.csv"
    path.write_text("weight,age,sex\n60,40,female\n100,70,male\n")
    result = simulate_population(REPEAT, 5, covariates=path)
    assert result.subjects["weight"].tolist() == [60, 100, 60, 100, 60]
    assert result.subjects["sex"].tolist() == ["female", "male", "female", "male", "female"]


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"n": 0}, "--n"),
    ({"percentiles": (5, 150)}, "--percentiles"),
    ({"workers": 0}, "--workers"),
    ({"workers": 2, "scheduler": "tcp://127.0.0.1:9"}, "--workers/--scheduler"),
    ({"relief_threshold": 1.5}, "--relief-threshold"),
    ({"overrides": {"NOT_A_PARAMETER": 1.0}}, "--set"),
    ({"sample_times": (-1.0,)}, "--sample-at"),
    ({"seed": -1}, "--seed"),
])
def test_bad_input_is_refused_in_one_sentence(kwargs, field):
    args = {"n": 10, **kwargs}
    with pytest.raises(InputError) as err:
        simulate_population(REPEAT, **args)
    assert str(err.value).startswith(field)


def test_a_scheduler_that_does_not_answer_is_one_sentence():
    with pytest.raises(InputError, match=r"^--scheduler: got 'tcp://127\.0\.0\.1:9'; no Dask scheduler answered"):
        simulate_population(REPEAT, 10, scheduler="tcp://127.0.0.1:9")


def test_a_bad_covariate_file_names_row_and_column(tmp_path):
    path = tmp_path / "patients.csv"
    path.write_text("weight,age\n70,40\n7000,50\n")
    with pytest.raises(InputError, match="row 2, column weight"):
        simulate_population(REPEAT, 10, covariates=path)
    path.write_text("weight,age\n70,abc\n")
    with pytest.raises(InputError, match="row 1, column age: got 'abc'; a number"):
        simulate_population(REPEAT, 10, covariates=path)
    path.write_text("weight,Weight\n70,80\n")
    with pytest.raises(InputError, match="the column weight appears twice"):
        simulate_population(REPEAT, 10, covariates=path)


def test_binning_index_puts_values_in_their_bin():
    b = Binning.concentration()
    values = np.array([[0.0, 1e-4, 0.0011, 1.0, 99.9, 1e6]])
    idx = b.index(values)[0]
    assert idx[0] == 0 and idx[1] == 0 and idx[-1] == b.n - 1
    for v, i in zip(values[0, 2:5], idx[2:5], strict=True):
        assert b.edges[i - 1] <= v < b.edges[i] * (1 + 1e-12)


def test_the_zeroth_percentile_is_the_lower_edge_of_the_lowest_value():
    from ketaplan.population.stream import add_counts, percentiles_from_counts

    b = Binning.concentration()
    values = np.array([[15.5], [20.0], [40.0]])
    counts = np.zeros((1, b.n), dtype=np.int64)
    add_counts(counts, values, b)
    p0, p100 = percentiles_from_counts(counts, b, [0.0, 100.0])[0]
    assert 15.5 / 10 ** (1 / 64) <= p0 <= 15.5 and 40.0 <= p100 <= 40.0 * 10 ** (1 / 64)


def test_time_in_the_window_is_counted_while_doses_run(spec):
    short = parse_regimen("0.3 mg/kg/h IV for 4 h")
    result = run_population(make_spec(short, spec, n=300, seed=2))
    assert (result.subjects["hours_in_window"] <= 4.0 + 1e-9).all()
    assert (result.subjects["hours_above_analgesia"] >= result.subjects["hours_in_window"] - 1e-9).all()


def test_chunks_by_default_are_about_sixteen_per_worker_within_bounds():
    from ketaplan.population.run import MAX_CHUNK, MIN_CHUNK, chunk_size

    assert chunk_size(1_000_000, 2) == MAX_CHUNK == 20_000  # 31,250 per task capped
    assert chunk_size(200_000, 2) == 6_250
    assert chunk_size(20_000, None) == MIN_CHUNK == 2_000
    assert chunk_size(1_000_000, 2, chunk=500) == 500  # a given --chunk is kept
    assert chunk_size(1_000_000, None, scheduler="tcp://cluster:8786") == MIN_CHUNK  # its size is unknown here
