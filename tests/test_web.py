"""The dashboard's security and forms, in-process (FastAPI TestClient on a SQLite file)."""

from __future__ import annotations

import logging
import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from conftest import csrf_of, fresh_engine, login, seed_clinic
from ketaplan.course import store
from ketaplan.course.db import transaction
from ketaplan.course.schema import AppointmentRequest, PainEntry, Patient
from ketaplan.web.app import create_app
from ketaplan.web.config import settings_from

VERSION = store.privacy_statement()[0]
BASE = "http://testserver"


@pytest.fixture
def engine(tmp_path):
    e = fresh_engine("sqlite", tmp_path)
    seed_clinic(e)
    with transaction(e) as s:
        store.add_patient(s, "dr.a", "KP-0001", 1966, "male", "polyneuropathy", 80.0, VERSION, 7.0)
    return e


ENGLISH = settings_from({"language": "en"}, secure_cookies=False, strict=True)


@pytest.fixture
def client(engine):
    return TestClient(create_app(engine=engine, secure_cookies=False, settings=ENGLISH))


def logged_in(client, user="dr.a", password="clinic-password-1"):
    r = login(client, BASE, user, password)
    assert r.status_code == 303 and r.headers["location"] == "/patients"
    return client


PAGES = ["/patients", "/patients/new", "/patients/KP-0001", "/patients/NOPE", "/inbox", "/account", "/plan",
         "/patients/KP-0001/plan", "/plan/routes", "/admin/users", "/patients/KP-0001/courses/1/pump",
         "/patients/KP-0001/entries/pain_diary/1"]
FORMS = ["/patients", "/patients/KP-0001/diary", "/patients/KP-0001/infusion", "/patients/KP-0001/course",
         "/inbox/1/handled", "/account/password", "/admin/users", "/patients/KP-0001/entries/pain_diary/1/void",
         "/patients/KP-0001/courses/1/cancel", "/patients/KP-0001/consent/withdraw", "/patients/KP-0001/export",
         "/patients/KP-0001/erase", "/inbox/purge"]


