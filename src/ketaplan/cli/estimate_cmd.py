"""``ketaplan estimate``: population estimates from a NONMEM-style dataset and a model file, as NONMEM computes
them, with the per-record diagnostics, NPDE, a pcVPC, figures and a report."""

from __future__ import annotations

import json
import math
from pathlib import Path

import typer

from ketaplan.cli.common import (
    JSON_DIGITS,
    check_output,
    console,
    err_console,
    guarded,
    json_ready,
    write_atomically,
    write_folder_atomically,
)
from ketaplan.errors import InputError
from ketaplan.limits import SIMULATED_VALUES

MAX_REPLICATES = 100_000
LIBRARY = "library:"


def _estimate_relief(data: Path | None, prior_name: str, prior_weight: float | None, folds: int, seed: int,
                     out_dir: Path, as_json: bool) -> None:
    """The library's relief model learned from a NONMEM-style dataset, with the published values as priors."""
    import time

    from ketaplan.cli.learn_cmd import print_learning
    from ketaplan.estimation.learn_run import LearnProgress, learn_cohort
    from ketaplan.estimation.priors import DEFAULT_PRIOR_WEIGHT, load_prior
    from ketaplan.estimation.relief_dataset import relief_cohort
    from ketaplan.nonmem.dataset import read_dataset

    if data is None:
        raise InputError("DATA", None, "a dataset file (CSV or Parquet) for a library model")
    weight = DEFAULT_PRIOR_WEIGHT if prior_weight is None else prior_weight
    prior = load_prior(prior_name, weight)
    cohort = relief_cohort(read_dataset(data))
    started = time.perf_counter()
    with err_console.status("preparing") as status:
        def iteration(i: int, f: float) -> None:
            status.update(f"learning: iteration {i}, objective {f:.1f} ({time.perf_counter() - started:.0f} s)")

        spec, summary = learn_cohort(cohort, prior, folds=folds, seed=seed,
                                     progress=LearnProgress(status.update, iteration))
    summary.update({"model": spec.id, "prior": prior_name, "prior_weight": weight, "data": str(data)})
    text = json.dumps(json_ready(summary), indent=2) + "\n"
    write_folder_atomically(out_dir, {"estimates.json": text.encode()})
    if as_json:
        typer.echo(text, nl=False)
        return
    print_learning(f"{prior_name} learned from {data} ({len(cohort)} individuals), prior weight {weight:g}",
                   summary, "dataset")
    console.print(f"wrote {out_dir / 'estimates.json'}", highlight=False)


