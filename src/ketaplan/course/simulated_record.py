"""A simulated clinic written into a clinic record, for demonstrations, tests and the learning benchmark."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
from sqlalchemy.orm import Session

from ketaplan.course import store
from ketaplan.estimation.library_cohort import Cohort
from ketaplan.individualize.observations import PAIN


def write_cohort(s: Session, cohort: Cohort, actor: str = "simulation", end: datetime | None = None) -> int:
    """Enter every patient of ``cohort`` (patients KP-S0001...) so that the record ends at ``end`` (default
    now): courses of constant-rate infusions, levels and diary scores. Returns the number of entries.

    The last entry, a measurement or the end of an infusion, lies a day before ``end``: what was given or
    measured cannot lie in the future."""
    end = end or store.now()
    last = max(max(float(np.max(p.observations.time)),
                   max((float(e.time + e.amount / e.rate) for e in p.regimen.events), default=0.0))
               for p in cohort.patients)
    origin = end - timedelta(hours=last + 24.0)
    version, _ = store.privacy_statement()
    entries = 0
    for i, cp in enumerate(cohort.patients):
        c = cp.covariates
        p = store.add_patient(s, actor, f"KP-S{i + 1:04d}", int(end.year - round(float(c.age[0]))),
                              str(c.sex[0]), "CRPS (simulated)", round(float(c.weight[0]), 1), version,
                              on=origin.date())
        for event in cp.regimen.events:
            start = origin + timedelta(hours=float(event.time))
            stop = start + timedelta(hours=float(event.amount / event.rate))
            course, _ = store.plan_course(s, actor, p, f"{event.rate:g} mg/h IV for {event.amount / event.rate:g} h",
                                       None)
            store.record_infusion(s, actor, p, course, start, stop, float(event.rate))
            entries += 1
        o = cp.observations
        for t, name, value in zip(o.time, o.output, o.value, strict=True):
            when = origin + timedelta(hours=float(t))
            if name == PAIN:
                store.add_pain(s, actor, p, when, float(value))
            else:
                store.add_level(s, actor, p, when, "ketamine", float(value), False, None)
            entries += 1
    return entries
