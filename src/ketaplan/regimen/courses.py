"""Doses given and treatment courses: every administration of a regimen, grouped into courses.

A *course* is a run of administrations with gaps shorter than :data:`COURSE_GAP_H` (so a 5-day
infusion repeated every 11 weeks gives one course per infusion, and "50 mg PO q8h for 14 d" one
course).
"""

from __future__ import annotations

from dataclasses import dataclass

from ketaplan.regimen.events import Regimen

COURSE_GAP_H = 7 * 24.0
"""Administrations separated by less than this belong to the same course."""


@dataclass(frozen=True)
class Administration:
    """One dose given: start and end (h), amount (mg), route, rate (mg/h, 0 for a bolus)."""

    start: float
    end: float
    amount: float
    route: str
    rate: float


@dataclass(frozen=True)
class Course:
    """A treatment course: consecutive administrations."""

    index: int
    start: float
    end: float
    administrations: tuple[Administration, ...]

    @property
    def amount(self) -> float:
        return sum(a.amount for a in self.administrations)


def administrations(regimen: Regimen) -> list[Administration]:
    """Every dose given (repeats expanded), in time order; the regimen must be resolved (no per-kg)."""
    out = []
    for e in regimen.events:
        if e.evid == 3:
            continue
        for t in e.dose_times():
            hours = e.infusion_hours
            rate = e.rate if e.rate > 0 else (e.amount / hours if hours > 0 else 0.0)
            out.append(Administration(float(t), float(t + hours), e.amount, e.route, rate))
    return sorted(out, key=lambda a: a.start)


def group_courses(admins: list[Administration], gap: float = COURSE_GAP_H) -> list[Course]:
    """Consecutive administrations with gaps below ``gap`` hours form a course."""
    courses: list[list[Administration]] = []
    ends: list[float] = []  # the latest end of each course so far: one comparison per administration
    for a in admins:
        if courses and a.start - ends[-1] < gap:
            courses[-1].append(a)
            ends[-1] = max(ends[-1], a.end)
        else:
            courses.append([a])
            ends.append(a.end)
    return [Course(i + 1, c[0].start, end, tuple(c)) for i, (c, end) in enumerate(zip(courses, ends, strict=True))]
