"""A patient's record as the model reads it, and the clinic's patients as one cohort to learn from.

The origin (time 0) is the earliest infusion, level or diary entry. Infusion segments become constant-rate
doses; the clinician's baseline pain, if recorded, is a diary entry at the first infusion.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from ketaplan.course.schema import DrugLevel, PainEntry, Patient
from ketaplan.course.store import active, latest_weight, now
from ketaplan.estimation.library_cohort import Cohort, CohortPatient
from ketaplan.individualize.observations import PAIN, Observations
from ketaplan.regimen.events import DoseEvent, Regimen
from ketaplan.simulation.patient import Patient as PKPatient
from ketaplan.simulation.run import analyte_outputs, model_for


@dataclass(frozen=True)
class RecordCase:
    """One patient's doses, measurements (None when there are none) and covariates, in hours from ``origin``."""

    origin: datetime
    regimen: Regimen
    observations: Observations | None
    patient: PKPatient


def hours_between(t: datetime, origin: datetime) -> float:
    return (t - origin).total_seconds() / 3600.0


def record_case(s: Session, p: Patient) -> RecordCase | None:
    """The record of ``p`` as doses and measurements (the entries in force: voided and corrected ones left out),
    or None when no infusion has been given yet."""
    segments = [i for c in p.courses for i in active(c.infusions)]
    if not segments:
        return None
    levels = s.scalars(select(DrugLevel).where(DrugLevel.patient_id == p.id, DrugLevel.voided_at.is_(None))).all()
    diary = s.scalars(select(PainEntry).where(PainEntry.patient_id == p.id, PainEntry.voided_at.is_(None))).all()
    first = min(i.start for i in segments)
    origin = min([first] + [lv.taken_at for lv in levels] + [e.recorded_at for e in diary])
    events = tuple(DoseEvent(time=hours_between(i.start, origin), amount=i.rate_mg_h * hours_between(i.end, i.start),
                             rate=i.rate_mg_h, route=i.route) for i in sorted(segments, key=lambda x: x.start))
    regimen = Regimen(events, drug=p.drug)
    parent, metabolite, _ = analyte_outputs(model_for(regimen))
    names = {"ketamine": parent, "s-ketamine": parent, "norketamine": metabolite, "s-norketamine": metabolite}
    times, outputs, values, blq, lloq = [], [], [], [], []
    for lv in levels:
        if lv.taken_at < first or names.get(lv.analyte) is None:
            continue
        times.append(hours_between(lv.taken_at, origin))
        outputs.append(names[lv.analyte])
        values.append(lv.value_ng_ml if lv.value_ng_ml is not None else np.nan)
        blq.append(lv.blq)
        lloq.append(lv.lloq_ng_ml if lv.lloq_ng_ml is not None else np.nan)
    entries = [(hours_between(e.recorded_at, origin), float(e.nrs)) for e in diary]
    if p.baseline_pain is not None:
        entries.append((hours_between(first, origin), float(p.baseline_pain)))
    for t, v in entries:
        times.append(t)
        outputs.append(PAIN)
        values.append(v)
        blq.append(False)
        lloq.append(np.nan)
    age = now().year - p.birth_year
    patient = PKPatient(latest_weight(p), float(min(max(age, 0), 120)), p.sex)
    observations = Observations.of(times, outputs, values, blq, lloq) if times else None
    return RecordCase(origin, regimen, observations, patient)


@dataclass(frozen=True)
class ClinicCohort:
    """The patients a clinic can learn from, and how many were left out and why."""

    cohort: Cohort
    codes: tuple[str, ...]
    left_out: dict[str, int]  # reason -> number of patients


def clinic_cohort(s: Session, drug: str = "racemic") -> ClinicCohort:
    """Every patient with valid consent, at least one infusion of ``drug`` and at least one pain score."""
    patients, codes = [], []
    left_out = {"no valid consent": 0, "another drug form": 0, "no infusion yet": 0, "no pain score": 0}
    for p in s.scalars(select(Patient).order_by(Patient.id)).all():
        if not any(c.withdrawn_at is None for c in p.consents):
            left_out["no valid consent"] += 1
            continue
        if p.drug != drug:
            left_out["another drug form"] += 1
            continue
        case = record_case(s, p)
        if case is None:
            left_out["no infusion yet"] += 1
            continue
        if case.observations is None or not np.any(case.observations.output == PAIN):
            left_out["no pain score"] += 1
            continue
        patients.append(CohortPatient(p.code, case.regimen, case.patient.covariates(), case.observations))
        codes.append(p.code)
    return ClinicCohort(Cohort(tuple(patients), "clinic record"), tuple(codes),
                        {k: v for k, v in left_out.items() if v})
