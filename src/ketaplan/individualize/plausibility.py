"""Whether one patient's estimate is something to stand behind, or a fit to report as failed.

An optimiser always returns numbers. They are withheld, with the reason in one sentence, when they leave what
the model can mean: a pain score outside the 0-10 scale, a half-life of years, a parameter more than
:data:`MAX_SD` between-patient standard deviations from the population value (one patient in millions),
predictions that miss the data by tens of residual SDs (:data:`MAX_MISFIT_SD`), or an objective or covariance
that is not finite.
"""

from __future__ import annotations

import math

import numpy as np

from ketaplan.individualize.estimate import Estimate

MAX_SD = 5.0
"""Largest plausible distance of a random effect from 0, in SDs of the prior (two-sided p = 6e-7)."""
MAX_HALF_LIFE_H = 8766.0
"""Longest plausible time constant of any parameter (one year): ketamine's half-lives are hours, the slowest
relief half-life published is 10.9 days."""
PAIN_SCALE = (0.0, 10.0)
MAX_MISFIT_SD = 30.0
"""Largest plausible root-mean objective per observation (about the residual SDs by which predictions miss the
data): beyond it the model does not describe the data at all, typically a unit slip in DV."""


def implausible(estimate: Estimate, baseline: str | None = None) -> str | None:
    """The reason the estimate cannot be reported, or None when it is plausible.

    ``baseline`` names the parameter that is the patient's untreated pain score (NRS 0-10), if any.
    """
    if not math.isfinite(estimate.objective):
        return ("the data cannot be fitted with this model (the objective is not finite at any tried value); check "
                "the observations and their units")
    p = estimate.problem
    n_obs = max(len(p.observations), 1)
    misfit = math.sqrt(max(estimate.objective, 0.0) / n_obs)
    if misfit > MAX_MISFIT_SD:
        return (f"the predictions miss the observations by about {misfit:.3g} residual SDs on average, so the model "
                "does not describe these data; check the units of the levels (ng/mL) and the doses (mg)")
    values = estimate.values
    if not (np.all(np.isfinite(values)) and np.all(np.isfinite(estimate.covariance))):
        return "the estimate is not a finite number; check the observations and their units"
    sd = np.sqrt(np.diag(p.omega))
    for name, unit, value, typical, eta, spread in zip(p.eta_names, p.units, values, p.typical, estimate.eta, sd,
                                                      strict=True):
        if name == baseline and not PAIN_SCALE[0] <= value <= PAIN_SCALE[1]:
            return f"{name} = {value:.3g} lies outside the pain scale 0-10"
        half_life = _half_life_h(unit, value)
        if half_life > MAX_HALF_LIFE_H:
            return f"{name} = {value:.3g} {unit} means a half-life of {half_life / 8766:.3g} years"
        if spread > 0 and abs(eta) > MAX_SD * spread:
            return (f"{name} = {value:.4g} {unit}".rstrip() + f" is {value / typical:.3g} x the population value "
                    f"({typical:.4g}), {abs(eta) / spread:.1f} SD of the between-patient variability away (more "
                    f"than {MAX_SD:g} is one patient in millions)")
    return None


def _half_life_h(unit: str, value: float) -> float:
    """The half-life a parameter implies: itself for a time in hours, ln 2 / k for a rate constant per hour."""
    u = unit.replace(" ", "")
    if u == "h":
        return value
    if u in ("1/h", "/h", "h^-1", "h**-1") and value > 0:
        return math.log(2) / value
    return 0.0
