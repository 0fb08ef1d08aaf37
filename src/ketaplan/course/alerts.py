"""Alerts for the patient list: next course due, liver enzymes, cumulative dose, missing diary entries.

The next course is the planned one when a course is planned (with its start), else the forecast's date.
Every alert carries its values (``values``) besides the English message, so the dashboard can say it in
the reader's language.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from ketaplan.course.schema import Lab, PainEntry, Patient
from ketaplan.regimen.safety import rules

DUE_SOON_DAYS = 14
DIARY_GAP_DAYS = 14
LIVER_WINDOW_DAYS = 180


@dataclass(frozen=True)
class Alert:
    kind: str  # 'due', 'planned_late', 'before_plan', 'liver', 'dose' or 'diary'
    severity: str  # 'danger', 'warning' or 'info'
    message: str
    values: dict = field(default_factory=dict)


@dataclass(frozen=True)
class NextCourse:
    """When the next course is due: a planned course's start, or the forecast's date (median)."""

    when: datetime | None
    source: str  # 'planned', 'planned_undated', 'forecast' or 'none'
    course: int | None = None
    forecast: datetime | None = None


def next_course(p: Patient, forecast: dict) -> NextCourse:
    """The planned course if there is one (the earliest), else the forecast's next course due."""
    due = forecast.get("next_due", [None, None, None])[1] if forecast.get("status") == "ok" else None
    predicted = datetime.fromisoformat(due) if due else None
    planned = [c for c in p.courses if c.status == "planned" and not c.infusions]
    dated = sorted((c for c in planned if c.planned_start is not None), key=lambda c: c.planned_start)
    if dated:
        return NextCourse(dated[0].planned_start, "planned", dated[0].number, predicted)
    if planned:
        return NextCourse(None, "planned_undated", planned[0].number, predicted)
    return NextCourse(predicted, "forecast" if predicted else "none", None, predicted)


def cumulative_dose_mg(p: Patient, since: datetime) -> float:
    """Drug given (mg) in infusion segments that started after ``since`` (segments counted whole)."""
    return sum(i.rate_mg_h * (i.end - i.start).total_seconds() / 3600.0
               for c in p.courses for i in c.infusions if i.start >= since and i.voided_at is None)


def _course_alerts(nxt: NextCourse, today: datetime) -> list[Alert]:
    out: list[Alert] = []
    if nxt.source == "forecast" and nxt.when <= today:
        out.append(Alert("due", "danger", f"next course overdue since {nxt.when:%Y-%m-%d}", {"date": nxt.when}))
    elif nxt.source == "forecast" and nxt.when <= today + timedelta(days=DUE_SOON_DAYS):
        out.append(Alert("due", "warning", f"next course due {nxt.when:%Y-%m-%d}", {"date": nxt.when}))
    elif nxt.source == "planned" and nxt.when < today:
        out.append(Alert("planned_late", "warning", f"course {nxt.course} was planned to start on "
                         f"{nxt.when:%Y-%m-%d}; record its infusion or cancel it",
                         {"course": nxt.course, "date": nxt.when}))
    if nxt.source == "planned" and nxt.forecast is not None and nxt.forecast < nxt.when - timedelta(days=7):
        out.append(Alert("before_plan", "info", f"relief is predicted to wear off on {nxt.forecast:%Y-%m-%d}, before "
                         f"course {nxt.course} planned on {nxt.when:%Y-%m-%d}",
                         {"course": nxt.course, "date": nxt.forecast, "planned": nxt.when}))
    return out


def patient_alerts(s: Session, p: Patient, forecast: dict, today: datetime) -> list[Alert]:
    out = _course_alerts(next_course(p, forecast), today)
    factor = rules()["liver"]["stop_above_uln"]["value"]
    labs = s.scalars(select(Lab).where(Lab.patient_id == p.id, Lab.voided_at.is_(None), Lab.taken_at <= today,
                                       Lab.taken_at >= today - timedelta(days=LIVER_WINDOW_DAYS))
                     .order_by(Lab.taken_at)).all()
    latest: dict[str, Lab] = {}
    for lab in labs:
        latest[lab.test] = lab
    for test, lab in sorted(latest.items()):
        if lab.test in ("ALT", "AST", "GGT") and lab.value_u_l > factor * lab.uln_u_l:
            out.append(Alert("liver", "danger", f"{test} {lab.value_u_l:g} U/L on {lab.taken_at:%Y-%m-%d} is above "
                                                f"{factor:g} x the upper limit ({lab.uln_u_l:g})",
                             {"test": test, "value": lab.value_u_l, "date": lab.taken_at, "factor": factor,
                              "uln": lab.uln_u_l}))
    review = rules()["cumulative_review_mg_per_year"]
    total = cumulative_dose_mg(p, today - timedelta(days=365))
    if total > review["value"]:
        out.append(Alert("dose", "warning", f"{total / 1000:.1f} g in the last 12 months (review above "
                                            f"{review['value'] / 1000:g} g: {review['note']})",
                         {"grams": total / 1000, "review": review["value"] / 1000}))
    recent = any(i.start >= today - timedelta(days=365) and i.voided_at is None
                 for c in p.courses for i in c.infusions)
    last_entry = s.scalar(select(PainEntry.recorded_at)
                          .where(PainEntry.patient_id == p.id, PainEntry.voided_at.is_(None))
                          .order_by(PainEntry.recorded_at.desc()).limit(1))
    if recent and (last_entry is None or last_entry < today - timedelta(days=DIARY_GAP_DAYS)):
        since = "ever" if last_entry is None else f"since {last_entry:%Y-%m-%d}"
        out.append(Alert("diary", "info", f"no pain diary entry {since}", {"date": last_entry}))
    return out
