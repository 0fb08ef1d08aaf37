"""The printable pump sheet of a planned course: the preparation (a usual one, with a suggestion that makes a
container last a shift within the hang time), the rate in mL/h, every container change at its clock time, drug
and volume per day, patient code and signature lines. The numbers are ``ketaplan pump``'s (``pump_plan``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from fastapi import APIRouter, Request

from ketaplan.course import store
from ketaplan.errors import InputError
from ketaplan.web.i18n import N_
from ketaplan.web.pages_patients import number
from ketaplan.web.views import refused, render, staff_view, translator

router = APIRouter()
SHIFT_HOURS = 8.0
"""A container should last at least a nursing shift."""


@dataclass(frozen=True)
class Preparation:
    """A usual ready-to-use preparation: ``drug_mg`` in ``volume_ml`` of a syringe or bag."""

    key: str
    drug_mg: float
    volume_ml: float
    container: str

    @property
    def concentration(self) -> float:
        return self.drug_mg / self.volume_ml


PREPARATIONS = (Preparation("50-50", 50, 50, "syringe"), Preparation("250-50", 250, 50, "syringe"),
                Preparation("500-50", 500, 50, "syringe"), Preparation("250-250", 250, 250, "bag"),
                Preparation("500-500", 500, 500, "bag"))
"""Usual preparations (from 10 and 50 mg/mL ampoules): 1, 5 and 10 mg/mL syringes; 1 mg/mL bags."""


def _plan(regimen, weight: float, prep: Preparation, hang: float, increment: float):
    from ketaplan.planning.pump import pump_plan

    return pump_plan(regimen, weight, prep.concentration, prep.container, prep.volume_ml, increment, hang)


def suggest(regimen, weight: float, hang: float, increment: float) -> Preparation | None:
    """The syringe preparation with the fewest changes among those lasting a shift at the fastest rate (the
    weaker one on a tie); None when none lasts a shift."""
    best = None
    for prep in (p for p in PREPARATIONS if p.container == "syringe"):
        try:
            plan = _plan(regimen, weight, prep, hang, increment)
        except InputError:
            continue
        fastest = max((s.rate_ml_h_rounded for s in plan.segments), default=0.0)
        lasts = min(prep.volume_ml / fastest, hang) if fastest else hang
        if lasts >= SHIFT_HOURS and (best is None or len(plan.changes) < best[0]):
            best = (len(plan.changes), prep)
    return best[1] if best else None


@router.get("/patients/{code}/courses/{course_number:int}/pump")
def pump_sheet(request: Request, code: str, course_number: int, preparation: str = "", hang: str = "24",
               increment: str = "0.1"):
    from ketaplan.planning.pump import clock
    from ketaplan.regimen.safety import check_plan
    from ketaplan.regimen.text import parse_regimen

    def view(s, v):
        t = translator(request)
        try:
            p = store.get_patient(s, code)
            course = store.get_course(p, course_number)
        except InputError:
            return refused(request, v, N_("There is no such page."), status=404)
        weight = store.latest_weight(p)
        regimen = parse_regimen(course.planned_regimen)
        if course.planned_start is not None and regimen.start is None:
            regimen = regimen.with_start(course.planned_start)
        error, plan = None, None
        try:
            hang_h = number({"hang": hang}, "hang", "maximum hang time") or 24.0
            step = number({"increment": increment}, "increment", "pump increment") or 0.1
            suggested = suggest(regimen, weight, hang_h, step)
            chosen = next((x for x in PREPARATIONS if x.key == preparation), None) or suggested or PREPARATIONS[2]
            plan = _plan(regimen, weight, chosen, hang_h, step)
        except InputError as exc:
            error, chosen, suggested, hang_h, step = t.error(exc), PREPARATIONS[2], None, 24.0, 0.1
        findings = check_plan(regimen, weight, force=True)

        def at(hours: float) -> str:
            """A moment of the plan as the sheet shows it: date and clock time, or day N and clock time."""
            if regimen.start is not None:
                return t.datetime(regimen.start + timedelta(hours=hours))
            return clock(None, hours).replace("day", t.gettext("day"))

        return render(request, "pump_sheet.html", v, p=p, course=course, regimen=regimen, weight=weight, plan=plan,
                      chosen=chosen, suggested=suggested, preparations=PREPARATIONS, hang=hang_h, increment=step,
                      findings=findings, error=error, shift=SHIFT_HOURS, at=at)

    return staff_view(request, view)
