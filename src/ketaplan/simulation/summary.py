"""Per-course numbers of a patient's run: Cmax, steady state, AUC, time above thresholds, relief, next course.

For each course the summary reports Cmax, the average steady-state level (average input rate x F /
clearance), AUC until the next course, hours above the analgesic and psychotomimetic thresholds,
norketamine exposure, relief at the end of the course and how long it stays above the relief
threshold, and when the next course is due.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from ketaplan.simulation.course_levels import course_windows, steady_state_level, time_above
from ketaplan.simulation.run import PatientRun, relief_layer


def course_summary(run: PatientRun, relief_threshold: float = 0.3) -> pd.DataFrame:
    """One row per course (see the module docstring). Times in h from the first dose, dates if known."""
    f = run.frame
    t = f["time"].to_numpy()
    parent = f[run.parent].to_numpy()
    analgesia = run.thresholds["analgesia"].value
    psycho = run.thresholds["psychotomimetic"].value
    layer = relief_layer(run.spec)
    relief = f[layer.name].to_numpy() if layer is not None else None
    rows = []
    for course, w in course_windows(t, run.courses):
        tw, cw = t[w], parent[w]
        row = {
            "course": course.index,
            "start_h": course.start,
            "end_h": course.end,
            "dose_mg": course.amount,
            "cmax_ng_ml": float(cw.max()),
            "css_avg_ng_ml": steady_state_level(run.built, course, run.parent),
            "auc_ng_h_ml": float(np.trapezoid(cw, tw)),
            "hours_above_analgesia": time_above(tw, cw, analgesia),
            "hours_above_psychotomimetic": time_above(tw, cw, psycho),
        }
        if run.metabolite is not None:
            mw = f[run.metabolite].to_numpy()[w]
            row["norketamine_cmax_ng_ml"] = float(mw.max())
            row["norketamine_auc_ng_h_ml"] = float(np.trapezoid(mw, tw))
        if relief is not None:
            rw = relief[w]
            after = tw >= course.end
            row["relief_at_end"] = float(np.interp(course.end, tw, rw))
            row["relief_peak"] = float(rw.max())
            below = after & (rw < relief_threshold)
            if row["relief_peak"] < relief_threshold:
                row["relief_days"] = 0.0
            elif np.any(below):
                row["relief_days"] = float((tw[below][0] - course.end) / 24.0)
            else:
                row["relief_days"] = float("nan")  # still above the threshold at the next course or the end
            row["next_course_due_h"] = course.end + 24.0 * row["relief_days"] if np.isfinite(row["relief_days"]) \
                else float("nan")
        if run.regimen.start is not None:
            row["start_date"] = run.regimen.start + timedelta(hours=course.start)
            row["end_date"] = run.regimen.start + timedelta(hours=course.end)
            if "next_course_due_h" in row and np.isfinite(row["next_course_due_h"]):
                row["next_course_due_date"] = run.regimen.start + timedelta(hours=row["next_course_due_h"])
        rows.append(row)
    return pd.DataFrame(rows)


def date_of(start: datetime | None, hours: float, compact: bool = False) -> str:
    """A readable date for hours from the first dose, or 'day N' ('dN' compact) without a start date."""
    if not np.isfinite(hours):
        return "-"
    if start is None:
        return f"d{hours / 24:.1f}" if compact else f"day {hours / 24:.1f}"
    return (start + timedelta(hours=hours)).strftime("%Y-%m-%d %H:%M")


def when_text(hours: float, start: datetime | None) -> str:
    """'day 84.2' or a date, for a time in hours; 'beyond the forecast horizon' for infinity."""
    if not np.isfinite(hours):
        return "beyond the forecast horizon"
    if start is None:
        return f"day {hours / 24:.1f}"
    return (start + timedelta(hours=float(hours))).strftime("%Y-%m-%d")
