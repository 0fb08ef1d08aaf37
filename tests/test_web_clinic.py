"""The clinic's work in the dashboard (in-process): the probe's defects as regression tests, safety in the forms,
corrections, admin tasks, languages, the planner and pump sheet against the command line, and 'Mail ons'."""

from __future__ import annotations

import html
import json
import re
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, func, select

from conftest import csrf_of, fresh_engine, invoke_cli, login, seed_clinic
from ketaplan import __version__
from ketaplan.course import store
from ketaplan.course.alerts import next_course
from ketaplan.course.db import transaction
from ketaplan.course.schema import (
    AppointmentRequest,
    AuditEntry,
    Course,
    EntryRevision,
    ForecastCache,
    Note,
    PainEntry,
    Patient,
    User,
)
from ketaplan.course.users import MAX_FAILURES, authenticate
from ketaplan.web.app import create_app
from ketaplan.web.charts import course_chart
from ketaplan.web.config import settings_from

BASE = "http://testserver"
VERSION = store.privacy_statement()[0]
START = datetime(2026, 8, 3, 9)


@pytest.fixture
def engine(tmp_path):
    e = fresh_engine("sqlite", tmp_path)
    seed_clinic(e)
    with transaction(e) as s:
        p = store.add_patient(s, "dr.a", "KP-0001", 1966, "male", "polyneuropathy", 80.0, VERSION, 7.0)
        c, _ = store.plan_course(s, "dr.a", p, "20 mg/h IV for 5 d", START)
        store.record_infusion(s, "dr.a", p, c, START, START + timedelta(days=5), 20.0)
        store.add_pain(s, "dr.a", p, START + timedelta(days=14), 9)
    return e


def app(engine, language: str = "en", **settings):
    return create_app(engine=engine, secure_cookies=False, login_limit=(3, 600.0),
                      settings=settings_from({"language": language, **settings}, secure_cookies=False, strict=True))


def staff(engine, user: str = "dr.a", password: str = "clinic-password-1", language: str = "en", **settings):
    client = TestClient(app(engine, language, **settings), headers={"Accept-Language": language})
    assert login(client, BASE, user, password).status_code == 303
    return client


def post(client, url: str, page: str = "/patients/KP-0001", **fields):
    return client.post(url, data={"csrf_token": csrf_of(client.get(page).text), **fields}, follow_redirects=False)


def count(engine, model) -> int:
    with transaction(engine) as s:
        return s.scalar(select(func.count()).select_from(model))


# --- the probe's defects ---------------------------------------------------------------------------------------

def test_codes_are_normalised_and_look_alikes_refused(engine):
    client = staff(engine)
    fields = {"birth_year": "1970", "sex": "female", "weight": "60", "diagnosis": "CRPS", "consent": "yes",
              "consent_version": VERSION}
    assert post(client, "/patients", "/patients/new", code="kp-0002", **fields).headers["location"] == \
        "/patients/KP-0002"
    for code in ("КР-0001", "kp-0001", "KP-０００1", "KP-٠٠٠١", "KP\u200b0003"):
        assert post(client, "/patients", "/patients/new", code=code, **fields).status_code == 400, code
    assert post(client, "/patients", "/patients/new", code="ＫＰ-0004", **fields).headers["location"] == \
        "/patients/KP-0004"  # full-width letters are the same letters
    assert count(engine, Patient) == 3
    assert client.get("/patients/kp-0002").status_code == 200  # found whatever the case


def test_user_names_are_normalised_and_unique_whatever_the_case(engine):
    admin = staff(engine, "admin", "admin-password-1")
    for name in ("аdmin", "ADMIN", "Dr.A"):
        r = post(admin, "/admin/users", "/admin/users", username=name, password="long-enough-1", role="clinician")
        assert r.status_code == 400 and "password_hash" not in r.text, name
    r = post(admin, "/admin/users", "/admin/users", username="Dr.C", password="long-enough-1", role="clinician")
    assert r.status_code == 303 and r.headers["location"] == "/admin/users?done=added"
    page = admin.get(r.headers["location"])
    assert page.headers["content-type"].startswith("text/html") and "The user has been added." in page.text
    assert "password_hash" not in page.text and "$argon2" not in page.text
    assert login(TestClient(admin.app), BASE, "DR.C", "long-enough-1").status_code == 303


