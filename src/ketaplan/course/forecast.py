"""A patient's individualized forecast from the record: fit the levels and pain diary, then next course due.

The record is read by :func:`ketaplan.course.cohort.record_case`; the model is the default one for the drug
form, or the clinic's learned version when an admin has put one in use. Results are cached per patient and
recomputed when the record (or the model in use) changes.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ketaplan.course.cohort import record_case
from ketaplan.course.model_versions import model_in_use
from ketaplan.course.schema import ForecastCache, Patient
from ketaplan.course.store import now
from ketaplan.individualize.api import PatientFit, fit_case
from ketaplan.individualize.dataset import FitCase
from ketaplan.individualize.estimate import prior_estimate
from ketaplan.individualize.problem import SpecModel, population_effects, prior_problem, spec_problem
from ketaplan.models.spec import ModelSpec
from ketaplan.planning.next_course import follow_up

CURVE_POINTS = 600
log = logging.getLogger("ketaplan.course")


def compute_forecast(s: Session, p: Patient, threshold: float = 0.3, model: ModelSpec | None = None,
                     choice: int | str | None = None) -> dict:
    """The forecast as plain data (dates as ISO text); {'status': ...} explains when there is none. ``model``
    replaces the record's model; ``choice`` picks a learned version by number or 'published' (to compare);
    otherwise the version in use."""
    case = record_case(s, p)
    if case is None:
        return {"status": "no infusion recorded yet"}
    spec, model_label = (model, model.id) if model is not None else model_in_use(s, case.regimen, choice)
    if case.observations is not None:
        problem, fit_model = spec_problem(spec, case.regimen, case.patient.covariates(), case.observations,
                                          label=p.code, row_label="record")
        fitted = fit_case(FitCase(p.code, p.id, problem, fit_model, case.patient))
        if fitted.failure is not None:  # an implausible estimate gives no forecast (the page says so)
            return {"status": f"no forecast: the estimate is implausible ({fitted.failure})"}
    else:
        covariates = case.patient.covariates()
        fit_model = SpecModel(spec, case.regimen, covariates, population_effects(spec, case.regimen, covariates)[0])
        fitted = PatientFit(FitCase(p.code, p.id, prior_problem(fit_model), fit_model, case.patient),
                            prior_estimate(prior_problem(fit_model)))
    fu = follow_up(fitted.estimate, fit_model, threshold, draws=200)
    return {**_payload(fu, fitted, case.origin, threshold), "model": model_label}


def _payload(fu, fitted, origin: datetime, threshold: float) -> dict:
    def when(h: float) -> str | None:
        return None if not np.isfinite(h) else (origin + timedelta(hours=float(h))).isoformat(sep=" ")

    nc = fu.next
    curves = fu.curves
    keep = []
    for _, group in curves.groupby("output", sort=False):
        idx = np.unique(np.linspace(0, len(group) - 1, min(CURVE_POINTS, len(group))).round().astype(int))
        keep.append(group.iloc[idx])
    curves = pd.concat(keep, ignore_index=True)
    return {
        "status": "ok", "origin": origin.isoformat(sep=" "), "threshold": threshold,
        "next_due": [when(h) for h in nc.due_h] if nc else [None, None, None],
        "relief_days": list(nc.relief_days) if nc else None,
        "last_course_end": when(nc.last_course_end_h) if nc else None,
        "p_responder": fitted.p_responder, "warnings": list(fitted.warnings),
        "estimates": fitted.estimate.table().replace({np.nan: None}).to_dict(orient="records"),
        "curves": {"time_h": curves["time"].round(3).tolist(), "output": curves["output"].tolist(),
                   "map": curves["map"].tolist(), "p5": curves["p5"].tolist(), "p95": curves["p95"].tolist()},
    }


def cached_forecast(s: Session, p: Patient) -> dict:
    """The stored forecast if the record has not changed since, else a new one (stored)."""
    cache = s.get(ForecastCache, p.id)
    if cache is not None and cache.data_version == p.data_version:
        return json.loads(cache.payload)
    try:
        payload = compute_forecast(s, p)
    except Exception as exc:  # a record the model cannot use must not break the pages of every patient
        log.warning("forecast of patient %d failed: %s", p.id, type(exc).__name__)
        payload = {"status": f"no forecast: the record could not be fitted ({type(exc).__name__})"}
    due = payload.get("next_due", [None, None, None])[1] if payload.get("status") == "ok" else None
    text = json.dumps(payload, default=_json_default)
    if cache is None:
        try:
            with s.begin_nested():  # another request may store the same forecast at the same time
                s.add(ForecastCache(patient_id=p.id, data_version=p.data_version, computed_at=now(),
                                    next_due=datetime.fromisoformat(due) if due else None, payload=text))
        except IntegrityError:
            pass
    else:
        cache.data_version, cache.computed_at, cache.payload = p.data_version, now(), text
        cache.next_due = datetime.fromisoformat(due) if due else None
    return json.loads(text)


def _json_default(v):
    if isinstance(v, float) and not np.isfinite(v):
        return None
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    return str(v)
