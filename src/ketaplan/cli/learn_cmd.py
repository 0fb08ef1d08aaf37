"""``ketaplan clinic learn`` and ``ketaplan clinic models``: the clinic's own relief model and its versions."""

from __future__ import annotations

import time

import typer

from ketaplan.cli.clinic_session import actor_name, clinic_session
from ketaplan.cli.common import console, err_console, guarded
from ketaplan.cli.tables import Column, print_table

models_app = typer.Typer(no_args_is_help=True, help="Relief models learned from the record: list, show, accept, "
                                                    "reject, and choose the one in use.")
DB = typer.Option(None, "--db", help="Database URL or SQLite file (default $KETAPLAN_DB or ketaplan-clinic.db).")
ADMIN = typer.Option(..., "--admin", help="The admin who decides (goes to the audit trail).")


def _session(db):
    return clinic_session(db)


def number(value: float | None) -> str:
    """A parameter value with three significant digits (no float noise)."""
    if value is None:
        return "-"
    return f"{value:.3g}"


def interval(pair) -> str:
    return "-" if not pair else f"{number(pair[0])}-{number(pair[1])}"


def learn_command(clinic: str = typer.Option("the clinic", help="The clinic's name, kept with the version."),
                  prior_weight: float = typer.Option(0.25, help="Weight of the published values as priors: 1 "
                                                                "their stated precision, 0 the clinic's data "
                                                                "alone; 0.25 by default (see README)."),
                  folds: int = typer.Option(5, help="Folds of the held-out check of next-course timing (0: none)."),
                  seed: int = typer.Option(1, help="Seed of the held-out split and the draws."),
                  db: str = DB, actor: str = typer.Option(None, "--as", help="Who runs it (audit trail).")) -> None:
    """Learn the relief model from the clinic's own patients, with the published values as priors.

    The result is saved as a proposed model version; forecasts keep using the model in use until an admin
    accepts it (ketaplan clinic models accept N --admin NAME)."""
    from ketaplan.course.learn import LearnProgress, learn_relief_model

    started = time.perf_counter()
    with err_console.status("reading the record") as status, _session(db) as s:
        def stage(text: str) -> None:
            status.update(f"{text} ({time.perf_counter() - started:.0f} s)")

        def iteration(i: int, ofv: float) -> None:
            status.update(f"learning: iteration {i}, objective {ofv:.1f} ({time.perf_counter() - started:.0f} s)")

        v = learn_relief_model(s, actor_name(actor), clinic, prior_weight, folds, seed, LearnProgress(stage, iteration))
        version_id = v.id
    console.print(f"Saved as model version {version_id} (proposed) in {time.perf_counter() - started:.0f} s. "
                  f"Forecasts use it after an admin accepts it: ketaplan clinic models accept {version_id} "
                  "--admin NAME", highlight=False)
    show(version_id, db)


def show(version_id: int, db) -> None:
    """Print one version: published and clinic values side by side, variances, objective, timing check."""
    from ketaplan.course.model_versions import get_version, result_of

    with _session(db) as s:
        v = get_version(s, version_id)
        r = result_of(v)
        head = (f"Model version {v.id} ({v.status}{', in use' if v.in_use else ''}): {v.clinic}, {v.n_patients} "
                f"patients, {v.created_at:%Y-%m-%d}, prior {v.prior} x {v.prior_weight:g}, ketaplan "
                f"{v.ketaplan_version}")
    print_learning(head, r, "clinic")


