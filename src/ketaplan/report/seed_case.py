"""The seed case (Elsewaisy, Slon & Monagle, Pain Med 2010): predicted relief against the 10-12 weeks observed.

A 59-year-old man with chronic idiopathic axonal polyneuropathy received 20 mg/h IV racemic ketamine for
5 days, repeated when relief wore off (every 10-12 weeks), for 3.5 years. Weight and pain scores were not
reported: 80 kg and a baseline NRS of 7 are assumptions, stated in the report.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import brentq

from ketaplan.planning.plan import simulate

CASE_CITATION = ("Elsewaisy O, Slon B, Monagle J. Analgesic effect of subanesthetic intravenous ketamine in refractory "
                 "neuropathic pain: a case report. Pain Med 2010;11(6):946-950.")
CASE_REGIMEN = "20 mg/h IV for 5 d every 11 weeks x 17"
OBSERVED_WEEKS = (10.0, 12.0)
OBSERVED_MEAN_WEEKS = float(np.mean(OBSERVED_WEEKS))


def relief_weeks(frame) -> float:
    """Mean predicted relief duration (weeks) over the courses whose relief ended before the next one."""
    days = frame.summary["relief_days"].to_numpy(dtype=float)
    days = days[np.isfinite(days)]
    return float(np.mean(days) / 7.0) if len(days) else float("nan")


def _relief_weeks_with(parameter: str, value: float, weight: float, age: float) -> float:
    """Predicted relief (weeks) after one 20 mg/h x 5 d course with one relief parameter changed."""
    f = simulate("20 mg/h IV for 5 d", weight=weight, age=age, sex="male", until=120 + 24 * 7 * 30,
                 overrides={parameter: value})
    d = f.summary["relief_days"].iloc[0]
    return (d if np.isfinite(d) else 7 * 30.0) / 7.0


def longest_relief_by_half_life(weight: float, age: float) -> tuple[float, float]:
    """The longest relief (weeks) any effect-site half-life gives, and that half-life (days).

    A longer half-life slows the offset but also the onset during a 5-day course, so relief
    duration has a maximum.
    """
    grid = np.geomspace(3.0, 120.0, 25)
    weeks = [_relief_weeks_with("RELIEF_HALF_LIFE", h, weight, age) for h in grid]
    best = int(np.argmax(weeks))
    return float(weeks[best]), float(grid[best])


def matching_c50(target_weeks: float, weight: float, age: float) -> float:
    """The C50 (ng/mL) that makes one course give ``target_weeks`` of relief (relief grows as C50 falls)."""
    try:
        return float(brentq(lambda c: _relief_weeks_with("RELIEF_C50", c, weight, age) - target_weeks, 0.01, 10.5,
                            xtol=1e-3))
    except ValueError:
        return float("nan")


def spread_paragraph(frame) -> str | None:
    """Where the observed 10-12 weeks fall among the durations the model predicts for patients like this one
    (first course; the spread over between-patient variability, responders only) and the chance of response."""
    spread = getattr(frame, "relief_spread", None)
    if spread is None:
        return None
    first = spread.courses[0]
    lo, mid, hi = (d / 7.0 for d in first.days)
    at_least = {w: first.share_at_least(7 * w) for w in OBSERVED_WEEKS}

    def weeks(x: float) -> str:
        return f"{x:.1f}" if np.isfinite(x) else "beyond the next course"

    def share(w: float) -> str:
        if at_least[w] == 0:
            return f"none of the {len(first.drawn_days)} simulated responders"
        return f"{100 * at_least[w]:.1f} % of responders"

    return (f"Over patients like him who respond (probability of response {spread.p_response:.0%}), relief after "
            f"a course lasts a median {weeks(mid)} weeks (90 %: {weeks(lo)}-{weeks(hi)} weeks). Relief of "
            f"{OBSERVED_WEEKS[0]:g} weeks or longer is predicted for {share(OBSERVED_WEEKS[0])}, of "
            f"{OBSERVED_WEEKS[1]:g} weeks or longer for {share(OBSERVED_WEEKS[1])}: "
            + ("the observed relief lies in the far tail of the prediction." if at_least[OBSERVED_WEEKS[0]] < 0.05
               else "the observed relief is within the predicted range."))


def comparison(predicted_weeks: float, best_by_half_life: tuple[float, float], c50: float, threshold: float,
               spread_text: str | None = None) -> dict:
    """Plain words on how the default model's relief duration compares with the 10-12 weeks observed."""
    lo, hi = OBSERVED_WEEKS
    if np.isfinite(predicted_weeks) and predicted_weeks < lo:
        verdict = (f"For a typical responder the default model predicts relief above {threshold:.0%} for "
                   f"{predicted_weeks:.1f} weeks after each 5-day course. The patient's relief lasted {lo:g}-{hi:g} "
                   "weeks, about "
                   f"{OBSERVED_MEAN_WEEKS / predicted_weeks:.1f} times longer: the model under-predicts this "
                   "patient's relief.")
    elif np.isfinite(predicted_weeks) and predicted_weeks > hi:
        verdict = (f"The default model predicts relief above {threshold:.0%} for {predicted_weeks:.1f} weeks, "
                   f"longer than the {lo:g}-{hi:g} weeks observed.")
    else:
        verdict = (f"The default model predicts relief above {threshold:.0%} for {predicted_weeks:.1f} weeks, "
                   f"within the {lo:g}-{hi:g} weeks observed.")
    paragraphs = [
        verdict,
        *([spread_text] if spread_text else []),
        "Why they can differ: the long-lasting relief model (Dahan 2011) was fitted in CRPS type 1 patients given "
        "S-ketamine for 100 hours, and its functional form is partly assumed; here it is applied to racemic ketamine "
        "(the S part taken as half the racemic level) in polyneuropathy. Both are extrapolations.",
    ]
    weeks, half_life = best_by_half_life
    paragraphs.append(f"No effect-site half-life makes one course last {OBSERVED_MEAN_WEEKS:g} weeks: the longest "
                      f"predicted relief is {weeks:.1f} weeks, at a half-life of about {half_life:.0f} days (published "
                      "10.9 days, 95 % CI 5.3-20.5), because a slower effect site also builds up less during 5 days.")
    if np.isfinite(c50):
        paragraphs.append(f"With the published half-life, relief would last {OBSERVED_MEAN_WEEKS:g} weeks if C50 "
                          f"were about {c50:.2f} ng/mL - {10.5 / c50:.0f} times below the published 10.5 ng/mL "
                          "(95 % CI 4.37-21.2): this patient appears far more sensitive than the CRPS population, "
                          "or his relief has another mechanism.")
    paragraphs.append("This patient's own values can be estimated from a pain diary and measured levels with "
                      "individualisation; until then, time the next course by the patient's diary rather than by this "
                      "prediction.")
    return {"title": "Predicted relief compared with the 10-12 weeks observed", "paragraphs": paragraphs}
