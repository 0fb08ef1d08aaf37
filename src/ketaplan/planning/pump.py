"""Pump settings: rates in mL/h, container changes with clock times, drug and volume per day and course.

Rates are rounded to the pump's increment; the delivered rate (rounded mL/h x concentration) is what
the patient gets, so the plan also reports the level the rounded rates give.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ketaplan.errors import InputError
from ketaplan.limits import CONTAINER_CHANGES
from ketaplan.regimen.courses import administrations, group_courses
from ketaplan.regimen.events import DoseEvent, Regimen


@dataclass(frozen=True)
class PumpSegment:
    """A stretch of constant pump rate."""

    course: int
    start_h: float
    end_h: float
    rate_mg_h: float
    rate_ml_h: float
    rate_ml_h_rounded: float
    delivered_mg_h: float
    per_kg: str | None


@dataclass(frozen=True)
class ContainerChange:
    """A new syringe or bag at ``time_h`` (the first one at the start of each course)."""

    course: int
    number: int
    time_h: float
    clock: str
    volume_ml: float
    drug_mg: float


@dataclass(frozen=True)
class DayTotal:
    """Drug and volume given on one calendar day (or one 24 h from the first dose without a start date)."""

    day: str
    drug_mg: float
    volume_ml: float


@dataclass(frozen=True)
class CourseTotal:
    """Drug, volume and containers of one course."""

    course: int
    drug_mg: float
    volume_ml: float
    containers: int


@dataclass
class PumpPlan:
    """Everything the nurse and pharmacist need to set up and follow the infusion."""

    concentration_mg_ml: float
    container: str
    container_ml: float
    increment_ml_h: float
    segments: list[PumpSegment]
    changes: list[ContainerChange]
    boluses: list[dict]
    per_day: list[DayTotal]
    per_course: list[CourseTotal]
    start: datetime | None
    notes: list[str] = field(default_factory=list)

    def delivered_regimen(self, regimen: Regimen, weight_kg: float | None) -> Regimen:
        """The regimen as the pump delivers it (rounded rates), to simulate the levels it gives."""
        infusions = [DoseEvent(s.start_h, s.delivered_mg_h * (s.end_h - s.start_h), "iv", rate=s.delivered_mg_h)
                     for s in self.segments]
        others = [e for e in regimen.resolve(weight_kg).events if not (e.route == "iv" and e.infusion_hours > 0.25)]
        return Regimen(tuple(infusions + others), start=regimen.start, drug=regimen.drug, label="as delivered")


def clock(start: datetime | None, hours: float) -> str:
    """Clock time of a moment, or 'day N HH:MM' counted from the first dose (day 1 00:00) without a start date."""
    if start is not None:
        return (start + timedelta(hours=hours)).strftime("%Y-%m-%d %H:%M")
    total = round(hours * 60)
    day, minutes = divmod(total, 24 * 60)
    return f"day {day + 1} {minutes // 60:02d}:{minutes % 60:02d}"


def _per_kg_text(event: DoseEvent, weight_kg: float | None) -> str | None:
    """The weight-based conversion of a per-kg prescription, with its cap."""
    if not event.per_kg or weight_kg is None:
        return None
    if event.rate > 0:
        rate = event.rate * weight_kg
        text = f"{event.rate:g} mg/kg/h x {weight_kg:g} kg = {rate:.4g} mg/h"
        if event.max_rate is not None and rate > event.max_rate:
            text += f", capped at {event.max_rate:g} mg/h"
        return text
    return f"{event.amount:g} mg/kg x {weight_kg:g} kg = {event.amount * weight_kg:.4g} mg"


MIN_CONTAINER_HOURS = 2.0
"""A container that lasts less than this at the fastest rate is flagged: likely a concentration slip."""


def pump_plan(regimen: Regimen, weight_kg: float | None, concentration_mg_ml: float, container: str = "syringe",
              container_ml: float = 50.0, increment_ml_h: float = 0.1, max_hang_h: float = 24.0) -> PumpPlan:
    """The pump plan of the IV infusions of ``regimen`` (see the module docstring).

    A new container is hung at the start of each separate infusion, when the previous one is empty,
    and when it has hung for ``max_hang_h`` hours (a local infection-control policy; default 24 h).
    """
    for name, value, allowed in (("concentration", concentration_mg_ml, "must be > 0 mg/mL"),
                                 ("container volume", container_ml, "must be > 0 mL"),
                                 ("pump increment", increment_ml_h, "must be > 0 mL/h"),
                                 ("maximum hang time", max_hang_h, "must be > 0 h")):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise InputError(name, value, allowed)
    if container not in ("syringe", "bag"):
        raise InputError("container", container, "allowed values are syringe and bag")
    resolved = regimen.resolve(weight_kg)
    courses = group_courses(administrations(resolved))
    course_of = {a.start: c.index for c in courses for a in c.administrations}
    segments: list[PumpSegment] = []
    boluses: list[dict] = []
    for original, e in zip(regimen.events, resolved.events, strict=True):
        if e.route != "iv" or e.evid == 3:
            continue
        hours = e.infusion_hours
        rate = e.rate if e.rate > 0 else (e.amount / hours if hours > 0 else 0.0)
        for t in e.dose_times():
            course = course_of[float(t)]
            if hours <= 0.25:
                boluses.append({"course": course, "time_h": float(t), "clock": clock(regimen.start, float(t)),
                                "dose_mg": e.amount, "volume_ml": e.amount / concentration_mg_ml})
                continue
            ml_h = rate / concentration_mg_ml
            rounded = round(ml_h / increment_ml_h) * increment_ml_h
            if rounded <= 0:
                raise InputError("pump increment", increment_ml_h, f"a rate of {ml_h:.3g} mL/h rounds to 0 mL/h; use a "
                                 "finer increment or a weaker concentration")
            segments.append(PumpSegment(course, float(t), float(t + hours), rate, ml_h, round(rounded, 6),
                                        rounded * concentration_mg_ml, _per_kg_text(original, weight_kg)))
    segments.sort(key=lambda s: s.start_h)
    if not segments and not boluses:
        raise InputError("regimen", regimen.label or "this regimen", "has no IV dose for a pump")
    CONTAINER_CHANGES.check("pump plan", expected_changes(segments, container_ml, max_hang_h),
                            f"check the concentration ({concentration_mg_ml:g} mg/mL), the {container} volume "
                            f"({container_ml:g} mL) and --max-hang ({max_hang_h:g} h)")
    changes = _container_changes(segments, container_ml, concentration_mg_ml, regimen.start, max_hang_h)
    per_day = _per_day(segments, boluses, regimen.start)
    per_course = _per_course(courses, segments, boluses, changes)
    notes = []
    fastest = max((s.rate_ml_h_rounded for s in segments), default=0.0)
    if fastest > container_ml / MIN_CONTAINER_HOURS:
        notes.append(f"check the concentration: at {fastest:g} mL/h a {container_ml:g} mL {container} lasts "
                     f"{container_ml / fastest * 60:.0f} min ({len(changes)} changes in all); µg/mL typed for "
                     f"mg/mL gives 1000 x the volume")
    if any(abs(s.rate_ml_h_rounded - s.rate_ml_h) > 1e-9 for s in segments):
        notes.append(f"rates are rounded to the pump increment of {increment_ml_h:g} mL/h; the delivered dose differs "
                     "slightly from the prescription (see the delivered mg/h)")
    return PumpPlan(concentration_mg_ml, container, container_ml, increment_ml_h, segments, changes, boluses,
                    per_day, per_course, regimen.start, notes)


def expected_changes(segments: list[PumpSegment], container_ml: float, max_hang_h: float) -> float:
    """At least as many container changes as the plan will list, counted without listing them: per infusion
    one container, one more each time the volume runs out and each time the hang time ends."""
    return sum(1.0 + (s.end_h - s.start_h) * s.rate_ml_h_rounded / container_ml + (s.end_h - s.start_h) / max_hang_h
               for s in segments)


def _container_changes(segments: list[PumpSegment], container_ml: float, conc: float, start: datetime | None,
                       max_hang_h: float) -> list[ContainerChange]:
    changes: list[ContainerChange] = []
    remaining, hung_at, last_end, number, course = 0.0, 0.0, None, 0, None

    def hang(t: float, c: int) -> None:
        nonlocal remaining, hung_at, number
        number = number + 1 if c == course else 1
        remaining, hung_at = container_ml, t
        changes.append(ContainerChange(c, number, t, clock(start, t), container_ml, container_ml * conc))

    for s in segments:
        if last_end is None or s.start_h > last_end + 1e-9 or s.course != course:
            hang(s.start_h, s.course)  # a separate infusion starts with a fresh container
            course = s.course
        t = s.start_h
        while t < s.end_h - 1e-9:
            empty_at = t + remaining / s.rate_ml_h_rounded
            expire_at = hung_at + max_hang_h
            next_change = min(empty_at, expire_at)
            if next_change >= s.end_h - 1e-9:
                remaining -= (s.end_h - t) * s.rate_ml_h_rounded
                break
            hang(next_change, s.course)
            t = next_change
        last_end = s.end_h
    return changes


def _per_day(segments, boluses, start: datetime | None) -> list[DayTotal]:
    """Drug (mg) and volume (mL) per calendar day (or per 24 h from the first dose)."""
    offset = 0.0 if start is None else start.hour + start.minute / 60.0
    totals: dict[int, list[float]] = {}
    for s in segments:
        t = s.start_h
        while t < s.end_h - 1e-12:
            day = int((t + offset) // 24)
            day_end = (day + 1) * 24 - offset
            upto = min(s.end_h, day_end)
            mg = (upto - t) * s.delivered_mg_h
            ml = (upto - t) * s.rate_ml_h_rounded
            acc = totals.setdefault(day, [0.0, 0.0])
            acc[0] += mg
            acc[1] += ml
            t = upto
    for b in boluses:
        day = int((b["time_h"] + offset) // 24)
        acc = totals.setdefault(day, [0.0, 0.0])
        acc[0] += b["dose_mg"]
        acc[1] += b["volume_ml"]
    rows = []
    for day in sorted(totals):
        label = (start.date() + timedelta(days=day)).isoformat() if start is not None else f"day {day + 1}"
        rows.append(DayTotal(label, round(totals[day][0], 6), round(totals[day][1], 6)))
    return rows


def _per_course(courses, segments, boluses, changes) -> list[CourseTotal]:
    rows = []
    for c in courses:
        segs = [s for s in segments if s.course == c.index]
        mg = sum((s.end_h - s.start_h) * s.delivered_mg_h for s in segs) + sum(
            b["dose_mg"] for b in boluses if b["course"] == c.index)
        ml = sum((s.end_h - s.start_h) * s.rate_ml_h_rounded for s in segs) + sum(
            b["volume_ml"] for b in boluses if b["course"] == c.index)
        rows.append(CourseTotal(c.index, mg, ml, sum(1 for ch in changes if ch.course == c.index)))
    return rows
