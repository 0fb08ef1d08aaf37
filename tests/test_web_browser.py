"""The dashboard in Debian's chromium (Playwright) against a real ``ketaplan serve``: a clinician's day.

Needs chromium and Playwright; .ci/run installs both and sets KETAPLAN_REQUIRE_BROWSER=1.
"""

from __future__ import annotations

import pytest

from conftest import Server, fresh_engine, seed_clinic
from test_report_browser import CHROMIUM, _browser_or_skip


@pytest.fixture
def server(tmp_path):
    engine = fresh_engine("sqlite", tmp_path)
    seed_clinic(engine)
    srv = Server(str(engine.url), tmp_path / "server.log")
    yield srv
    srv.stop()


def test_a_clinicians_day_in_the_browser(server):
    sync_playwright = _browser_or_skip()
    errors = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("pageerror", lambda e: errors.append(str(e)))
        # the two refusals below answer 400 on purpose; anything else in the console is an error
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" and "status of 400" not in m.text
                else None)
        external = []
        page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(server.url)
                   else (external.append(route.request.url), route.abort()))
        # a patient page without a session goes to the login
        page.goto(server.url + "/patients/KP-0001")
        assert page.url.endswith("/login")
        page.fill("#username", "dr.a")
        page.fill("#password", "clinic-password-1")
        page.click("text=Log in")
        assert page.url.endswith("/patients")
        # add a patient: refused without the consent box, accepted with it
        page.click("text=Add a patient")
        page.fill("#code", "KP-0100")
        page.fill("#birth_year", "1966")
        page.select_option("#sex", "male")
        page.fill("#weight", "80")
        page.fill("#baseline_pain", "7")
        page.fill("#diagnosis", "axonal polyneuropathy")
        page.click("button:has-text('Add patient')")
        assert "privacy statement" in page.inner_text(".error")
        page.check("#consent")
        page.click("button:has-text('Add patient')")
        assert page.url.endswith("/patients/KP-0100")
        # plan and record a course, then diary entries
        page.fill("#regimen", "20 mg/h IV for 5 d")
        page.fill("#course-start", "2026-01-05T09:00")
        page.click("button:has-text('Plan course')")
        page.fill("#inf-course", "1")
        page.fill("#inf-start", "2026-01-05T09:00")
        page.fill("#inf-end", "2026-01-10T09:00")
        page.fill("#inf-rate", "20 mg/h")
        page.click("button:has-text('Record infusion')")
        for day, nrs in (("2026-01-17T08:00", "2"), ("2026-01-31T08:00", "2"), ("2026-02-14T08:00", "3")):
            page.fill("#diary-at", day)
            page.fill("#diary-nrs", nrs)
            page.click("button:has-text('Add entry')")
        assert page.locator("#diary tr").count() == 3
        # the forecast chart and the alert
        assert "Next course due" in page.inner_text("#forecast")
        chart = page.locator("#forecast svg")
        assert chart.count() == 1 and chart.bounding_box()["width"] > 500
        assert page.locator(".alert.danger").filter(has_text="overdue").count() == 1
        page.goto(server.url + "/patients")
        assert "overdue" in page.inner_text("#patients")
        # the same pages fit a tablet: nothing wider than the screen
        page.set_viewport_size({"width": 768, "height": 1024})
        for url in ("/patients", "/patients/KP-0100", "/inbox"):
            page.goto(server.url + url)
            assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), url
        page.click("text=Log out")
        # the public appointment request: refused without consent, accepted with it
        page.goto(server.url + "/request")
        page.fill("#name", "A. Person")
        page.fill("#contact", "person@example.org")
        page.fill("#message", "I would like an appointment")
        page.click("button:has-text('Send request')")
        assert "privacy statement" in page.inner_text(".error")
        page.check("#consent")
        page.click("button:has-text('Send request')")
        assert "Your request has been received" in page.inner_text("main")
        # it reaches the clinicians' inbox
        page.goto(server.url + "/login")
        page.fill("#username", "dr.b")
        page.fill("#password", "clinic-password-1")
        page.click("text=Log in")
        page.goto(server.url + "/inbox")
        assert "person@example.org" in page.inner_text("#inbox")
        browser.close()
    assert errors == [] and external == []
    log = server.log_path.read_text()
    assert "KP-0100" not in log and "person@example.org" not in log