def test_the_reset_form_chooses_nobody_and_never_the_admin(engine):
    admin = staff(engine, "admin", "admin-password-1")
    form = re.search(r'<select id="reset-username".*?</select>', admin.get("/admin/users").text, re.S).group(0)
    options = re.findall(r'<option value="([^"]*)"', form)
    assert options[0] == "" and "admin" not in options and {"dr.a", "dr.b"} <= set(options)
    r = post(admin, "/admin/users/password", "/admin/users", username="", new_password="long-enough-1")
    assert r.status_code == 400 and "choose whose password" in r.text
    assert login(TestClient(admin.app), BASE, "admin", "admin-password-1").status_code == 303


def test_the_lock_out_counter_stays_while_locked(engine):
    with transaction(engine) as s:
        for _ in range(MAX_FAILURES):
            assert authenticate(s, "dr.a", "wrong") is None
    with transaction(engine) as s:
        locked = s.scalar(select(User).where(User.username == "dr.a"))
        until, failures = locked.locked_until, locked.failed_logins
    with transaction(engine) as s:
        for _ in range(20):
            assert authenticate(s, "dr.a", "clinic-password-1") is None
    with transaction(engine) as s:
        u = s.scalar(select(User).where(User.username == "dr.a"))
        assert (u.failed_logins, u.locked_until) == (failures, until)


def test_forwarded_addresses_count_only_from_trusted_proxies(engine):
    untrusted = TestClient(app(engine), client=("198.51.100.7", 5000))
    for i in range(3):  # refused (no form token) but counted, whatever address the header claims
        assert untrusted.post("/login", data={}, headers={"X-Forwarded-For": f"203.0.113.{i}"}).status_code == 403
    r = untrusted.post("/login", data={}, headers={"X-Forwarded-For": "203.0.113.99"})
    assert r.status_code == 429
    proxied = TestClient(app(engine, trusted_proxies=["127.0.0.1"]), client=("127.0.0.1", 5000))
    for i in range(4):  # behind the trusted proxy every client has its own count
        r = proxied.post("/login", data={}, headers={"X-Forwarded-For": f"203.0.113.{i}, 127.0.0.1"})
        assert r.status_code == 403  # no form token, but not limited


def test_text_keeps_line_breaks_and_long_words_wrap(engine):
    client = staff(engine)
    assert post(client, "/patients/KP-0001/note", text="first line\r\nsecond line").status_code == 303
    with transaction(engine) as s:
        assert s.scalar(select(Note.text)) == "first line\nsecond line"
    page = client.get("/patients/KP-0001").text
    assert re.search(r'class="text keep-lines">first line\nsecond line<', page)
    css = Path(__file__).parents[1].joinpath("src/ketaplan/web/static/style.css").read_text()
    assert "overflow-wrap: anywhere" in css and ".keep-lines { white-space: pre-line; }" in css


def test_a_body_beyond_the_limit_answers_with_a_page(engine):
    client = staff(engine)
    token = csrf_of(client.get("/patients/KP-0001").text)
    r = client.post("/patients/KP-0001/note", data={"csrf_token": token, "text": "x" * 5_000_000})
    assert r.status_code == 413 and "larger than 4 MB" in r.text and r.headers["content-type"].startswith("text/html")
    assert count(engine, Note) == 0


def test_next_course_due_takes_a_planned_course_into_account(engine):
    client = staff(engine)
    assert "overdue" in client.get("/patients").text  # the forecast's date has passed
    planned = (datetime.now() + timedelta(days=20)).replace(second=0, microsecond=0)
    post(client, "/patients/KP-0001/course", regimen="20 mg/h IV for 5 d", start=planned.strftime("%Y-%m-%dT%H:%M"))
    listing = client.get("/patients").text
    assert "overdue" not in listing and f"course 2 planned for {planned:%-d %b %Y}" in listing
    with transaction(engine) as s:
        p = store.get_patient(s, "KP-0001")
        assert next_course(p, {"status": "none"}).source == "planned"


