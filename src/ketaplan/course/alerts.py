"""Alerts for the patient list: next course due, liver enzymes, cumulative dose, missing diary entries."""

from __future__ import annotations

from dataclasses import dataclass
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
    kind: str
    severity: str  # 'danger', 'warning' or 'info'
    message: str


def cumulative_dose_mg(p: Patient, since: datetime) -> float:
    """Drug given (mg) in infusion segments that started after ``since`` (segments counted whole)."""
    return sum(i.rate_mg_h * (i.end - i.start).total_seconds() / 3600.0
               for c in p.courses for i in c.infusions if i.start >= since)


def patient_alerts(s: Session, p: Patient, forecast: dict, today: datetime) -> list[Alert]:
    out: list[Alert] = []
    due = forecast.get("next_due", [None, None, None])[1] if forecast.get("status") == "ok" else None
    if due:
        when = datetime.fromisoformat(due)
        if when <= today:
            out.append(Alert("due", "danger", f"next course overdue since {when:%Y-%m-%d}"))
        elif when <= today + timedelta(days=DUE_SOON_DAYS):
            out.append(Alert("due", "warning", f"next course due {when:%Y-%m-%d}"))
    factor = rules()["liver"]["stop_above_uln"]["value"]
    labs = s.scalars(select(Lab).where(Lab.patient_id == p.id, Lab.taken_at >= today - timedelta(
        days=LIVER_WINDOW_DAYS)).order_by(Lab.taken_at)).all()
    latest: dict[str, Lab] = {}
    for lab in labs:
        latest[lab.test] = lab
    for test, lab in sorted(latest.items()):
        if lab.test in ("ALT", "AST", "GGT") and lab.value_u_l > factor * lab.uln_u_l:
            out.append(Alert("liver", "danger", f"{test} {lab.value_u_l:g} U/L on {lab.taken_at:%Y-%m-%d} is above "
                                                f"{factor:g} x the upper limit ({lab.uln_u_l:g})"))
    review = rules()["cumulative_review_mg_per_year"]
    total = cumulative_dose_mg(p, today - timedelta(days=365))
    if total > review["value"]:
        out.append(Alert("dose", "warning", f"{total / 1000:.1f} g in the last 12 months (review above "
                                            f"{review['value'] / 1000:g} g: {review['note']})"))
    recent = any(i.start >= today - timedelta(days=365) for c in p.courses for i in c.infusions)
    last_entry = s.scalar(select(PainEntry.recorded_at).where(PainEntry.patient_id == p.id)
                          .order_by(PainEntry.recorded_at.desc()).limit(1))
    if recent and (last_entry is None or last_entry < today - timedelta(days=DIARY_GAP_DAYS)):
        since = "ever" if last_entry is None else f"since {last_entry:%Y-%m-%d}"
        out.append(Alert("diary", "info", f"no pain diary entry {since}"))
    return out
