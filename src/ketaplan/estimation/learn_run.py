"""One learning run on a cohort, as `clinic learn` and `estimate --model library:...` both do it: bind the
cohort, tabulate the relief site, learn (with the Hill-coefficient step), set aside the priors the data
conflict with, check on held-out patients, and summarise."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ketaplan.estimation.hill_test import hill_step, without_tested
from ketaplan.estimation.learn_summary import summarize
from ketaplan.estimation.learn_validation import cross_validate
from ketaplan.estimation.library_cohort import BoundCohort, Cohort, ReliefTable, bind, relief_table
from ketaplan.estimation.library_estimation import LearningResult, Prior, learn
from ketaplan.estimation.prior_conflict import check_conflicts, release
from ketaplan.models.spec import ModelSpec
from ketaplan.regimen.events import Regimen
from ketaplan.simulation.run import model_for

NOT_LEARNED = {"RELIEF_EMAX": "fixed at full relief (1), as published: a value on the edge of its range, which "
                              "pain scores hardly separate from a higher C50",
               "PK": "the PK stays at the published typical values for each patient's covariates"}


@dataclass
class LearnProgress:
    """Callbacks for a progress display: a stage name, and iterations of the search."""

    stage: Callable[[str], None] = lambda text: None
    iteration: Callable[[int, float], None] = lambda i, ofv: None


def learn_cohort(cohort: Cohort, prior: Prior, drug: str = "racemic", folds: int = 5, seed: int = 1,
                 progress: LearnProgress | None = None) -> tuple[ModelSpec, dict]:
    """The model learned from (the default model of the cohort's routes) and the run's summary."""
    progress = progress or LearnProgress()
    spec = model_for(Regimen(tuple(e for p in cohort.patients for e in p.regimen.events), drug=drug))
    progress.stage(f"preparing {len(cohort)} patients")
    bound = bind(spec, cohort, prior.variances)
    table = relief_table(bound)
    progress.stage("learning")
    result, prior, fixed, conflicts = learn_relief(bound, prior, table, progress)
    timing = None
    if folds:
        progress.stage(f"checking on held-out patients ({folds} folds)")
        timing = cross_validate(bound, prior, result, table, folds=folds, seed=seed,
                                on_fold=lambda k, f: progress.stage(f"held-out check {k} of {f}"))
    return spec, summarize(result, prior, timing, {**fixed, **NOT_LEARNED}, len(cohort), conflicts)


def learn_relief(bound: BoundCohort, prior: Prior, table: ReliefTable, progress: LearnProgress | None = None
                 ) -> tuple[LearningResult, Prior, dict[str, str], dict[str, dict]]:
    """Learn with the Hill coefficient held at 1; set aside the priors the data conflict with (test-then-pool,
    :mod:`~ketaplan.estimation.prior_conflict`) and learn again; then the Hill step under the priors kept.
    Returns the result, the prior used, the values left fixed (why) and the conflict check per value."""
    progress = progress or LearnProgress()
    reduced = without_tested(prior)
    base = learn(bound, reduced, progress.iteration, table=table)
    conflicts = check_conflicts(bound, reduced, table, base, progress.iteration)
    released = {name for name, c in conflicts.items() if c["conflict"]}
    if released:
        progress.stage(f"learning again without the priors the data conflict with ({', '.join(sorted(released))})")
        reduced, prior = release(reduced, released), release(prior, released)
        base = learn(bound, reduced, progress.iteration, start=base.vector, table=table)
        conflicts = {name: {**c, "released": name in released} for name, c in conflicts.items()}
    result, used, fixed = hill_step(bound, prior, table, base, progress.iteration)
    return result, used, fixed, conflicts
