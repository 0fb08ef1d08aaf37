"""The self-contained HTML report of a population fit: estimates, uncertainty, shrinkage, objective, GOF, VPC."""

from __future__ import annotations

import math

from ketaplan import __version__
from ketaplan.report.estimation_figures import objective_figure
from ketaplan.report.estimation_tables import (
    ESTIMATE_COLUMNS,
    OBJECTIVE_NOTE,
    correlation_rows,
    estimate_rows,
    run_facts,
    shrinkage_rows,
)
from ketaplan.report.figures import svg_text
from ketaplan.report.html import template_environment

ESTIMATION_DISCLAIMER = ("Population estimates for pharmacometric review: read the diagnostics below before any "
                         "dose is based on them.")


def estimation_report_html(result, vpc, figures: list[tuple[str, str]], sources: list[tuple[str, str]]) -> str:
    """The report as HTML text; ``figures`` are (title, inline SVG) pairs, ``sources`` (label, value) pairs
    naming the data and model files. The objective per iteration is drawn here."""
    names, correlation = correlation_rows(result)
    iterations = result.iterations_frame()
    vpc_columns = ["bin", "time", "n", "obs p5", "sim p5 (95 % interval)", "obs p50", "sim p50 (95 % interval)",
                   "obs p95", "sim p95 (95 % interval)"]
    vpc_rows = [[str(int(b["bin"])), f"{b['time_lo']:.4g}-{b['time_hi']:.4g}", str(int(b["n"])),
                 *(cell for key in ("p5", "p50", "p95") for cell in
                   (f"{b[f'obs_{key}']:.4g}", f"{b[f'sim_{key}_med']:.4g} ({b[f'sim_{key}_lo']:.4g}-"
                                              f"{b[f'sim_{key}_hi']:.4g})"))]
                for _, b in vpc.bins.iterrows()]
    return template_environment().get_template("estimation.html.j2").render(
        title="ketaplan - population estimation", disclaimer=ESTIMATION_DISCLAIMER, version=__version__,
        facts=sources + run_facts(result), objective_note=OBJECTIVE_NOTE,
        estimate_columns=ESTIMATE_COLUMNS, estimate_rows=estimate_rows(result),
        correlation_names=names, correlation_rows=correlation, shrinkage_rows=shrinkage_rows(result),
        warnings=result.warnings,
        objective_svg=svg_text(objective_figure(iterations, "complete-data -2 log L (SAEM)" if result.method == "saem"
                                                else "objective (-2 log L, no n log 2 pi)"))
        if len(result.iterations) > 1 else None,
        iteration_rows=[[str(int(r.ITERATION)), f"{r.OFV:.6f}",
                         f"{r.GRADIENT_MAX:.3g}" if math.isfinite(r.GRADIENT_MAX) else "-"]
                        for r in iterations.itertuples()] if len(iterations) else [],
        figures=[{"title": t, "svg": s} for t, s in figures], vpc_columns=vpc_columns, vpc_rows=vpc_rows,
        vpc_replicates=vpc.n_replicates)
