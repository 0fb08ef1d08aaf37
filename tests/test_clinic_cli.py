"""``ketaplan clinic``: a patient's whole course from the command line, on a SQLite file."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from conftest import invoke_cli

pytestmark = pytest.mark.usefixtures("wide_console")
VERSION = "2026-11-01"


@pytest.fixture
def db(tmp_path, monkeypatch):
    path = tmp_path / "clinic.db"
    monkeypatch.setenv("KETAPLAN_PASSWORD", "admin-password-1")
    monkeypatch.setenv("KETAPLAN_USER", "dr.a")
    r = invoke_cli("clinic", "init", "--db", str(path), "--admin", "admin")
    assert r.exit_code == 0, r.output
    return str(path)


def run(db, *args):
    r = invoke_cli("clinic", *args, "--db", db)
    assert r.exit_code == 0, r.output + r.stderr
    return r.output


def test_a_course_from_consent_to_forecast_export_backup_and_erasure(db, tmp_path):
    assert VERSION in invoke_cli("clinic", "privacy").output
    run(db, "add-patient", "KP-0007", "--birth-year", "1966", "--sex", "male", "--diagnosis", "polyneuropathy",
        "--weight", "80", "--consent-version", VERSION)
    diary = tmp_path / "diary.csv"
    rows = [("2026-01-01", 7), ("2026-01-03", 7), ("2026-01-06", 7)]
    rows += [(str(pd.Timestamp("2026-01-12") + pd.Timedelta(weeks=w))[:10], v)
             for w, v in zip(range(1, 14), [2, 2, 2, 2, 2, 2, 2, 3, 3, 4, 5, 6, 7], strict=True)]
    pd.DataFrame(rows, columns=["date", "nrs"]).to_csv(diary, index=False)
    out = run(db, "plan-course", "KP-0007", "20 mg/h IV for 5 d", "--start", "2026-01-07 09:00")
    assert "planned course 1" in out
    run(db, "record-infusion", "KP-0007", "1", "--start", "2026-01-07 09:00", "--end", "2026-01-12 09:00", "--rate",
        "20 mg/h")
    assert "imported 16" in run(db, "import-diary", "KP-0007", str(diary))
    run(db, "add-level", "KP-0007", "--at", "2026-01-08 09:00", "--value", "160 ng/mL")
    run(db, "add-lab", "KP-0007", "--at", "2026-01-10", "--test", "ALT", "--value", "35", "--uln", "40")
    run(db, "side-effect", "KP-0007", "--at", "2026-01-07 12:00", "--kind", "dizziness", "--grade", "1")
    run(db, "note", "KP-0007", "tolerated well")
    shown = run(db, "show", "KP-0007")
    assert "next course due 2026-0" in shown and "polyneuropathy" in shown
    assert "16 pain diary entries" in shown and "(voided)" not in shown
    due = shown.split("next course due ")[1][:10]
    assert "2026-03-23" <= due <= "2026-04-06"  # 10-12 weeks after 2026-01-12
    assert "KP-0007" in run(db, "list")
    exported = tmp_path / "kp.json"
    run(db, "export", "KP-0007", "--out", str(exported))
    record = json.loads(exported.read_text())
    assert len(record["pain_diary"]) == 16 and record["levels"][0]["value_ng_ml"] == 160
    run(db, "export", "KP-0007", "--out", str(tmp_path / "csv"))
    assert (tmp_path / "csv" / "infusions.csv").is_file()
    backup = tmp_path / "clinic.json.gz"
    run(db, "backup", "--out", str(backup))
    assert "erased" in run(db, "erase", "KP-0007", "--yes")
    assert "KP-0007" not in run(db, "list")
    fresh = str(tmp_path / "restored.db")
    assert invoke_cli("clinic", "init", "--db", fresh).exit_code == 0
    run(fresh, "restore", str(backup))
    assert "next course due" in run(fresh, "show", "KP-0007")


@pytest.mark.parametrize(("args", "message"), [
    (["add-patient", "KP-1", "--birth-year", "1966", "--sex", "male", "--diagnosis", "x", "--weight", "80",
      "--consent-version", "1999-01-01"], "consent: got '1999-01-01'"),
    (["show", "KP-404"], "patient: got 'KP-404'"),
    (["erase", "KP-404"], "--yes"),
    (["record-infusion", "KP-404", "1", "--start", "2026-01-01", "--end", "2026-01-02", "--rate", "20 mg"], "--rate"),
    (["backup", "--out", "x.zip"], "--out"),
])
def test_bad_input_is_one_sentence(db, args, message):
    r = invoke_cli("clinic", *args, "--db", db)
    assert r.exit_code == 2, r.output
    assert message in r.stderr and r.stderr.startswith("error: ")


def test_an_uninitialised_database_is_refused(tmp_path):
    r = invoke_cli("clinic", "list", "--db", str(tmp_path / "empty.db"))
    assert r.exit_code == 2 and "ketaplan clinic init" in r.stderr


def test_a_recorded_infusion_at_an_unusual_rate_is_kept_and_pointed_out(db):
    """What was given is recorded as given; a rate far below any analgesic one (ug/h typed?) is flagged."""
    run(db, "add-patient", "KP-0008", "--birth-year", "1970", "--sex", "female", "--diagnosis", "CRPS",
        "--weight", "70", "--consent-version", VERSION)
    run(db, "plan-course", "KP-0008", "20 mg/h IV for 5 d", "--start", "2026-02-02 09:00")
    usual = run(db, "record-infusion", "KP-0008", "1", "--start", "2026-02-02 09:00", "--end", "2026-02-03 09:00",
                "--rate", "20 mg/h")
    assert "WARNING" not in usual
    slip = run(db, "record-infusion", "KP-0008", "1", "--start", "2026-02-03 09:00", "--end", "2026-02-04 09:00",
               "--rate", "20 mcg/h")
    assert "recorded 0.02 mg/h" in slip and "WARNING" in slip and "far below any analgesic rate" in slip


def test_show_leaves_voided_entries_out_of_its_counts_and_marks_them(db):
    from ketaplan.course import store
    from ketaplan.course.corrections import void_entry
    from ketaplan.course.db import make_engine, transaction

    run(db, "add-patient", "KP-0008", "--birth-year", "1970", "--sex", "female", "--diagnosis", "CRPS",
        "--weight", "60", "--consent-version", VERSION)
    run(db, "plan-course", "KP-0008", "20 mg/h IV for 5 d", "--start", "2026-01-07 09:00")
    run(db, "record-infusion", "KP-0008", "1", "--start", "2026-01-07 09:00", "--end", "2026-01-08 09:00", "--rate",
        "20 mg/h")
    run(db, "record-infusion", "KP-0008", "1", "--start", "2026-01-08 09:00", "--end", "2026-01-09 09:00", "--rate",
        "30 mg/h")
    engine = make_engine(db)
    with transaction(engine) as s:
        p = store.get_patient(s, "KP-0008")
        add = [store.add_pain(s, "dr.a", p, store.now().replace(microsecond=0) - pd.Timedelta(days=d), 5)
               for d in (1, 2)]
        s.flush()
        void_entry(s, "dr.a", p, "pain_diary", add[0].id, "wrong patient")
        void_entry(s, "dr.a", p, "infusions", p.courses[0].infusions[1].id, "typed in the wrong record")
    engine.dispose()
    shown = run(db, "show", "KP-0008")
    assert "1 pain diary entries" in shown and "30 mg/h (voided)" in shown
    assert " 480 " in shown  # mg given: the voided 720 mg left out
