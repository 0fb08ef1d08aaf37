"""SQLAlchemy models of the clinic record. Migrations live in ``course/migrations`` (Alembic).

Patients are pseudonymous: a code chosen by the clinic, birth year (not date), sex. Times are the clinic's
local times, as entered. Every table that holds a patient's data cascades on the patient's erasure.
Entries are never deleted to correct them: a voided or corrected entry keeps its row (``voided_at`` set) and
its previous values and the reason sit in ``entry_revisions``.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def patient_fk() -> ForeignKey:
    """A foreign key to the patient that cascades on erasure."""
    return ForeignKey("patients.id", ondelete="CASCADE")


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16))
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    __table_args__ = (CheckConstraint("role in ('clinician', 'admin')", name="ck_users_role"),)


class WebSession(Base):
    __tablename__ = "sessions"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)


class Patient(Base):
    __tablename__ = "patients"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    birth_year: Mapped[int] = mapped_column(Integer)
    sex: Mapped[str] = mapped_column(String(8))
    diagnosis: Mapped[str] = mapped_column(String(200))
    baseline_pain: Mapped[float | None] = mapped_column(Float, nullable=True)
    drug: Mapped[str] = mapped_column(String(16), default="racemic")
    created_at: Mapped[datetime] = mapped_column(DateTime)
    data_version: Mapped[int] = mapped_column(Integer, default=0)
    weights: Mapped[list[WeightRecord]] = relationship(cascade="all, delete-orphan", passive_deletes=True,
                                                       order_by="WeightRecord.recorded_on")
    consents: Mapped[list[Consent]] = relationship(cascade="all, delete-orphan", passive_deletes=True,
                                                   order_by="Consent.accepted_at")
    courses: Mapped[list[Course]] = relationship(cascade="all, delete-orphan", passive_deletes=True,
                                                 order_by="Course.number")
    __table_args__ = (CheckConstraint("sex in ('male', 'female')", name="ck_patients_sex"),
                      CheckConstraint("baseline_pain is null or (baseline_pain >= 0 and baseline_pain <= 10)",
                                      name="ck_patients_baseline"))


class WeightRecord(Base):
    __tablename__ = "weights"
    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(patient_fk(), index=True)
    recorded_on: Mapped[date] = mapped_column(Date)
    kg: Mapped[float] = mapped_column(Float)
    voided_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    __table_args__ = (CheckConstraint("kg >= 1 and kg <= 400", name="ck_weights_kg"),)


class Consent(Base):
    __tablename__ = "consents"
    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(patient_fk(), index=True)
    statement_version: Mapped[str] = mapped_column(String(32))
    accepted_at: Mapped[datetime] = mapped_column(DateTime)
    recorded_by: Mapped[str] = mapped_column(String(64))
    withdrawn_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class Course(Base):
    __tablename__ = "courses"
    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(patient_fk(), index=True)
    number: Mapped[int] = mapped_column(Integer)
    planned_regimen: Mapped[str] = mapped_column(String(500))
    planned_start: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="planned")
    infusions: Mapped[list[Infusion]] = relationship(cascade="all, delete-orphan", passive_deletes=True,
                                                     order_by="Infusion.start")
    __table_args__ = (UniqueConstraint("patient_id", "number", name="uq_courses_number"),
                      CheckConstraint("status in ('planned', 'running', 'done', 'cancelled')",
                                      name="ck_courses_status"))


class Infusion(Base):
    """One segment of an infusion at a constant rate; a rate change starts a new segment, a gap is an interruption."""

    __tablename__ = "infusions"
    id: Mapped[int] = mapped_column(primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id", ondelete="CASCADE"), index=True)
    start: Mapped[datetime] = mapped_column(DateTime)
    end: Mapped[datetime] = mapped_column(DateTime)
    rate_mg_h: Mapped[float] = mapped_column(Float)
    route: Mapped[str] = mapped_column(String(16), default="iv")
    note: Mapped[str] = mapped_column(String(200), default="")
    voided_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    __table_args__ = (CheckConstraint('"end" > start', name="ck_infusions_order"),
                      CheckConstraint("rate_mg_h > 0 and rate_mg_h <= 1000", name="ck_infusions_rate"))


class DrugLevel(Base):
    __tablename__ = "levels"
    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(patient_fk(), index=True)
    taken_at: Mapped[datetime] = mapped_column(DateTime)
    analyte: Mapped[str] = mapped_column(String(32))
    value_ng_ml: Mapped[float | None] = mapped_column(Float, nullable=True)
    blq: Mapped[bool] = mapped_column(Boolean, default=False)
    lloq_ng_ml: Mapped[float | None] = mapped_column(Float, nullable=True)
    voided_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class PainEntry(Base):
    __tablename__ = "pain_diary"
    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(patient_fk(), index=True)
    recorded_at: Mapped[datetime] = mapped_column(DateTime)
    nrs: Mapped[int] = mapped_column(Integer)
    voided_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    __table_args__ = (CheckConstraint("nrs >= 0 and nrs <= 10", name="ck_pain_nrs"),)


class SideEffect(Base):
    __tablename__ = "side_effects"
    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(patient_fk(), index=True)
    recorded_at: Mapped[datetime] = mapped_column(DateTime)
    kind: Mapped[str] = mapped_column(String(100))
    grade: Mapped[int] = mapped_column(Integer)
    voided_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    __table_args__ = (CheckConstraint("grade >= 1 and grade <= 5", name="ck_side_effects_grade"),)


class Lab(Base):
    __tablename__ = "labs"
    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(patient_fk(), index=True)
    taken_at: Mapped[datetime] = mapped_column(DateTime)
    test: Mapped[str] = mapped_column(String(8))
    value_u_l: Mapped[float] = mapped_column(Float)
    uln_u_l: Mapped[float] = mapped_column(Float)
    voided_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    __table_args__ = (CheckConstraint("test in ('ALT', 'AST', 'GGT', 'ALP', 'BILI')", name="ck_labs_test"),
                      CheckConstraint("uln_u_l > 0 and value_u_l >= 0", name="ck_labs_values"))


class Note(Base):
    __tablename__ = "notes"
    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(patient_fk(), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    author: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    voided_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class AuditEntry(Base):
    """Who did what and when. Holds table names, row ids and field names, never values."""

    __tablename__ = "audit"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime, index=True)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    entity: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    detail: Mapped[str] = mapped_column(Text, default="")


class AppointmentRequest(Base):
    __tablename__ = "appointment_requests"
    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    name: Mapped[str] = mapped_column(String(100))
    contact: Mapped[str] = mapped_column(String(200))
    message: Mapped[str] = mapped_column(Text)
    consent_version: Mapped[str] = mapped_column(String(32))
    handled_by: Mapped[str | None] = mapped_column(String(64), nullable=True)


class ForecastCache(Base):
    """The last individualized forecast of a patient, valid while ``data_version`` matches the patient's."""

    __tablename__ = "forecasts"
    patient_id: Mapped[int] = mapped_column(patient_fk(), primary_key=True)
    data_version: Mapped[int] = mapped_column(Integer)
    computed_at: Mapped[datetime] = mapped_column(DateTime)
    next_due: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    payload: Mapped[str] = mapped_column(Text)


