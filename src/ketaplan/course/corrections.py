"""Corrections without loss: void or correct an entry, cancel a planned course, read an entry's history.

Nothing is deleted. A voided entry keeps its row with ``voided_at`` set; a correction voids the entry and
adds its replacement through the same checks as a new entry; each keeps the reason, who and when, and the
previous values in ``entry_revisions`` (patient data, erased with the patient). The audit names the revision,
never the values.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from ketaplan.course.checks import check, clean_text, now
from ketaplan.course.schema import (
    Course,
    DrugLevel,
    EntryRevision,
    Infusion,
    Lab,
    Note,
    PainEntry,
    Patient,
    SideEffect,
    WeightRecord,
)
from ketaplan.course.store import _require_consent, _touch, audit, plain

ENTRIES = {"weights": WeightRecord, "infusions": Infusion, "levels": DrugLevel, "pain_diary": PainEntry,
           "side_effects": SideEffect, "labs": Lab, "notes": Note}
"""The kinds of entries that can be voided or corrected, by table name."""
_HIDDEN = ("id", "patient_id", "course_id", "voided_at")


def _entry(s: Session, p: Patient, entity: str, entity_id: int):
    check(entity in ENTRIES, "entry", entity, ", ".join(ENTRIES))
    model = ENTRIES[entity]
    row = s.get(model, entity_id)
    owner = getattr(row, "patient_id", None)
    if isinstance(row, Infusion):
        owner = s.get(Course, row.course_id).patient_id
    check(row is not None and owner == p.id, "entry", entity_id, "no such entry of this patient")
    check(row.voided_at is None, "entry", entity_id, "this entry was already voided or corrected")
    return row


def values(row) -> dict:
    """An entry's values as plain data (for its history)."""
    return {c.name: plain(getattr(row, c.key)) for c in row.__table__.columns if c.name not in _HIDDEN}


def _revise(s: Session, actor: str, p: Patient, entity: str, row, kind: str, reason: str,
            replaced_by: int | None = None) -> EntryRevision:
    r = EntryRevision(patient_id=p.id, entity=entity, entity_id=row.id, kind=kind, at=now(), actor=actor,
                      reason=reason, previous=json.dumps(values(row)), replaced_by=replaced_by)
    s.add(r)
    s.flush()
    audit(s, actor, kind, entity, row.id, ("voided_at",) if kind != "cancel" else ("status",))
    audit(s, actor, "create", "entry_revisions", r.id, ("reason", "previous"))
    return r


def void_entry(s: Session, actor: str, p: Patient, entity: str, entity_id: int, reason: str) -> EntryRevision:
    """Void an entry that should not have been recorded (it stays visible in the history)."""
    _require_consent(p)
    reason = clean_text(reason, "reason", 500, multiline=True)
    row = _entry(s, p, entity, entity_id)
    row.voided_at = now()
    _touch(p)
    return _revise(s, actor, p, entity, row, "void", reason)


def correct_entry(s: Session, actor: str, p: Patient, entity: str, entity_id: int, reason: str,
                  replacement: Callable[[], object]) -> EntryRevision:
    """Replace an entry: void it, then ``replacement()`` adds the corrected one through the usual checks (a
    refused value rolls back both with the caller's transaction)."""
    _require_consent(p)
    reason = clean_text(reason, "reason", 500, multiline=True)
    row = _entry(s, p, entity, entity_id)
    row.voided_at = now()
    s.flush()  # the replacement's checks (an infusion's overlap) no longer see the voided entry
    new = replacement()
    check(isinstance(new, ENTRIES[entity]), "entry", entity, "is corrected by an entry of the same kind")
    _touch(p)
    return _revise(s, actor, p, entity, row, "correct", reason, replaced_by=new.id)


def cancel_course(s: Session, actor: str, p: Patient, course: Course, reason: str) -> EntryRevision:
    """Cancel a planned course (nothing given yet); it stays in the list as cancelled."""
    reason = clean_text(reason, "reason", 500, multiline=True)
    check(course.patient_id == p.id, "course", course.number, "no such course of this patient")
    check(course.status == "planned" and not course.infusions, "course", course.number,
          "only a planned course with nothing given can be cancelled (void its infusions instead)")
    revision = _revise(s, actor, p, "courses", course, "cancel", reason)  # the values before the change
    course.status = "cancelled"
    _touch(p)
    return revision


def history(s: Session, p: Patient) -> dict[tuple[str, int], list[EntryRevision]]:
    """Every revision of the patient's entries, by (table, row id), oldest first."""
    out: dict[tuple[str, int], list[EntryRevision]] = {}
    for r in s.scalars(select(EntryRevision).where(EntryRevision.patient_id == p.id).order_by(EntryRevision.id)):
        out.setdefault((r.entity, r.entity_id), []).append(r)
    return out
