"""Bad input gets one clear sentence on stderr, exit code 2, and nothing written: the cases that used to slip.

A zero repeat interval, an impossible clock time, a negative dose taken for an option, ``--set`` on a model
with nothing settable, an empty route list, a covariate file with only a header, and a BLQ level with a value.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import invoke_cli
from ketaplan.cli import negative_arguments_last
from ketaplan.errors import InputError
from ketaplan.regimen.text import parse_regimen

VERSION_ARGS = ("--birth-year", "1966", "--sex", "male", "--diagnosis", "polyneuropathy", "--weight", "80")


def refused(*args: str) -> str:
    """The one sentence on stderr of a refused command (exit code 2, nothing on stdout)."""
    r = invoke_cli(*args)
    assert r.exit_code == 2, r.output
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


@pytest.mark.parametrize(("text", "word"), [("50 mg PO q0h for 14 d", "word 4 'q0h'"),
                                            ("50 mg PO q0.0h for 14 d", "word 4 'q0.0h'"),
                                            ("50 mg PO every 0 h for 14 d", "word 5 '0'")])
def test_a_zero_repeat_interval_is_one_sentence(text, word):
    with pytest.raises(InputError, match="repeat interval longer than 0 h") as caught:
        parse_regimen(text)
    assert word in str(caught.value) and "ZeroDivision" not in str(caught.value)
    assert "repeat interval longer than 0 h" in refused("simulate", text, "--weight", "80")


def test_an_impossible_clock_time_is_named_not_the_date(tmp_path):
    sentence = refused("simulate", "20 mg/h IV for 5 d starting 2026-12-01 25:00", "--weight", "80")
    assert "word 9 '25:00'" in sentence and "clock time" in sentence and "'2026-12-01' is not" not in sentence
    sentence = refused("simulate", "20 mg/h IV for 5 d", "--weight", "80", "--start", "2026-12-01 25:00")
    assert "the clock time '25:00' is not a time from 00:00 to 23:59" in sentence
    assert "a date as YYYY-MM-DD" in refused("pump", "20 mg/h IV for 5 d", "--concentration", "1 mg/mL", "--start",
                                             "2026-13-01 09:00")
    assert parse_regimen("20 mg/h IV for 5 d starting 2026-12-01 9:30").start.strftime("%H:%M") == "09:30"


@pytest.mark.parametrize(("text", "sentence"), [
    ("-20 mg/h IV for 5 d", "word 1 '-20': a dose cannot be negative"),
    ("-20mg/h IV for 5 d", "word 1 '-20mg/h': a dose cannot be negative"),
    ("20 mg/h IV for -5 d", "word 5 '-5': a duration cannot be negative"),
])
def test_negative_doses_and_durations_are_refused(text, sentence):
    with pytest.raises(InputError, match=sentence):
        parse_regimen(text)


def test_a_negative_dose_on_the_command_line_reaches_the_regimen_check():
    done = subprocess.run([sys.executable, "-m", "ketaplan.cli", "simulate", "-20 mg/h IV for 5 d", "--weight", "80"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip() == ("error: regimen: got '-20 mg/h IV for 5 d'; word 1 '-20': a dose cannot be "
                                   "negative.")


@pytest.mark.parametrize(("args", "expected"), [
    (["simulate", "-20 mg/h IV", "--weight", "80"], ["simulate", "--weight", "80", "--", "-20 mg/h IV"]),
    (["simulate", "--weight", "80", "--force", "-20 mg/h IV", "--out=x.csv"],
     ["simulate", "--weight", "80", "--force", "--out=x.csv", "--", "-20 mg/h IV"]),
    (["simulate", "20 mg/h IV", "--weight", "-80"], ["simulate", "--weight", "-80", "--", "20 mg/h IV"]),
    (["clinic", "weight", "KP-1", "-80", "--db", "c.db"], ["clinic", "weight", "--db", "c.db", "--", "KP-1", "-80"]),
    (["simulate", "-20 mg/h IV", "--wieght", "80"], ["simulate", "--wieght", "--", "-20 mg/h IV", "80"]),
    (["simulate", "x", "--", "-20"], ["simulate", "x", "--", "-20"]),
])
def test_positional_words_with_a_minus_go_after_the_double_dash(args, expected):
    assert negative_arguments_last(args) == expected


def test_set_on_a_model_with_nothing_settable_says_so():
    sentence = refused("simulate", "20 mg/h IV for 5 d", "--weight", "80", "--set", "X=1")
    assert "has no such parameter, and none of its parameters can be set" in sentence
    assert "user-settable ones: ." not in sentence
    topical = refused("simulate", "10% cream 1 g topical tid for 14 d", "--weight", "80", "--set", "X=1")
    assert "user-settable ones: F_TOPICAL" in topical


@pytest.mark.parametrize(("args", "sentence"), [
    (["--routes", ""], "error: --routes: got ''; give at least one route, for example iv,oral."),
    (["--routes", " , "], "error: --routes: got ''; give at least one route, for example iv,oral."),
    (["--forms", ""], "error: --forms: got ''; give at least one form: racemic, s-ketamine or both."),
])
def test_compare_refuses_an_empty_list(args, sentence, tmp_path):
    assert refused("compare", *args, "--plot", str(tmp_path / "c.png")) == sentence
    assert list(tmp_path.iterdir()) == []


def test_a_covariate_file_with_only_a_header_is_one_sentence(tmp_path):
    cov, out = tmp_path / "cov.csv", tmp_path / "s.csv"
    cov.write_text("weight,sex\n")
    sentence = refused("population", "20 mg/h IV for 5 d", "--n", "10", "--covariates", str(cov), "--out", str(out))
    assert sentence == f"error: --covariates: got '{cov}'; the file has a header but no patients; give one row per " \
                       "patient."
    assert not out.exists()


def test_a_blq_level_with_a_value_is_refused_and_not_recorded(tmp_path, monkeypatch):
    db = str(tmp_path / "clinic.db")
    monkeypatch.setenv("KETAPLAN_PASSWORD", "admin-password-1")
    monkeypatch.setenv("KETAPLAN_USER", "dr.a")
    version = invoke_cli("clinic", "privacy").stdout.split()[1]
    assert invoke_cli("clinic", "init", "--db", db, "--admin", "admin").exit_code == 0
    assert invoke_cli("clinic", "add-patient", "KP-1", *VERSION_ARGS, "--consent-version", version,
                      "--db", db).exit_code == 0
    sentence = refused("clinic", "add-level", "KP-1", "--at", "2026-01-08 09:00", "--blq", "--value", "160 ng/mL",
                       "--db", db)
    assert "a level below the limit of quantification (--blq) has no value; give the limit with --lloq" in sentence
    assert "clock time '25:00'" in refused("clinic", "add-level", "KP-1", "--at", "2026-01-08 25:00", "--value",
                                           "160 ng/mL", "--db", db)
    export = tmp_path / "kp.json"
    assert invoke_cli("clinic", "export", "KP-1", "--out", str(export), "--db", db).exit_code == 0
    assert json.loads(export.read_text())["levels"] == []


def test_the_store_refuses_a_blq_level_with_a_value_too(clinic_engine):
    from datetime import datetime

    from ketaplan.course import store
    from ketaplan.course.db import transaction

    with transaction(clinic_engine) as s:
        store.add_patient(s, "dr.a", "KP-1", 1966, "male", "polyneuropathy", 80.0, store.privacy_statement()[0])
    with pytest.raises(InputError, match=r"^level: got 160; .* has no value; give the limit"), \
            transaction(clinic_engine) as s:
        store.add_level(s, "dr.a", store.get_patient(s, "KP-1"), datetime(2026, 1, 8, 9), "ketamine", 160.0,
                        blq=True, lloq_ng_ml=5.0)


@pytest.mark.parametrize(("command", "words"), [
    (["estimate"], "pain scores (DVID 1, 2, 3) refit the relief model"),
    (["clinic", "learn"], "until an admin accepts it"),
])
def test_help_paragraphs_flow_rather_than_break_where_the_source_does(command, words):
    result = subprocess.run([sys.executable, "-m", "ketaplan.cli", *command, "--help"], capture_output=True, text=True,
                            env={"COLUMNS": "80", "PATH": "/usr/bin:/bin", "PYTHONPATH": ":".join(sys.path)})
    assert result.returncode == 0, result.stderr
    lines = [line.strip() for line in result.stdout.splitlines()]
    assert any(words in line for line in lines), result.stdout