def test_the_patient_page_names_the_relief_model_of_its_forecast(engine):
    page = staff(engine, language="nl").get("/patients/KP-0001").text
    assert "Model voor de verlichting: de gepubliceerde waarden." in page


def test_the_forecast_speaks_plainly(engine, monkeypatch):
    import ketaplan.course.forecast as forecast

    payload = {"status": "ok", "origin": "2026-08-03 09:00:00", "threshold": 0.3,
               "next_due": ["2026-09-01 00:00:00", "2026-09-10 00:00:00", "2026-09-30 00:00:00"],
               "relief_days": [20, 27, 40], "p_responder": 1.0,
               "warnings": ["the data say little about V_NK (shrinkage 100 %): its estimate stays near the population "
                            "value"], "estimates": [],
               "curves": {"time_h": [0, 24], "output": ["relief", "relief"], "map": [0.5, 0.4], "p5": [0.3, 0.2],
                          "p95": [0.7, 0.6]}}
    monkeypatch.setattr(forecast, "compute_forecast", lambda s, p, threshold=0.3: payload)
    page = staff(engine).get("/patients/KP-0001").text
    outside = re.sub(r"<details>.*?</details>", "", page, flags=re.S)
    assert "V_NK" not in outside and "shrinkage" not in outside and "100 %" not in outside
    assert "judged from the pain diary: &gt; 99 %" in page and "with few diary entries it says little" in page
    payload["warnings"] = ["The data say little about 'V_NK' (shrinkage 100%): its estimate stays near the "
                           "population value.", "MCMC acceptance fraction 0.05 is outside 0.15-0.7"]
    with transaction(engine) as s:
        s.execute(delete(ForecastCache))  # the record has not changed: forget the stored forecast
    dutch = staff(engine, language="nl").get("/patients/KP-0001").text
    assert ('<li lang="nl">De gegevens zeggen weinig over &#39;V_NK&#39; (shrinkage 100%): de schatting blijft '
            'dicht bij de waarde in de populatie.</li>') in dutch
    assert '<li lang="en">MCMC acceptance fraction' in dutch  # not in the catalog: marked as English


def test_accessible_structure_skip_link_headers_footer_and_contrast(engine):
    client = staff(engine)
    for url in ("/patients", "/patients/KP-0001", "/inbox", "/account",
                "/patients/KP-0001/courses/1/pump", "/plan?regimen=20+mg/h+IV+for+5+d&weight=80"):
        page = client.get(url).text
        assert '<a class="skip" href="#main">' in page and '<main id="main"' in page, url
        for table in re.findall(r"<table.*?</table>", page, re.S):
            assert "<th" in table, (url, table[:200])
        assert f"ketaplan {__version__}</footer>" in page
    public = TestClient(client.app).get("/request").text
    assert f"ketaplan {__version__}</footer>" in public and f"ketaplan {VERSION}" not in public
    footer = re.search(r"<footer.*?</footer>", public, re.S).group(0)
    assert "not a prescription" not in footer and 'href="/privacy"' in footer  # patients read it
    css = Path(__file__).parents[1].joinpath("src/ketaplan/web/static/style.css").read_text()
    field = re.search(r"--field: (#[0-9a-f]{6})", css).group(1)
    assert contrast(field, "#ffffff") >= 3.0


