"""What a learning run says, as plain data: published and learned values side by side with 90 % intervals,
how much the data informed each, shrinkage, the change in objective and the timing check."""

from __future__ import annotations

import numpy as np

from ketaplan.estimation.learn_validation import TimingCheck
from ketaplan.estimation.library_estimation import (
    LearningResult,
    Prior,
    from_estimation_scale,
    to_estimation_scale,
)

Z90 = 1.6448536269514722
INFORMED = 0.7
"""A value counts as informed by the data when its interval is narrower than this share of the prior's."""


def _band(centre: float, sd: float, transform: str) -> list[float]:
    """The 90 % interval of a normal on the estimation scale, on the value's own scale."""
    return [from_estimation_scale(centre - Z90 * sd, transform), from_estimation_scale(centre + Z90 * sd, transform)]


def summarize(result: LearningResult, prior: Prior, timing: TimingCheck | None, not_learned: dict[str, str],
              n_patients: int, conflicts: dict[str, dict] | None = None) -> dict:
    """The report of a learning run (JSON-ready); ``conflicts``: the prior-data conflict check per value
    (:func:`~ketaplan.estimation.prior_conflict.check_conflicts`; ``released`` where the prior was set aside)."""
    se = np.sqrt(np.diag(result.covariance)) if result.covariance is not None else None
    conflicts = conflicts or {}
    rows = []
    for j, lv in enumerate(prior.learnables):
        published = result.published.typical[lv.name]
        learned = result.learned.typical[lv.name]
        prior_sd = lv.prior_sd / np.sqrt(prior.weight) if prior.weight > 0 else float("inf")
        u0, u = to_estimation_scale(published, lv.transform), to_estimation_scale(learned, lv.transform)
        row = {"name": lv.name, "transform": lv.transform, "published": published, "learned": learned,
               "prior_90": _band(u0, prior_sd, lv.transform) if np.isfinite(prior_sd) else None, "source": lv.source}
        if se is not None:
            row["learned_90"] = _band(u, se[j], lv.transform)
            row["informed"] = bool(se[j] < INFORMED * prior_sd)
        if lv.name in conflicts:
            row["prior_data_conflict"] = conflicts[lv.name]
        rows.append(row)
    k = len(prior.learnables)
    variances = []
    for j, name in enumerate(prior.variances):
        v = result.learned.variances[name]
        row = {"name": name, "published": result.published.variances[name], "learned": v,
               "shrinkage_percent": result.shrinkage.get(name)}
        if se is not None:
            s = se[k + j]
            row["learned_90"] = [v * float(np.exp(-Z90 * s)), v * float(np.exp(Z90 * s))]
        variances.append(row)
    return {
        "patients": n_patients, "typical": rows, "variances": variances, "not_learned": not_learned,
        "objective": {"published": result.ofv_published, "learned": result.ofv,
                      "change": result.ofv - result.ofv_published, "prior_penalty": result.penalty},
        "p_responder_mean": float(np.mean(result.p_responder)) if len(result.p_responder) else None,
        "converged": result.converged, "iterations": result.iterations, "message": result.message,
        "covariance": None if result.covariance is None else result.covariance.tolist(),
        "covariance_note": None if result.covariance is not None else
        "no intervals: the objective is not curved in every direction at the learned values (a value the data "
        "cannot pin down, or a search that stopped early)",
        "names": result.names, "vector": None if result.vector is None else result.vector.tolist(),
        "timing": None if timing is None else timing.as_dict(),
        "prior": {"weight": prior.weight, "nu": prior.nu},
    }
