"""``ketaplan case-report``: the seed case end to end (Elsewaisy, Slon & Monagle, Pain Med 2010).

The analysis is in :mod:`ketaplan.report.seed_case`; this module only registers the command.
"""

from __future__ import annotations

from pathlib import Path

import typer

from ketaplan.cli.common import console, guarded, progress, write_atomically
from ketaplan.cli.simulate_cmd import print_findings, print_model, print_summary, write_report


@guarded
def case_report_command(
    out_dir: Path = typer.Option(Path("."), help="Folder for case-report.html and case-report.png."),
    weight: float = typer.Option(80.0, help="Body weight (kg); not reported in the case, 80 kg assumed."),
    baseline_pain: float = typer.Option(7.0, help="Baseline NRS; not reported in the case, 7 assumed."),
    relief_threshold: float = typer.Option(0.3, help="Relief below this fraction means the next course is due."),
) -> None:
    """The seed case: 20 mg/h IV for 5 days every ~11 weeks for 3.5 years; report, figure and table."""
    from ketaplan.errors import InputError
    from ketaplan.planning.plan import simulate
    from ketaplan.regimen.units import Kind, parse
    from ketaplan.report.figures import save, simulation_figure
    from ketaplan.report.seed_case import (
        CASE_CITATION,
        CASE_REGIMEN,
        OBSERVED_MEAN_WEEKS,
        comparison,
        longest_relief_by_half_life,
        matching_c50,
        relief_weeks,
        spread_paragraph,
    )

    if not out_dir.is_dir():
        raise InputError("--out-dir", str(out_dir), "the folder does not exist")
    html, png = out_dir / "case-report.html", out_dir / "case-report.png"
    with progress(5, "simulating 3.5 years") as step:
        frame = simulate(CASE_REGIMEN, weight=weight, age=59, sex="male", until=parse("3.5 y", Kind.DURATION),
                         relief_threshold=relief_threshold, baseline_pain=baseline_pain)
        step("comparing with the observed relief")
        predicted = relief_weeks(frame)
        best_weeks, best_half_life = longest_relief_by_half_life(weight, 59)
        step("finding the values that would match")
        c50 = matching_c50(OBSERVED_MEAN_WEEKS, weight, 59)
        step("drawing")
        callout = comparison(predicted, (best_weeks, best_half_life), c50, relief_threshold, spread_paragraph(frame))
        write_atomically(png, lambda p: save(simulation_figure(frame), p))
        step("writing the report")
        write_report(frame, html, title="Case report: repeated 5-day ketamine infusions for 3.5 years",
                     callout=callout)
    print_summary(frame, "Seed case - 59-year-old man, chronic idiopathic axonal polyneuropathy, "
                  f"{weight:g} kg (assumed), 20 mg/h IV x 5 d every 11 weeks")
    console.print(f"[bold]{callout['title']}[/bold]")
    for p in callout["paragraphs"]:
        console.print(p, highlight=False)
    print_findings(frame.findings, frame.notes)
    print_model(frame.spec)
    console.print(f"Case: {CASE_CITATION}", style="dim", highlight=False)
    console.print(f"wrote {html} and {png}")
