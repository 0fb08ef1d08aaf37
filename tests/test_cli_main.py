"""The command line of the main job: simulate, pump, case-report, compare; every kind of bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from conftest import invoke_cli
from ketaplan.cli.common import join_quantity_arguments
from ketaplan.planning.plan import simulate

SEED = "20 mg/h IV for 5 d every 11 weeks x 2"

pytestmark = pytest.mark.usefixtures("wide_console")

invoke = invoke_cli


def test_simulate_prints_the_per_course_table_and_writes_outputs(tmp_path):
    out, plot, report = tmp_path / "levels.parquet", tmp_path / "fig.svg", tmp_path / "report.html"
    r = invoke("simulate", SEED, "--weight", "80", "--age", "59", "--sex", "male", "--until", "20 weeks",
               "--out", str(out), "--plot", str(plot), "--report", str(report), "--baseline-pain", "7")
    assert r.exit_code == 0, r.output
    expected = simulate(SEED, weight=80, age=59, sex="male", until=20 * 168.0)
    assert f"{expected.summary['cmax_ng_ml'].iloc[0]:.1f}" in r.output
    assert "INFO" in r.output and "not a prescription" in r.output
    frame = pd.read_parquet(out)
    assert {"time", "ketamine", "norketamine", "relief"} <= set(frame.columns)
    assert plot.read_text().lstrip().startswith("<?xml") or "<svg" in plot.read_text()[:500]
    html = report.read_text()
    assert "<svg" in html and "Pump plan" in html and "Relative contraindications" in html
    import re

    assert not re.search(r"""(src|href)\s*=\s*["'](https?:)?//|url\(\s*["']?(https?:)?//|@import""", html)


def test_simulate_json():
    r = invoke("simulate", SEED, "--weight", "80", "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    # default clearance: Domino's 115.92 L/h/70 kg x 0.6816 (the Kamp 2020 mean, 79 L/h/70 kg), linear in weight
    assert data["summary"][0]["css_avg_ng_ml"] == pytest.approx(20 / (115.92 * 0.6816 * 80 / 70) * 1000, rel=1e-3)
    assert data["findings"] and data["model"]["citations"]


def test_pump_command_hand_values():
    r = invoke("pump", "20 mg/h IV for 5 d", "--concentration", "1 mg/mL", "--syringe", "50 mL", "--weight", "80",
               "--start", "2026-12-01 09:00", "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["segments"][0]["rate_ml_h_rounded"] == 20.0
    assert data["container_changes"][1]["time_h"] == 2.5 and data["container_changes"][1]["clock"] == "2026-12-01 11:30"
    assert len(data["container_changes"]) == 48
    assert data["levels"]["planned_css"] == pytest.approx(data["levels"]["delivered_css"])
    text = invoke("pump", "0.35 mg/kg/h IV for 4 h daily x 10 days (max 25 mg/h)", "--concentration", "2 mg/mL",
                  "--bag", "500 mL", "--weight", "83")
    assert text.exit_code == 0, text.output
    assert "12.5" in text.output and "0.35 mg/kg/h x 83 kg = 29.05 mg/h, capped at 25 mg/h" in text.output


def test_unquoted_quantities_are_joined():
    args = ["pump", "X", "--concentration", "1", "mg/mL", "--syringe", "50", "mL", "--pump-increment", "0.1", "mL/h"]
    assert join_quantity_arguments(args) == ["pump", "X", "--concentration", "1 mg/mL", "--syringe", "50 mL",
                                             "--pump-increment", "0.1 mL/h"]
    done = subprocess.run([sys.executable, "-m", "ketaplan.cli", "pump", "20 mg/h IV for 5 d", "--concentration", "1",
                           "mg/mL", "--syringe", "50", "mL"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "2.5 h" in done.stdout


def test_case_report(tmp_path):
    r = invoke("case-report", "--out-dir", str(tmp_path))
    assert r.exit_code == 0, r.output
    assert (tmp_path / "case-report.html").exists() and (tmp_path / "case-report.png").exists()
    assert "10-12 weeks" in r.output and "weeks after each" in r.output
    assert "Predicted relief compared with the 10-12 weeks observed" in (tmp_path / "case-report.html").read_text()


def test_compare_command(tmp_path):
    plot = tmp_path / "compare.png"
    r = invoke("compare", "--routes", "iv,oral,intranasal", "--forms", "racemic,s-ketamine", "--plot", str(plot),
               "--json")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)["rows"]
    assert {(x["form"], x["route"]) for x in rows} == {(f, rt) for f in ("racemic", "s-ketamine")
                                                       for rt in ("iv", "oral", "intranasal")}
    assert plot.exists()


BAD = [
    (["simulate", "20 mg/h IVV for 5 d", "--weight", "80"], "word 3 'IVV'"),
    (["simulate", "20 mg/h IV for 5 d", "--weight", "80", "--until", "3 parsecs"], "--until"),
    (["simulate", "0.35 mg/kg/h IV for 4 h", "--weight", "80", "--out", "x.xlsx"], "--out"),
    (["simulate", "20 mg/kg/h IV for 5 d", "--weight", "80"], "refused because"),
    (["simulate", "20 mg/h IV for 5 d", "--weight", "80", "--set", "NOPE=1"], "no such parameter"),
    (["simulate", "20 mg/h IV for 5 d", "--weight", "80", "--set", "F_TOPICAL"], "NAME=VALUE"),
    (["simulate", "20 mg/h IV for 5 d", "--weight", "80", "--start", "tomorrow"], "--start"),
    (["simulate", "20 mg/h IV for 5 d starting 2026-12-01 09:00", "--weight", "80", "--start", "2027-03-01 10:00"],
     "give the start once"),
    (["simulate", "20 mg/h IV for 5 d starting 2026-12-01 09:00 starting 2027-01-01", "--weight", "80"],
     "one 'starting' date only"),
    (["simulate", "20 mg/h IV for 5 d", "--weight", "900"], "weight"),
    (["simulate", "S-ketamine 20 mg/h IV for 5 d", "--weight", "80", "--model", "domino_racemic_3cmt"],
     "describes racemic"),
    (["pump", "20 mg/h IV for 5 d", "--concentration", "1"], "a unit is required"),
    (["pump", "20 mg/h IV for 5 d", "--concentration", "1 mg"], "concentration such as"),
    (["pump", "20 mg/h IV for 5 d", "--concentration", "1 mg/mL", "--syringe", "50 mL", "--bag", "500 mL"], "not both"),
    (["pump", "0.35 mg/kg/h IV for 4 h", "--concentration", "1 mg/mL"], "--weight"),
    (["compare", "--basis", "price"], "dose and exposure"),
    (["models", "show", "nope"], "not in the library"),
]


@pytest.mark.parametrize(("args", "message"), BAD)
def test_bad_input_exit_code_2_one_sentence_nothing_written(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    r = invoke(*([*args, "--plot", str(tmp_path / "p.png")] if args[0] == "simulate" else args))
    assert r.exit_code == 2, r.output
    assert message in r.output
    error_lines = [line for line in r.output.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1
    assert list(tmp_path.iterdir()) == []


def test_case_report_refuses_a_missing_folder(tmp_path):
    r = invoke("case-report", "--out-dir", str(tmp_path / "nope"))
    assert r.exit_code == 2 and "does not exist" in r.output


def test_an_output_path_that_is_a_folder_is_refused_before_anything_is_written(tmp_path):
    (tmp_path / "report.html").mkdir()
    r = invoke("simulate", "20 mg/h IV for 5 d", "--weight", "80", "--out", str(tmp_path / "r.csv"),
               "--report", str(tmp_path / "report.html"))
    assert r.exit_code == 2 and "is a folder" in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]
