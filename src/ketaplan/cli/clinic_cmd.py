"""``ketaplan clinic``: the clinic record from the command line (patients, consent, courses, diary, export)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import typer

from ketaplan.cli.clinic_session import actor_name, clinic_engine, clinic_session
from ketaplan.cli.common import console, guarded, parse_when, write_atomically
from ketaplan.cli.tables import Column, print_table
from ketaplan.errors import InputError

clinic_app = typer.Typer(no_args_is_help=True, help="The clinic record: patients, consent, courses, levels, "
                                                    "pain diary, labs, forecast, export, erasure, backup.")
DB = typer.Option(None, "--db", help="Database URL or SQLite file (default $KETAPLAN_DB or ketaplan-clinic.db).")
ACTOR = typer.Option(None, "--as", help="Who records this (default: your login name); goes to the audit trail.")


def _engine(db: str | None, initialised: bool = True):
    return clinic_engine(db, initialised)


def _actor(name: str | None) -> str:
    return actor_name(name)


def _session(db):
    return clinic_session(db)


@clinic_app.command("init")
@guarded
def init_command(db: str = DB, admin: str = typer.Option(None, help="Create this first admin user (password from "
                                                                      "$KETAPLAN_PASSWORD or a prompt).")) -> None:
    """Create or migrate the database tables (and the first admin user)."""
    from ketaplan.course.db import transaction, upgrade
    from ketaplan.course.users import add_user

    engine = _engine(db, initialised=False)
    upgrade(engine)
    if admin:
        password = os.environ.get("KETAPLAN_PASSWORD") or typer.prompt("password", hide_input=True,
                                                                       confirmation_prompt=True)
        with transaction(engine) as s:
            add_user(s, None, admin, password, "admin")
    console.print(f"database ready: {engine.url.render_as_string(hide_password=True)}")


@clinic_app.command("add-user")
@guarded
def add_user_command(username: str, role: str = typer.Option("clinician", help="clinician or admin"),
                     admin: str = typer.Option(..., help="The admin who adds the user."), db: str = DB) -> None:
    """Add a user (password from $KETAPLAN_PASSWORD or a prompt)."""
    from sqlalchemy import select

    from ketaplan.course.schema import User
    from ketaplan.course.users import add_user

    password = os.environ.get("KETAPLAN_PASSWORD") or typer.prompt("password", hide_input=True,
                                                                   confirmation_prompt=True)
    with _session(db) as s:
        actor = s.scalar(select(User).where(User.username == admin))
        add_user(s, actor, username, password, role)
    console.print(f"added {role} {username}")


@clinic_app.command("privacy")
def privacy_command() -> None:
    """Print the privacy statement patients accept, with its version."""
    from ketaplan.course.store import privacy_statement

    version, text = privacy_statement()
    console.print(f"version {version}\n\n{text}", highlight=False)


@clinic_app.command("add-patient")
@guarded
def add_patient_command(
    code: str = typer.Argument(..., help="Pseudonymous code, e.g. KP-0001 (no names)."),
    birth_year: int = typer.Option(...), sex: str = typer.Option(...), diagnosis: str = typer.Option(...),
    weight: float = typer.Option(..., help="kg"), consent_version: str = typer.Option(
        ..., help="Version of the privacy statement the patient accepted (see `ketaplan clinic privacy`)."),
    baseline_pain: float = typer.Option(None, help="NRS 0-10 before treatment."),
    drug: str = typer.Option("racemic", help="racemic or s-ketamine"), db: str = DB, actor: str = ACTOR,
) -> None:
    """Add a patient with their consent and weight."""
    from ketaplan.course import store

    with _session(db) as s:
        store.add_patient(s, _actor(actor), code, birth_year, sex, diagnosis, weight, consent_version, baseline_pain,
                          drug)
    console.print(f"added patient {code}")


@clinic_app.command("consent")
@guarded
def consent_command(code: str, version: str = typer.Option(None, help="Statement version accepted."),
                    withdraw: bool = typer.Option(False, help="Record that the patient withdrew consent."),
                    db: str = DB, actor: str = ACTOR) -> None:
    """Record a patient's consent (or its withdrawal)."""
    from ketaplan.course import store

    with _session(db) as s:
        p = store.get_patient(s, code)
        if withdraw:
            store.withdraw_consent(s, _actor(actor), p)
        else:
            if version is None:
                raise InputError("--version", None, "give the version of the statement the patient accepted")
            store.record_consent(s, _actor(actor), p, version)
    console.print(f"consent of {code} {'withdrawn' if withdraw else 'recorded'}")