def contrast(a: str, b: str) -> float:
    def lum(c: str) -> float:
        rgb = [int(c[i:i + 2], 16) / 255 for i in (1, 3, 5)]
        rgb = [v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4 for v in rgb]
        return 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2]

    hi, lo = sorted((lum(a), lum(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_charts_have_a_clean_date_axis_a_today_line_and_text_for_screen_readers():
    from ketaplan.web.i18n import Translator
    from ketaplan.web.svg import time_ticks, y_ticks

    t = Translator("nl")
    empty = course_chart([], [], [], {"status": "no infusion recorded yet"}, datetime(2026, 11, 29, 12), t)
    assert "1970" not in empty and "<title" in empty and "<desc" in empty and ">vandaag<" in empty
    origin = datetime(2026, 1, 5, 9)
    for days in (3, 20, 70, 200, 1300):
        labels = [label for _, label in time_ticks(0.0, days * 24.0, origin, t)]
        assert len(labels) == len(set(labels)) and 2 <= len(labels) <= 12, (days, labels)
    assert y_ticks(170) == (200, [0, 50, 100, 150, 200])
    assert y_ticks(10)[1] == [0, 2, 4, 6, 8, 10]


def test_chart_labels_never_overlap():
    from ketaplan.web.svg import FONT, line_label_baselines, mark_label_places, text_width

    for ys in ([120.0, 130.0, 133.0], [228.0, 229.0, 230.0], [40.0, 41.0], [150.0]):
        bases = sorted(line_label_baselines(ys, 34.0, 200.0))
        assert all(b - a >= FONT + 2 for a, b in pairwise(bases)), ys
        assert bases[0] >= 34 + FONT and bases[-1] <= 34 + 200 - 3, ys  # inside the panel
    marks = [(880.0, "planned 3 Dec"), (900.0, "today"), (300.0, "relief wears off 1 Sep"), (320.0, "x")]
    places = mark_label_places(marks)
    spans = []
    for (x, label), (anchor, row) in zip(marks, places, strict=True):
        w = text_width(label, bold=True)
        spans.append((row, x - w if anchor == "end" else x, x if anchor == "end" else x + w))
        assert (anchor == "end") == (x + w + 8 > 936), label  # near the right edge: written to the left
    for i, a in enumerate(spans):
        for b in spans[i + 1:]:
            assert a[0] != b[0] or a[2] <= b[1] or b[2] <= a[1], (a, b)


# --- safety in every form ------------------------------------------------------------------------------------

def test_plans_show_the_dose_checks_and_a_unit_slip_needs_a_reason(engine):
    client = staff(engine)
    r = post(client, "/patients/KP-0001/course", regimen="200 mg/h IV for 5 d")
    assert r.status_code == 303
    page = client.get(r.headers["location"]).text
    assert "Checks of course 2 just planned" in page and "2.5 mg/kg/h is above the usual 0.5-2 mg/kg/h" in page
    r = post(client, "/patients/KP-0001/course", regimen="1000 mg/h IV for 5 d")
    assert r.status_code == 400 and "unit slip" in r.text and 'name="reason"' in r.text
    assert post(client, "/patients/KP-0001/course", regimen="1000 mg/h IV for 5 d", confirm="yes",
                reason="ICU protocol, checked with the anaesthetist").status_code == 303
    with transaction(engine) as s:
        rev = s.scalar(select(EntryRevision).where(EntryRevision.kind == "override"))
        assert rev.reason == "ICU protocol, checked with the anaesthetist" and rev.entity == "courses"
        audit = s.scalar(select(AuditEntry).where(AuditEntry.action == "override"))
        assert audit.entity == "entry_revisions" and audit.entity_id == rev.id and "ICU" not in audit.detail


def test_an_infusion_at_a_mistyped_rate_is_refused_until_confirmed(engine):
    client = staff(engine)
    fields = {"course": "1", "start": "2026-08-08T10:00", "end": "2026-08-08T12:00", "rate": "1000 mg/h"}
    r = post(client, "/patients/KP-0001/infusion", **fields)
    assert r.status_code == 400 and "12.5 mg/kg/h at 80 kg" in r.text and "1000 mg/h" in r.text
    assert post(client, "/patients/KP-0001/infusion", **fields, confirm="yes",
                reason="bolus protocol").status_code == 303
    page = client.get("/patients/KP-0001").text
    assert "1000 mg/h = 12.5 mg/kg/h for 80 kg is above 7 mg/kg/h" in page  # flagged in the course table
    assert "--force" not in page


def test_future_entries_are_refused_and_the_forecast_never_sees_them(engine):
    client = staff(engine)
    soon = (datetime.now() + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M")
    for url, fields in (("lab", {"taken_at": soon, "test": "ALT", "value": "20", "uln": "40"}),
                        ("weight", {"on": soon[:10], "kg": "300"}), ("diary", {"recorded_at": soon, "nrs": "3"})):
        r = post(client, f"/patients/KP-0001/{url}", **fields)
        assert r.status_code == 400 and "only plans can lie in the future" in r.text
    ok = (datetime.now() - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    assert post(client, "/patients/KP-0001/lab", taken_at=ok, test="ALT", value="200", uln="40").status_code == 303
    assert "ALT 200 U/L" in client.get("/patients").text  # the alert stays: no future value can hide it


# --- corrections without loss ----------------------------------------------------------------------------------

def test_a_wrong_diary_entry_is_corrected_and_the_original_stays_in_its_history(engine):
    client = staff(engine)
    page = "/patients/KP-0001/entries/pain_diary/1"
    assert post(client, f"{page}/correct", page, recorded_at="2026-08-17T09:00", nrs="3",
                reason="typed 9 for 3").status_code == 303
    with transaction(engine) as s:
        old, new = s.scalars(select(PainEntry).order_by(PainEntry.id)).all()
        assert old.nrs == 9 and old.voided_at is not None and new.nrs == 3 and new.voided_at is None
    history = client.get(page).text
    assert "typed 9 for 3" in history and "Corrected" in history and '"nrs": 9' not in history
    assert "This entry was corrected on" in history
    assert re.search(r"Pain score \(NRS 0-10\)</th><td[^>]*>9</td>", history)
    listing = client.get("/patients/KP-0001").text
    assert 'class="voided"' in listing and "typed 9 for 3" in listing
    with transaction(engine) as s:
        actions = s.scalars(select(AuditEntry.action).where(AuditEntry.entity == "pain_diary")).all()
        assert "correct" in actions and "typed" not in json.dumps([a.detail for a in s.scalars(select(AuditEntry))])


def test_an_entry_is_voided_and_a_planned_course_cancelled_with_a_reason(engine):
    client = staff(engine)
    page = "/patients/KP-0001/entries/infusions/1"
    assert post(client, f"{page}/void", page, reason="wrong patient", confirm="yes").status_code == 303
    with transaction(engine) as s:
        assert store.get_patient(s, "KP-0001").courses[0].infusions[0].voided_at is not None
    post(client, "/patients/KP-0001/course", regimen="20 mg/h IV for 5 d")
    assert post(client, "/patients/KP-0001/courses/2/cancel", reason="patient declined").status_code == 303
    with transaction(engine) as s:
        assert s.scalar(select(Course.status).where(Course.number == 2)) == "cancelled"
    assert "patient declined" in client.get("/patients/KP-0001").text


# --- admin tasks -----------------------------------------------------------------------------------------------

def test_consent_withdrawn_and_renewed_export_and_erasure(engine):
    admin = staff(engine, "admin", "admin-password-1")
    assert post(admin, "/patients/KP-0001/consent/withdraw", confirm="yes").status_code == 303
    r = post(admin, "/patients/KP-0001/note", text="after withdrawal")
    assert r.status_code == 400 and "no valid consent" in r.text
    assert post(admin, "/patients/KP-0001/consent/renew", consent="yes", consent_version=VERSION).status_code == 303
    assert post(admin, "/patients/KP-0001/note", text="after renewal").status_code == 303
    r = post(admin, "/patients/KP-0001/export")
    assert r.status_code == 200 and r.headers["content-disposition"] == 'attachment; filename="KP-0001.json"'
    assert json.loads(r.text)["patient"]["code"] == "KP-0001"
    assert post(admin, "/patients/KP-0001/erase", confirm_code="KP-0002").status_code == 400
    r = post(admin, "/patients/KP-0001/erase", confirm_code="kp-0001")
    assert r.status_code == 303 and r.headers["location"].startswith("/patients?erased=")
    assert count(engine, Patient) == 0 and count(engine, PainEntry) == 0
    clinician = staff(engine)
    assert "Erase for good" not in clinician.get("/patients").text


def test_patient_search_and_the_purge_of_old_requests(engine):
    with transaction(engine) as s:
        store.add_patient(s, "dr.a", "KP-0200", 1980, "female", "CRPS type 1", 60.0, VERSION)
        store.add_appointment_request(s, "Old", "old@example.org", "", True, VERSION)
        s.scalar(select(AppointmentRequest)).created_at = datetime.now() - timedelta(days=200)
    admin = staff(engine, "admin", "admin-password-1")
    found = admin.get("/patients", params={"q": "crps"}).text
    assert "KP-0200" in found and "KP-0001" not in found
    assert "KP-0001" in admin.get("/patients", params={"q": "p-00"}).text
    assert "No patient matches." in admin.get("/patients", params={"q": "%"}).text
    r = post(admin, "/inbox/purge", "/inbox", days="90", confirm="yes")
    assert r.headers["location"] == "/inbox?purged=1" and count(engine, AppointmentRequest) == 0


# --- languages -------------------------------------------------------------------------------------------------

def test_the_language_follows_choice_then_browser_then_clinic(engine):
    client = TestClient(app(engine, "nl"))
    assert "Inloggen voor medewerkers" in client.get("/login").text
    assert "Staff login" in client.get("/login", headers={"Accept-Language": "en-GB,en;q=0.9"}).text
    r = client.get("/language/en", params={"next": "/request"}, follow_redirects=False)
    assert r.headers["location"] == "/request"
    assert "Request an appointment" in client.get("/request").text  # the reader's choice wins
    assert client.get("/language/en", params={"next": "//evil.example"}, follow_redirects=False) \
        .headers["location"] == "/"


def test_public_pages_speak_the_clinics_language_and_name_it(engine):
    client = TestClient(app(engine, "nl", clinic="Pijnpoli Oost", contact="pijnpoli@example.org"),
                        headers={"Accept-Language": "en"})
    page = client.get("/request").text
    assert "Mail ons voor het maken van een afspraak" in page and "Ik ga akkoord met de privacyverklaring" in page
    privacy = client.get("/privacy").text
    assert "Deze verklaring is van Pijnpoli Oost." in privacy and "pijnpoli@example.org" in privacy
    assert f"Versie {VERSION}" in privacy and 'lang="nl"' in privacy


def test_dates_and_numbers_in_the_readers_format(engine):
    nl = staff(engine, language="nl").get("/patients/KP-0001").text
    en = staff(engine, language="en").get("/patients/KP-0001").text
    assert "3 aug 2026 09:00" in nl and "3 Aug 2026 09:00" in en
    with transaction(engine) as s:
        store.add_weight(s, "dr.a", store.get_patient(s, "KP-0001"), START.date(), 79.5)
    assert "79,5" in staff(engine, language="nl").get("/patients/KP-0001").text


def test_every_message_of_the_code_has_a_dutch_translation():
    from babel.messages.pofile import read_po

    from ketaplan.web.catalog import extract, po_path

    with po_path("nl").open("rb") as fh:
        catalog = read_po(fh, locale="nl")
    missing = [key for (context, key) in extract() if not (m := catalog.get(key, context=context)) or not (
        all(m.string) if isinstance(m.string, tuple) else m.string)]
    assert missing == []


def test_a_catalog_without_a_message_fails_in_strict_mode():
    from ketaplan.web.i18n import MissingTranslation, Translator

    with pytest.raises(MissingTranslation):
        Translator("nl", strict=True).gettext("A sentence nobody translated")
    assert Translator("nl").gettext("Patients") == "Patiënten"


# --- planner and pump sheet against the command line ------------------------------------------------------------

def cells(page: str, table: str) -> list[list[str]]:
    body = re.search(rf'<table id="{table}".*?<tbody>(.*?)</tbody>', page, re.S).group(1)
    return [[html.unescape(re.sub("<[^>]+>", "", c)).strip() for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row,
                                                                                   re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)]


def test_the_planner_gives_the_numbers_of_ketaplan_simulate(engine, wide_console):
    regimen = "20 mg/h IV for 5 d every 11 weeks x 2"
    page = staff(engine).get("/plan", params={"regimen": regimen, "weight": "80", "age": "59", "sex": "male",
                                              "threshold": "30", "start": "2026-12-01T09:00"}).text
    result = invoke_cli("simulate", regimen, "--weight", "80", "--age", "59", "--sex", "male", "--start",
                        "2026-12-01 09:00", "--json")
    cli = json.loads(result.stdout)["summary"]
    rows, levels = cells(page, "plan-table"), cells(page, "plan-levels")
    assert len(rows) == len(levels) == len(cli) == 2
    for row, detail, ref in zip(rows, levels, cli, strict=True):
        assert float(row[3]) == round(ref["dose_mg"]) and float(row[4]) == round(ref["cmax_ng_ml"], 1)
        assert float(row[8]) == round(ref["relief_days"])
        assert row[9] == f"{datetime.fromisoformat(ref['next_course_due_date']):%-d %b %Y %H:%M}"
        assert float(detail[1]) == round(ref["css_avg_ng_ml"], 1)
        assert float(detail[3]) == round(ref["norketamine_cmax_ng_ml"], 1)
    due = datetime.fromisoformat(cli[-1]["next_course_due_date"])
    assert (f"relief lasts about {round(cli[-1]['relief_days'])} days: the next course is due on "
            f"{due:%-d %b %Y %H:%M}") in page
    assert "Predicted levels and relief" in page and "<desc" in page


def test_the_planners_chart_shows_the_whole_interval_and_separates_its_labels(engine):
    page = staff(engine).get("/plan", params={"regimen": "200 mg/h IV for 5 d", "weight": "80"}).text
    svg = re.search(r'<svg.*?</svg>', page, re.S).group(0)
    band = re.search(r'<polygon points="([^"]+)"', svg).group(1)  # plasma ketamine's 90 % interval
    top = float(re.search(r'<rect x="78" y="([\d.]+)"', svg).group(1))  # the first panel's frame
    assert min(float(p.split(",")[1]) for p in band.split()) > top  # no point cut off at the top
    labels = [float(y) for y in re.findall(r'<text x="[\d.]+" y="([\d.]+)" text-anchor="end" fill="#[0-9a-f]+" '
                                            r'paint-order', svg)]
    assert len(labels) >= 3  # analgesia, dissociation, awakening
    first = sorted(labels)[:3]
    assert all(b - a >= 16 for a, b in pairwise(first))  # a line of text apart


def test_route_comparison_gives_the_numbers_of_ketaplan_compare(engine):
    nl = staff(engine, language="nl")
    page = nl.get("/plan/routes", params=[("dose", "25 mg"), ("weight", "80"), ("age", "45"), ("route", "iv"),
                                          ("route", "oral"), ("route", "intranasal")]).text
    ref = json.loads(invoke_cli("compare", "--routes", "iv,oral,intranasal", "--forms", "racemic", "--dose", "25 mg",
                                "--weight", "80", "--age", "45", "--json").stdout)["rows"]
    rows = cells(page, "routes-table")
    assert [r[:2] for r in rows] == [["ketamine (racemisch)", "intraveneus"], ["ketamine (racemisch)", "oraal"],
                                     ["ketamine (racemisch)", "in de neus"]]
    for row, r in zip(rows, ref, strict=True):
        assert row[4] == f"{r['cmax_ng_ml']:.1f}".replace(".", ",").removesuffix(",0")
        assert row[3] == f"{100 * r['systemic_F']:.0f} %"
    oral = nl.get("/plan/routes", params=[("dose", "25 mg"), ("weight", "80"), ("route", "oral")]).text
    assert "NaN" not in oral and cells(oral, "routes-table")[0][3] == "-"  # no IV to compare with
    assert "AUC (ng·uur/mL)" in page and "Tmax (uur)" in page and "ng·h/mL" not in page  # units in Dutch too


def test_the_pump_sheet_gives_the_numbers_of_ketaplan_pump(engine):
    client = staff(engine)
    post(client, "/patients/KP-0001/course", regimen="20 mg/h IV for 5 d", start="2026-12-01T09:00")
    page = client.get("/patients/KP-0001/courses/2/pump").text
    assert "500 mg ketamine in 50 mL = 10 mg/mL" in page and "suggested" in page
    result = invoke_cli("pump", "20 mg/h IV for 5 d", "--concentration", "10 mg/mL", "--syringe", "50 mL", "--start",
                        "2026-12-01 09:00", "--json")
    ref = json.loads(result.stdout)
    changes = cells(page, "pump-changes")
    assert len(changes) == len(ref["container_changes"]) == 5
    for row, c in zip(changes, ref["container_changes"], strict=True):
        assert row[1] == f"{datetime.fromisoformat(c['clock']):%-d %b %Y %H:%M}"
    rates = cells(page, "pump-rates")
    assert float(rates[0][3]) == ref["segments"][0]["rate_ml_h_rounded"] == 2.0
    days = cells(page, "pump-days")
    assert [float(d[1]) for d in days] == [round(d["drug_mg"], 1) for d in ref["per_day"]]
    r = client.get("/patients/KP-0001/courses/2/pump", params={"preparation": "50-50"})
    assert "1 mg/mL" in r.text and len(cells(r.text, "pump-changes")) == len(json.loads(invoke_cli(
        "pump", "20 mg/h IV for 5 d", "--concentration", "1 mg/mL", "--start", "2026-12-01 09:00",
        "--json").stdout)["container_changes"])


@pytest.mark.parametrize(("rate", "suggested"), [("5 mg/h", "250 mg in 50 mL"), ("50 mg/h", "500 mg in 50 mL"),
                                                 ("100 mg/h", None)])
def test_the_pump_sheet_suggests_a_syringe_that_lasts_a_shift(engine, rate, suggested):
    client = staff(engine)
    post(client, "/patients/KP-0001/course", regimen=f"{rate} IV for 5 d", start="2026-12-01T09:00")
    page = client.get("/patients/KP-0001/courses/2/pump").text
    if suggested is None:
        assert "No usual syringe lasts a shift at this rate" in page
    else:
        assert f"Suggested: {suggested}" in page
        lasts = cells(page, "pump-rates")[0][5]
        assert float(lasts.split()[0]) >= 8  # a shift, within the hang time
    assert len(cells(page, "pump-signatures")) == 3


def test_the_pump_sheet_says_when_the_hang_time_ends_a_container_first(engine):
    client = staff(engine)
    post(client, "/patients/KP-0001/course", regimen="20 mg/h IV for 5 d", start="2026-12-01T09:00")
    page = client.get("/patients/KP-0001/courses/2/pump", params={"preparation": "500-50", "hang": "12"}).text
    assert cells(page, "pump-rates")[0][5] == "12 h (the hang time; full for 25 h)"
    assert len(cells(page, "pump-changes")) == 10
    assert 'class="muted print-only">Decision support' in page  # once on screen (the footer), once on paper


# --- 'Mail ons' ------------------------------------------------------------------------------------------------

def request_data(client) -> dict:
    return {"csrf_token": csrf_of(client.get("/request").text), "name": "Jan Jansen", "contact": "jan@example.org",
            "message": "Pijn in beide voeten", "consent": "yes", "consent_version": VERSION}


def test_a_new_request_notifies_the_clinic_without_health_data(engine, smtp_server):
    port, messages = smtp_server
    mail = {"host": "127.0.0.1", "port": port, "sender": "ketaplan@example.org",
            "to": ["pijnpoli@example.org"]}
    public = TestClient(app(engine, "nl", clinic="Pijnpoli Oost", public_url="https://pijn.example.org", mail=mail))
    r = public.post("/request", data=request_data(public))
    assert r.status_code == 200 and "Wij hebben uw verzoek ontvangen" in r.text
    assert len(messages) == 1
    envelope = messages[0]
    text = envelope.content.decode()
    assert envelope.rcpt_tos == ["pijnpoli@example.org"] and "https://pijn.example.org/inbox" in text
    assert "Pijnpoli Oost" in text
    for private in ("Jan", "jan@example.org", "voeten"):
        assert private not in text


def test_a_failed_mail_never_loses_the_request(engine, caplog):
    from conftest import free_port

    mail = {"host": "127.0.0.1", "port": free_port(), "sender": "k@example.org", "to": ["p@example.org"],
            "timeout": 2}
    public = TestClient(app(engine, "en", mail=mail))
    r = public.post("/request", data=request_data(public))
    assert r.status_code == 200 and "Your request has been received" in r.text
    assert count(engine, AppointmentRequest) == 1
    assert "notification mail of a new appointment request failed" in caplog.text
