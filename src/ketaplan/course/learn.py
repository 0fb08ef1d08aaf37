"""``clinic learn``: the relief model refitted to the clinic's own patients, with the published values as
priors, checked on held-out patients, and saved as a proposed model version."""

from __future__ import annotations

from sqlalchemy.orm import Session

from ketaplan.course.cohort import ClinicCohort, clinic_cohort
from ketaplan.course.model_versions import save_version
from ketaplan.course.schema import ModelVersion
from ketaplan.errors import InputError
from ketaplan.estimation.learn_run import LearnProgress, learn_cohort
from ketaplan.estimation.priors import DEFAULT_PRIOR, DEFAULT_PRIOR_WEIGHT, load_prior

MIN_PATIENTS = 5


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
    spec, summary = learn_cohort(found.cohort, prior, drug, folds, seed, progress)
    summary["left_out"] = found.left_out
    return save_version(s, actor, clinic, drug, spec.id, n, DEFAULT_PRIOR, prior_weight, summary)


__all__ = ["MIN_PATIENTS", "LearnProgress", "learn_relief_model"]
