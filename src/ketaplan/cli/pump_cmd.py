"""``ketaplan pump``: pump rate, container changes with clock times, drug and volume per day and course."""

from __future__ import annotations

import math

import typer

from ketaplan.cli.common import DISCLAIMER, console, echo_json, guarded, with_start_option
from ketaplan.cli.tables import Column, print_table
from ketaplan.errors import InputError

MAX_ROWS = 60


@guarded
def pump_command(
    regimen: str = typer.Argument(..., help="Regimen text or YAML file (its IV infusions are planned)."),
    concentration: str = typer.Option(..., help="Drug concentration in the syringe or bag, e.g. '1 mg/mL'."),
    syringe: str = typer.Option(None, help="Syringe volume, e.g. '50 mL' (default when no --bag)."),
    bag: str = typer.Option(None, help="Bag volume, e.g. '500 mL'."),
    pump_increment: str = typer.Option("0.1 mL/h", help="Smallest rate step of the pump."),
    max_hang: str = typer.Option("24 h", help="Longest time one container may hang (local policy)."),
    weight: float = typer.Option(None, help="Body weight (kg), needed for per-kg regimens."),
    start: str = typer.Option(None, help="Start date and time for clock times, e.g. '2026-12-01 09:00'."),
    model: str = typer.Option(None, help="Model for the levels the rounded rates give (default by drug form)."),
    force: bool = typer.Option(False, help="Plan doses that are refused as likely unit slips."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output with every container change."),
) -> None:
    """Pump settings for the IV infusions of a regimen, rounded to the pump increment."""
    from ketaplan.planning.pump import pump_plan
    from ketaplan.planning.pump_levels import pump_levels
    from ketaplan.regimen.text import load_regimen
    from ketaplan.regimen.units import Kind, parse

    if syringe is not None and bag is not None:
        raise InputError("--syringe/--bag", f"{syringe} and {bag}", "give a syringe or a bag, not both")
    conc = parse(concentration, Kind.MASS_CONCENTRATION, "--concentration") / 1e6  # ng/mL -> mg/mL
    container, volume_text = ("bag", bag) if bag is not None else ("syringe", syringe or "50 mL")
    volume = parse(volume_text, Kind.VOLUME, f"--{container}")
    increment = parse(pump_increment, Kind.VOLUME_RATE, "--pump-increment")
    hang = parse(max_hang, Kind.DURATION, "--max-hang")
    reg = with_start_option(load_regimen(regimen), start)
    if reg.needs_weight and weight is None:
        raise InputError("--weight", None, "this regimen is dosed per kg; give the patient's body weight")
    plan = pump_plan(reg, weight, conc, container, volume, increment, hang)
    levels, findings = pump_levels(reg, plan, weight, model, force)
    if as_json:
        echo_json({**_as_dict(plan, levels), "findings": [f.as_dict() for f in findings]})
        return
    _print(plan, reg, levels)
    from ketaplan.cli.simulate_cmd import print_findings

    print_findings(findings, [])


def _as_dict(plan, levels) -> dict:
    return {
        "concentration_mg_per_ml": plan.concentration_mg_ml, "container": plan.container,
        "container_ml": plan.container_ml, "increment_ml_per_h": plan.increment_ml_h,
        "segments": [s.__dict__ for s in plan.segments], "boluses": plan.boluses,
        "container_changes": [c.__dict__ for c in plan.changes],
        "per_day": [d.__dict__ for d in plan.per_day], "per_course": [c.__dict__ for c in plan.per_course],
        "levels": levels, "notes": plan.notes, "disclaimer": DISCLAIMER,
    }


def _print(plan, reg, levels) -> None:
    from ketaplan.planning.pump import clock

    console.print(f"[bold]Pump plan[/bold] for {reg.label}: {plan.concentration_mg_ml:g} mg/mL, "
                  f"{plan.container} {plan.container_ml:g} mL, increment {plan.increment_ml_h:g} mL/h", highlight=False)
    segments = plan.segments[:MAX_ROWS]
    per_kg = any(s.per_kg for s in segments)  # the weight-based column only for weight-based prescriptions
    rates = [[str(s.course), clock(plan.start, s.start_h), clock(plan.start, s.end_h), f"{s.rate_mg_h:.4g}",
              f"{s.rate_ml_h:.4g}", f"{s.rate_ml_h_rounded:g}", f"{s.delivered_mg_h:.4g}",
              f"{plan.container_ml / s.rate_ml_h_rounded:.3g} h"] + ([s.per_kg or "-"] if per_kg else [])
             for s in segments]
    print_table("Rates", RATE_COLUMNS[:len(RATE_COLUMNS) if per_kg else -1], rates, key=2)
    for b in plan.boluses:
        console.print(f"bolus course {b['course']} at {b['clock']}: {b['dose_mg']:g} mg = {b['volume_ml']:.3g} mL",
                      highlight=False)
    changes = plan.changes if len(plan.changes) <= MAX_ROWS else [c for c in plan.changes if c.course == 1]
    print_table(f"{plan.container.capitalize()} changes"
                + ("" if changes is plan.changes else " (course 1; --json lists every course)"),
                [Column("course"), Column("no."), Column("hang at"), Column("volume\nmL"), Column("drug\nmg")],
                [[str(c.course), str(c.number), c.clock, f"{c.volume_ml:g}", f"{c.drug_mg:g}"] for c in changes])
    print_table("Per day", [Column("day", "left"), Column("drug\nmg"), Column("volume\nmL")],
                [[d.day, f"{d.drug_mg:.1f}", f"{d.volume_ml:.1f}"] for d in plan.per_day[:MAX_ROWS]])
    for row in plan.per_course:
        console.print(f"course {row.course}: {row.drug_mg:.1f} mg in {row.volume_ml:.1f} mL, "
                      f"{row.containers} {plan.container}{'s' if row.containers != 1 else ''}", highlight=False)
    if math.isfinite(levels["planned_css"]):
        change = 100 * (levels["delivered_css"] / levels["planned_css"] - 1) if levels["planned_css"] else 0.0
        console.print(f"Level at steady state ({levels['analyte']}): prescribed {levels['planned_css']:.1f} ng/mL, "
                      f"with the rounded rates {levels['delivered_css']:.1f} ng/mL ({_percent_change(change)})"
                      + (" - for 70 kg, as no weight was given" if levels["weight_assumed"] else ""), highlight=False)
    for n in plan.notes:
        console.print(f"note: {n}", highlight=False)
    console.print(DISCLAIMER)


RATE_COLUMNS = [Column("course"), Column("from"), Column("to"), Column("prescribed\nmg/h"), Column("exact\nmL/h"),
                Column("pump\nmL/h"), Column("delivered\nmg/h"), Column("lasts per\ncontainer"),
                Column("weight-based", "left", text=True)]


def _percent_change(change: float) -> str:
    """'+0.25 %'; a change that rounds to zero is '0.00 %', never '-0.00 %'."""
    shown = round(change, 2) + 0.0  # + 0.0 turns -0.0 into 0.0
    return f"{shown:+.2f} %" if shown else "0.00 %"
