"""The per-course summary as rows of text, shared by the command line and the HTML report (no plotting)."""

from __future__ import annotations

import math

from ketaplan.simulation.summary import date_of

SUMMARY_COLUMNS = [
    ("course", "#", "course", "{:.0f}"), ("start", "start", "start_h", "date"), ("end", "end", "end_h", "date"),
    ("dose (mg)", "mg", "dose_mg", "{:.0f}"), ("Cmax (ng/mL)", "Cmax", "cmax_ng_ml", "{:.1f}"),
    ("steady state (ng/mL)", "Css", "css_avg_ng_ml", "{:.1f}"),
    ("AUC (ng·h/mL)", "AUC", "auc_ng_h_ml", "{:.0f}"),
    ("h above analgesia", "h>analg", "hours_above_analgesia", "{:.1f}"),
    ("h above psychotomimetic", "h>psych", "hours_above_psychotomimetic", "{:.1f}"),
    ("norketamine Cmax (ng/mL)", "NK Cmax", "norketamine_cmax_ng_ml", "{:.1f}"),
    ("norketamine AUC (ng·h/mL)", "NK AUC", "norketamine_auc_ng_h_ml", "{:.0f}"),
    ("relief at end", "relief", "relief_at_end", "{:.0%}"), ("relief lasts (days)", "lasts d", "relief_days", "{:.0f}"),
    ("next course due", "next due", "next_course_due_h", "date"),
    ("relief lasts, days (90 %)", "lasts d", "relief_days_median", "spread"),
    ("next course due (median)", "next due", "next_due_median_h", "date"),
]
TYPICAL_ONLY = ("relief_days", "next_course_due_h")
"""Shown only when the spread over patients is missing (the typical patient's line is not the forecast)."""
COMPACT_LEGEND = ("# course; start, end, next due: dates, or dN for day N from the first dose; mg dose; Cmax, Css "
                  "(average steady state) in ng/mL; AUC in ng·h/mL; h>analg and h>psych: hours above the analgesic "
                  "and psychotomimetic thresholds; NK norketamine; relief: predicted relief at the end of the course "
                  "(typical responder); lasts d: days until relief falls below the threshold, median (5th-95th "
                  "percentile) over patients like this one who respond; next due: its median date.")


def summary_table(frame, compact: bool = False) -> tuple[list[str], list[list[str]]]:
    """Column titles and formatted rows of the per-course summary (shared by CLI and report)."""
    s = frame.summary
    start = frame.run.regimen.start
    spread = "relief_days_median" in s
    cols = [(short if compact else title, key, fmt) for title, short, key, fmt in SUMMARY_COLUMNS
            if key in s and not (spread and key in TYPICAL_ONLY)]
    rows = []
    for _, r in s.iterrows():
        cells = []
        for _, key, fmt in cols:
            v = r[key]
            if fmt == "spread":
                cells.append(_spread_text(r))
            elif fmt == "date" and not math.isfinite(float(v)):
                cells.append("beyond")
            elif fmt == "date":
                cells.append(date_of(start, float(v), compact))
            elif v is None or (isinstance(v, float) and not math.isfinite(v)):
                cells.append("beyond horizon" if key == "relief_days" else "-")
            else:
                cells.append(fmt.format(v))
        rows.append(cells)
    return [c[0] for c in cols], rows


def _days(v: float) -> str:
    return f"{v:.0f}" if math.isfinite(v) else "beyond"


def _spread_text(row) -> str:
    """Median days with the 90 % interval, e.g. '22 (6-47)'; 'beyond' when relief outlasts the next start."""
    return f"{_days(float(row['relief_days_median']))} ({_days(float(row['relief_days_p5']))}-" \
           f"{_days(float(row['relief_days_p95']))})"