def print_learning(head: str, r: dict, who: str) -> None:
    """A learning result: published and learned (``who``: 'clinic', 'dataset') values side by side."""
    console.print(head, highlight=False)
    rows = [[row["name"], number(row["published"]), interval(row.get("prior_90")), number(row["learned"]),
             interval(row.get("learned_90")),
             "-" if "informed" not in row else ("yes" if row["informed"] else "little: prior dominates")]
            for row in r["typical"]]
    print_table("Typical values", [Column("parameter", "left"), Column("published"), Column("prior\n90 %"),
                                   Column(who), Column(f"{who}\n90 %"), Column("informed by\nthe data", "left")],
                rows)
    for row in r["typical"]:
        c = row.get("prior_data_conflict")
        if c and c["conflict"]:
            outcome = ("so it is learned from the data alone (test-then-pool)" if c.get("released") else
                       f"the {who} value {number(row['learned'])} is pulled towards the published one")
            console.print(f"prior-data conflict: {row['name']}: the {who}'s data alone put it at "
                          f"{number(c['data_alone'])}, {abs(c['z']):.1f} SD from the published "
                          f"{number(row['published'])} (p < 0.01); {outcome}.", highlight=False)
    rows = [[row["name"], number(row["published"]), number(row["learned"]), interval(row.get("learned_90")),
             "-" if row.get("shrinkage_percent") is None else f"{row['shrinkage_percent']:.0f} %"]
            for row in r["variances"]]
    print_table("Between-patient variances (of the log value)",
                [Column("parameter", "left"), Column("published"), Column(who), Column(f"{who}\n90 %"),
                 Column("shrinkage")], rows)
    o = r["objective"]
    console.print(f"Objective (-2 log L): published {o['published']:.1f}, {who} {o['learned']:.1f} (change "
                  f"{o['change']:.1f}); prior penalty {o['prior_penalty']:.1f}.", highlight=False)
    if r.get("covariance_note"):
        console.print(f"note: {r['covariance_note']}", highlight=False)
    if not r.get("converged", True):
        console.print(f"note: the search did not converge ({r.get('message')})", highlight=False)
    for name, why in r.get("not_learned", {}).items():
        console.print(f"not learned: {name}: {why}", highlight=False)
    for why, count in (r.get("left_out") or {}).items():
        console.print(f"left out: {count} patients ({why})", highlight=False)
    t = r.get("timing")
    if t:
        rows = [[name, str(t[key]["gaps"]), f"{t[key]['median_abs_error_weeks']:.1f}",
                 f"{100 * t[key]['coverage_90']:.0f} %"] for name, key in (("published", "published"),
                                                                          (who, "learned"))]
        print_table(f"Next-course timing on held-out patients ({t['folds']}-fold cross-validation)",
                    [Column("model", "left"), Column("gaps"), Column("median error\n(weeks)"),
                     Column("inside the\n90 % interval")], rows)
        verdict = "predicts better" if t["learned_better"] else "does not predict better"
        console.print(f"The {who} model {verdict} than the published one on patients it did not learn from.",
                      highlight=False)
    else:
        console.print("No held-out check (too few patients or no repeated course, or --folds 0).", highlight=False)


@models_app.command("list")
@guarded
def list_command(db: str = DB) -> None:
    """Every learned version with its status."""
    from ketaplan.course.model_versions import result_of, versions

    with _session(db) as s:
        rows = []
        for v in versions(s):
            t = result_of(v).get("timing")
            better = "-" if not t else ("better" if t["learned_better"] else "not better")
            rows.append([str(v.id), f"{v.created_at:%Y-%m-%d}", v.status + (", in use" if v.in_use else ""),
                         str(v.n_patients), f"{v.prior_weight:g}", better])
    if not rows:
        console.print("No learned model yet: the published model is in use (ketaplan clinic learn).")
        return
    print_table("Model versions", [Column("#"), Column("learned", "left"), Column("status", "left"),
                                   Column("patients"), Column("prior\nweight"), Column("held-out\ntiming", "left")],
                rows)


@models_app.command("show")
@guarded
def show_command(version: int, db: str = DB) -> None:
    """One version in full: published and clinic values side by side."""
    show(version, db)


@models_app.command("accept")
@guarded
def accept_command(version: int, admin: str = ADMIN, db: str = DB) -> None:
    """Accept a version: forecasts use it from now on (audited)."""
    from ketaplan.course.model_versions import accept_version

    with _session(db) as s:
        accept_version(s, admin, version)
    console.print(f"Model version {version} accepted and in use; forecasts are recomputed with it.")


@models_app.command("reject")
@guarded
def reject_command(version: int, admin: str = ADMIN, db: str = DB) -> None:
    """Reject a proposed version (kept, never used)."""
    from ketaplan.course.model_versions import reject_version

    with _session(db) as s:
        reject_version(s, admin, version)
    console.print(f"Model version {version} rejected.")


@models_app.command("use")
@guarded
def use_command(version: str = typer.Argument(..., help="An accepted version number, or 'published'."),
                admin: str = ADMIN, db: str = DB) -> None:
    """Choose the model forecasts use: an accepted version or the published model."""
    from ketaplan.course.model_versions import PUBLISHED, use_version
    from ketaplan.errors import InputError

    choice: int | str = PUBLISHED if version.strip().lower() == PUBLISHED else _version_number(version, InputError)
    with _session(db) as s:
        label = use_version(s, admin, choice)
    console.print(f"Forecasts now use the {label} model.")


def _version_number(text: str, error) -> int:
    try:
        return int(text)
    except ValueError:
        raise error("version", text, "a version number or 'published'") from None
