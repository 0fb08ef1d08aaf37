"""Versions of the relief model learned from the clinic's record: saved with their provenance, accepted or
rejected by an admin (audited), one of them in use for the forecasts (or none: the published model)."""

from __future__ import annotations

import json
import math

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from ketaplan.course.schema import ForecastCache, ModelVersion, User
from ketaplan.course.store import audit, now
from ketaplan.errors import InputError
from ketaplan.models.learned import learned_uncertainty, with_learned_values
from ketaplan.models.spec import ModelSpec
from ketaplan.regimen.events import Regimen
from ketaplan.simulation.run import model_for

PUBLISHED = "published"


def versions(s: Session) -> list[ModelVersion]:
    return list(s.scalars(select(ModelVersion).order_by(ModelVersion.id)).all())


def get_version(s: Session, version_id: int) -> ModelVersion:
    v = s.get(ModelVersion, version_id)
    if v is None:
        known = ", ".join(str(x.id) for x in versions(s)) or "none yet"
        raise InputError("model version", version_id, f"a version number of this clinic ({known})")
    return v


def result_of(v: ModelVersion) -> dict:
    return json.loads(v.result)


def learned_values(v: ModelVersion) -> tuple[dict[str, float], dict[str, float]]:
    """The typical values and variances a version learned."""
    r = result_of(v)
    return ({row["name"]: float(row["learned"]) for row in r["typical"]},
            {row["name"]: float(row["learned"]) for row in r["variances"]})


def version_spec(v: ModelVersion, regimen: Regimen) -> ModelSpec:
    """The default model of ``regimen`` with the version's learned values and their uncertainty."""
    spec = model_for(regimen)
    typical, variances = learned_values(v)
    label = f"learned from {v.clinic}, version {v.id} ({v.n_patients} patients, {v.created_at:%Y-%m-%d})"
    r = result_of(v)
    transforms = {row["name"]: row.get("transform") or _prior_transform(v.prior, row["name"]) for row in r["typical"]}
    uncertainty = learned_uncertainty(r["names"], r["covariance"], transforms, label) if r.get("names") else None
    return with_learned_values(spec, typical, variances, label, uncertainty)


def _prior_transform(prior: str, name: str) -> str:
    """The estimation scale of a learned value in versions saved before the report named it."""
    from ketaplan.estimation.priors import load_prior  # the estimation package is heavy; old versions only

    return next(lv.transform for lv in load_prior(prior).learnables if lv.name == name)


def model_in_use(s: Session, regimen: Regimen, choice: int | str | None = None) -> tuple[ModelSpec, str]:
    """The model for a forecast and its label: ``choice`` (a version number or 'published'), else the version
    in use for the regimen's drug form, else the published model."""
    if choice == PUBLISHED:
        return model_for(regimen), PUBLISHED
    if choice is not None:
        v = get_version(s, int(choice))
    else:
        v = s.scalar(select(ModelVersion).where(ModelVersion.in_use.is_(True), ModelVersion.drug == regimen.drug))
        if v is None:
            return model_for(regimen), PUBLISHED
    if v.drug != regimen.drug:
        raise InputError("model version", v.id, f"a version learned for {regimen.drug} (this one is for {v.drug})")
    return version_spec(v, regimen), f"clinic version {v.id}"


def save_version(s: Session, actor: str, clinic: str, drug: str, base_model: str, n_patients: int, prior: str,
                 prior_weight: float, result: dict) -> ModelVersion:
    """A new proposed version (not used until an admin accepts it)."""
    from ketaplan import __version__

    v = ModelVersion(created_at=now(), created_by=actor, clinic=clinic, drug=drug, base_model=base_model,
                     n_patients=n_patients, prior=prior, prior_weight=prior_weight, ketaplan_version=__version__,
                     result=json.dumps(_finite(result), allow_nan=False), status="proposed", in_use=False)
    s.add(v)
    s.flush()
    audit(s, actor, "learn", "model_versions", v.id)
    return v


def _finite(value):
    """``value`` with every non-finite number as None (JSON has no NaN or infinity)."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _admin(s: Session, username: str) -> User:
    user = s.scalar(select(User).where(User.username == username))
    if user is None or user.role != "admin" or user.disabled_at is not None:
        raise InputError("--admin", username, "an active admin user of this clinic")
    return user


def accept_version(s: Session, admin: str, version_id: int) -> ModelVersion:
    """An admin accepts a version; it is then the one in use for its drug form (forecasts are recomputed)."""
    _admin(s, admin)
    v = get_version(s, version_id)
    if v.status == "rejected":
        raise InputError("model version", version_id, "a version that was not rejected")
    v.status, v.accepted_at, v.accepted_by = "accepted", now(), admin
    _put_in_use(s, v)
    audit(s, admin, "accept", "model_versions", v.id)
    return v


def reject_version(s: Session, admin: str, version_id: int) -> ModelVersion:
    _admin(s, admin)
    v = get_version(s, version_id)
    if v.in_use:
        raise InputError("model version", version_id, "a version that is not in use (put another one in use first)")
    v.status = "rejected"
    audit(s, admin, "reject", "model_versions", v.id)
    return v


def use_version(s: Session, admin: str, choice: int | str, drug: str = "racemic") -> str:
    """An admin puts an accepted version in use, or goes back to the published model ('published')."""
    _admin(s, admin)
    if choice == PUBLISHED:
        s.execute(update(ModelVersion).where(ModelVersion.drug == drug).values(in_use=False))
        s.execute(delete(ForecastCache))
        audit(s, admin, "use-published", "model_versions", None)
        return PUBLISHED
    v = get_version(s, int(choice))
    if v.status != "accepted":
        raise InputError("model version", v.id, "an accepted version (accept it first)")
    _put_in_use(s, v)
    audit(s, admin, "use", "model_versions", v.id)
    return f"clinic version {v.id}"


def _put_in_use(s: Session, v: ModelVersion) -> None:
    s.execute(update(ModelVersion).where(ModelVersion.drug == v.drug).values(in_use=False))
    v.in_use = True
    s.execute(delete(ForecastCache))  # every forecast is recomputed with the model now in use
