"""Pass criteria: when is a predicted value close enough to a published one?

* ``ratio`` - predicted / observed within 0.67-1.5. A mean of 6-16 patients with the 30-60 % CV typical of
  ketamine levels has a 95 % confidence interval of about +/- 25-50 %, so a model cannot be asked to come
  closer; the usual acceptance limit for predicted exposure (two-fold, 0.5-2) is looser than this.
* ``spread`` - predicted within the observed mean +/- 1 SD (or geometric mean x/÷ geometric SD, or the
  range): used for Tmax, which is read off a few sampling times and varies widely between patients.
* ``ci95`` - predicted within the observed value +/- 1.96 SEM (or its 95 % interval): used for differences
  between trial arms, whose SEM is reported.
* ``below`` / ``at_least`` - a statement such as "norketamine was lower than ketamine", read as a bound.

The predicted value is the statistic the study reported, taken over virtual patients: the mean for a
mean, the geometric mean for a geometric mean, the median for a median or a statement.
"""

from __future__ import annotations

import math

from ketaplan.models.observed import RATIO_LIMITS, Observation


def observed_interval(obs: Observation) -> tuple[float, float] | None:
    """The interval the spread describes around the observed value (None without a spread)."""
    s = obs.spread
    if s is None:
        return None
    if s.sd is not None:
        return obs.value - s.sd, obs.value + s.sd
    if s.sem is not None:
        return obs.value - 1.96 * s.sem, obs.value + 1.96 * s.sem
    if s.gsd is not None:
        return obs.value / s.gsd, obs.value * s.gsd
    return s.range if s.range is not None else s.ci95


def judge(obs: Observation, predicted: float) -> tuple[bool, str]:
    """Whether ``predicted`` meets the observation's criterion, and the criterion in words."""
    if not math.isfinite(predicted):
        return False, "no finite prediction"
    lo, hi = RATIO_LIMITS
    if obs.criterion == "ratio":
        ratio = predicted / obs.value
        return lo <= ratio <= hi, f"predicted / observed {ratio:.2f}, pass within {lo:g}-{hi:g}"
    if obs.criterion == "below":
        return predicted < obs.value, f"pass below {obs.value:g}"
    if obs.criterion == "at_least":
        return predicted >= obs.value, f"pass at {obs.value:g} or more"
    a, b = observed_interval(obs)
    what = {"spread": _spread_words(obs), "ci95": "the observed 95 % interval"}[obs.criterion]
    return a <= predicted <= b, f"pass within {what} ({_fmt(a)} to {_fmt(b)})"


def _spread_words(obs: Observation) -> str:
    s = obs.spread
    if s.sd is not None:
        return "mean +/- SD"
    if s.gsd is not None:
        return "geometric mean x/÷ geometric SD"
    if s.sem is not None:
        return "value +/- 1.96 SEM"
    return "the reported range" if s.range is not None else "the reported 95 % interval"


def _fmt(x: float) -> str:
    return f"{x:.3g}"
