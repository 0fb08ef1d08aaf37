"""``ketaplan estimate`` end to end on phenobarbital (against NONMEM 7.4's run), its files, and bad input.

NONMEM's numbers come from pharmpy's example models (pharmpy-core, pharmpy/internals/example_models):
pheno.ext (final estimates and standard errors, initial OFV), pheno.lst (OFV) and pheno.phi (EBEs and
each individual's objective).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import invoke_cli

DATA = Path(__file__).parent / "data"
PHENO = [str(DATA / "pheno.csv"), "--model", str(DATA / "pheno.yaml")]

# pheno.ext: final estimates (-1000000000) and standard errors (-1000000001); pheno.lst: final OFV.
NONMEM_OFV = 586.27605628
NONMEM_INITIAL_OFV = 587.36644
NONMEM_ESTIMATES = {"THETA(1)": 4.69555e-03, "THETA(2)": 9.84258e-01, "THETA(3)": 1.58920e-01,
                    "OMEGA(1,1)": 2.93508e-02, "OMEGA(2,2)": 2.79060e-02, "SIGMA(1,1)": 1.32410e-02}
NONMEM_SE = {"THETA(1)": 2.09967e-04, "THETA(2)": 2.68946e-02, "THETA(3)": 8.37555e-02,
             "OMEGA(1,1)": 1.34156e-02, "OMEGA(2,2)": 7.47591e-03, "SIGMA(1,1)": 2.27991e-03}
# pheno.phi: ID, ETA(1), ETA(2), OBJ of the first two individuals.
NONMEM_PHI = [(1, -4.38608e-02, 5.43031e-03, 5.9473520224), (2, -1.66321e-01, -1.31833e-01, 12.970590911)]
FILES = ("estimates.json", "etas.csv", "table.csv", "iterations.csv", "vpc.csv", "gof.png", "etas.png", "vpc.png")


@pytest.fixture(scope="module")
def pheno_run(tmp_path_factory):
    """One real run of the command in a pipe (stdout and stderr captured), with a report."""
    folder = tmp_path_factory.mktemp("estimate")
    out, report = folder / "pheno", folder / "pheno.html"
    run = subprocess.run([sys.executable, "-m", "ketaplan.cli", "estimate", *PHENO, "--out-dir", str(out),
                          "--report", str(report), "--seed", "7"], capture_output=True, text=True, timeout=600)
    return run, out, report


def test_writes_every_file_with_nonmem_names_and_values(pheno_run):
    run, out, _report = pheno_run
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)
    doc = json.loads((out / "estimates.json").read_text())
    assert doc["ofv"] == pytest.approx(NONMEM_OFV, abs=1e-3)
    assert list(doc["theta"]) == ["THETA(1)", "THETA(2)", "THETA(3)"]
    assert list(doc["omega"]) == ["OMEGA(1,1)", "OMEGA(2,2)"] and list(doc["sigma"]) == ["SIGMA(1,1)"]
    values = {**doc["theta"], **doc["omega"], **doc["sigma"]}
    for name, value in NONMEM_ESTIMATES.items():
        assert values[name] == pytest.approx(value, rel=2e-3), name
        assert doc["se"][name] == pytest.approx(NONMEM_SE[name], rel=0.01), name
    assert doc["converged"] and doc["covariance_step"] == "ok" and doc["n_observations"] == 155
    assert doc["shrinkage_sd_percent"]["ETA(1)"] == pytest.approx(47.580, abs=0.01)
    assert set(doc["correlation"]) == set(NONMEM_SE)


def test_json_numbers_carry_at_most_twelve_significant_digits(pheno_run):
    text = (pheno_run[1] / "estimates.json").read_text()
    numbers = re.findall(r"(?<![\w(])-?\d+\.\d+(?:e[-+]?\d+)?", text)
    assert numbers
    for number in numbers:
        mantissa = number.lstrip("-").split("e")[0].replace(".", "").lstrip("0")
        assert len(mantissa) <= 12, number


def test_tables_hold_every_record_and_the_ebes(pheno_run):
    out = pheno_run[1]
    table = pd.read_csv(out / "table.csv")
    assert list(table.columns) == ["ID", "TIME", "DV", "MDV", "PRED", "IPRED", "RES", "WRES", "CWRES", "IWRES",
                                   "NPDE"]
    assert len(table) == 744 and table["PRED"].notna().all() and table["IPRED"].notna().all()
    doses = table[table["MDV"] == 1]
    assert doses[["DV", "RES", "WRES", "CWRES", "IWRES", "NPDE"]].isna().all().all()
    assert table.loc[table["MDV"] == 0, ["RES", "WRES", "CWRES", "IWRES", "NPDE"]].notna().all().all()
    etas = pd.read_csv(out / "etas.csv")
    assert list(etas.columns) == ["ID", "ETA1", "ETA2", "ETA1_SD", "ETA2_SD", "OFV"] and len(etas) == 59
    for i, eta1, eta2, obj in NONMEM_PHI:
        row = etas[etas["ID"] == i].iloc[0]
        assert row["ETA1"] == pytest.approx(eta1, abs=5e-5) and row["ETA2"] == pytest.approx(eta2, abs=5e-5)
        assert row["OFV"] == pytest.approx(obj, abs=1e-3)
    assert etas["OFV"].sum() == pytest.approx(NONMEM_OFV, abs=1e-3)
    iterations = pd.read_csv(out / "iterations.csv")
    assert iterations["OFV"].iloc[0] == pytest.approx(NONMEM_INITIAL_OFV, abs=1e-4)
    assert iterations["OFV"].iloc[-1] == pytest.approx(NONMEM_OFV, abs=1e-3)
    assert np.all(np.diff(iterations["OFV"]) <= 1e-9)
    vpc = pd.read_csv(out / "vpc.csv")
    assert vpc["n"].sum() == 155 and {"obs_p50", "sim_p50_lo", "sim_p50_hi"} <= set(vpc.columns)
    for name in ("gof.png", "etas.png", "vpc.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_prints_the_search_on_stderr_and_a_whole_table_at_80_columns(pheno_run):
    run = pheno_run[0]
    assert re.search(r"iteration +0 +OFV 587\.36644\d +max \|gradient\|", run.stderr)
    assert "OFV 586.27605" in run.stderr
    lines = run.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    rows = {line.split()[0]: line.split()[1:] for line in lines if line.strip().startswith(("THETA", "OMEGA", "SIG"))}
    for name, value in NONMEM_ESTIMATES.items():
        estimate, se, rse = (float(x) for x in rows[name])
        assert estimate == pytest.approx(value, rel=2e-3) and se == pytest.approx(NONMEM_SE[name], rel=0.01)
        assert rse == pytest.approx(100 * se / estimate, abs=0.1)
    assert "n log(2 pi)" in run.stdout and "shrinkage (SD %): ETA(1) 47.6, ETA(2) 13.6, EPS 21.2" in run.stdout


def test_report_is_self_contained(pheno_run):
    html = pheno_run[2].read_text()
    assert html.count("<svg") == 4  # objective, goodness of fit, ETAs, VPC
    assert not re.search(r"""(src|href)=["']https?:""", html)
    for text in ("n log(2 pi)", "R^-1 S R^-1", "Correlation of the estimates", "condition number",
                 "ETABAR and shrinkage", "47.58", "RSE %", "VPC numbers", "Warnings (0)"):
        assert text in html, text


