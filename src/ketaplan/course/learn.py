"""``clinic learn``: the relief model refitted to the clinic's own patients, with the published values as
priors, checked on held-out patients, and saved as a proposed model version."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from ketaplan.course.cohort import ClinicCohort, clinic_cohort
from ketaplan.course.model_versions import save_version
from ketaplan.course.schema import ModelVersion
from ketaplan.errors import InputError
from ketaplan.estimation.learn_summary import summarize
from ketaplan.estimation.learn_validation import cross_validate
from ketaplan.estimation.library_cohort import bind, relief_table
from ketaplan.estimation.library_estimation import learn
from ketaplan.estimation.priors import DEFAULT_PRIOR, DEFAULT_PRIOR_WEIGHT, load_prior
from ketaplan.regimen.events import Regimen
from ketaplan.simulation.run import model_for

MIN_PATIENTS = 5
NOT_LEARNED = {"RELIEF_EMAX": "fixed at full relief (1), as published: a value on the edge of its range, which "
                              "pain scores hardly separate from a higher C50",
               "PK": "the PK stays at the published typical values for each patient's covariates"}


@dataclass
class LearnProgress:
    """Callbacks for a progress display: a stage name, and iterations of the search."""

    stage: Callable[[str], None] = lambda text: None
    iteration: Callable[[int, float], None] = lambda i, ofv: None


def learn_relief_model(s: Session, actor: str, clinic: str, prior_weight: float = DEFAULT_PRIOR_WEIGHT, folds: int = 5,
                       seed: int = 1, progress: LearnProgress | None = None, drug: str = "racemic",
                       cohort: ClinicCohort | None = None) -> ModelVersion:
    """Learn the clinic's relief model from every consenting patient's record and save it as a proposed
    version (forecasts keep the model in use until an admin accepts it)."""
    progress = progress or LearnProgress()
    prior = load_prior(DEFAULT_PRIOR, prior_weight)
    progress.stage("reading the record")
    found = cohort or clinic_cohort(s, drug)
    n = len(found.cohort)
    if n < MIN_PATIENTS:
        left = "; ".join(f"{k}: {v}" for k, v in found.left_out.items()) or "none left out"
        raise InputError("clinic learn", f"{n} patients", f"at least {MIN_PATIENTS} consenting patients with "
                         f"infusions and pain scores ({left})")
    events = tuple(e for p in found.cohort.patients for e in p.regimen.events)
    spec = model_for(Regimen(events, drug=drug))
    progress.stage(f"preparing {n} patients")
    bound = bind(spec, found.cohort, prior.variances)
    table = relief_table(bound)
    progress.stage("learning")
    result = learn(bound, prior, on_iteration=progress.iteration, table=table)
    timing = None
    if folds:
        progress.stage(f"checking on held-out patients ({folds} folds)")
        timing = cross_validate(bound, prior, result, table, folds=folds, seed=seed,
                                on_fold=lambda k, f: progress.stage(f"held-out check {k} of {f}"))
    summary = summarize(result, prior, timing, NOT_LEARNED, n)
    summary["left_out"] = found.left_out
    return save_version(s, actor, clinic, drug, spec.id, n, DEFAULT_PRIOR, prior_weight, summary)
