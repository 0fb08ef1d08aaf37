"""Output that reads anywhere: every command's tables fit 80 columns whole, and use 160 when they have them.

Each command runs in-process with the console 80 or 160 columns wide (as ``COLUMNS=80 ketaplan ... | cat``
gives); no line may be wider, no cell may be cut short with "…", and the key headers and values must
appear whole. ``--json`` documents carry no float noise. A real pipe is checked once in a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import invoke_cli
from ketaplan import Patient, predict
from ketaplan.cli.common import console, json_number, json_ready
from ketaplan.models.library import DEFAULT_MODELS
from ketaplan.planning.regimen_search import search_regimens
from ketaplan.regimen.events import DoseEvent, Regimen

SEED = "20 mg/h IV for 5 d every 11 weeks x 2 starting 2026-12-01 09:00"
WEIGHT_BASED = "0.35 mg/kg/h IV for 4 h daily x 10 days (max 25 mg/h)"
KAMP_CL = 79.0
"""Racemic ketamine clearance (L/h/70 kg; Kamp 2020 weighted mean), linear in weight in the default model."""
KOPPEL_RATIO = 1.0 / 1.2
"""Norketamine / ketamine at steady state (Köppel): the default norketamine clearance is KAMP_CL / KOPPEL_RATIO at
70 kg, scaled with weight^0.75 (Otto 2021 encoding), and all eliminated ketamine forms norketamine."""


def steady_state(rate_mg_h: float, weight: float) -> tuple[str, str]:
    """Ketamine and norketamine steady state (ng/mL, as printed) of a constant infusion: rate / CL for each."""
    ketamine = rate_mg_h / (KAMP_CL * weight / 70) * 1000
    norketamine = rate_mg_h / (KAMP_CL / KOPPEL_RATIO * (weight / 70) ** 0.75) * 1000
    return f"{ketamine:.1f}", f"{norketamine:.1f}"


@pytest.fixture(params=[80, 160])
def width(request):
    console.width = request.param
    yield request.param
    console.width = None


def run(*args: str) -> str:
    r = invoke_cli(*args)
    assert r.exit_code == 0, r.output
    return r.stdout


def assert_reads(text: str, width: int, *whole: str) -> None:
    """No line wider than ``width``, nothing cut with '…', and each of ``whole`` on one line."""
    too_wide = [line for line in text.splitlines() if len(line) > width]
    assert not too_wide, f"lines wider than {width}:\n" + "\n".join(too_wide)
    assert "…" not in text
    for item in whole:
        assert item in text, f"{item!r} is not shown whole:\n{text}"


def test_simulate_course_table(width):
    text = run("simulate", SEED, "--weight", "80")
    ketamine, norketamine = steady_state(20, 80)  # both reached within the 5 days (Cmax, Css, NK Cmax)
    assert_reads(text, width, "start", "Cmax", "Css", "h>analg", "h>psych", "NK Cmax", "NK AUC", "lasts d",
                 "next due", "2026-12-01 09:00", "2027-02-16 09:00", ketamine, norketamine, "not a prescription")
    assert ("(continued)" in text) == (width == 80)  # stacked parts at 80 columns, one table at 160


def test_case_report_course_table(width, tmp_path):
    text = run("case-report", "--out-dir", str(tmp_path))
    assert_reads(text, width, "Seed case", "Cmax", "next due", "lasts d", "relief", "d1232.0", "10-12 weeks")


def test_headline(width):
    # 80 kg (the command's default); the level at 120 h is the steady state
    assert_reads(run("headline"), width, "ketamine", "norketamine", "ng/mL", steady_state(20, 80)[0])


@pytest.mark.parametrize(("args", "whole"), [
    (["20 mg/h IV for 5 d", "--concentration", "10 mg/mL"],
     ["prescribed", "delivered", "lasts per", "container", "day 6 00:00", "25 h", "Syringe changes"]),
    ([WEIGHT_BASED, "--concentration", "2 mg/mL", "--bag", "500 mL", "--weight", "83", "--start", "2026-12-01 09:00"],
     ["prescribed", "delivered", "weight-based", "2026-12-10 13:00", "capped at 25", "Bag changes", "12.5"]),
])
def test_pump_tables(width, args, whole):
    text = run("pump", *args)
    assert_reads(text, width, *whole)
    assert "-0.00 %" not in text
    assert ("(continued)" in text) == (width == 80)


def test_compare_table(width):
    text = run("compare")
    # racemic IV Cmax: 25 mg over 40 min peaks at the end of the infusion (70 kg, 45 years: the defaults)
    iv = Regimen((DoseEvent(0.0, 25.0, "iv", duration=40 / 60),))
    cmax = predict(DEFAULT_MODELS["racemic_iv_adult"], iv, Patient(70, 45), [40 / 60])["ketamine"].iloc[0]
    assert_reads(text, width, "systemic", "potency-eq.", "psychotomimetic", "norketamine", "s-ketamine",
                 "intranasal", "sublingual", f"{cmax:.1f}")
    assert ("(continued)" in text) == (width == 80)


def test_population_tables(width):
    text = run("population", "20 mg/h IV for 5 d every 11 weeks x 2", "--n", "200")
    assert_reads(text, width, "Probability of target attainment", "Relief kept until the next course", "p50",
                 "relief lasts, course 1 (days)")


def test_search_table(width):
    text = invoke_cli("search", "--rates", "10,20 mg/h", "--durations", "3,5 d", "--intervals", "6,11 weeks",
                      "--n", "100").stdout
    best = search_regimens("10,20 mg/h", "3,5 d", "6,11 weeks", n=100, seed=1).table.iloc[0]
    pta = best["pta"]  # shown with its binomial Monte Carlo standard error, in %
    cell = f"{100 * pta:.1f}±{100 * np.sqrt(pta * (1 - pta) / 100):.1f}"
    assert_reads(text, width, "mg/h", "PTA %", "relief d", cell)


def test_fit_table(width, tmp_path):
    model = tmp_path / "model.yaml"
    model.write_text(yaml.safe_dump({"advan": 1, "CL": 5.0, "V": 20.0, "omega": {"CL": 0.09, "V": 0.04},
                                     "sigma": {"proportional": 0.01}}))
    rows = [[1, 0, 100, 1, 1, "."]] + [[1, t, ".", 0, 0, c] for t, c in ((1, 3.9), (4, 1.9), (8, 0.7))]
    data = tmp_path / "data.csv"
    pd.DataFrame(rows, columns=["ID", "TIME", "AMT", "EVID", "MDV", "DV"]).to_csv(data, index=False)
    text = run("fit", str(data), "--model", str(model))
    assert_reads(text, width, "individual estimates (MAP)", "population", "90 % interval", "shrinkage")


def test_models_list_and_show(width):
    listed = run("models", "list")
    assert_reads(listed, width, "domino_racemic_3cmt_nk", "olofsen_2012_norketamine_pd", "population")
    shown = run("models", "show", "domino_racemic_3cmt_nk")
    assert_reads(shown, width, "Parameters", "confidence", "source", "V central", "half-lives", "CL_NK")


def test_clinic_show_and_list(width, tmp_path, monkeypatch):
    db = str(tmp_path / "clinic.db")
    monkeypatch.setenv("KETAPLAN_PASSWORD", "admin-password-1")
    monkeypatch.setenv("KETAPLAN_USER", "dr.a")
    version = run("clinic", "privacy").split()[1]
    run("clinic", "init", "--db", db, "--admin", "admin")
    run("clinic", "add-patient", "KP-0007", "--birth-year", "1966", "--sex", "male", "--diagnosis",
        "chronic idiopathic axonal polyneuropathy", "--weight", "80", "--consent-version", version, "--db", db)
    planned = run("clinic", "plan-course", "KP-0007", "20 mg/h IV for 5 d", "--start", "2026-01-07 09:00", "--db", db)
    for start, end, rate in (("2026-01-07 09:00", "2026-01-09 09:00", "20 mg/h"),
                             ("2026-01-09 10:00", "2026-01-12 09:00", "15 mg/h")):
        run("clinic", "record-infusion", "KP-0007", "1", "--start", start, "--end", end, "--rate", rate, "--db", db)
    shown = run("clinic", "show", "KP-0007", "--db", db)
    assert_reads(planned, width, "planned course 1")
    assert_reads(shown, width, "Courses", "status", "planned", "2026-01-07 09:00-01-09 09:00 20 mg/h",
                 "2026-01-09 10:00-01-12 09:00 15 mg/h")
    assert_reads(run("clinic", "list", "--db", db), width, "KP-0007", "next course", "alerts")


def test_a_real_pipe_at_80_and_160_columns():
    for columns in (80, 160):
        done = subprocess.run([sys.executable, "-m", "ketaplan.cli", "pump", "20 mg/h IV for 5 d", "--concentration",
                               "10 mg/mL"], capture_output=True, text=True, timeout=120,
                              env={**os.environ, "COLUMNS": str(columns)}, check=True)
        assert_reads(done.stdout, columns, "prescribed", "delivered", "lasts per", "container")


def test_json_numbers_carry_no_float_noise():
    assert json_number(0.9999999999999999) == 1.0 and json_number(49.99999999999999) == 50.0
    assert json_number(172.5309058924999) == 172.530905892 and json_number(float("nan")) is None
    assert json_ready({"a": [1, 2.0000000000000004, True, None, "x"], "b": float("inf")}) == \
        {"a": [1, 2.0, True, None, "x"], "b": None}


def test_every_json_document_is_rounded(tmp_path):
    pump = run("pump", "20 mg/h IV for 5 d", "--concentration", "10 mg/mL", "--json")
    assert "99999" not in pump and "00000000" not in pump
    data = json.loads(pump)
    assert data["concentration_mg_per_ml"] == 10.0 and data["segments"][0]["delivered_mg_h"] == 20.0
    assert all(c["drug_mg"] == 500.0 for c in data["container_changes"])
    documents = [run("simulate", SEED, "--weight", "80", "--json"), run("compare", "--json"),
                 run("models", "show", "domino_racemic_3cmt_nk", "--json"),
                 run("population", "20 mg/h IV for 5 d", "--n", "50", "--json")]
    for text in documents:
        numbers = [float(t) for t in _number_tokens(json.loads(text))]
        assert all(float(f"{x:.12g}") == x for x in numbers)


def _number_tokens(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _number_tokens(v)
    elif isinstance(value, list):
        for v in value:
            yield from _number_tokens(v)
    elif isinstance(value, float):
        yield value