def test_evaluate_gives_nonmems_initial_objective_and_json_on_stdout(tmp_path):
    out = tmp_path / "run"
    r = invoke_cli("estimate", *PHENO, "--evaluate", "--json", "--replicates", "50", "--out-dir", str(out))
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc == json.loads((out / "estimates.json").read_text())
    assert doc["ofv"] == pytest.approx(NONMEM_INITIAL_OFV, abs=0.01) and doc["evaluated_only"]
    assert doc["theta"]["THETA(2)"] == 1.00916  # the initial values, unmoved


def test_saem_reports_its_importance_sampling_objective(tmp_path):
    r = invoke_cli("estimate", *PHENO, "--method", "saem", "--evaluate", "--replicates", "20", "--seed", "3",
                   "--out-dir", str(tmp_path / "run"))
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "run" / "estimates.json").read_text())
    assert doc["method"] == "saem" and 0 < doc["ofv_se"] < 1
    assert abs(doc["ofv"] - NONMEM_INITIAL_OFV) < 2  # the exact likelihood, not FOCE-I's approximation of it
    assert f"importance sampling, Monte Carlo SE {doc['ofv_se']:.3g}" in r.stdout


def test_omega_blocks_are_named_by_row_and_column(tmp_path):
    model = yaml.safe_load((DATA / "pheno.yaml").read_text())
    model["omega"] = [{"block": [[0.0309626], [0.005, 0.031128]]}]
    path = tmp_path / "block.yaml"
    path.write_text(yaml.safe_dump(model))
    r = invoke_cli("estimate", str(DATA / "pheno.csv"), "--model", str(path), "--evaluate", "--json",
                   "--replicates", "20", "--out-dir", str(tmp_path / "run"))
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["omega"] == {"OMEGA(1,1)": 0.0309626, "OMEGA(2,1)": 0.005, "OMEGA(2,2)": 0.031128}
    assert "OMEGA(2,1)" in doc["se"]


