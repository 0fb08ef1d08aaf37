"""``ketaplan simulate`` (and the ``headline`` shortcut): levels, relief and next course, with checks."""

from __future__ import annotations

from pathlib import Path

import typer

from ketaplan.cli.common import (
    DISCLAIMER,
    check_output,
    console,
    echo_json,
    guarded,
    parse_settings,
    progress,
    with_start_option,
    write_atomically,
)
from ketaplan.cli.tables import Column, print_table
from ketaplan.errors import InputError

SEVERITY_STYLE = {"refused": "bold red", "warning": "yellow", "info": "cyan"}


def print_summary(frame, title: str) -> None:
    """The per-course table with its legend; split in stacked parts (course number repeated) when narrow."""
    from ketaplan.report.summary_table import COMPACT_LEGEND, summary_table

    titles, rows = summary_table(frame, compact=True)
    counts = {sev: sum(f.severity == sev for f in frame.findings) for sev in ("refused", "warning", "info")}
    checks = ", ".join(f"{n} {sev}" for sev, n in counts.items() if n) or "no findings"
    print_table(title, [Column(t) for t in titles], rows,
                caption=f"{COMPACT_LEGEND} Checks: {checks} (listed below).")


def print_findings(findings, notes) -> None:
    for f in findings:
        console.print(f"[{SEVERITY_STYLE[f.severity]}]{f.severity.upper()}[/] {f.message}", highlight=False)
        console.print(f"    source: {f.source}", style="dim", highlight=False)
    for n in notes:
        console.print(f"note: {n}", highlight=False)


def print_model(spec) -> None:
    console.print(f"Model: {spec.id} - {spec.title}", highlight=False)
    for c in spec.citations[:3]:
        console.print(f"  {c.text}", style="dim", highlight=False)
    if len(spec.citations) > 3:
        console.print(f"  ... and {len(spec.citations) - 3} more (see the report or `ketaplan models show`)",
                      style="dim")
    console.print(DISCLAIMER)


def write_timecourse(frame, out: Path) -> None:
    import pandas as pd

    plain = pd.DataFrame(frame)
    if out.suffix.lower() == ".parquet":
        write_atomically(out, lambda p: plain.to_parquet(p, index=False))
    else:
        write_atomically(out, lambda p: plain.to_csv(p, index=False))


@guarded
def headline(
    weight: float = typer.Option(80.0, help="Body weight (kg)."),
    age: float = typer.Option(59.0, help="Age (years)."),
    sex: str = typer.Option("male", help="male or female."),
    model: str = typer.Option("domino_racemic_3cmt_nk:kamp2020", help="Model id (id:variant) or YAML file."),
) -> None:
    """The headline case: 20 mg/h IV ketamine for 5 days; plasma levels at 1, 24, 120, 121 and 130 h."""
    from ketaplan.models.library import assemble
    from ketaplan.regimen.events import Regimen
    from ketaplan.simulation.patient import Patient
    from ketaplan.simulation.predict import predict

    spec = assemble(model)
    frame = predict(spec, Regimen.infusion("20 mg/h", duration="5 d"), Patient(weight, age, sex),
                    [1.0, 24.0, 120.0, 121.0, 130.0])
    names = list(spec.observables)
    rows = [[f"{t:g}", *(f"{frame[name].iloc[i]:.1f}" for name in names)] for i, t in enumerate(frame["time"])]
    print_table(f"20 mg/h IV for 5 days, {age:g}-year-old {sex}, {weight:g} kg",
                [Column("time\nh"), *(Column(f"{name}\nng/mL") for name in names)], rows)
    print_model(spec)


