"""The dashboard in Debian's chromium (Playwright) against a real ``ketaplan serve``: a nurse's day in Dutch and in
English, every page checked with axe-core (no serious or critical violations) and photographed.

Needs chromium and Playwright; .ci/run installs both and sets KETAPLAN_REQUIRE_BROWSER=1. The screenshots are
written to tests/output/ (ignored by git) to be looked at.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from conftest import Server, fresh_engine, seed_clinic
from ketaplan.course import store
from ketaplan.course.db import transaction
from test_report_browser import CHROMIUM, _browser_or_skip

OUTPUT = Path(__file__).parent / "output"
START = datetime(2026, 8, 3, 9)
WORDS = {
    "nl": {"login": "Inloggen", "search": "Zoeken", "plan_next": "Volgende kuur plannen", "simulate": "Berekenen",
           "above_usual": "meer dan de gebruikelijke", "plan": "Kuur plannen", "pump": "Pompschema",
           "record": "Infusie vastleggen", "slip": "vergissing in de eenheid",
           "save_correction": "Verbetering opslaan", "corrected": "Verbeterd", "logout": "Uitloggen",
           "mail_us": "Mail ons voor het maken van een afspraak", "agree": "Ik ga akkoord met de privacyverklaring",
           "send": "Verzoek versturen", "thanks": "Wij hebben uw verzoek ontvangen", "handled": "Afgehandeld",
           "future": "alleen een planning kan in de toekomst liggen"},
    "en": {"login": "Log in", "search": "Search", "plan_next": "Plan the next course", "simulate": "Simulate",
           "above_usual": "is above the usual", "plan": "Plan course", "pump": "Pump sheet",
           "record": "Record infusion", "slip": "unit slip",
           "save_correction": "Save the correction", "corrected": "Corrected", "logout": "Log out",
           "mail_us": "Mail us to make an appointment", "agree": "I agree to the privacy statement",
           "send": "Send request", "thanks": "Your request has been received", "handled": "Mark handled",
           "future": "only plans can lie in the future"},
}


@pytest.fixture
def server(tmp_path, smtp_server):
    engine = fresh_engine("sqlite", tmp_path)
    seed_clinic(engine)
    version = store.privacy_statement()[0]
    with transaction(engine) as s:
        p = store.add_patient(s, "dr.a", "KP-0100", 1966, "male", "chronische axonale polyneuropathie", 80.0, version,
                              7.0)
        store.add_patient(s, "dr.a", "KP-0101", 1975, "female", "CRPS", 65.0, version, 6.0)
        c, _ = store.plan_course(s, "dr.a", p, "20 mg/h IV for 5 d", START)
        store.record_infusion(s, "dr.a", p, c, START, START + timedelta(days=5), 20.0)
        for day, nrs in ((8, 7), (15, 2), (29, 9), (60, 3), (80, 5)):  # day 29: 9 typed for 2
            store.add_pain(s, "dr.a", p, START + timedelta(days=day), nrs)
        store.add_level(s, "dr.a", p, START + timedelta(days=1), "ketamine", 155.0)
        store.add_level(s, "dr.a", p, START + timedelta(days=4), "ketamine", 168.0)
        store.add_note(s, "dr.a", p, "Lange infusie goed verdragen.\nVolgende keer weer 20 mg/h.\n" + "x" * 4900)
    config = tmp_path / "clinic.toml"
    config.write_text(f'clinic = "Pijnpoli Ziekenhuis Oost"\ncontact = "pijnpoli@example.org, 020 123 45 67"\n'
                      f'language = "nl"\npublic_url = "https://pijn.example.org"\n\n[mail]\nhost = "127.0.0.1"\n'
                      f'port = {smtp_server[0]}\nsender = "ketaplan@example.org"\nto = ["pijnpoli@example.org"]\n')
    srv = Server(str(engine.url), tmp_path / "server.log", "--config", str(config))
    srv.inbox = smtp_server[1]
    yield srv
    srv.stop()


class Day:
    """One browser session: every page visited is checked with axe and photographed."""

    def __init__(self, page, server, language: str) -> None:
        from axe_playwright_python.sync_playwright import Axe

        self.page, self.url, self.language, self.axe = page, server.url, language, Axe()
        self.shots = 0
        self.problems: list[str] = []

    def look(self, name: str) -> None:
        results = self.axe.run(self.page)
        bad = [v for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
        self.problems += [f"{self.language} {name}: {v['id']} {v['help']} "
                          f"{[n['target'] for n in v['nodes']][:3]}" for v in bad]
        self.shots += 1
        OUTPUT.mkdir(exist_ok=True)
        self.page.screenshot(path=str(OUTPUT / f"{self.language}-{self.shots:02d}-{name}.png"), full_page=True)

    def go(self, path: str, name: str) -> None:
        self.page.goto(self.url + path)
        self.look(name)

    def text(self, selector: str = "main") -> str:
        return self.page.inner_text(selector)


@pytest.mark.parametrize("language", ["nl", "en"])
def test_a_nurses_day_in_the_browser(server, language):
    sync_playwright = _browser_or_skip()
    w = WORDS[language]
    errors, external = [], []
    now = datetime.now().replace(second=0, microsecond=0)
    begin, end = now - timedelta(hours=3), now - timedelta(hours=1)
    with sync_playwright() as p:
        # --lang: date fields in the nurse's format where Debian's chromium-l10n is installed
        browser = p.chromium.launch(executable_path=CHROMIUM,
                                    args=["--no-sandbox", "--disable-gpu", f"--lang={language}-NL"])
        context = browser.new_context(viewport={"width": 1366, "height": 900}, locale=f"{language}-NL",
                                      extra_http_headers={"Accept-Language": f"{language},en;q=0.5"})
        page = context.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        # refusals answer 400 and the unknown patient 404 on purpose; anything else in the console is an error
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" and "status of 400" not in m.text
                and "status of 404" not in m.text else None)
        page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(server.url)
                   else (external.append(route.request.url), route.abort()))
        day = Day(page, server, language)
        # log in, find the patient
        day.go("/patients/KP-0100", "login")
        assert page.url.endswith("/login")
        page.fill("#username", "dr.a")
        page.fill("#password", "clinic-password-1")
        page.click(f"main button:has-text('{w['login']}')")
        page.fill("#q", "kp-0100")
        page.click(f"form.search button:has-text('{w['search']}')")
        assert page.locator("#patients tbody tr").count() == 1
        code = page.locator("#patients th.code a").bounding_box()
        assert code["height"] < 30  # the code on one line, not broken at its hyphen
        day.look("patients")
        page.click("#patients a:has-text('KP-0100')")
        day.look("patient")
        assert page.locator("#forecast svg title").count() == 1
        assert page.evaluate("getComputedStyle(document.querySelector('#consent label.check')).fontWeight") == "400"
        # plan the next course, prefilled from the record; the mistyped rate draws the warning
        page.click(f"a:has-text('{w['plan_next']}')")
        assert page.input_value("#weight") == "80" and page.input_value("#baseline_pain") == "7"
        page.fill("#regimen", "200 mg/h IV for 5 d")
        page.fill("#start", begin.strftime("%Y-%m-%dT%H:%M"))
        page.click(f"button:has-text('{w['simulate']}')")
        assert w["above_usual"] in day.text("#checks")
        day.look("planner-mistyped")
        page.fill("#regimen", "20 mg/h IV for 5 d")
        page.click(f"button:has-text('{w['simulate']}')")
        assert w["above_usual"] not in day.text("#checks")
        assert page.locator("#plan-table tbody tr").count() == 1 and page.locator("#next-due").count() == 1
        table = page.locator("#plan-table")  # the course table a clinician reads first fits the page
        assert table.evaluate("t => t.scrollWidth <= t.parentElement.clientWidth")
        chart = page.locator("#plan-chart svg")
        assert chart.bounding_box()["width"] > 900 and page.locator("#plan-chart svg desc").count() == 1
        day.look("planner")
        page.click(f"#plan-this button:has-text('{w['plan']}')")
        assert "/patients/KP-0100" in page.url
        # the pump sheet, on screen and as printed
        page.click(f"#course-table a:has-text('{w['pump']}')")
        assert "500 mg" in day.text("#sheet") and page.locator("#pump-changes tbody tr").count() == 5
        day.look("pump-sheet")
        page.emulate_media(media="print")
        assert page.evaluate("getComputedStyle(document.querySelector('header.top')).display") == "none"
        page.set_viewport_size({"width": 794, "height": 1123})  # A4 at 96 dpi
        page.screenshot(path=str(OUTPUT / f"{language}-pump-sheet-print.png"), full_page=True)
        page.emulate_media(media="screen")
        page.set_viewport_size({"width": 1366, "height": 900})
        # record the infusion: the mistyped rate is refused, the right one kept; the future is refused
        page.goto(server.url + "/patients/KP-0100")
        page.fill("#inf-course", "2")
        page.fill("#inf-start", begin.strftime("%Y-%m-%dT%H:%M"))
        page.fill("#inf-end", (now + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M"))
        page.fill("#inf-rate", "20 mg/h")
        page.click(f"button:has-text('{w['record']}')")
        assert w["future"] in day.text("#form-error")
        page.fill("#inf-end", end.strftime("%Y-%m-%dT%H:%M"))
        page.fill("#inf-rate", "1000 mg/h")
        page.click(f"button:has-text('{w['record']}')")
        assert w["slip"] in day.text("#form-error") and page.locator("#confirm-reason").count() == 1
        assert page.input_value("#inf-rate") == "1000 mg/h"  # what was typed is kept
        day.look("infusion-refused")
        page.fill("#inf-rate", "20 mg/h")  # corrected: no confirmation needed
        page.click(f"button:has-text('{w['record']}')")
        assert page.locator("#form-error").count() == 0
        assert page.locator("#course-table tbody tr").nth(1).inner_text().count("20 mg/h") >= 2
        # correct the wrong diary entry (9 typed for 2)
        page.locator("xpath=//table[@id='diary']//tr[td[2][normalize-space()='9']]//a").click()
        page.fill("#c-nrs", "2")
        page.fill("#c-reason", "typfout: 9 voor 2" if language == "nl" else "typo: 9 for 2")
        page.click(f"button:has-text('{w['save_correction']}')")
        assert w["corrected"] in day.text("#history")
        day.look("diary-corrected")
        # a tablet: nothing wider than the screen, not even a 5000-character word
        page.set_viewport_size({"width": 768, "height": 1024})
        for url, name in (("/patients", "tablet-patients"), ("/patients/KP-0100", "tablet-patient"),
                          ("/patients/KP-0100/plan?regimen=20+mg/h+IV+for+5+d&weight=80", "tablet-planner"),
                          ("/patients/KP-0100/courses/2/pump", "tablet-pump-sheet"), ("/inbox", "tablet-inbox")):
            day.go(url, name)
            assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), url
            if name == "tablet-planner":  # the course table fits a tablet held upright
                assert page.locator("#plan-table").evaluate("t => t.scrollWidth <= t.parentElement.clientWidth")
        page.set_viewport_size({"width": 1366, "height": 900})
        page.click(f"header button:has-text('{w['logout']}')")
        # the public appointment request: the clinic's language, or the reader's choice
        page.goto(server.url + "/request")
        if language == "en":
            assert "Mail ons voor het maken van een afspraak" in day.text()
            page.click("header a:has-text('English')")
        assert w["mail_us"] in day.text() and w["agree"] in day.text()
        page.fill("#name", "Jan Jansen")
        page.fill("#contact", "jan@example.org")
        page.fill("#message", "Ik heb al jaren pijn in beide voeten.")
        page.click(f"button:has-text('{w['send']}')")
        assert page.locator(".error").count() == 1  # not without consent
        assert page.input_value("#contact") == "jan@example.org"
        day.look("request-refused")
        page.check("#consent")
        page.click(f"button:has-text('{w['send']}')")
        assert w["thanks"] in day.text()
        day.look("request-done")
        day.go("/privacy", "privacy")
        # the clinic is told by mail, and the request waits in the inbox
        page.goto(server.url + "/login")
        page.fill("#username", "dr.b")
        page.fill("#password", "clinic-password-1")
        page.click(f"main button:has-text('{w['login']}')")
        page.goto(server.url + "/inbox")
        assert "jan@example.org" in day.text("#inbox")
        day.look("inbox")
        page.click(f"#inbox button:has-text('{w['handled']}')")
        for path, name in (("/account", "account"), ("/plan/routes?route=iv&route=oral&route=intranasal", "routes"),
                           ("/patients/new", "patient-new"), ("/patients/NOPE", "error")):
            day.go(path, name)
        # an admin's pages
        page.click(f"header button:has-text('{w['logout']}')")
        page.fill("#username", "admin")
        page.fill("#password", "admin-password-1")
        page.click(f"main button:has-text('{w['login']}')")
        day.go("/admin/users", "users")
        day.go("/patients/KP-0101", "patient-admin")
        assert page.locator("#erase-code").count() == 1
        browser.close()
    assert day.problems == []
    assert errors == [] and external == []
    assert len(server.inbox) == 1 and b"jan@example.org" not in server.inbox[0].content
    log = server.log_path.read_text()
    assert "KP-0100" not in log and "jan@example.org" not in log
