"""Reading and writing the clinic record: one function per action, each checked and audited.

Every function works inside the caller's transaction (:func:`ketaplan.course.db.transaction`), so a
failed check changes nothing. Audit entries name the table, the row and the fields, never values.
Times are the clinic's local times, as entered.
"""

from __future__ import annotations

import json
import re
import secrets
import unicodedata
from dataclasses import replace
from datetime import date, datetime, timedelta
from functools import lru_cache
from importlib import resources

import numpy as np
import pandas as pd
import yaml
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from ketaplan.course.checks import check as _check
from ketaplan.course.checks import check_past, check_time, clean_text, now, patient_code
from ketaplan.course.schema import (
    AppointmentRequest,
    AuditEntry,
    Consent,
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
from ketaplan.errors import InputError
from ketaplan.regimen.text import parse_regimen

ANALYTES = ("ketamine", "norketamine", "s-ketamine", "s-norketamine")
LAB_TESTS = ("ALT", "AST", "GGT", "ALP", "BILI")


PRIVACY_LANGUAGES = ("en", "nl")


@lru_cache(maxsize=4)
def privacy_statement(language: str = "en") -> tuple[str, str]:
    """(version, text) of the privacy statement patients accept, in English or Dutch.

    The text may name the clinic and its contact as ``{clinic}`` and ``{contact}`` (filled in by the caller).
    Every language has the same version: a new text is a new version in all of them.
    """
    name = "privacy_statement.md" if language == "en" else f"privacy_statement.{language}.md"
    _check(language in PRIVACY_LANGUAGES, "language", language, "en or nl")
    raw = (resources.files("ketaplan.course") / name).read_text(encoding="utf-8")
    _, front, body = raw.split("---", 2)
    return str(yaml.safe_load(front)["version"]), body.strip()


def audit(s: Session, actor: str, action: str, entity: str, entity_id: int | None, fields=()) -> None:
    """Add an audit entry (field names only)."""
    s.add(AuditEntry(at=now(), actor=actor, action=action, entity=entity, entity_id=entity_id,
                     detail=json.dumps({"fields": sorted(fields)}) if fields else ""))


def _touch(p: Patient) -> None:
    """Mark the record changed (the cached forecast is then stale); an SQL increment, so concurrent writers
    never lose an update."""
    p.data_version = Patient.data_version + 1


def _find_patient(s: Session, code: str) -> Patient | None:
    return s.scalar(select(Patient).where(func.upper(Patient.code) == code.upper()))


def get_patient(s: Session, code: str) -> Patient:
    """The patient with this code (NFKC-normalised, whatever the case)."""
    p = _find_patient(s, unicodedata.normalize("NFKC", code.strip()))
    if p is None:
        raise InputError("patient", code[:40], "no patient has this code")
    return p


def _require_consent(p: Patient) -> None:
    if not any(c.withdrawn_at is None for c in p.consents):
        raise InputError("patient", p.code, "has no valid consent (withdrawn); record a new consent or erase the "
                         "record")


def add_patient(s: Session, actor: str, code: str, birth_year: int, sex: str, diagnosis: str, weight_kg: float,
                consent_version: str, baseline_pain: float | None = None, drug: str = "racemic",
                on: date | None = None) -> Patient:
    """A new patient with their first weight and the privacy consent they accepted."""
    code = patient_code(clean_text(code, "code", 40))
    _check(_find_patient(s, code) is None, "code", code, "already in use (codes are the same whatever the case)")
    year = now().year
    _check(isinstance(birth_year, int) and year - 120 <= birth_year <= year, "birth year", birth_year,
           f"a year between {year - 120} and {year}")
    _check(sex in ("male", "female"), "sex", sex, "male or female")
    diagnosis = clean_text(diagnosis, "diagnosis", 200)
    _check(baseline_pain is None or 0 <= baseline_pain <= 10, "baseline pain", baseline_pain, "NRS 0-10")
    _check(drug in ("racemic", "s-ketamine"), "drug", drug, "racemic or s-ketamine")
    _check_consent_version(consent_version)
    p = Patient(code=code, birth_year=birth_year, sex=sex, diagnosis=diagnosis, baseline_pain=baseline_pain,
                drug=drug, created_at=now(), data_version=0)
    s.add(p)
    s.flush()
    audit(s, actor, "create", "patients", p.id, ("code", "birth_year", "sex", "diagnosis", "baseline_pain"))
    record_consent(s, actor, p, consent_version)
    add_weight(s, actor, p, on or now().date(), weight_kg)
    return p


def _check_consent_version(version: str) -> None:
    current, _ = privacy_statement()
    _check(version == current, "consent", version, f"the patient must accept the current privacy statement "
           f"(version {current})")


def record_consent(s: Session, actor: str, p: Patient, version: str) -> Consent:
    _check_consent_version(version)
    c = Consent(statement_version=version, accepted_at=now(), recorded_by=actor)
    p.consents.append(c)
    s.flush()
    audit(s, actor, "consent", "consents", c.id)
    return c


def withdraw_consent(s: Session, actor: str, p: Patient) -> None:
    """Withdrawal: no new data may be recorded until the patient consents again; export and erasure remain."""
    active = [c for c in p.consents if c.withdrawn_at is None]
    _check(bool(active), "consent", p.code, "has no consent to withdraw")
    for c in active:
        c.withdrawn_at = now()
        audit(s, actor, "withdraw", "consents", c.id)


def add_weight(s: Session, actor: str, p: Patient, on: date, kg: float) -> WeightRecord:
    _require_consent(p)
    _check(kg is not None and 1 <= kg <= 400, "weight", kg, "between 1 and 400 kg")
    check_past(on, "date")
    w = WeightRecord(recorded_on=on, kg=float(kg))
    p.weights.append(w)
    _touch(p)
    s.flush()
    audit(s, actor, "create", "weights", w.id, ("recorded_on", "kg"))
    return w


def latest_weight(p: Patient) -> float:
    return max(active(p.weights), key=lambda w: w.recorded_on).kg


def active(entries):
    """The entries that have not been voided (corrected entries are voided and replaced)."""
    return [e for e in entries if e.voided_at is None]


def plan_course(s: Session, actor: str, p: Patient, regimen_text: str, planned_start: datetime | None,
                force: bool = False, reason: str | None = None) -> tuple[Course, list]:
    """A planned course in the regimen language, checked against the usual ranges at the latest weight.

    A dose refused as a likely unit slip is planned only with ``force`` and a ``reason`` (None: the command
    line's --force), which is kept (an 'override' revision the audit points to).
    """
    from ketaplan.regimen.safety import check_plan

    _require_consent(p)
    regimen = parse_regimen(clean_text(regimen_text, "regimen", 500))
    if planned_start is not None:
        check_time(planned_start, "planned start")
    _check(regimen.drug == p.drug, "regimen", regimen_text, f"this patient is treated with {p.drug}")
    try:
        findings = check_plan(regimen, latest_weight(p), force)
    except InputError as exc:
        raise UnitSlipRefused.of(exc) from None
    number = (s.scalar(select(func.max(Course.number)).where(Course.patient_id == p.id)) or 0) + 1
    c = Course(number=number, planned_regimen=regimen_text.strip(), planned_start=planned_start, status="planned")
    p.courses.append(c)
    s.flush()
    audit(s, actor, "create", "courses", c.id, ("planned_regimen", "planned_start"))
    _keep_override(s, actor, p, "courses", c.id, findings, reason)
    _touch(p)
    return c, findings


def _keep_override(s: Session, actor: str, p: Patient, entity: str, entity_id: int, findings,
                   reason: str | None) -> None:
    """A refused dose accepted anyway needs a reason (None: --force on the command line); it is kept with the
    finding and audited."""
    refused = [f for f in findings if f.severity == "refused"]
    if not refused:
        return
    reason = "--force on the command line" if reason is None else clean_text(reason, "reason", 500)
    r = EntryRevision(patient_id=p.id, entity=entity, entity_id=entity_id, kind="override", at=now(), actor=actor,
                      reason=reason, previous=json.dumps({"findings": [f.message for f in refused]}))
    s.add(r)
    s.flush()
    audit(s, actor, "override", "entry_revisions", r.id, ("reason", "findings"))


class UnitSlipRefused(InputError):
    """A dose refused as a likely unit slip: it can be accepted only when confirmed with a reason."""

    @classmethod
    def of(cls, exc: InputError) -> UnitSlipRefused:
        """The dose checks' refusal, saying how to go on outside the command line."""
        return cls(exc.field, exc.value, exc.allowed.replace("use --force to plan it anyway",
                                                             "confirm it with a reason to go on"))


def get_course(p: Patient, number: int) -> Course:
    for c in p.courses:
        if c.number == number:
            return c
    numbers = ", ".join(str(c.number) for c in p.courses) or "none"
    raise InputError("course", number, f"this patient's courses are: {numbers}")


def infusion_findings(p: Patient, start: datetime, end: datetime, rate_mg_h: float, route: str = "iv") -> list:
    """The dose checks of an infusion segment as given, at the latest weight (refusals kept as findings)."""
    from ketaplan.regimen.events import DoseEvent, Regimen
    from ketaplan.regimen.safety import check_regimen

    hours = (end - start).total_seconds() / 3600
    if route != "iv" or rate_mg_h <= 0 or hours <= 0:
        return []
    given = Regimen((DoseEvent(0.0, rate_mg_h * hours, "iv", rate=rate_mg_h),), drug=p.drug)
    return [replace(f, message=f.message.replace(" (planned anyway with --force)", ""))
            for f in check_regimen(given, latest_weight(p), force=True) if f.severity != "info"]


def record_infusion(s: Session, actor: str, p: Patient, course: Course, start: datetime, end: datetime,
                    rate_mg_h: float, route: str = "iv", note: str = "", confirmed: bool | None = None,
                    reason: str | None = None) -> Infusion:
    """One constant-rate segment actually given; rate changes and interruptions are further segments.

    With ``confirmed`` False (the dashboard), a rate refused as a likely unit slip is refused unless confirmed
    with a reason, which is kept; None (the command line) records it and leaves the warning to the caller.
    """
    _require_consent(p)
    check_past(start, "start")
    check_past(end, "end")
    _check(end > start, "end", end.isoformat(sep=" "), f"after the start ({start.isoformat(sep=' ')})")
    _check(end - start <= timedelta(days=30), "end", end.isoformat(sep=" "), "within 30 days of the start (record "
           "one segment per constant rate)")
    _check(0 < rate_mg_h <= 1000, "rate", rate_mg_h, "between 0 and 1000 mg/h (give mg/h)")
    _check(course.status != "cancelled", "course", course.number, "this course was cancelled; plan a new one")
    note = clean_text(note, "note", 200, multiline=True) if note.strip() else ""
    for c in p.courses:
        for i in active(c.infusions):
            _check(not (start < i.end and i.start < end), "start", start.isoformat(sep=" "),
                   f"overlaps the segment {i.start:%Y-%m-%d %H:%M} to {i.end:%Y-%m-%d %H:%M} of course {c.number}")
    findings = infusion_findings(p, start, end, rate_mg_h, route)
    refused = [f for f in findings if f.severity == "refused"]
    if refused and confirmed is False:
        weight = latest_weight(p)
        raise UnitSlipRefused("rate", f"{rate_mg_h:g} mg/h", f"that is {rate_mg_h / weight:.1f} mg/kg/h at {weight:g} "
                              "kg, far above any usual rate (a unit slip is likely); check the rate, or confirm that "
                              "it was given and give a reason")
    inf = Infusion(start=start, end=end, rate_mg_h=float(rate_mg_h), route=route, note=note)
    course.infusions.append(inf)
    course.status = "done" if course.status == "planned" else course.status
    _touch(p)
    s.flush()
    audit(s, actor, "create", "infusions", inf.id, ("start", "end", "rate_mg_h", "route", "note"))
    if confirmed:
        _keep_override(s, actor, p, "infusions", inf.id, findings, reason)
    return inf


def add_level(s: Session, actor: str, p: Patient, taken_at: datetime, analyte: str, value_ng_ml: float | None,
              blq: bool = False, lloq_ng_ml: float | None = None) -> DrugLevel:
    _require_consent(p)
    check_past(taken_at, "time")
    _check(analyte in ANALYTES, "analyte", analyte, ", ".join(ANALYTES))
    if blq:
        _check(value_ng_ml is None, "level", value_ng_ml, "a level below the limit of quantification has no value; "
               "give the limit (LLOQ) instead")
        _check(lloq_ng_ml is not None and lloq_ng_ml > 0, "LLOQ", lloq_ng_ml, "a level below the limit needs the "
               "limit (ng/mL)")
    else:
        _check(value_ng_ml is not None and 0 < value_ng_ml < 100_000, "level", value_ng_ml,
               "a level in ng/mL above 0 (mark levels below the limit as BLQ)")
    lv = DrugLevel(patient_id=p.id, taken_at=taken_at, analyte=analyte, value_ng_ml=value_ng_ml, blq=blq,
                   lloq_ng_ml=lloq_ng_ml)
    s.add(lv)
    _touch(p)
    s.flush()
    audit(s, actor, "create", "levels", lv.id, ("taken_at", "analyte", "value_ng_ml", "blq"))
    return lv


def add_pain(s: Session, actor: str, p: Patient, recorded_at: datetime, nrs: float) -> PainEntry:
    _require_consent(p)
    check_past(recorded_at, "date")
    _check(float(nrs).is_integer() and 0 <= nrs <= 10, "NRS", nrs, "a whole number from 0 to 10")
    e = PainEntry(patient_id=p.id, recorded_at=recorded_at, nrs=int(nrs))
    s.add(e)
    _touch(p)
    s.flush()
    audit(s, actor, "create", "pain_diary", e.id, ("recorded_at", "nrs"))
    return e


ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([ T]\d{1,2}:\d{2}(:\d{2})?)?$")
"""YYYY-MM-DD, optionally with a time HH:MM[:SS]."""


def import_diary(s: Session, actor: str, p: Patient, frame: pd.DataFrame) -> int:
    """Pain diary rows (columns date [and time], nrs); all or nothing, bad rows named by number."""
    cols = {str(c).strip().lower(): c for c in frame.columns}
    _check("date" in cols and "nrs" in cols, "diary columns", list(frame.columns), "columns date and nrs")
    count = 0
    dates = frame[cols["date"]].astype(str).str.strip()
    if "time" in cols:
        dates = dates + " " + frame[cols["time"]].astype(str).str.strip()
    for i, (raw_date, raw_nrs) in enumerate(zip(dates, frame[cols["nrs"]], strict=True), start=2):
        # ISO dates only: 12/01/2026 could be 1 December or 12 January, and is refused rather than guessed
        when = pd.to_datetime(raw_date, errors="coerce") if ISO_DATE.match(raw_date) else pd.NaT
        if pd.isna(when):
            raise InputError(f"diary row {i}, date", raw_date, "a date such as 2026-03-01 (and optionally 08:00)")
        try:
            nrs = float(raw_nrs)
        except (TypeError, ValueError):
            raise InputError(f"diary row {i}, nrs", raw_nrs, "a whole number from 0 to 10") from None
        if not (np.isfinite(nrs) and nrs.is_integer() and 0 <= nrs <= 10):
            raise InputError(f"diary row {i}, nrs", raw_nrs, "a whole number from 0 to 10")
        add_pain(s, actor, p, when.to_pydatetime(), nrs)
        count += 1
    _check(count > 0, "diary", "no rows", "at least one entry")
    return count


def add_side_effect(s: Session, actor: str, p: Patient, recorded_at: datetime, kind: str, grade: int) -> SideEffect:
    _require_consent(p)
    check_past(recorded_at, "time")
    kind = clean_text(kind, "side effect", 100)
    _check(grade in (1, 2, 3, 4, 5), "grade", grade, "CTCAE grade 1-5")
    e = SideEffect(patient_id=p.id, recorded_at=recorded_at, kind=kind, grade=int(grade))
    s.add(e)
    s.flush()
    audit(s, actor, "create", "side_effects", e.id, ("recorded_at", "kind", "grade"))
    return e


def add_lab(s: Session, actor: str, p: Patient, taken_at: datetime, test: str, value: float, uln: float) -> Lab:
    _require_consent(p)
    check_past(taken_at, "time")
    test = test.strip().upper()
    _check(test in LAB_TESTS, "test", test, ", ".join(LAB_TESTS))
    _check(value is not None and value >= 0 and np.isfinite(value), "value", value, "a value >= 0 in U/L")
    _check(uln is not None and uln > 0 and np.isfinite(uln), "upper limit", uln,
           "the laboratory's upper limit of normal (U/L) > 0")
    lab = Lab(patient_id=p.id, taken_at=taken_at, test=test, value_u_l=float(value), uln_u_l=float(uln))
    s.add(lab)
    s.flush()
    audit(s, actor, "create", "labs", lab.id, ("taken_at", "test", "value_u_l", "uln_u_l"))
    return lab


def add_note(s: Session, actor: str, p: Patient, text: str) -> Note:
    _require_consent(p)
    text = clean_text(text, "note", 5000, multiline=True)
    n = Note(patient_id=p.id, created_at=now(), author=actor, text=text)
    s.add(n)
    s.flush()
    audit(s, actor, "create", "notes", n.id, ("text",))
    return n


PATIENT_TABLES = (WeightRecord, Consent, DrugLevel, PainEntry, SideEffect, Lab, Note, EntryRevision)


def _rows(s: Session, model, p: Patient) -> list[dict]:
    items = s.scalars(select(model).where(model.patient_id == p.id).order_by(model.id)).all()
    return [{c.name: plain(getattr(i, c.key)) for c in model.__table__.columns} for i in items]


def plain(v):
    """A date or datetime as ISO text; anything else unchanged."""
    if isinstance(v, datetime):
        return v.isoformat(sep=" ")
    return v.isoformat() if isinstance(v, date) else v


def export_patient(s: Session, actor: str, p: Patient) -> dict:
    """Everything the record holds on a patient, as plain data (for JSON; one list per table)."""
    out = {"patient": {c.name: plain(getattr(p, c.key)) for c in Patient.__table__.columns}}
    for model in PATIENT_TABLES:
        out[model.__tablename__] = _rows(s, model, p)
    out["courses"] = [{**{c.name: plain(getattr(course, c.key)) for c in Course.__table__.columns},
                       "infusions": [{c.name: plain(getattr(i, c.key)) for c in Infusion.__table__.columns}
                                     for i in course.infusions]} for course in p.courses]
    audit(s, actor, "export", "patients", p.id)
    return out


def export_tables(record: dict) -> dict[str, pd.DataFrame]:
    """The export as one table per kind of data (for CSV files)."""
    tables = {"patient": pd.DataFrame([record["patient"]])}
    for key, rows in record.items():
        if key in ("patient", "courses"):
            continue
        tables[key] = pd.DataFrame(rows)
    tables["courses"] = pd.DataFrame([{k: v for k, v in c.items() if k != "infusions"} for c in record["courses"]])
    tables["infusions"] = pd.DataFrame([i for c in record["courses"] for i in c["infusions"]])
    return tables


def erase_patient(s: Session, actor: str, p: Patient) -> str:
    """Right to erasure: delete every row of the patient; the audit keeps who did what and when, and a random
    reference, but no link to the rows."""
    reference = secrets.token_hex(6)
    linked = {"patients": [p.id]}
    for model in (*PATIENT_TABLES, Course):
        linked[model.__tablename__] = list(s.scalars(select(model.id).where(model.patient_id == p.id)))
    linked["infusions"] = [i.id for c in p.courses for i in c.infusions]
    for entity, ids in linked.items():  # earlier audit rows keep who and when, but no longer point at the rows
        if ids:
            s.execute(update(AuditEntry).where(AuditEntry.entity == entity, AuditEntry.entity_id.in_(ids))
                      .values(entity_id=None, detail=json.dumps({"erased": reference})))
    s.delete(p)
    s.flush()
    s.add(AuditEntry(at=now(), actor=actor, action="erase", entity="patients", entity_id=None,
                     detail=json.dumps({"erasure_reference": reference})))
    return reference


def add_appointment_request(s: Session, name: str, contact: str, message: str, consent: bool,
                            consent_version: str) -> AppointmentRequest:
    """A request from the public page; refused unless the privacy consent box was ticked."""
    _check(consent, "consent", "not given", "tick the box to accept the privacy statement; without it we cannot "
           "store your request")
    _check_consent_version(consent_version)
    name = clean_text(name, "name", 100)
    contact = clean_text(contact, "contact", 200)
    message = clean_text(message, "message", 2000, multiline=True) if (message or "").strip() else ""
    r = AppointmentRequest(created_at=now(), name=name, contact=contact, message=message,
                           consent_version=consent_version)
    s.add(r)
    s.flush()
    audit(s, "public", "create", "appointment_requests", r.id)
    return r


def delete_request(s: Session, actor: str, request_id: int) -> None:
    """Delete an appointment request (its contact details are kept no longer than needed)."""
    r = s.get(AppointmentRequest, request_id)
    _check(r is not None, "request", request_id, "no such appointment request")
    s.delete(r)
    audit(s, actor, "delete", "appointment_requests", request_id)


def purge_requests(s: Session, actor: str, older_than_days: int) -> int:
    """Delete appointment requests older than ``older_than_days``; returns how many."""
    _check(older_than_days >= 0, "--older-than", older_than_days, "a number of days >= 0")
    cutoff = now() - timedelta(days=older_than_days)
    n = s.execute(delete(AppointmentRequest).where(AppointmentRequest.created_at < cutoff)).rowcount
    audit(s, actor, "purge", "appointment_requests", None, ())
    return int(n or 0)
