"""``ketaplan fit``: this patient's parameters from their levels and pain diary, forecast and next course."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path

import typer

from ketaplan.cli.common import (
    DISCLAIMER,
    check_output,
    console,
    echo_json,
    guarded,
    parse_start,
    progress,
    write_atomically,
)
from ketaplan.cli.tables import Column, print_table
from ketaplan.errors import InputError
from ketaplan.limits import MCMC_STEPS


@guarded
def fit_command(
    data: Path = typer.Argument(..., help="NONMEM-style CSV: doses, DV with DVID (1 parent, 2 metabolite, 3 pain "
                                          "score), BLQ/LLOQ, WT/AGE/SEX/HT."),
    model: str = typer.Option(..., help="Library model id (id:variant), model YAML, or a PREDPP MODEL.yaml with "
                                        "omega and sigma."),
    out: Path = typer.Option(None, help="One row per ID: individual parameters, ETA1.., SD, OFV (.csv/.parquet)."),
    report: Path = typer.Option(None, help="Self-contained HTML report."),
    mcmc: bool = typer.Option(False, help="Also sample the full posterior by MCMC (emcee)."),
    mcmc_steps: int = typer.Option(2000, help="MCMC steps per walker."),
    relief_threshold: float = typer.Option(0.3, help="Next course due when relief falls below this (pain back above "
                                                     "baseline x (1 - threshold))."),
    target_level: str = typer.Option(None, help="Recommend the rate for this steady-state level, e.g. '150 ng/mL'."),
    target_relief: str = typer.Option(None, help="Recommend rate and duration for relief lasting e.g. '10 weeks'."),
    start: str = typer.Option(None, help="Date and time of TIME 0, e.g. '2026-01-05 09:00', to print dates."),
    seed: int = typer.Option(1, help="Seed of the posterior draws."),
    force: bool = typer.Option(False, help="Fit doses that are refused as likely unit slips (kept as warnings)."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
) -> None:
    """Bayesian estimates of each patient's parameters (MAP, 90 % intervals, shrinkage) and the forecast."""
    from ketaplan.individualize.api import fit_case, population_shrinkage
    from ketaplan.individualize.dataset import fit_cases
    from ketaplan.nonmem.dataset import read_dataset
    from ketaplan.planning.next_course import follow_up
    from ketaplan.regimen.units import Kind, parse

    check_output(out, "--out", (".csv", ".parquet"))
    check_output(report, "--report", (".html",))
    when = parse_start(start)
    level = parse(target_level, Kind.MASS_CONCENTRATION, "--target-level") if target_level else None
    relief_days = parse(target_relief, Kind.DURATION, "--target-relief") / 24.0 if target_relief else None
    MCMC_STEPS.check("--mcmc-steps", mcmc_steps, "a longer chain than this adds nothing a clinic can use")
    frame = read_dataset(data)
    cases = fit_cases(frame, model, force)
    if (level or relief_days) and any(c.model is None for c in cases):
        raise InputError("--target-level/--target-relief", "a PREDPP model", "recommendations need a library model")
    fits, followups, failed = [], [], []
    with progress(len(cases), "fitting") as step:
        for case in cases:
            f = fit_case(case, mcmc, mcmc_steps, seed)
            step(case.label)
            if f.failure is not None:
                failed.append(f)
                continue
            fits.append(f)
            followups.append(follow_up(f.estimate, case.model, relief_threshold, level, relief_days, seed=seed)
                             if case.model is not None else None)
    if not fits:
        first = failed[0]
        raise InputError(first.case.label, "its data", f"the fit failed: {first.failure}; no estimates or forecast "
                         "are given" + (f" (and {len(failed) - 1} more IDs failed)" if len(failed) > 1 else ""))
    if out is not None:
        import pandas as pd

        table = pd.DataFrame([f.row() for f in fits])
        write_atomically(out, (lambda p: table.to_parquet(p, index=False)) if out.suffix == ".parquet"
                         else (lambda p: table.to_csv(p, index=False)))
    shrink = population_shrinkage(fits)
    if report is not None:
        from ketaplan.report.fit_report import render_fit_report

        write_atomically(report, lambda p: render_fit_report(fits, followups, p, when, relief_threshold, shrink))
    if as_json:
        echo_json({"patients": [_json(f, fu, when) for f, fu in zip(fits, followups, strict=True)],
                   "failed": [{"id": f.case.id, "reason": f.failure} for f in failed],
                   "population_shrinkage": shrink, "disclaimer": DISCLAIMER})
        return
    for f, fu in zip(fits, followups, strict=True):
        print_fit(f, fu, when)
    for f in failed:
        console.print(f"[bold red]{f.case.label}: the fit failed[/]: {f.failure}; no estimates or forecast are "
                      "given for it.", highlight=False)
    if shrink:
        console.print("Eta shrinkage over the individuals: " + ", ".join(f"{k} {v:.0%}" for k, v in shrink.items()),
                      highlight=False)
    console.print(DISCLAIMER)
    for path in (out, report):
        if path is not None:
            console.print(f"wrote {path}")