@guarded
def estimate_command(
    data: Path = typer.Argument(None, help="NONMEM-style dataset (CSV or Parquet): ID TIME AMT DV ... and the "
                                           "covariates the model uses. Optional with a control stream whose "
                                           "$DATA names one."),
    model: Path = typer.Option(..., help="Model file (YAML: advan, theta, parameters, omega, sigma) or a NONMEM "
                                         "control stream (.ctl/.mod)."),
    method: str = typer.Option(None, help="foce-i (FOCE with interaction), foce, fo, laplace or saem. Default: "
                                          "the control stream's $ESTIMATION, else foce-i."),
    evaluate: bool = typer.Option(None, "--evaluate/--estimate", help="Only evaluate the objective at the "
                                  "initial values (NONMEM's MAXEVAL=0); the diagnostics follow as usual. "
                                  "Default: the control stream's MAXEVAL, else estimate."),
    seed: int = typer.Option(1, help="Seed of SAEM and of the simulated datasets behind NPDE and the VPC."),
    replicates: int = typer.Option(1000, help="Simulated datasets for NPDE and the VPC."),
    out_dir: Path = typer.Option(..., help="Folder for estimates.json, etas.csv, table.csv, iterations.csv, "
                                           "vpc.csv and the PNG figures (made if missing)."),
    report: Path = typer.Option(None, help="Self-contained HTML report."),
    as_json: bool = typer.Option(False, "--json", help="Print estimates.json to stdout."),
    prior_weight: float = typer.Option(None, help="library:MODEL only: weight of the published values as priors "
                                                  "(default 0.25; 1 their stated precision, 0 the data alone)."),
    folds: int = typer.Option(5, help="library:MODEL only: folds of the held-out next-course timing check."),
) -> None:
    """Estimate THETA, OMEGA and SIGMA as NONMEM does, with standard errors, diagnostics and a pcVPC.

    With --model library:dahan_2011_crps_pkpd the dataset's courses, levels and pain scores (DVID 1, 2, 3)
    refit the relief model of the library with the published values as priors, as `ketaplan clinic learn`
    does with a clinic's record."""
    _check_folder(out_dir)
    if str(model).startswith(LIBRARY):
        _estimate_relief(data, str(model)[len(LIBRARY):], prior_weight, folds, seed, out_dir, as_json)
        return
    check_output(report, "--report", (".html",))
    if not 20 <= replicates <= MAX_REPLICATES:
        raise InputError("--replicates", replicates, f"a whole number from 20 to {MAX_REPLICATES:,}")

    from ketaplan.estimation.api import estimate
    from ketaplan.nonmem.control_stream import is_control_stream, read_control_stream

    if method is None and is_control_stream(model):
        method = read_control_stream(model).method
    label = "complete-data -2 log L" if (method or "").lower() == "saem" else "OFV"

    def show(it) -> None:
        gradient = f"   max |gradient| {it.gradient_norm:.3g}" if math.isfinite(it.gradient_norm) else ""
        err_console.print(f"iteration {it.iteration:>3}   {label} {it.ofv:.6f}{gradient}", highlight=False)

    result = estimate(data, model, method=method, evaluate=evaluate, on_iteration=show, seed=seed)
    cells = result.data.obs_mask.size  # each replicate simulates the (individuals x records) grid of observations
    SIMULATED_VALUES.check("--replicates", replicates * cells, f"give at most "
                           f"{max(int(SIMULATED_VALUES.value // max(cells, 1)), 1):,} --replicates for this dataset")
    err_console.print(f"simulating {replicates:,} datasets for NPDE and the VPC (seed {seed})", highlight=False)
    table = result.table(npde_replicates=replicates, seed=seed)
    vpc = result.vpc(replicates=replicates, seed=seed)
    document = json_ready(result.to_json_dict())
    text = json.dumps(document, indent=2) + "\n"
    files = {"estimates.json": text.encode(),
             "etas.csv": _csv(result.etas_frame()), "table.csv": _csv(table),
             "iterations.csv": _csv(result.iterations_frame()), "vpc.csv": _csv(vpc.bins)}
    figures = _figures(result, table, vpc, with_svg=report is not None)
    files.update({name: png for name, (png, _title, _svg) in figures.items()})
    html = None
    if report is not None:
        from ketaplan.report.estimation_report import estimation_report_html

        svgs = [(title, svg) for _png, title, svg in figures.values()]
        html = estimation_report_html(result, vpc, svgs, [("data", str(data or "named in the control stream")),
                                                           ("model", str(model))])
    write_folder_atomically(out_dir, files)
    if html is not None:
        write_atomically(report, lambda p: p.write_text(html, encoding="utf-8"))
    if as_json:
        typer.echo(text, nl=False)
        return
    print_result(result)
    for name in files:
        console.print(f"wrote {out_dir / name}", highlight=False)
    if report is not None:
        console.print(f"wrote {report}", highlight=False)


def _check_folder(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise InputError("--out-dir", str(folder), "is a file; give a folder")
    if not folder.parent.is_dir():
        raise InputError("--out-dir", str(folder), "the folder it goes in does not exist")


def _csv(frame) -> bytes:
    return frame.to_csv(index=False, float_format=f"%.{JSON_DIGITS}g").encode()


def _figures(result, table, vpc, with_svg: bool) -> dict[str, tuple[bytes, str, str | None]]:
    """PNG files by name, each with its title and (for the report) its SVG."""
    import matplotlib.pyplot as plt

    from ketaplan.report.estimation_figures import eta_figure, gof_figure, png_bytes, vpc_figure
    from ketaplan.report.figures import svg_text

    made = {"gof.png": ("Goodness of fit", gof_figure(table)),
            "etas.png": ("Empirical Bayes estimates of the ETAs", eta_figure(result.etas, result.estimates.omega)),
            "vpc.png": ("Prediction-corrected VPC", vpc_figure(vpc))}
    out = {}
    for name, (title, fig) in made.items():
        png = png_bytes(fig)
        svg = svg_text(fig) if with_svg else None  # svg_text closes the figure
        if svg is None:
            plt.close(fig)
        out[name] = (png, title, svg)
    return out


def print_result(result) -> None:
    """The objective, the estimates with SE and RSE, shrinkage and warnings, readable at 80 columns."""
    from ketaplan.cli.tables import Column, print_table
    from ketaplan.report.estimation_tables import ESTIMATE_COLUMNS, OBJECTIVE_NOTE, estimate_rows, run_facts

    for label, value in run_facts(result):
        console.print(f"{label}: {value}", highlight=False, markup=False)
    print_table(None, [Column(c, "left" if c == "parameter" else "right") for c in ESTIMATE_COLUMNS],
                estimate_rows(result))
    shrink = result.shrinkage()
    console.print("shrinkage (SD %): " + ", ".join(f"{k} {v:.1f}" for k, v in shrink.items()), highlight=False)
    for w in result.warnings:
        console.print(f"WARNING {w}", highlight=False, markup=False)
    console.print(OBJECTIVE_NOTE, highlight=False, markup=False)