@clinic_app.command("weight")
@guarded
def weight_command(code: str, kg: float, on: str = typer.Option(None, help="Date (default today)."), db: str = DB,
                   actor: str = ACTOR) -> None:
    """Record a body weight (kg)."""
    from ketaplan.course import store

    day = parse_when(on, "--on").date() if on else store.now().date()
    with _session(db) as s:
        store.add_weight(s, _actor(actor), store.get_patient(s, code), day, kg)
    console.print(f"weight of {code}: {kg:g} kg on {day}")


@clinic_app.command("plan-course")
@guarded
def plan_course_command(code: str, regimen: str, start: str = typer.Option(None, help="Planned start."),
                        force: bool = typer.Option(False, help="Plan doses refused as likely unit slips."),
                        db: str = DB, actor: str = ACTOR) -> None:
    """Plan a course in the regimen language, checked against the usual ranges."""
    from ketaplan.cli.simulate_cmd import print_findings
    from ketaplan.course import store

    when = parse_when(start, "--start") if start else None
    with _session(db) as s:
        course, findings = store.plan_course(s, _actor(actor), store.get_patient(s, code), regimen, when, force)
        number = course.number
    console.print(f"planned course {number} of {code}: {regimen}")
    print_findings(findings, [])


@clinic_app.command("record-infusion")
@guarded
def record_infusion_command(code: str, course: int, start: str = typer.Option(...), end: str = typer.Option(...),
                            rate: str = typer.Option(..., help="e.g. '20 mg/h'"), route: str = "iv",
                            note: str = typer.Option("", help="e.g. 'interrupted: line occlusion'"), db: str = DB,
                            actor: str = ACTOR) -> None:
    """Record an infusion segment given at a constant rate (a rate change or an interruption starts another)."""
    from ketaplan.course import store
    from ketaplan.regimen.events import DoseEvent, Regimen
    from ketaplan.regimen.safety import check_regimen
    from ketaplan.regimen.units import Kind, parse

    rate_mg_h = parse(rate, Kind.RATE, "--rate")
    begin, finish = parse_when(start, "--start"), parse_when(end, "--end")
    with _session(db) as s:
        p = store.get_patient(s, code)
        store.record_infusion(s, _actor(actor), p, store.get_course(p, course), begin, finish, rate_mg_h, route,
                              note)
        weight = store.latest_weight(p)
    console.print(f"recorded {rate_mg_h:g} mg/h from {start} to {end} (course {course} of {code})")
    hours = (finish - begin).total_seconds() / 3600
    if route == "iv" and rate_mg_h > 0 and hours > 0:  # what was given is recorded; unusual rates are pointed out
        given = Regimen((DoseEvent(0.0, rate_mg_h * hours, "iv", rate=rate_mg_h),))
        for f in check_regimen(given, weight, force=True):
            if f.severity != "info":
                console.print(f"WARNING {f.message} ({f.source})", highlight=False)


@clinic_app.command("add-level")
@guarded
def add_level_command(code: str, at: str = typer.Option(...), analyte: str = typer.Option("ketamine"),
                      value: str = typer.Option(None, help="e.g. '150 ng/mL'"),
                      blq: bool = typer.Option(False, help="Below the limit of quantification."),
                      lloq: str = typer.Option(None, help="The limit, e.g. '5 ng/mL'"), db: str = DB,
                      actor: str = ACTOR) -> None:
    """Record a measured drug level."""
    from ketaplan.course import store
    from ketaplan.regimen.units import parse_level

    if blq and value:
        raise InputError("--value", value, "a level below the limit of quantification (--blq) has no value; give the "
                         "limit with --lloq")
    v = parse_level(value, "--value") if value else None
    lq = parse_level(lloq, "--lloq") if lloq else None
    with _session(db) as s:
        store.add_level(s, _actor(actor), store.get_patient(s, code), parse_when(at, "--at"), analyte, v, blq, lq)
    console.print(f"recorded {analyte} level of {code}")


@clinic_app.command("import-diary")
@guarded
def import_diary_command(code: str, csv: Path, db: str = DB, actor: str = ACTOR) -> None:
    """Import a pain diary (CSV with columns date [, time], nrs); all rows or none."""
    import pandas as pd

    from ketaplan.course import store

    if not csv.is_file():
        raise InputError("diary", str(csv), "the file does not exist")
    from ketaplan.limits import TABLE_FILE_BYTES

    TABLE_FILE_BYTES.check("diary", csv.stat().st_size, "import it in parts")
    try:
        frame = pd.read_csv(csv, dtype=str, keep_default_na=False)
    except Exception as exc:
        raise InputError("diary", str(csv), f"could not be read as CSV ({exc})") from None
    with _session(db) as s:
        n = store.import_diary(s, _actor(actor), store.get_patient(s, code), frame)
    console.print(f"imported {n} diary entries for {code}")


