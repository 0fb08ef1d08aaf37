"""``ketaplan population`` and ``ketaplan search`` on the command line."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from conftest import invoke_cli
from ketaplan.population.api import simulate_population

REGIMEN = "20 mg/h IV for 5 d every 8 weeks x 2"

pytestmark = pytest.mark.usefixtures("wide_console")

invoke = invoke_cli


def test_population_prints_key_numbers_and_writes_every_output(tmp_path):
    out, bands, report = tmp_path / "subjects.parquet", tmp_path / "bands.csv", tmp_path / "pop.html"
    r = invoke("population", REGIMEN, "--n", "600", "--seed", "4", "--out", str(out), "--bands", str(bands),
               "--report", str(report), "--percentiles", "10,50,90", "--effect-site")
    assert r.exit_code == 0, r.output
    expected = simulate_population(REGIMEN, 600, seed=4, percentiles=(10, 50, 90), effect_site=True)
    pta = expected.summary["probability_of_target_attainment"]
    assert f"{pta:.1%}" in r.output
    assert f"{expected.summary['psychotomimetic_risk']:.1%}" in r.output
    subjects = pd.read_parquet(out)
    assert len(subjects) == 600 and subjects["subject"].tolist() == list(range(600))
    pd.testing.assert_frame_equal(subjects, expected.subjects)
    long = pd.read_csv(bands)
    assert set(long["output"]) == {"ketamine", "norketamine", "effect_site", "relief"}
    assert list(long.columns) == ["output", "time_h", "p10", "p50", "p90"]
    html = report.read_text()
    assert "Probability of target attainment" in html and f"{pta:.1%}" in html and "<svg" in html
    assert "http://" not in html.split("<svg", 1)[0]  # self-contained: no external resources before the figure


def test_population_json_and_csv_covariates(tmp_path):
    cov = tmp_path / "cov.csv"
    cov.write_text("weight,sex\n55,female\n95,male\n")
    r = invoke("population", REGIMEN, "--n", "4", "--covariates", str(cov), "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["summary"]["n"] == 4 and "probability_of_target_attainment" in data["summary"]


def test_population_on_a_local_dask_cluster_from_the_command_line(tmp_path):
    out = tmp_path / "s.csv"
    r = invoke("population", REGIMEN, "--n", "300", "--chunk", "100", "--workers", "1", "--out", str(out))
    assert r.exit_code == 0, r.output
    local = simulate_population(REGIMEN, 300, chunk=100).subjects
    pd.testing.assert_frame_equal(pd.read_csv(out), pd.read_csv(pd.io.common.StringIO(local.to_csv(index=False))))


def test_population_sampling_times_add_observation_columns(tmp_path):
    out = tmp_path / "s.parquet"
    r = invoke("population", REGIMEN, "--n", "50", "--sample-at", "2,24 h", "--out", str(out))
    assert r.exit_code == 0, r.output
    cols = set(pd.read_parquet(out).columns)
    assert {"ketamine_obs_2h", "ketamine_pred_24h", "norketamine_obs_24h"} <= cols


@pytest.mark.parametrize(("args", "message"), [
    (["--percentiles", "5,500"], "--percentiles"),
    (["--out", "subjects.txt"], "--out"),
    (["--n", "0"], "--n"),
    (["--workers", "2", "--scheduler", "tcp://127.0.0.1:9"], "--workers/--scheduler"),
    (["--covariates", "missing.csv"], "--covariates"),
    (["--until", "5 mg"], "--until"),
])
def test_population_bad_input_is_one_sentence_and_writes_nothing(tmp_path, args, message):
    out = tmp_path / "never.parquet"
    r = invoke("population", REGIMEN, "--n", "10", *args, *([] if "--out" in args else ["--out", str(out)]))
    assert r.exit_code == 2
    assert message in r.stderr and len(r.stderr.strip().splitlines()) <= 2
    assert not out.exists()


def test_population_refuses_a_likely_unit_slip():
    r = invoke("population", "20 mg/min IV for 5 d", "--n", "10")
    assert r.exit_code == 2
    assert r.stderr.startswith("error: dose:") and "refused" in r.stderr and "--force" in r.stderr


def test_search_prints_the_tradeoffs_and_the_chosen_regimen(tmp_path):
    out, report = tmp_path / "tradeoffs.csv", tmp_path / "search.html"
    # constraints relaxed: with the default racemic model nothing in this grid meets 10 % / 25 %
    r = invoke("search", "--rates", "7.5,10,15 mg/h", "--durations", "5,7 d", "--intervals", "5,8 weeks", "--n", "300",
               "--psychotomimetic-cap", "0.3", "--maintained", "0.05", "--out", str(out), "--report", str(report))
    assert r.exit_code == 0, r.output
    table = pd.read_csv(out)
    chosen = table.iloc[0]
    assert bool(chosen["feasible"])
    assert f"Chosen regimen: {chosen['regimen']}" in r.output
    assert len(table) == 12
    assert chosen["regimen"] in report.read_text()


def test_search_with_nothing_feasible_exits_1():
    r = invoke("search", "--rates", "30 mg/h", "--durations", "5 d", "--intervals", "8 weeks", "--n", "100",
               "--psychotomimetic-cap", "0")
    assert r.exit_code == 1
    assert "No candidate meets the constraints" in r.output


def test_search_bad_input():
    r = invoke("search", "--rates", "10 mg, 20 mg", "--n", "100")
    assert r.exit_code == 2 and r.stderr.startswith("error: --rates")
