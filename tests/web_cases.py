"""Bad input for every form of the dashboard, shared by the form tests in both languages.

Each case: (form address, fields, English words the refusal must contain, the field whose typed value the page
must keep or None). Codes and dates are those of the fixture in test_web_forms.py.
"""

from __future__ import annotations

from datetime import datetime, timedelta

FUTURE = (datetime.now() + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M")
SOON = (datetime.now() + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")
PAST = "2026-02-01T09:00"
P = "/patients/KP-0001"
PATIENT = {"code": "KP-0009", "birth_year": "1970", "sex": "female", "weight": "60", "diagnosis": "CRPS",
           "consent": "yes"}

CASES = [
    ("/patients", {**PATIENT, "code": "КР-0001"}, "letters A-Z", "code"),
    ("/patients", {**PATIENT, "code": "kp-0001"}, "already in use", "code"),
    ("/patients", {**PATIENT, "code": "KP-０００1"}, "already in use", "code"),
    ("/patients", {**PATIENT, "code": "KP-٠٠٠١"}, "letters A-Z", "code"),
    ("/patients", {**PATIENT, "birth_year": "19x0"}, "a whole number", "birth_year"),
    ("/patients", {**PATIENT, "birth_year": "2099"}, "a year between", "birth_year"),
    ("/patients", {**PATIENT, "weight": ""}, "fill in every required field", "diagnosis"),
    ("/patients", {**PATIENT, "diagnosis": "dr \u202eevil"}, "direction-changing", "birth_year"),
    ("/patients", {**PATIENT, "diagnosis": "x" * 300}, "at most 200 characters", "diagnosis"),
    ("/patients", {**PATIENT, "consent": ""}, "privacy statement", "diagnosis"),
    ("/patients", {**PATIENT, "baseline_pain": "11"}, "NRS 0-10", "baseline_pain"),
    (f"{P}/diary", {"recorded_at": PAST, "nrs": "12"}, "a whole number from 0 to 10", "nrs"),
    (f"{P}/diary", {"recorded_at": PAST, "nrs": "x"}, "a number", "nrs"),
    (f"{P}/diary", {"recorded_at": SOON, "nrs": "3"}, "only plans can lie in the future", "nrs"),
    (f"{P}/diary", {"recorded_at": "0026-03-01T08:00", "nrs": "3"}, "a date from 1950-01-01 on", "nrs"),
    (f"{P}/diary", {"recorded_at": "", "nrs": "3"}, "a date and time such as", "nrs"),
    (f"{P}/infusion", {"course": "1", "start": PAST, "end": "2026-02-02T09:00", "rate": "20 mg"},
     "an infusion rate such as", "rate"),
    (f"{P}/infusion", {"course": "1", "start": PAST, "end": "2026-02-02T09:00", "rate": "1000 mg/h"},
     "a unit slip is likely", "rate"),
    (f"{P}/infusion", {"course": "1", "start": PAST, "end": "2026-02-02T09:00", "rate": "1000 mg/h",
                       "confirm": "yes", "reason": ""}, "some text", "rate"),
    (f"{P}/infusion", {"course": "9", "start": PAST, "end": "2026-02-02T09:00", "rate": "20 mg/h"},
     "this patient's courses are", "rate"),
    (f"{P}/infusion", {"course": "1", "start": PAST, "end": "2026-01-31T09:00", "rate": "20 mg/h"},
     "after the start", "rate"),
    (f"{P}/infusion", {"course": "1", "start": PAST, "end": FUTURE, "rate": "20 mg/h"},
     "only plans can lie in the future", "rate"),
    (f"{P}/infusion", {"course": "1", "start": "2025-01-05T09:00", "end": "2025-03-05T09:00", "rate": "20 mg/h"},
     "within 30 days of the start", "rate"),
    (f"{P}/infusion", {"course": "1", "start": PAST, "end": "2026-02-02T09:00", "rate": "20 mg/h",
                       "note": "a\x07b"}, "control", "note"),
    (f"{P}/level", {"taken_at": PAST, "analyte": "ketamine", "value": "abc"}, "a concentration such as", "value"),
    (f"{P}/level", {"taken_at": PAST, "analyte": "ketamine", "value": "150 ng/mL", "blq": "yes"},
     "has no value", "value"),
    (f"{P}/level", {"taken_at": PAST, "analyte": "ketamine", "blq": "yes"}, "needs the limit", "taken_at"),
    (f"{P}/level", {"taken_at": FUTURE, "analyte": "ketamine", "value": "150 ng/mL"}, "only plans", "value"),
    (f"{P}/level", {"taken_at": PAST, "analyte": "ketamine"}, "a level in ng/mL above 0", "taken_at"),
    (f"{P}/level", {"taken_at": PAST, "analyte": "ketamine", "value": "160 mg/mL"}, "the unit is likely wrong",
     "value"),
    (f"{P}/lab", {"taken_at": PAST, "test": "ALT", "value": "-1", "uln": "40"}, "a value >= 0", "uln"),
    (f"{P}/lab", {"taken_at": PAST, "test": "ALT", "value": "35", "uln": "0"}, "upper limit of normal", "value"),
    (f"{P}/lab", {"taken_at": FUTURE, "test": "ALT", "value": "35", "uln": "40"}, "only plans", "value"),
    (f"{P}/lab", {"taken_at": PAST, "test": "XYZ", "value": "35", "uln": "40"}, "ALT, AST", "value"),
    (f"{P}/side-effect", {"recorded_at": PAST, "kind": "nausea", "grade": "7"}, "CTCAE grade 1-5", "kind"),
    (f"{P}/side-effect", {"recorded_at": PAST, "kind": "", "grade": "1"}, "some text", "grade"),
    (f"{P}/side-effect", {"recorded_at": FUTURE, "kind": "nausea", "grade": "1"}, "only plans", "kind"),
    (f"{P}/weight", {"on": "2026-01-05", "kg": "500"}, "between 1 and 400 kg", "kg"),
    (f"{P}/weight", {"on": FUTURE[:10], "kg": "300"}, "only plans", "kg"),
    (f"{P}/weight", {"on": "2026-01-05", "kg": "zes"}, "a number", "kg"),
    (f"{P}/note", {"text": ""}, "some text", None),
    (f"{P}/note", {"text": "x" * 1_000_000}, "at most 5000 characters", "text"),
    (f"{P}/note", {"text": "zero\u200bwidth"}, "invisible", "text"),
    (f"{P}/note", {"text": "\ufeffbom"}, "invisible", "text"),
    (f"{P}/note", {"text": "c1\x85control"}, "control", "text"),
    (f"{P}/course", {"regimen": "20 mg/h IV"}, "needs its length", "regimen"),
    (f"{P}/course", {"regimen": "twenty mg/h IV for 5 d"}, "is not understood", "regimen"),
    (f"{P}/course", {"regimen": "1000 mg/h IV for 5 d"}, "unit slip", "regimen"),
    (f"{P}/course", {"regimen": "1000 mg/h IV for 5 d", "confirm": "yes", "reason": ""}, "some text", "regimen"),
    (f"{P}/course", {"regimen": "S-ketamine 10 mg/h IV for 5 d"}, "this patient is treated with", "regimen"),
    (f"{P}/course", {"regimen": "20 mg/h IV for 5 d", "start": "2099-01-01T09:00"}, "a date between", "regimen"),
    (f"{P}/courses/1/cancel", {"reason": ""}, "some text", None),
    (f"{P}/courses/1/cancel", {"reason": "not needed"}, "only a planned course", None),
    (f"{P}/entries/pain_diary/1/void", {"reason": "", "confirm": "yes"}, "some text", None),
    (f"{P}/entries/pain_diary/1/void", {"reason": "typo"}, "tick the box", None),
    (f"{P}/entries/pain_diary/1/correct", {"reason": "typo", "recorded_at": PAST, "nrs": "15"},
     "a whole number from 0 to 10", "nrs"),
    (f"{P}/entries/pain_diary/99/void", {"reason": "typo", "confirm": "yes"}, "no such page", None),
    (f"{P}/consent/withdraw", {}, "tick the box", None),
    (f"{P}/consent/renew", {"consent": "yes", "consent_version": "1999-01-01"}, "current privacy statement", None),
    (f"{P}/erase", {"confirm_code": "KP-0002"}, "type the patient's code", None),
    ("/admin/users", {"username": "аdmin", "password": "long-enough-1", "role": "clinician"}, "letters a-z",
     "username"),
    ("/admin/users", {"username": "ADMIN", "password": "long-enough-1", "role": "clinician"}, "already exists",
     "username"),
    ("/admin/users", {"username": "dr.c", "password": "short", "role": "clinician"}, "at least 10 characters",
     "username"),
    ("/admin/users", {"username": "dr.c", "password": "long-enough-1", "role": "boss"}, "clinician or admin",
     "username"),
    ("/admin/users/disable", {"username": "dr.b"}, "tick the box", None),
    ("/admin/users/password", {"username": "", "new_password": "long-enough-1"}, "choose whose password", None),
    ("/admin/users/password", {"username": "admin", "new_password": "long-enough-1"}, "your account page", None),
    ("/inbox/purge", {"days": "abc"}, "a whole number of days", None),
    ("/account/password", {"current_password": "admin-password-1", "new_password": "short"},
     "at least 10 characters", None),
]
"""Forms posted as the admin (who may do everything)."""

PUBLIC = [
    ({"name": "A. Person", "contact": "a@example.org", "message": "hi"}, "privacy statement", "contact"),
    ({"name": "", "contact": "a@example.org", "consent": "yes"}, "some text", "contact"),
    ({"name": "dr \u202eevil", "contact": "a@example.org", "consent": "yes"}, "direction-changing", "contact"),
    ({"name": "A. Person", "contact": "a@example.org", "consent": "yes", "message": "x" * 1_000_000},
     "at most 2000 characters", "message"),
]
"""Appointment requests (with the current statement version added)."""

PLANNER = [
    ({"regimen": "20 mg/h IV", "weight": "80"}, "needs its length"),
    ({"regimen": "20 mg/h IV for 5 d", "weight": ""}, "body weight"),
    ({"regimen": "20 mg/h IV for 5 d", "weight": "80", "model": "nope"}, "a model of the library"),
    ({"regimen": "20 mg/h IV for 5 d starting 2026-12-01 09:00", "weight": "80", "start": "2026-12-02T09:00"},
     "give the start once"),
    ({"regimen": "1000 mg/h IV for 5 d", "weight": "80"}, "unit slip"),
    ({"regimen": "20 mg/h IV for 5 d", "weight": "80", "threshold": "150"}, "a percentage between 1 and 99"),
]
"""Planner queries that are refused."""