@clinic_app.command("add-lab")
@guarded
def add_lab_command(code: str, at: str = typer.Option(...), test: str = typer.Option(..., help="ALT, AST, GGT, ..."),
                    value: float = typer.Option(..., help="U/L"),
                    uln: float = typer.Option(..., help="Upper limit of normal, U/L"), db: str = DB,
                    actor: str = ACTOR) -> None:
    """Record a liver test."""
    from ketaplan.course import store

    with _session(db) as s:
        store.add_lab(s, _actor(actor), store.get_patient(s, code), parse_when(at, "--at"), test, value, uln)
    console.print(f"recorded {test} of {code}")


@clinic_app.command("side-effect")
@guarded
def side_effect_command(code: str, at: str = typer.Option(...), kind: str = typer.Option(...),
                        grade: int = typer.Option(..., help="CTCAE 1-5"), db: str = DB, actor: str = ACTOR) -> None:
    """Record a side effect with its grade."""
    from ketaplan.course import store

    with _session(db) as s:
        store.add_side_effect(s, _actor(actor), store.get_patient(s, code), parse_when(at, "--at"), kind, grade)
    console.print(f"recorded side effect of {code}")


@clinic_app.command("note")
@guarded
def note_command(code: str, text: str, db: str = DB, actor: str = ACTOR) -> None:
    """Add a free-text note."""
    from ketaplan.course import store

    with _session(db) as s:
        store.add_note(s, _actor(actor), store.get_patient(s, code), text)
    console.print(f"note added to {code}")


@clinic_app.command("show")
@guarded
def show_command(code: str, db: str = DB,
                 model: str = typer.Option(None, help="Forecast with this model instead of the one in use: "
                                                      "'published' or a learned version number (to compare).")
                 ) -> None:
    """A patient's course over the years, the individualized forecast and the next-course date."""
    from sqlalchemy import select

    from ketaplan.course import store
    from ketaplan.course.alerts import patient_alerts
    from ketaplan.course.forecast import cached_forecast, compute_forecast
    from ketaplan.course.schema import PainEntry

    with _session(db) as s:
        p = store.get_patient(s, code)
        fc = cached_forecast(s, p) if model is None else compute_forecast(s, p, choice=_model_choice(model))
        alerts = patient_alerts(s, p, fc, store.now())
        entries = s.scalars(select(PainEntry).where(PainEntry.patient_id == p.id, PainEntry.voided_at.is_(None))).all()
        console.print(f"[bold]{p.code}[/]: born {p.birth_year}, {p.sex}, {p.diagnosis}; {store.latest_weight(p):g} kg; "
                      f"{p.drug}; baseline pain {p.baseline_pain if p.baseline_pain is not None else '-'}",
                      highlight=False)
        rows = []
        for c in p.courses:
            given = "\n".join(f"{i.start:%Y-%m-%d %H:%M}-{i.end:%m-%d %H:%M} {i.rate_mg_h:g} mg/h"
                               + (" (voided)" if i.voided_at else "") for i in c.infusions)
            mg = sum(i.rate_mg_h * (i.end - i.start).total_seconds() / 3600 for i in store.active(c.infusions))
            rows.append([str(c.number), c.status, f"{mg:.0f}", c.planned_regimen, given or "-"])
        print_table("Courses", [Column("#"), Column("status", "left"), Column("mg\ngiven"),
                                Column("planned", "left", text=True), Column("given", "left", text=True)], rows)
        console.print(f"{len(entries)} pain diary entries", highlight=False)
    print_forecast(fc)
    for a in alerts:
        console.print(f"ALERT ({a.severity}) {a.message}", highlight=False)


def _model_choice(text: str) -> int | str:
    value = text.strip().lower()
    if value == "published":
        return value
    try:
        return int(value)
    except ValueError:
        raise InputError("--model", text, "'published' or a learned version number") from None


def print_forecast(fc: dict) -> None:
    if fc.get("status") != "ok":
        console.print(f"forecast: {fc.get('status')}")
        return
    lo, mid, hi = (d[:10] if d else "beyond the horizon" for d in fc["next_due"])
    days = fc["relief_days"]
    def d(x) -> str:
        return "beyond the horizon" if x is None or not math.isfinite(x) else f"{x:.0f}"

    console.print(f"Relief after the last course: median {d(days[1])} days (90 %: {d(days[0])} to {d(days[2])}); next "
                  f"course due [bold]{mid}[/] (90 %: {lo} to {hi}); model: {fc.get('model', 'published')}",
                  highlight=False)
    if fc.get("p_responder") is not None:
        console.print(f"Probability of response (diary): {fc['p_responder']:.0%}", highlight=False)
    for w in fc.get("warnings", []):
        console.print(f"note: {w}", highlight=False)