@guarded
def simulate_command(
    regimen: str = typer.Argument(..., help="Regimen text ('20 mg/h IV for 5 d every 11 weeks x 4') or YAML file."),
    weight: float = typer.Option(..., help="Body weight (kg)."),
    age: float = typer.Option(None, help="Age (years)."),
    sex: str = typer.Option(None, help="male or female."),
    height: float = typer.Option(None, help="Height (cm)."),
    model: str = typer.Option(None, help="PK model id (id:variant) or YAML file; default by drug form."),
    until: str = typer.Option(None, help="Simulate until, e.g. '3.5 y' (default: 12 weeks after the last dose)."),
    start: str = typer.Option(None, help="Start date and time, e.g. '2026-12-01 09:00'."),
    relief_threshold: float = typer.Option(0.3, help="Next course is due when predicted relief falls below this."),
    baseline_pain: float = typer.Option(None, help="Baseline pain NRS 0-10, for predicted pain scores."),
    set_: list[str] = typer.Option(None, "--set", help="Override a model parameter, e.g. --set F_TOPICAL=0.05."),
    force: bool = typer.Option(False, help="Plan doses that are refused as likely unit slips."),
    out: Path = typer.Option(None, help="Time course as .csv or .parquet."),
    plot: Path = typer.Option(None, help="Figure as .png or .svg."),
    report: Path = typer.Option(None, help="Self-contained HTML report."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary, findings and model as JSON."),
) -> None:
    """Simulate a regimen: per-course levels, exposure, relief, next course due, and safety checks."""
    from ketaplan.planning.plan import simulate
    from ketaplan.regimen.text import load_regimen
    from ketaplan.regimen.units import Kind, parse

    check_output(out, "--out", (".csv", ".parquet"))
    check_output(plot, "--plot", (".png", ".svg"))
    check_output(report, "--report", (".html",))
    reg = with_start_option(load_regimen(regimen), start)
    horizon = parse(until, Kind.DURATION, "--until") if until else None
    steps = 2 + sum(x is not None for x in (out, plot, report))
    with progress(steps, "simulating") as step:
        frame = simulate(reg, weight=weight, age=age, sex=sex, height=height, model=model, until=horizon,
                         relief_threshold=relief_threshold, baseline_pain=baseline_pain,
                         overrides=parse_settings(set_), force=force)
        step("summarising")
        if out is not None:
            write_timecourse(frame, out)
            step("writing the time course")
        if plot is not None:
            from ketaplan.report.figures import save, simulation_figure

            write_atomically(plot, lambda p: save(simulation_figure(frame), p))
            step("drawing")
        if report is not None:
            write_report(frame, report)
            step("writing the report")
    if as_json:
        echo_json(frame.to_json_dict())
        return
    print_summary(frame, f"{reg.label or 'regimen'} - {weight:g} kg")
    print_findings(frame.findings, frame.notes)
    print_model(frame.spec)
    for path in (out, plot, report):
        if path is not None:
            console.print(f"wrote {path}")


def write_report(frame, path: Path, title: str | None = None, callout: dict | None = None,
                 pump_concentration: float = 1.0) -> None:
    """The HTML report of a simulation, with a pump plan (1 mg/mL, 50 mL syringe) for IV infusions."""
    from ketaplan.planning.pump import pump_plan
    from ketaplan.report.html import pump_context, render_report

    run = frame.run
    facts = [("Regimen", run.regimen.label), ("Patient", _patient_text(run.patient)),
             ("Model", f"{frame.spec.id}: {frame.spec.title}"),
             ("Relief threshold", f"{frame.settings['relief_threshold']:.0%} of baseline pain")]
    pump = None
    if any(a.route == "iv" and a.end - a.start > 0.25 for c in run.courses for a in c.administrations):
        try:
            plan = pump_plan(run.regimen, run.patient.weight, pump_concentration)
            pump = pump_context(plan, f"Pump plan for {pump_concentration:g} mg/mL in 50 mL syringes (change with "
                                      "`ketaplan pump`).")
        except InputError:
            pump = None
    write_atomically(path, lambda p: render_report(frame, p, title or f"ketaplan - {run.regimen.label}", facts,
                                                   pump=pump, callout=callout))


def _patient_text(p) -> str:
    parts = [f"{p.weight:g} kg"]
    if p.age is not None:
        parts.append(f"{p.age:g} years")
    if p.sex:
        parts.append(p.sex)
    if p.height is not None:
        parts.append(f"{p.height:g} cm")
    return ", ".join(parts)