@pytest.mark.parametrize("url", PAGES)
def test_every_patient_page_without_a_session_redirects_to_login(client, url):
    r = client.get(url, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"


@pytest.mark.parametrize("url", FORMS)
def test_every_form_needs_the_session_csrf_token(client, engine, url):
    logged_in(client)
    for data in ({"nrs": "3", "recorded_at": "2026-02-01T08:00"},
                 {"nrs": "3", "recorded_at": "2026-02-01T08:00", "csrf_token": "forged"}):
        r = client.post(url, data=data, follow_redirects=False)
        assert r.status_code == 403 and "security token" in r.text
    with transaction(engine) as s:
        assert s.scalar(select(func.count()).select_from(PainEntry)) == 0


def test_a_form_with_the_token_but_no_login_goes_to_login(client):
    token = csrf_of(client.get("/login").text)  # an anonymous session's token
    r = client.post("/patients/KP-0001/diary", data={"csrf_token": token, "nrs": "3",
                                                     "recorded_at": "2026-02-01T08:00"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"


def test_one_clinician_cannot_change_another_ones_password(client, engine):
    logged_in(client)
    token = csrf_of(client.get("/account").text)
    r = client.post("/admin/users/password", data={"csrf_token": token, "username": "dr.b",
                                                   "new_password": "taken-over-123"})
    assert r.status_code == 403 and "Only an administrator" in r.text
    assert client.get("/admin/users").status_code == 403
    other = TestClient(client.app)
    assert login(other, BASE, "dr.b", "taken-over-123").status_code == 401
    assert login(other, BASE, "dr.b", "clinic-password-1").status_code == 303


def change_own_password(client) -> str:
    """dr.a changes their password to 'a-new-password-2'; returns the session's CSRF token."""
    token = csrf_of(client.get("/account").text)
    r = client.post("/account/password", data={"csrf_token": token, "username": "dr.a",
                                                "current_password": "clinic-password-1",
                                                "new_password": "a-new-password-2"}, follow_redirects=False)
    assert r.status_code == 303
    return token


def test_changing_ones_own_password_and_logging_out(client):
    logged_in(client)
    token = change_own_password(client)
    old_cookie = client.cookies.get("ketaplan_session")
    client.post("/logout", data={"csrf_token": token}, follow_redirects=False)
    stale = TestClient(client.app, cookies={"ketaplan_session": old_cookie})
    assert stale.get("/patients", follow_redirects=False).status_code == 303  # the session is gone server-side
    assert login(TestClient(client.app), BASE, "dr.a", "a-new-password-2").status_code == 303


def test_lock_out_after_repeated_failures(client):
    for _ in range(5):
        assert login(client, BASE, "dr.a", "wrong-password").status_code == 401
    r = login(client, BASE, "dr.a", "clinic-password-1")
    assert r.status_code == 401 and "locked" in r.text


def test_cookies_are_httponly_strict_and_secure(engine):
    client = TestClient(create_app(engine=engine, secure_cookies=True), base_url="https://testserver")
    r = client.get("/login")
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "secure" in cookie
    assert r.headers["content-security-policy"].startswith("default-src 'self'")
    assert r.headers["x-frame-options"] == "DENY"


def test_recording_and_seeing_a_course(client, engine):
    logged_in(client)
    token = csrf_of(client.get("/patients/KP-0001").text)
    for action, data in (("course", {"regimen": "20 mg/h IV for 5 d", "start": "2026-01-05T09:00"}),
                         ("infusion", {"course": "1", "start": "2026-01-05T09:00", "end": "2026-01-10T09:00",
                                       "rate": "20 mg/h"}),
                         ("diary", {"recorded_at": "2026-01-20T08:00", "nrs": "2"}),
                         ("level", {"taken_at": "2026-01-06T09:00", "analyte": "ketamine", "value": "150 ng/mL"}),
                         ("lab", {"taken_at": "2026-01-08T09:00", "test": "ALT", "value": "35", "uln": "40"}),
                         ("side-effect", {"recorded_at": "2026-01-05T12:00", "kind": "nausea", "grade": "1"}),
                         ("weight", {"on": "2026-01-05", "kg": "79"}), ("note", {"text": "calm course"})):
        r = client.post(f"/patients/KP-0001/{action}", data={"csrf_token": token, **data}, follow_redirects=False)
        assert r.status_code == 303, (action, r.text[:500])
    page = client.get("/patients/KP-0001").text
    assert "Relief is predicted to wear off around" in page and "<svg" in page and "calm course" in page
    assert re.search(r"<td>2</td>", page)
    r = client.post("/patients/KP-0001/diary", data={"csrf_token": token, "recorded_at": "2026-01-21T08:00",
                                                     "nrs": "12"})
    assert r.status_code == 400 and "a whole number from 0 to 10" in r.text


def test_new_patient_needs_the_consent_box(client, engine):
    logged_in(client)
    token = csrf_of(client.get("/patients/new").text)
    data = {"csrf_token": token, "code": "KP-0002", "birth_year": "1980", "sex": "female", "weight": "60",
            "diagnosis": "CRPS", "consent_version": VERSION}
    r = client.post("/patients", data=data)
    assert r.status_code == 400 and "privacy statement" in r.text
    r = client.post("/patients", data={**data, "consent": "yes"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/patients/KP-0002"
    with transaction(engine) as s:
        assert s.scalar(select(func.count()).select_from(Patient)) == 2


def test_appointment_requests_need_consent_and_reach_the_inbox(client, engine):
    public = TestClient(client.app)
    token = csrf_of(public.get("/request").text)
    data = {"csrf_token": token, "name": "A. Patient", "contact": "a@example.org", "message": "please call",
            "consent_version": VERSION}
    r = public.post("/request", data=data)
    assert r.status_code == 400 and "privacy statement" in r.text
    with transaction(engine) as s:
        assert s.scalar(select(func.count()).select_from(AppointmentRequest)) == 0
    r = public.post("/request", data={**data, "consent": "yes"})
    assert r.status_code == 200 and "Your request has been received" in r.text
    with transaction(engine) as s:
        assert s.scalar(select(AppointmentRequest.consent_version)) == VERSION
    logged_in(client)
    inbox = client.get("/inbox").text
    assert "a@example.org" in inbox and "please call" in inbox


def test_logs_hold_no_personal_data(client, caplog):
    caplog.set_level(logging.INFO, logger="ketaplan.web")
    logged_in(client)
    client.get("/patients/KP-0001")
    client.get("/patients/KP-0001?name=Jane+Doe")
    text = caplog.text
    assert "/patients/{code}" in text
    assert "KP-0001" not in text and "Jane" not in text and "polyneuropathy" not in text


def test_a_post_without_a_session_goes_to_login_and_unknown_pages_are_html(client):
    r = client.post("/patients/KP-0001/diary", data={"nrs": "3"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    r = client.get("/no/such/page")
    assert r.status_code == 404 and "There is no such page." in r.text and r.headers["content-type"].startswith(
        "text/html")
    r = client.put("/patients")
    assert r.status_code == 405 and "does not accept" in r.text


def test_hsts_when_cookies_are_secure(engine):
    r = TestClient(create_app(engine=engine, secure_cookies=True), base_url="https://testserver").get("/login")
    assert r.headers["strict-transport-security"].startswith("max-age=")


def test_a_password_change_ends_the_users_other_sessions(client):
    other = logged_in(TestClient(client.app))
    logged_in(client)
    change_own_password(client)
    assert client.get("/patients", follow_redirects=False).status_code == 200  # this session stays
    assert other.get("/patients", follow_redirects=False).status_code == 303  # the other one ended


def test_wrong_current_passwords_count_as_failed_logins(client):
    logged_in(client)
    token = csrf_of(client.get("/account").text)
    for _ in range(5):
        r = client.post("/account/password", data={"csrf_token": token, "username": "dr.a",
                                                    "current_password": "guess", "new_password": "x" * 12})
        if r.status_code == 303:
            break
    assert client.get("/patients", follow_redirects=False).status_code == 303  # locked out, session ended
    assert login(TestClient(client.app), BASE, "dr.a", "clinic-password-1").status_code == 401


def test_an_admin_disables_a_user(client):
    victim = logged_in(TestClient(client.app))
    admin = logged_in(TestClient(client.app), "admin", "admin-password-1")
    token = csrf_of(admin.get("/account").text)
    assert admin.post("/admin/users/disable", data={"csrf_token": token, "username": "dr.a", "confirm": "yes"},
                      follow_redirects=False).status_code == 303
    assert victim.get("/patients", follow_redirects=False).status_code == 303
    assert login(TestClient(client.app), BASE, "dr.a", "clinic-password-1").status_code == 401
    clinician = logged_in(TestClient(client.app), "dr.b")
    token = csrf_of(clinician.get("/account").text)
    r = clinician.post("/admin/users/disable", data={"csrf_token": token, "username": "admin", "confirm": "yes"})
    assert r.status_code == 403


def test_bad_dates_and_control_characters_are_refused_in_one_sentence(client, engine):
    logged_in(client)
    token = csrf_of(client.get("/patients/KP-0001").text)
    r = client.post("/patients/KP-0001/diary", data={"csrf_token": token, "recorded_at": "0026-03-01T08:00",
                                                     "nrs": "3"})
    assert r.status_code == 400 and "a date from 1950-01-01 on" in r.text
    r = client.post("/patients/KP-0001/note", data={"csrf_token": token, "text": "bad\x00byte"})
    assert r.status_code == 400 and "without control, invisible or direction-changing characters" in r.text
    with transaction(engine) as s:
        assert s.scalar(select(func.count()).select_from(PainEntry)) == 0


def test_a_forecast_that_fails_does_not_break_the_pages(client, engine, monkeypatch):
    import ketaplan.course.forecast as forecast

    def broken(s, p, threshold=0.3):
        raise MemoryError("simulated")

    monkeypatch.setattr(forecast, "compute_forecast", broken)
    logged_in(client)
    assert client.get("/patients").status_code == 200
    page = client.get("/patients/KP-0001")
    assert page.status_code == 200 and "No forecast: the record could not be fitted." in page.text
    assert "(MemoryError)" in page.text


def test_requests_can_be_deleted(client, engine):
    with transaction(engine) as s:
        store.add_appointment_request(s, "B. Person", "b@example.org", "hello", True, VERSION)
    logged_in(client)
    token = csrf_of(client.get("/inbox").text)
    assert client.post("/inbox/1/delete", data={"csrf_token": token}).status_code == 400  # not confirmed
    assert client.post("/inbox/1/delete", data={"csrf_token": token, "confirm": "yes"},
                       follow_redirects=False).status_code == 303
    assert "b@example.org" not in client.get("/inbox").text


def test_the_rate_limit_window_counts_per_address_and_forgets_old_events():
    from ketaplan.web.rate_limit import SlidingWindow

    w = SlidingWindow(2, 60.0, max_keys=3)
    assert w.retry_after("a", now=0.0) == 0 and w.retry_after("a", now=10.0) == 0
    assert w.retry_after("a", now=20.0) == pytest.approx(40.0)  # the first event leaves the window at 60 s
    assert w.retry_after("b", now=20.0) == 0  # another address has its own count
    assert w.retry_after("a", now=60.0) == 0  # 0 s has left the window; 10 s and 60 s are in it now
    assert w.retry_after("a", now=61.0) == pytest.approx(9.0)
    for key in "cde":
        w.retry_after(key, now=62.0)
    assert list(w._events) == ["c", "d", "e"]  # the least recently seen addresses are forgotten first


def test_public_forms_are_limited_per_address_and_refusals_change_nothing(engine):
    app = create_app(engine=engine, secure_cookies=False, login_limit=(3, 600.0), request_limit=(2, 3600.0),
                     settings=ENGLISH)
    public = TestClient(app)
    token = csrf_of(public.get("/request").text)
    data = {"csrf_token": token, "name": "A. Patient", "contact": "a@example.org", "message": "please call",
            "consent_version": VERSION, "consent": "yes"}
    assert [public.post("/request", data=data).status_code for _ in range(2)] == [200, 200]
    r = public.post("/request", data=data)
    assert r.status_code == 429 and "Too many attempts from your address" in r.text
    assert 3500 < int(r.headers["Retry-After"]) <= 3600 and r.headers["X-Frame-Options"] == "DENY"
    with transaction(engine) as s:
        assert s.scalar(select(func.count()).select_from(AppointmentRequest)) == 2
    staff = TestClient(app)
    assert [login(staff, BASE, "dr.a", "wrong-password").status_code for _ in range(2)] == [401, 401]
    assert login(staff, BASE, "dr.a", "clinic-password-1").status_code == 303  # the third post is allowed
    assert login(staff, BASE, "dr.a", "clinic-password-1").status_code == 429  # the fourth is not
    assert staff.get("/patients").status_code == 200  # the session from the allowed login still works


def test_visitors_get_no_session_rows_and_never_lock_out_staff(engine):
    """Visitors' forms carry a signed token instead of a database session: a thousand page loads from one
    address cost no rows, and staff at that address still log in."""
    from ketaplan.course.schema import WebSession

    app = create_app(engine=engine, secure_cookies=False, settings=ENGLISH)
    for _ in range(200):
        assert TestClient(app).get("/request").status_code == 200
    with transaction(engine) as s:
        assert s.scalar(select(func.count()).select_from(WebSession)) == 0
    assert login(TestClient(app), BASE, "dr.a", "clinic-password-1").status_code == 303


def test_a_visitor_token_works_only_with_its_own_cookie(engine):
    app = create_app(engine=engine, secure_cookies=False, settings=ENGLISH)
    first, second = TestClient(app), TestClient(app)
    token = csrf_of(first.get("/login").text)
    second.get("/login")
    r = second.post("/login", data={"csrf_token": token, "username": "dr.a", "password": "clinic-password-1"},
                    follow_redirects=False)
    assert r.status_code == 403 and "security token" in r.text
