"""A patient's individualized forecast from the record: fit the levels and pain diary, then next course due.

The origin (time 0) is the earliest infusion, level or diary entry. Infusion segments become
constant-rate doses; the clinician's baseline pain, if recorded, is a diary entry at the first
infusion. Results are cached per patient and recomputed when the record changes.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ketaplan.course.schema import DrugLevel, ForecastCache, PainEntry, Patient
from ketaplan.course.store import active, latest_weight, now
from ketaplan.individualize.api import PatientFit, fit_case
from ketaplan.individualize.dataset import FitCase
from ketaplan.individualize.estimate import prior_estimate
from ketaplan.individualize.observations import PAIN, Observations
from ketaplan.individualize.problem import SpecModel, prior_problem, random_effects, spec_problem
from ketaplan.planning.next_course import follow_up
from ketaplan.regimen.events import DoseEvent, Regimen
from ketaplan.simulation.patient import Patient as PKPatient
from ketaplan.simulation.run import analyte_outputs, model_for

CURVE_POINTS = 600
log = logging.getLogger("ketaplan.course")


def _hours(t: datetime, origin: datetime) -> float:
    return (t - origin).total_seconds() / 3600.0


def compute_forecast(s: Session, p: Patient, threshold: float = 0.3) -> dict:
    """The forecast as plain data (dates as ISO text); {'status': ...} explains when there is none."""
    segments = [i for c in p.courses for i in active(c.infusions)]
    if not segments:
        return {"status": "no infusion recorded yet"}
    levels = s.scalars(select(DrugLevel).where(DrugLevel.patient_id == p.id, DrugLevel.voided_at.is_(None))).all()
    diary = s.scalars(select(PainEntry).where(PainEntry.patient_id == p.id, PainEntry.voided_at.is_(None))).all()
    first = min(i.start for i in segments)
    origin = min([first] + [lv.taken_at for lv in levels] + [e.recorded_at for e in diary])
    events = tuple(DoseEvent(time=_hours(i.start, origin), amount=i.rate_mg_h * _hours(i.end, i.start),
                             rate=i.rate_mg_h, route=i.route) for i in sorted(segments, key=lambda x: x.start))
    regimen = Regimen(events, drug=p.drug)
    spec = model_for(regimen)
    parent, metabolite, _ = analyte_outputs(spec)
    names = {"ketamine": parent, "s-ketamine": parent, "norketamine": metabolite, "s-norketamine": metabolite}
    times, outputs, values, blq, lloq = [], [], [], [], []
    for lv in levels:
        if lv.taken_at < first or names.get(lv.analyte) is None:
            continue
        times.append(_hours(lv.taken_at, origin))
        outputs.append(names[lv.analyte])
        values.append(lv.value_ng_ml if lv.value_ng_ml is not None else np.nan)
        blq.append(lv.blq)
        lloq.append(lv.lloq_ng_ml if lv.lloq_ng_ml is not None else np.nan)
    entries = [(_hours(e.recorded_at, origin), float(e.nrs)) for e in diary]
    if p.baseline_pain is not None:
        entries.append((_hours(first, origin), float(p.baseline_pain)))
    for t, v in entries:
        times.append(t)
        outputs.append(PAIN)
        values.append(v)
        blq.append(False)
        lloq.append(np.nan)
    age = now().year - p.birth_year
    patient = PKPatient(latest_weight(p), float(min(max(age, 0), 120)), p.sex)
    if times:
        obs = Observations.of(times, outputs, values, blq, lloq)
        problem, model = spec_problem(spec, regimen, patient.covariates(), obs, label=p.code, row_label="record")
        fitted = fit_case(FitCase(p.code, p.id, problem, model, patient))
    else:
        model = SpecModel(spec, regimen, patient.covariates(), random_effects(spec, regimen, patient.covariates())[0])
        fitted = PatientFit(FitCase(p.code, p.id, prior_problem(model), model, patient),
                            prior_estimate(prior_problem(model)))
    fu = follow_up(fitted.estimate, model, threshold, draws=200)
    return _payload(fu, fitted, origin, threshold)


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
