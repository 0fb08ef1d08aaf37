"""Per-course plasma numbers from plain arrays: each course's window on the grid, hours above a level and
the steady state. Shared by the course summary and the pump plan (which starts without pandas)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ketaplan.engine.build import BuiltModel
from ketaplan.regimen.courses import Course


def course_windows(t: np.ndarray, courses: list[Course]) -> Iterator[tuple[Course, np.ndarray]]:
    """Each course with the grid points from its start up to the next course's start (or the end)."""
    ends = [c.start for c in courses[1:]] + [t[-1]]
    for course, window_end in zip(courses, ends, strict=True):
        yield course, (t >= course.start) & (t <= window_end)


def time_above(t: np.ndarray, c: np.ndarray, level: float) -> float:
    """Hours with c above ``level``, with linear interpolation inside each grid interval."""
    return float(time_above_batch(t, np.asarray(c, dtype=float)[None, :], level)[0])


def time_above_batch(t: np.ndarray, c: np.ndarray, level: float, inside: np.ndarray | None = None):
    """Hours above ``level`` for each row of c (S, T), interpolating linearly inside grid intervals.

    With ``inside`` (a boolean per grid interval) also returns the hours within the marked intervals.
    """
    dt = np.diff(t)
    above = c > level
    both = (above[:, :-1] & above[:, 1:]).astype(float)
    hours = both @ dt
    rows, cols = np.nonzero(above[:, :-1] != above[:, 1:])
    part = None
    if len(rows):
        a, b = c[rows, cols] - level, c[rows, cols + 1] - level
        part = np.where(a > 0, a / (a - b), b / (b - a))
        np.add.at(hours, rows, part * dt[cols])
    if inside is None:
        return hours
    dt_in = np.where(inside, dt, 0.0)
    hours_in = both @ dt_in
    if part is not None:
        np.add.at(hours_in, rows, part * dt_in[cols])
    return hours, hours_in


def steady_state_level(built: BuiltModel, course: Course, parent: str) -> float:
    """Plasma level (ng/mL) of ``parent`` if the course's average input rate ran forever, by route
    (exact: -K^-1 r).

    NaN for a course of one dose lasting under an hour: a single dose has no steady state.
    """
    if len(course.administrations) == 1 and course.end - course.start < 1.0:
        return float("nan")
    k = built.rate_matrix()[0]
    r = np.zeros(k.shape[0])
    hours = max(course.end - course.start, 1e-9)
    for a in course.administrations:
        for state, part in built.route_parts.get(a.route, ()):
            r[state] += a.amount / hours * built.bioavailability(part.bioavailability)[0]
    amounts = np.linalg.solve(k, -r)
    return float(built.readout([parent])[0, 0] @ amounts)