class EntryRevision(Base):
    """A correction, voiding or cancellation of an entry, or a confirmed override of a refused dose: who, when,
    why, and the entry's previous values (patient data: erased with the patient; the audit points here)."""

    __tablename__ = "entry_revisions"
    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(patient_fk(), index=True)
    entity: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(DateTime)
    actor: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    previous: Mapped[str] = mapped_column(Text, default="")
    replaced_by: Mapped[int | None] = mapped_column(Integer, nullable=True)
    __table_args__ = (CheckConstraint("kind in ('correct', 'void', 'cancel', 'override')",
                                      name="ck_entry_revisions_kind"),)


class AppSecret(Base):
    """Server secrets shared by every worker process (the key that signs the forms of visitors)."""

    __tablename__ = "app_secrets"
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[str] = mapped_column(String(128))


class ModelVersion(Base):
    """A relief model learned from the clinic's record, with its provenance. Forecasts use the one version
    ``in_use`` (accepted by an admin); without one they use the published model."""

    __tablename__ = "model_versions"
    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    created_by: Mapped[str] = mapped_column(String(64))
    clinic: Mapped[str] = mapped_column(String(200))
    drug: Mapped[str] = mapped_column(String(16))
    base_model: Mapped[str] = mapped_column(String(200))
    n_patients: Mapped[int] = mapped_column(Integer)
    prior: Mapped[str] = mapped_column(String(200))
    prior_weight: Mapped[float] = mapped_column(Float)
    ketaplan_version: Mapped[str] = mapped_column(String(32))
    result: Mapped[str] = mapped_column(Text)  # JSON: estimates, intervals, shrinkage, objective, timing check
    status: Mapped[str] = mapped_column(String(16), default="proposed")
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    accepted_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    in_use: Mapped[bool] = mapped_column(Boolean, default=False)
    __table_args__ = (CheckConstraint("status in ('proposed', 'accepted', 'rejected')",
                                      name="ck_model_versions_status"),)
