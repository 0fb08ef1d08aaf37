"""``ketaplan population`` and ``ketaplan search``: virtual populations and regimen search."""

from __future__ import annotations

import math
from pathlib import Path

import typer

from ketaplan.cli.common import (
    DISCLAIMER,
    check_output,
    console,
    echo_json,
    err_console,
    guarded,
    parse_settings,
    progress,
    write_atomically,
)
from ketaplan.cli.simulate_cmd import print_findings
from ketaplan.cli.tables import Column, print_table
from ketaplan.errors import InputError, Verbatim


def parse_percentiles(text: str) -> tuple[float, ...]:
    """'5,50,95' -> (5.0, 50.0, 95.0); one sentence on anything else."""
    allowed = "comma-separated numbers between 0 and 100, e.g. 5,25,50,75,95"
    try:
        values = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise InputError("--percentiles", text, allowed) from None
    if not values or any(not 0 <= v <= 100 for v in values):
        raise InputError("--percentiles", text, allowed)
    return tuple(sorted(set(values)))


@guarded
def population_command(
    regimen: str = typer.Argument(..., help="Regimen text ('20 mg/h IV for 5 d every 11 weeks x 4') or YAML file."),
    n: int = typer.Option(10_000, "--n", help="Number of virtual patients."),
    seed: int = typer.Option(1, help="Random seed (same seed, same patients, whatever --workers or --chunk)."),
    covariates: Path = typer.Option(None, help="CSV of patients (weight; optional age, sex, height), cycled to --n."),
    workers: int = typer.Option(None, help="Run on a local Dask cluster with this many worker processes."),
    scheduler: str = typer.Option(None, help="Run on an existing Dask cluster, e.g. tcp://10.0.0.5:8786."),
    model: str = typer.Option(None, help="PK model id (id:variant) or YAML file; default by drug form."),
    percentiles: str = typer.Option("5,50,95", help="Percentiles of the bands, e.g. 5,25,50,75,95."),
    relief_threshold: float = typer.Option(0.3, help="Relief (fraction of baseline pain) that counts as relief."),
    window_fraction: float = typer.Option(0.8, help="Fraction of dosing time in the window that counts as target "
                                                    "attained."),
    until: str = typer.Option(None, help="Simulate until, e.g. '1 y' (default: 12 weeks after the last dose)."),
    set_: list[str] = typer.Option(None, "--set", help="Override a model parameter, e.g. --set F_TOPICAL=0.05."),
    sample_at: str = typer.Option(None, help="Simulate observed levels (with residual error) at these times, e.g. "
                                             "'1,24,120 h'; they go to --out."),
    effect_site: bool = typer.Option(False, help="Also give the percentile band of the effect site (slower)."),
    chunk: int | None = typer.Option(None, help="Virtual patients per chunk, one task each (default: about 16 "
                                     "per worker, 2,000 to 20,000; results do not change)."),
    force: bool = typer.Option(False, help="Simulate doses that are refused as likely unit slips."),
    out: Path = typer.Option(None, help="Per-patient summary table (.parquet or .csv), one row per virtual patient."),
    bands: Path = typer.Option(None, help="Percentile bands over time (.csv or .parquet, long format)."),
    report: Path = typer.Option(None, help="Self-contained HTML report."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    yes: bool = typer.Option(False, "--yes", help="Run a large population (its estimated time is printed first)."),
) -> None:
    """Simulate a virtual population: target attainment, psychotomimetic risk, relief, percentile bands."""
    from ketaplan.planning.regimen_search import typical_weight
    from ketaplan.population.api import simulate_population
    from ketaplan.population.covariates import read_covariates
    from ketaplan.population.run import chunk_size
    from ketaplan.population.search import split_values
    from ketaplan.regimen.safety import check_plan
    from ketaplan.regimen.text import load_regimen
    from ketaplan.regimen.units import Kind, parse

    check_output(out, "--out", (".parquet", ".csv"))
    check_output(bands, "--bands", (".parquet", ".csv"))
    check_output(report, "--report", (".html",))
    qs = parse_percentiles(percentiles)
    reg = load_regimen(regimen)
    table = read_covariates(covariates) if covariates is not None else None
    if table is not None and table.empty:
        raise InputError("--covariates", str(covariates), "the file has a header but no patients; give one row per "
                         "patient")
    weight = float(table["weight"].median()) if table is not None else typical_weight()
    findings = check_plan(reg, weight, force)
    horizon = parse(until, Kind.DURATION, "--until") if until else None
    samples = [parse(x, Kind.DURATION, "--sample-at") for x in split_values(sample_at, "--sample-at")] \
        if sample_at else []
    n_chunks = -(-n // max(chunk_size(n, workers, chunk, scheduler), 1))
    with progress(n_chunks, f"simulating {n:,} virtual patients") as step:
        result = simulate_population(reg, n, seed=seed, model=model, covariates=table, percentiles=qs,
                                     relief_threshold=relief_threshold, window_fraction=window_fraction, until=horizon,
                                     overrides=parse_settings(set_), sample_times=samples, effect_site=effect_site,
                                     workers=workers,
                                     scheduler=scheduler, chunk=chunk,
                                     on_chunk=lambda done, total: step(f"chunk {done}/{total}"),
                                     before_run=lambda pspec: confirm_size(pspec, workers, yes))
    if out is not None:
        write_table(result.subjects, out)
    if bands is not None:
        write_table(long_bands(result), bands)
    source = f"covariates from {covariates}" if covariates is not None else "built-in adult neuropathic-pain population"
    facts = [("Regimen", reg.label), ("Virtual patients", f"{n:,} ({source}), seed {seed}"),
             ("Model", f"{result.pspec.spec.id}: {result.pspec.spec.title}"),
             ("Dose checks", f"at the typical weight of {weight:.0f} kg")]
    if report is not None:
        from ketaplan.report.population_report import render_population_report

        write_atomically(report, lambda p: render_population_report(result, p, facts, findings))
    if as_json:
        echo_json({"regimen": reg.label, "summary": result.summary, "model": result.pspec.spec.id,
                   "findings": [f.as_dict() for f in findings], "disclaimer": DISCLAIMER})
        return
    print_population(result, reg.label)
    print_findings(findings, [f"dose checks at the typical weight of {weight:.0f} kg"])
    console.print(f"Model: {result.pspec.spec.id} - {result.pspec.spec.title}", highlight=False)
    console.print(DISCLAIMER)
    for path in (out, bands, report):
        if path is not None:
            console.print(f"wrote {path}")


def confirm_size(pspec, workers: int | None, yes: bool) -> None:
    """Say how long a large run will take here (timed on a pilot chunk) and refuse a very large one without --yes."""
    from ketaplan.population.run import estimate_seconds
    from ketaplan.population.work import Work

    confirm_work(Work(pspec.n, len(pspec.times)), lambda: estimate_seconds(pspec, workers), yes)


def confirm_work(work, estimate_seconds, yes: bool) -> None:
    """Print the estimated time of large ``work`` (``estimate_seconds()`` times a pilot) and refuse a very large
    one without --yes, before anything else is simulated."""
    from ketaplan.limits import PATIENT_POINTS_WITHOUT_YES
    from ketaplan.population.work import ESTIMATE_ABOVE, duration_text, needs_confirmation

    if work.points <= ESTIMATE_ABOVE:
        return
    estimate = duration_text(estimate_seconds())
    if needs_confirmation(work) and not yes:
        raise InputError("--n", Verbatim(f"{work.text()} ({estimate} here)"),
                         f"runs above {PATIENT_POINTS_WITHOUT_YES.value:,.0f} patient-time points start only with "
                         "--yes; add --yes to run it, or give fewer patients")
    err_console.print(f"{work.text()}: {estimate} here.", highlight=False)


def write_table(frame, path: Path) -> None:
    if path.suffix.lower() == ".parquet":
        write_atomically(path, lambda p: frame.to_parquet(p, index=False))
    else:
        write_atomically(path, lambda p: frame.to_csv(p, index=False))


def long_bands(result):
    """All percentile bands in one long table: output, time_h, and one column per percentile."""
    import pandas as pd

    return pd.concat([b.assign(output=name).rename(columns={"time": "time_h"}) for name, b in result.bands.items()],
                     ignore_index=True)[["output", "time_h", *[f"p{q:g}" for q in result.percentiles]]]


def print_population(result, label: str) -> None:
    from ketaplan.report.population_tables import headline_facts, subject_quantile_rows

    print_table(f"{label} - {result.summary['n']:,} virtual patients",
                [Column("", "left"), Column("", "left", text=True)], [list(f) for f in headline_facts(result)],
                show_header=False)
    columns, rows = subject_quantile_rows(result)
    print_table("Spread across virtual patients (relief rows: responders)",
                [Column(columns[0], "left"), *(Column(c) for c in columns[1:])], rows)


@guarded
def search_command(
    rates: str = typer.Option("10,15,20,25,30 mg/h", help="Candidate infusion rates, e.g. '10,15,20 mg/h' or "
                                                          "'0.1,0.2,0.3 mg/kg/h'."),
    durations: str = typer.Option("3,5,7 d", help="Candidate infusion durations."),
    intervals: str = typer.Option("4,5,6,8,11 weeks", help="Candidate retreatment intervals (start to start)."),
    courses: int = typer.Option(4, help="Courses per candidate plan."),
    drug: str = typer.Option("racemic", help="racemic or s-ketamine."),
    model: str = typer.Option(None, help="PK model id (id:variant) or YAML file; default by drug form."),
    psychotomimetic_cap: float = typer.Option(0.10, help="Largest acceptable fraction of patients ever above the "
                                                         "psychotomimetic threshold."),
    maintained: float = typer.Option(0.25, help="Fraction of responders whose relief must stay above the threshold "
                                               "until the next course."),
    relief_threshold: float = typer.Option(0.3, help="Relief (fraction of baseline pain) that counts as relief."),
    window_fraction: float = typer.Option(0.8, help="Fraction of dosing time in the window that counts as target "
                                                    "attained."),
    n: int = typer.Option(2000, "--n", help="Virtual patients per candidate (the same patients for every candidate)."),
    seed: int = typer.Option(1, help="Random seed."),
    show: int = typer.Option(15, help="Rows of the trade-off table to print (all go to --out)."),
    out: Path = typer.Option(None, help="Full trade-off table (.csv or .parquet)."),
    report: Path = typer.Option(None, help="Self-contained HTML report."),
    allow_warnings: bool = typer.Option(False, help="Let candidates with dose warnings (e.g. liver window) be chosen."),
    as_json: bool = typer.Option(False, "--json", help="Print the table and the chosen regimen as JSON."),
    yes: bool = typer.Option(False, "--yes", help="Run a large search (its estimated time is printed first)."),
) -> None:
    """Find the IV rate, duration and interval with the best target attainment under a psychotomimetic cap."""
    from ketaplan.planning.regimen_search import search_regimens, typical_weight
    from ketaplan.regimen.safety import check_plan
    from ketaplan.regimen.text import load_regimen

    check_output(out, "--out", (".csv", ".parquet"))
    check_output(report, "--report", (".html",))
    weight = typical_weight()
    pairs = len(durations.split(",")) * len(intervals.split(","))
    with progress(pairs, "searching") as step:
        result = search_regimens(rates, durations, intervals, weight=weight, courses=courses, drug=drug, model=model,
                                 psychotomimetic_cap=psychotomimetic_cap, maintained_fraction=maintained,
                                 relief_threshold=relief_threshold, window_fraction=window_fraction, n=n, seed=seed,
                                 allow_warnings=allow_warnings,
                                 on_step=lambda done, total: step(f"duration x interval {done}/{total}"),
                                 before_run=lambda work, estimate: confirm_work(work, estimate, yes))
    findings = check_plan(load_regimen(result.chosen_text), weight, force=True) if result.chosen is not None else []
    if out is not None:
        write_table(result.table, out)
    facts = [("Candidates", f"{len(result.table)}: rates {rates}; durations {durations}; intervals {intervals}; "
                            f"{courses} courses"),
             ("Virtual patients", f"{n:,} per candidate (the same for all), seed {seed}"),
             ("Constraints", f"psychotomimetic risk <= {psychotomimetic_cap:.0%}; relief kept until the next course "
                             f"in >= {maintained:.0%} of responders (threshold {relief_threshold:.0%})")]
    if report is not None:
        from ketaplan.report.population_report import render_search_report
        from ketaplan.simulation.run import model_for

        spec = model_for(result.space.regimen(result.space.rates[0], result.space.durations_h[0],
                                              result.space.intervals_h[0]), model)
        write_atomically(report, lambda p: render_search_report(result, p, facts, spec))
    if as_json:
        echo_json({"chosen": result.chosen_text, "table": result.table.to_dict(orient="records"),
                   "findings": [f.as_dict() for f in findings], "disclaimer": DISCLAIMER})
        return
    print_tradeoffs(result, show)
    if result.chosen is None:
        console.print("[bold red]No candidate meets the constraints[/]: relax --psychotomimetic-cap or --maintained, "
                      "or widen the grid.")
    else:
        console.print(f"Chosen regimen: [bold]{result.chosen_text}[/]", highlight=False)
        print_findings(findings, [f"dose checks at the typical weight of {weight:.0f} kg"])
    console.print(DISCLAIMER)
    for path in (out, report):
        if path is not None:
            console.print(f"wrote {path}")
    if result.chosen is None:
        raise typer.Exit(code=1)


TRADEOFF_LEGEND = ("PTA: probability of target attainment ± Monte Carlo standard error; psych: fraction ever above "
                   "the psychotomimetic threshold; kept: responders whose relief lasts until the next course; "
                   "relief d: median days of relief after course 1 (responders); Cmax: median ng/mL; warn: dose "
                   "warnings (listed below); ok: meets every constraint.")


def print_tradeoffs(result, show: int) -> None:
    table = result.table
    warnings: list[str] = []
    rows = []
    for _, row in table.head(show).iterrows():
        codes = [c for c in row["dose_warnings"].split("; ") if c]
        warnings += [c for c in codes if c not in warnings]
        rows.append([f"{row['rate']:g}", f"{row['duration_d']:g}", f"{row['interval_weeks']:g}",
                     f"{100 * row['pta']:.1f}±{100 * row['pta_se']:.1f}", f"{row['psychotomimetic_risk']:.0%}",
                     _cell(row.get("relief_maintained")), _days(row.get("relief_days_median")),
                     f"{row['cmax_median_ng_ml']:.0f}", str(len(codes)) if codes else "",
                     "yes" if row["feasible"] else "no"])
    titles = (table["rate_unit"].iloc[0], "days", "every\nweeks", "PTA %", "psych", "kept", "relief d", "Cmax",
              "warn", "ok")
    print_table(f"Trade-offs: {len(table)} candidates, best first", [Column(t) for t in titles], rows, key=3,
                caption=TRADEOFF_LEGEND)
    if warnings:
        console.print("dose warnings: " + ", ".join(warnings) + " (see `ketaplan simulate` for the full text)",
                      style="dim", highlight=False)


def _cell(v) -> str:
    return "-" if v is None or not math.isfinite(v) else f"{v:.0%}"


def _days(v) -> str:
    if v is None or math.isnan(v):
        return "-"
    return "beyond" if math.isinf(v) else f"{v:.1f}"
