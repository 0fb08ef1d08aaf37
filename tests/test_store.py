"""The clinic record on SQLite and PostgreSQL: checks, transactions, consent, export, erasure, audit, backup."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pandas as pd
import pytest
from sqlalchemy import func, select

from conftest import fresh_engine
from ketaplan.course import store
from ketaplan.course.alerts import patient_alerts
from ketaplan.course.backup import backup, restore
from ketaplan.course.db import transaction
from ketaplan.course.forecast import cached_forecast
from ketaplan.course.schema import AuditEntry, Base, ForecastCache, Infusion, PainEntry, Patient, User
from ketaplan.course.users import MAX_FAILURES, add_user, authenticate, change_password
from ketaplan.errors import InputError

VERSION = store.privacy_statement()[0]
T0 = datetime(2026, 1, 5, 9, 0)


def new_patient(s, code="KP-0001", **kw):
    args = {"birth_year": 1966, "sex": "male", "diagnosis": "axonal polyneuropathy", "weight_kg": 80.0,
            "consent_version": VERSION, "baseline_pain": 7.0} | kw
    return store.add_patient(s, "dr.a", code, **args)


def count(engine, model) -> int:
    with transaction(engine) as s:
        return s.scalar(select(func.count()).select_from(model))


def test_a_patient_needs_the_current_consent_and_a_refusal_writes_nothing(clinic_engine):
    with pytest.raises(InputError, match="privacy statement"), transaction(clinic_engine) as s:
        new_patient(s, consent_version="2020-01-01")
    for bad, message in (({"sex": "x"}, "^sex"), ({"birth_year": 1800}, "^birth year"),
                         ({"weight_kg": 4000.0}, "^weight"), ({"baseline_pain": 12.0}, "^baseline pain")):
        with pytest.raises(InputError, match=message), transaction(clinic_engine) as s:
            new_patient(s, **bad)
    assert count(clinic_engine, Patient) == 0 and count(clinic_engine, AuditEntry) == 0
    with transaction(clinic_engine) as s:
        new_patient(s)
    with pytest.raises(InputError, match="already in use"), transaction(clinic_engine) as s:
        new_patient(s)
    assert count(clinic_engine, Patient) == 1


def test_courses_with_rate_changes_and_interruptions(clinic_engine):
    with transaction(clinic_engine) as s:
        p = new_patient(s)
        course, findings = store.plan_course(s, "dr.a", p, "20 mg/h IV for 5 d", T0)
        assert course.number == 1 and any(f.code == "liver_monitoring" for f in findings)
        store.record_infusion(s, "dr.a", p, course, T0, T0 + timedelta(hours=24), 20)
        store.record_infusion(s, "dr.a", p, course, T0 + timedelta(hours=24), T0 + timedelta(hours=48), 25,
                              note="rate increased for pain")
        store.record_infusion(s, "dr.a", p, course, T0 + timedelta(hours=50), T0 + timedelta(hours=120), 25,
                              note="interrupted 2 h: line occlusion")
        with pytest.raises(InputError, match="overlaps"):
            store.record_infusion(s, "dr.a", p, course, T0 + timedelta(hours=10), T0 + timedelta(hours=12), 20)
    with transaction(clinic_engine) as s:
        p = store.get_patient(s, "KP-0001")
        segments = p.courses[0].infusions
        assert [i.rate_mg_h for i in segments] == [20, 25, 25]
        assert sum(i.rate_mg_h * (i.end - i.start).total_seconds() / 3600 for i in segments) == 20 * 24 + 25 * 94
        assert p.courses[0].status == "done"


def test_a_unit_slip_in_a_planned_course_is_refused(clinic_engine):
    with transaction(clinic_engine) as s:
        p = new_patient(s)
        with pytest.raises(InputError, match="refused"):
            store.plan_course(s, "dr.a", p, "20 mg/min IV for 5 d", T0)


def test_withdrawn_consent_blocks_new_data_until_consent_is_given_again(clinic_engine):
    with transaction(clinic_engine) as s:
        p = new_patient(s)
        store.withdraw_consent(s, "dr.a", p)
        with pytest.raises(InputError, match="no valid consent"):
            store.add_pain(s, "dr.a", p, T0, 5)
        store.record_consent(s, "dr.a", p, VERSION)
        store.add_pain(s, "dr.a", p, T0, 5)
    assert count(clinic_engine, PainEntry) == 1


def test_diary_import_is_all_or_nothing_and_names_the_bad_row(clinic_engine):
    with transaction(clinic_engine) as s:
        new_patient(s)
    good = pd.DataFrame({"date": ["2026-01-20", "2026-01-27"], "time": ["08:00", "08:00"], "nrs": ["3", "4"]})
    bad = pd.DataFrame({"date": ["2026-02-03", "2026-02-10", "2026-02-17"], "nrs": ["3", "11", "4"]})
    with transaction(clinic_engine) as s:
        assert store.import_diary(s, "dr.a", store.get_patient(s, "KP-0001"), good) == 2
    with pytest.raises(InputError, match=r"^diary row 3, nrs: got '11'"), transaction(clinic_engine) as s:
        store.import_diary(s, "dr.a", store.get_patient(s, "KP-0001"), bad)
    assert count(clinic_engine, PainEntry) == 2
    ambiguous = pd.DataFrame({"date": ["12/01/2026"], "nrs": ["3"]})  # 1 December or 12 January: not guessed
    with pytest.raises(InputError, match=r"^diary row 2, date: got '12/01/2026'"), transaction(clinic_engine) as s:
        store.import_diary(s, "dr.a", store.get_patient(s, "KP-0001"), ambiguous)
    assert count(clinic_engine, PainEntry) == 2


def test_export_holds_everything_and_erasure_leaves_no_personal_data(clinic_engine):
    with transaction(clinic_engine) as s:
        p = new_patient(s, code="KP-ERASE", diagnosis="rare neuropathy of the left foot")
        c, _ = store.plan_course(s, "dr.a", p, "20 mg/h IV for 5 d", T0)
        store.record_infusion(s, "dr.a", p, c, T0, T0 + timedelta(days=5), 20)
        store.add_level(s, "dr.a", p, T0 + timedelta(hours=24), "ketamine", 150.0)
        store.add_level(s, "dr.a", p, T0 + timedelta(hours=140), "ketamine", None, blq=True, lloq_ng_ml=5.0)
        store.add_pain(s, "dr.a", p, T0 + timedelta(days=12), 3)
        store.add_lab(s, "dr.a", p, T0 + timedelta(days=3), "alt", 45, 40)
        store.add_side_effect(s, "dr.a", p, T0 + timedelta(days=1), "dizziness", 1)
        store.add_note(s, "dr.a", p, "tolerated well")
    with transaction(clinic_engine) as s:
        cached_forecast(s, store.get_patient(s, "KP-ERASE"))
    with transaction(clinic_engine) as s:
        record = store.export_patient(s, "dr.a", store.get_patient(s, "KP-ERASE"))
    text = json.dumps(record)
    assert "rare neuropathy" in text and "dizziness" in text and "tolerated well" in text
    assert len(record["levels"]) == 2 and record["labs"][0]["test"] == "ALT"
    assert len(record["courses"][0]["infusions"]) == 1
    tables = store.export_tables(record)
    assert set(tables) >= {"patient", "weights", "consents", "levels", "pain_diary", "labs", "courses", "infusions"}
    with transaction(clinic_engine) as s:
        reference = store.erase_patient(s, "dr.b", store.get_patient(s, "KP-ERASE"))
    with transaction(clinic_engine) as s:
        for table in Base.metadata.sorted_tables:
            if table.name in ("audit", "users", "sessions", "appointment_requests", "alembic_version"):
                continue
            assert s.execute(select(func.count()).select_from(table)).scalar() == 0, table.name
        audit = s.scalars(select(AuditEntry)).all()
        dumped = " ".join(f"{a.actor} {a.action} {a.entity} {a.detail}" for a in audit)
        assert "KP-ERASE" not in dumped and "neuropathy" not in dumped and "tolerated" not in dumped
        assert any(a.action == "erase" and reference in a.detail and a.entity_id is None for a in audit)


def test_backup_and_restore_across_backends(tmp_path):
    """SQLite -> PostgreSQL -> SQLite gives the same rows."""
    src = fresh_engine("sqlite", tmp_path / "a")
    with transaction(src) as s:
        p = new_patient(s)
        c, _ = store.plan_course(s, "dr.a", p, "20 mg/h IV for 5 d", T0)
        store.record_infusion(s, "dr.a", p, c, T0, T0 + timedelta(days=5), 20)
        store.add_pain(s, "dr.a", p, T0 + timedelta(days=9), 2)
        add_user(s, None, "admin", "admin-password-1", "admin")
    first = tmp_path / "one.json.gz"
    counts = backup(src, first)
    pg = fresh_engine("postgresql", tmp_path)
    assert restore(pg, first) == counts
    with transaction(pg) as s:  # the id sequences moved on: a new row gets a new id
        store.add_pain(s, "dr.a", store.get_patient(s, "KP-0001"), T0 + timedelta(days=20), 3)
    second = tmp_path / "two.json.gz"
    backup(pg, second)
    back = fresh_engine("sqlite", tmp_path / "b")
    restore(back, second)
    with transaction(back) as s:
        assert [e.nrs for e in s.scalars(select(PainEntry).order_by(PainEntry.id))] == [2, 3]
        assert s.scalar(select(User.username)) == "admin"
    with pytest.raises(InputError, match="is not empty"):
        restore(back, second)


def test_users_have_argon2_hashes_lock_out_and_change_only_their_own_password(clinic_engine):
    with transaction(clinic_engine) as s:
        with pytest.raises(InputError, match="first user must be an admin"):
            add_user(s, None, "dr.a", "clinic-password-1", "clinician")
        admin = add_user(s, None, "admin", "admin-password-1", "admin")
        a = add_user(s, admin, "dr.a", "clinic-password-1", "clinician")
        add_user(s, admin, "dr.b", "clinic-password-1", "clinician")
        assert a.password_hash.startswith("$argon2id$")
        with pytest.raises(InputError, match="only an admin"):
            add_user(s, a, "dr.c", "clinic-password-1", "clinician")
    for _ in range(MAX_FAILURES):
        with transaction(clinic_engine) as s:
            assert authenticate(s, "dr.a", "wrong-password-0") is None
    with transaction(clinic_engine) as s:
        assert authenticate(s, "dr.a", "clinic-password-1") is None  # locked, even with the right password
        assert authenticate(s, "nobody", "clinic-password-1") is None
    with transaction(clinic_engine) as s:
        a = s.scalar(select(User).where(User.username == "dr.a"))
        with pytest.raises(InputError, match="only their own"):
            change_password(s, a, "dr.b", "new-password-99", None)
        with pytest.raises(InputError, match="current password"):
            change_password(s, a, "dr.a", "new-password-99", "not-it")
        change_password(s, a, "dr.a", "new-password-99", "clinic-password-1")
        admin = s.scalar(select(User).where(User.username == "admin"))
        change_password(s, admin, "dr.b", "reset-password-1", None)
    with transaction(clinic_engine) as s:
        assert authenticate(s, "dr.a", "new-password-99").username == "dr.a"  # the change also lifted the lock
        assert authenticate(s, "dr.b", "reset-password-1").username == "dr.b"


def seed_case_record(s):
    """Baseline diary, one 5-day course, and a weekly diary showing relief for about 11 weeks."""
    p = new_patient(s, code="KP-SEED", baseline_pain=None)
    for d, v in enumerate([7, 7, 8, 7, 6, 7, 7]):
        store.add_pain(s, "dr.a", p, T0 + timedelta(days=d), v)
    start = T0 + timedelta(days=7)
    c, _ = store.plan_course(s, "dr.a", p, "20 mg/h IV for 5 d", start)
    store.record_infusion(s, "dr.a", p, c, start, start + timedelta(days=5), 20)
    end = start + timedelta(days=5)
    for w, v in zip(range(1, 14), [2, 2, 2, 2, 2, 2, 2, 3, 3, 4, 5, 6, 7], strict=True):
        store.add_pain(s, "dr.a", p, end + timedelta(weeks=w), v)
    return p, end


def test_the_forecast_from_the_record_matches_the_diary_and_is_cached(tmp_path):
    engine = fresh_engine("sqlite", tmp_path)
    with transaction(engine) as s:
        _, end = seed_case_record(s)
    with transaction(engine) as s:
        p = store.get_patient(s, "KP-SEED")
        fc = cached_forecast(s, p)
        assert fc["status"] == "ok"
        due = datetime.fromisoformat(fc["next_due"][1])
        assert timedelta(weeks=10) <= due - end <= timedelta(weeks=12)
        cache = s.get(ForecastCache, p.id)
        assert cache.data_version == p.data_version and cache.next_due == due
    with transaction(engine) as s:
        p = store.get_patient(s, "KP-SEED")
        store.add_pain(s, "dr.a", p, end + timedelta(weeks=14), 7)
    with transaction(engine) as s:
        p = store.get_patient(s, "KP-SEED")
        assert s.get(ForecastCache, p.id).data_version != p.data_version  # stale until recomputed
        cached_forecast(s, p)
        assert s.get(ForecastCache, p.id).data_version == p.data_version


def test_alerts(tmp_path):
    engine = fresh_engine("sqlite", tmp_path)
    with transaction(engine) as s:
        p = new_patient(s)
        today = datetime(2026, 6, 1)
        for k in range(5):  # 5 courses of 2.4 g within the year: above the 10 g review level
            start = today - timedelta(days=300 - 60 * k)
            c, _ = store.plan_course(s, "dr.a", p, "20 mg/h IV for 5 d", start, force=True)
            store.record_infusion(s, "dr.a", p, c, start, start + timedelta(days=5), 20)
        store.add_lab(s, "dr.a", p, today - timedelta(days=20), "ALT", 130, 40)
        store.add_lab(s, "dr.a", p, today - timedelta(days=20), "AST", 50, 40)
        forecast = {"status": "ok", "next_due": [None, (today + timedelta(days=5)).isoformat(), None]}
        alerts = {a.kind: a for a in patient_alerts(s, p, forecast, today)}
    assert alerts["due"].severity == "warning" and "2026-06-06" in alerts["due"].message
    assert alerts["liver"].severity == "danger" and "ALT 130" in alerts["liver"].message
    assert "AST" not in alerts["liver"].message
    assert alerts["dose"].message.startswith("12.0 g in the last 12 months")
    assert alerts["diary"].message == "no pain diary entry ever"


def test_a_failed_write_in_a_transaction_leaves_nothing(clinic_engine):
    with pytest.raises(InputError), transaction(clinic_engine) as s:
        p = new_patient(s)
        store.add_pain(s, "dr.a", p, T0, 4)
        store.add_pain(s, "dr.a", p, T0, 14)
    assert count(clinic_engine, Patient) == 0 and count(clinic_engine, PainEntry) == 0
    assert count(clinic_engine, Infusion) == 0


def test_a_database_conflict_is_one_sentence(clinic_engine):
    with transaction(clinic_engine) as s:
        new_patient(s)
    with pytest.raises(InputError, match="conflicts with another one"), transaction(clinic_engine) as s:
        s.add(Patient(code="KP-0001", birth_year=1970, sex="female", diagnosis="x", created_at=store.now(),
                      data_version=0))  # bypasses the store's check, as a parallel request would


def test_erasure_unlinks_earlier_audit_rows(clinic_engine):
    with transaction(clinic_engine) as s:
        p = new_patient(s, code="KP-GONE")
        store.add_pain(s, "dr.a", p, T0, 4)
        pid = p.id
    with transaction(clinic_engine) as s:
        store.erase_patient(s, "dr.a", store.get_patient(s, "KP-GONE"))
    with transaction(clinic_engine) as s:
        linked = s.scalars(select(AuditEntry).where(AuditEntry.entity == "patients", AuditEntry.entity_id == pid))
        assert linked.all() == []
        assert s.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.entity_id.is_(None))) >= 3


def test_purging_old_appointment_requests(clinic_engine):
    with transaction(clinic_engine) as s:
        r = store.add_appointment_request(s, "C. Person", "c@example.org", "", True, VERSION)
        r.created_at = store.now() - timedelta(days=100)
        store.add_appointment_request(s, "D. Person", "d@example.org", "", True, VERSION)
    with transaction(clinic_engine) as s:
        assert store.purge_requests(s, "dr.a", 90) == 1