def _bad_inputs(tmp_path: Path) -> list[tuple[list[str], str]]:
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    no_sigma = tmp_path / "no_sigma.yaml"
    no_sigma.write_text((DATA / "pheno.yaml").read_text().replace("sigma: {proportional: 0.0130865}", ""))
    wrong_column = tmp_path / "wrong_column.yaml"
    wrong_column.write_text((DATA / "pheno.yaml").read_text().replace("WGT", "WEIGHT"))
    out = ["--out-dir", str(tmp_path / "out")]
    cases = [
        ([str(tmp_path / "missing.csv"), "--model", str(DATA / "pheno.yaml"), *out], "DATA"),
        ([str(DATA / "pheno.csv"), "--model", str(tmp_path / "missing.yaml"), *out], "MODEL"),
        ([*PHENO, "--method", "focei", *out], "--method"),
        ([*PHENO, "--out-dir", str(a_file)], "--out-dir"),
        ([*PHENO, "--out-dir", str(tmp_path / "no" / "such")], "--out-dir"),
        ([*PHENO, "--report", str(tmp_path / "report.pdf"), *out], "--report"),
        ([*PHENO, "--replicates", "5", *out], "--replicates"),
        ([str(DATA / "pheno.csv"), "--model", str(no_sigma), *out], "MODEL sigma"),
        ([str(DATA / "pheno.csv"), "--model", str(wrong_column), *out], "WEIGHT"),
    ]
    return cases


def test_bad_input_is_one_sentence_exit_2_and_nothing_written(tmp_path):
    for args, words in _bad_inputs(tmp_path):
        r = invoke_cli("estimate", *args)
        assert r.exit_code == 2, (args, r.output)
        message = r.stderr.strip()
        assert message.startswith("error: ") and words in message and message.count("\n") == 0, message
        assert not (tmp_path / "out").exists() and not (tmp_path / "report.pdf").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "no_sigma.yaml", "wrong_column.yaml"]


def test_a_control_stream_brings_its_own_data_and_estimation_record(tmp_path):
    """No DATA argument: $DATA (relative to the stream) is read; MAXEVAL=0 in $ESTIMATION means evaluate."""
    ctl = tmp_path / "pheno.mod"
    text = (DATA / "pheno.mod").read_text().replace("MAXEVALS=99999", "MAXEVAL=0")
    ctl.write_text(text)
    (tmp_path / "pheno.csv").write_bytes((DATA / "pheno.csv").read_bytes())
    r = invoke_cli("estimate", "--model", str(ctl), "--json", "--replicates", "20", "--out-dir", str(tmp_path / "run"))
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["evaluated_only"] and doc["method"] == "foce-i"
    assert doc["ofv"] == pytest.approx(NONMEM_INITIAL_OFV, abs=0.01)
