"""Learn the Hill coefficient only where the data inform it: a likelihood-ratio step, as in model building.

The relief model is learned first with the Hill coefficient fixed at its published value (1); then with it
free, starting from the first fit. The free coefficient is kept only when it lowers the objective of the
clinic's own data (-2 log likelihood, without the prior's penalty) by more than the 5 % critical value of a
chi-square with one degree of freedom (3.84); otherwise the fixed model stands and the report says by how much
freeing it lowered that objective.

Why the data's objective and not the penalised one: C50, the relief-site half-life and the Hill coefficient
trade off (a steeper curve with a higher C50 and a slower site give similar relief). Where a clinic's C50 lies
far from the published one, a free coefficient lets C50 drift back toward the prior and the penalised
objective falls by 3-4 points while the fit to the data gets no better, or worse (simulated clinics of 30,
truth C50 0.4 ng/mL and coefficient 1: data objective +0.1 and +1.4 for penalised gains of 3.7 and 3.4). The
question the step answers is whether the data call for a Hill coefficient other than 1; lowering the prior's
penalty is not evidence of that.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from ketaplan.estimation.library_cohort import BoundCohort, ReliefTable
from ketaplan.estimation.library_estimation import LearningResult, Objective, Prior, learn

TESTED = ("RELIEF_GAMMA",)
CRITICAL = 3.841458820694124
"""chi-square with 1 degree of freedom at p = 0.05."""


def without_tested(prior: Prior) -> Prior:
    """``prior`` with the Hill coefficient held at its published value (the first fit of the step)."""
    return replace(prior, learnables=tuple(lv for lv in prior.learnables if lv.name not in TESTED))


def hill_step(bound: BoundCohort, prior: Prior, table: ReliefTable, base: LearningResult,
              on_iteration: Callable[[int, float], None] | None = None
              ) -> tuple[LearningResult, Prior, dict[str, str]]:
    """Given ``base`` (learned under :func:`without_tested` of ``prior``), the learned values, the prior
    actually used (without the coefficients left fixed) and, per value left fixed, why.

    The gain is the data's objective at the two penalised optima, so it is a likelihood ratio only
    approximately (exactly at prior weight 0): the free fit trades some data fit for a smaller penalty, which
    makes the step a little conservative."""
    tested = [lv.name for lv in prior.learnables if lv.name in TESTED]
    if not tested:
        return base, prior, {}
    full_fn = Objective(bound, prior, table)
    start = full_fn.initial()
    full_names = [lv.name for lv in prior.learnables] + [f"omega {v}" for v in prior.variances]
    for name, value in zip(base.names, base.vector, strict=True):
        start[full_names.index(name)] = value
    free = learn(bound, prior, on_iteration, start=start, table=table, covariance=False)
    gain = base.ofv - free.ofv
    if gain > CRITICAL:
        return learn(bound, prior, start=free.vector, table=table, max_iterations=2), prior, {}
    why = (f"fixed at {_published(bound, tested[0]):g}, as published: freeing it lowered the data's objective by "
           f"{max(gain, 0.0):.2f}, less than 3.84 (the 5 % level for one value), so the data do not inform it")
    return base, without_tested(prior), {name: why for name in tested}


def _published(bound: BoundCohort, name: str) -> float:
    return float(np.asarray(bound.spec.parameters[name].value))