@clinic_app.command("list")
@guarded
def list_command(db: str = DB) -> None:
    """All patients with their alerts."""
    from sqlalchemy import select

    from ketaplan.course import store
    from ketaplan.course.alerts import patient_alerts
    from ketaplan.course.forecast import cached_forecast
    from ketaplan.course.schema import Patient

    rows = []
    with _session(db) as s:
        for p in s.scalars(select(Patient).order_by(Patient.code)).all():
            fc = cached_forecast(s, p)
            due = fc.get("next_due", [None, None, None])[1] if fc.get("status") == "ok" else None
            alerts = patient_alerts(s, p, fc, store.now())
            rows.append([p.code, due[:10] if due else "-", p.diagnosis, "; ".join(a.message for a in alerts) or "-"])
    print_table("Patients", [Column("code", "left"), Column("next course\ndue", "left"),
                             Column("diagnosis", "left", text=True), Column("alerts", "left", text=True)], rows)


@clinic_app.command("export")
@guarded
def export_command(code: str, out: Path = typer.Option(..., help="A .json file, or a folder for CSV files."),
                   db: str = DB, actor: str = ACTOR) -> None:
    """Export everything held on a patient (JSON, or one CSV per table)."""
    from ketaplan.course import store

    with _session(db) as s:
        record = store.export_patient(s, _actor(actor), store.get_patient(s, code))
    if out.suffix.lower() == ".json":
        write_atomically(out, lambda p: p.write_text(json.dumps(record, indent=2), encoding="utf-8"))
    else:
        out.mkdir(parents=True, exist_ok=True)
        for name, frame in store.export_tables(record).items():
            write_atomically(out / f"{name}.csv", lambda p, f=frame: f.to_csv(p, index=False))
    console.print(f"exported {code} to {out}")


@clinic_app.command("erase")
@guarded
def erase_command(code: str, yes: bool = typer.Option(False, "--yes", help="Confirm the erasure."), db: str = DB,
                  actor: str = ACTOR) -> None:
    """Erase a patient (right to erasure); the audit keeps only a random reference, no personal data."""
    from ketaplan.course import store

    if not yes:
        raise InputError("--yes", "missing", "erasure cannot be undone; confirm with --yes")
    with _session(db) as s:
        ref = store.erase_patient(s, _actor(actor), store.get_patient(s, code))
    console.print(f"erased; audit reference {ref}")


@clinic_app.command("backup")
@guarded
def backup_command(out: Path = typer.Option(..., help="Backup file (.json.gz)."), db: str = DB) -> None:
    """A consistent backup of the whole database."""
    from ketaplan.course.backup import backup

    if not out.name.endswith(".json.gz"):
        raise InputError("--out", str(out), "the backup file must end in .json.gz")
    counts = write_backup(db, out, backup)
    console.print(f"backed up {sum(counts.values())} rows to {out}")


def write_backup(db, out: Path, backup) -> dict:
    result = {}

    def write(path: Path) -> None:
        result.update(backup(_engine(db), path))

    write_atomically(out, write)
    return result


@clinic_app.command("restore")
@guarded
def restore_command(backup_file: Path, db: str = DB) -> None:
    """Restore a backup into a new, initialised database (`ketaplan clinic init` first)."""
    from ketaplan.course.backup import restore

    counts = restore(_engine(db), backup_file)
    console.print(f"restored {sum(counts.values())} rows")


@clinic_app.command("purge-requests")
@guarded
def purge_requests_command(older_than: int = typer.Option(..., help="Delete appointment requests older than this "
                                                                    "many days."), db: str = DB,
                           actor: str = ACTOR) -> None:
    """Delete old appointment requests (their contact details are kept no longer than needed)."""
    from ketaplan.course import store

    with _session(db) as s:
        n = store.purge_requests(s, _actor(actor), older_than)
    console.print(f"deleted {n} appointment requests")


@clinic_app.command("disable-user")
@guarded
def disable_user_command(username: str, admin: str = typer.Option(..., help="The admin who disables the account."),
                         db: str = DB) -> None:
    """Disable a user (staff who left): no more logins; their sessions end."""
    from sqlalchemy import select

    from ketaplan.course.schema import User
    from ketaplan.course.users import disable_user

    with _session(db) as s:
        actor = s.scalar(select(User).where(User.username == admin))
        if actor is None:
            raise InputError("--admin", admin, "no such user")
        disable_user(s, actor, username)
    console.print(f"disabled {username}")