def print_fit(f, fu, start: datetime | None) -> None:
    from ketaplan.simulation.summary import when_text

    est = f.estimate
    rows = [[r["parameter"], r["unit"], f"{r['population']:.4g}", f"{r['individual']:.4g}",
             f"{r['p5']:.4g} - {r['p95']:.4g}", f"{r['shrinkage']:.0%}"] for _, r in est.table().iterrows()]
    print_table(f"{f.case.label}: individual estimates (MAP) beside the population values",
                [Column("parameter", "left"), Column("unit", "left"), Column("population"), Column("individual"),
                 Column("90 % interval"), Column("shrinkage")], rows)
    obs = est.problem.observations
    console.print(f"{len(obs)} observations ({int(obs.is_score.sum())} pain scores, {int(obs.blq.sum())} below "
                  f"LLOQ); objective {est.objective:.2f}; {est.evaluations} model evaluations"
                  + (f"; MCMC acceptance {est.diagnostics['acceptance_fraction']:.2f}" if est.diagnostics else ""),
                  highlight=False)
    if f.p_responder is not None:
        console.print(f"Probability that this patient responds (pain diary): {f.p_responder:.0%}", highlight=False)
    for w in f.warnings:
        console.print(f"[yellow]WARNING[/] {w}", highlight=False)
    if fu is None:
        return
    nc = fu.next
    if nc is not None:
        lo, mid, hi = nc.relief_days
        console.print(f"Relief after the last course lasts {mid:.0f} days (90 % interval {lo:.0f}-"
                      f"{'beyond' if not math.isfinite(hi) else f'{hi:.0f}'}); next course due "
                      f"[bold]{when_text(nc.due_h[1], start)}[/] (90 %: {when_text(nc.due_h[0], start)} to "
                      f"{when_text(nc.due_h[2], start)}).", highlight=False)
    if fu.rate is not None:
        r = fu.rate
        console.print(f"For a steady-state level of {r.target_ng_ml:g} ng/mL: {r.rate_mg_h:g} mg/h (90 %: "
                      f"{r.rate_interval_mg_h[0]:.1f}-{r.rate_interval_mg_h[1]:.1f} mg/h); at {r.rate_mg_h:g} mg/h the "
                      f"level is {r.level_interval_ng_ml[0]:.0f}-{r.level_interval_ng_ml[1]:.0f} ng/mL (90 %).",
                      highlight=False)
        for finding in r.findings:
            console.print(f"  {finding.severity.upper()} {finding.message}", highlight=False)
    if fu.plan is not None:
        p = fu.plan
        if p.chosen is None:
            console.print(f"No rate and duration within the usual ranges gives {p.target_days:.0f} days of relief "
                          "in half of the forecasts.", highlight=False)
        else:
            c = p.chosen
            begin = when_text(p.start_h, start)
            console.print(f"For {p.target_days:.0f} days of relief from a course starting {begin}:"
                          f" [bold]{c['rate_mg_h']:g} mg/h IV for {c['duration_d']:g} d[/] ({c['dose_mg']:.0f} mg; "
                          f"relief {c['relief_days_p50']:.0f} days, target met in {c['probability_target']:.0%} of "
                          f"forecasts; steady state {c['css_ng_ml']:.0f} ng/mL).", highlight=False)
    for n in fu.notes:
        console.print(f"note: {n}", highlight=False)


def _json(f, fu, start) -> dict:
    from ketaplan.simulation.summary import when_text

    est = f.estimate
    out = {"id": f.case.id, "estimates": est.table().to_dict(orient="records"), "objective": est.objective,
           "evaluations": est.evaluations, "warnings": f.warnings, "p_responder": f.p_responder,
           "mcmc": est.diagnostics}
    if fu is not None and fu.next is not None:
        nc = fu.next
        out["next_course"] = {"relief_days": nc.relief_days, "due_h": nc.due_h,
                              "due": [when_text(h, start) for h in nc.due_h]}
    if fu is not None and fu.rate is not None:
        out["rate_for_level"] = fu.rate.__dict__ | {"findings": [x.as_dict() for x in fu.rate.findings]}
    if fu is not None and fu.plan is not None:
        out["plan_for_relief"] = None if fu.plan.chosen is None else fu.plan.chosen.to_dict()
    return out
