"""A virtual population's key numbers and per-patient spread as text, for the command line and the report.

No plotting here: ``ketaplan population`` prints these without loading matplotlib.
"""

from __future__ import annotations

import numpy as np

from ketaplan.models.thresholds import thresholds_for

SUBJECT_COLUMNS = [("Cmax (ng/mL)", "cmax_ng_ml", "{:.1f}"), ("AUC (ng·h/mL)", "auc_ng_h_ml", "{:.0f}"),
                   ("hours above analgesia", "hours_above_analgesia", "{:.1f}"),
                   ("hours above psychotomimetic", "hours_above_psychotomimetic", "{:.1f}"),
                   ("hours in the window", "hours_in_window", "{:.1f}"),
                   ("norketamine Cmax (ng/mL)", "norketamine_cmax_ng_ml", "{:.1f}"),
                   ("relief at end of course 1", "relief_at_end", "{:.0%}"),
                   ("relief lasts, course 1 (days)", "relief_days_first", "{:.1f}")]


def subject_quantile_rows(result) -> tuple[list[str], list[list[str]]]:
    """Percentiles of each per-subject metric (relief among responders, censored values as 'beyond')."""
    s = result.subjects
    qs = list(result.percentiles)
    rows = []
    for title, key, fmt in SUBJECT_COLUMNS:
        if key not in s:
            continue
        sub = s[s["responder"]] if key.startswith("relief") and "responder" in s else s
        v = sub[key].to_numpy(dtype=float)
        if key == "relief_days_first":
            v = np.where(sub["relief_first_censored"], np.inf, v)
        if len(v) == 0:
            continue
        values = np.percentile(v, qs, method="inverted_cdf")
        rows.append([title] + [fmt.format(x) if np.isfinite(x) else "beyond next course" for x in values])
    return ["metric"] + [f"p{q:g}" for q in qs], rows


def headline_facts(result) -> list[tuple[str, str]]:
    """The population's key numbers as (label, text) pairs."""
    s = result.summary
    n = s["n"]
    pta = s["probability_of_target_attainment"]
    th = thresholds_for(result.pspec.spec.drug)
    facts = [("Probability of target attainment",
              f"{pta:.1%} ± {np.sqrt(pta * (1 - pta) / n):.1%} (at least {s['window_fraction']:.0%} of the dosing "
              f"time between {th['analgesia'].value:g} and {th['psychotomimetic'].value:g} ng/mL)"),
             ("Psychotomimetic risk", f"{s['psychotomimetic_risk']:.1%} ever above "
                                      f"{th['psychotomimetic'].value:g} ng/mL")]
    if "responder_fraction" in s:
        facts.append(("Responders", f"{s['responder_fraction']:.1%}"))
        q = s["relief_days_first_course_responders"]
        facts.append(("Relief after course 1 (responders)", " / ".join(
            f"{k} {_days(v)}" for k, v in q.items())))
    if s.get("relief_maintained_responders") is not None:
        facts.append(("Relief kept until the next course", f"{s['relief_maintained_responders']:.1%} of responders"))
    return facts


def _days(v) -> str:
    return "-" if v is None else ("beyond next course" if not np.isfinite(v) else f"{v:.1f} d")
