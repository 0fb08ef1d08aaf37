"""Figures and the self-contained HTML report of a virtual population and of a regimen search."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

from ketaplan import __version__
from ketaplan.models.thresholds import thresholds_for
from ketaplan.report.figures import BAND_COLOURS, SERIES_COLOURS, svg_text
from ketaplan.report.html import DISCLAIMER, model_context, template_environment
from ketaplan.report.population_tables import headline_facts, subject_quantile_rows

POPULATION_DISCLAIMER = ("Virtual patients from published population models: the bands show how patients like "
                         "these may differ, not what one patient will have. " + DISCLAIMER)


def population_figure(result) -> plt.Figure:
    """Percentile bands of plasma levels and relief over time, and the spread of relief duration and Cmax."""
    pspec = result.pspec
    lo, hi = f"p{min(result.percentiles):g}", f"p{max(result.percentiles):g}"
    mid = "p50" if 50.0 in result.percentiles else f"p{sorted(result.percentiles)[len(result.percentiles) // 2]:g}"
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5), constrained_layout=True)
    ax = axes[0, 0]
    first = pspec.courses[0]
    names = [n for n in result.bands if n != "relief"]
    top = 1.0
    for name, colour in zip(names, SERIES_COLOURS, strict=False):
        b = result.bands[name]
        zoom = (b["time"] >= first.start) & (b["time"] <= first.end + 48.0)
        days = b["time"][zoom] / 24.0
        ax.fill_between(days, b[lo][zoom], b[hi][zoom], color=colour, alpha=0.15, lw=0)
        ax.plot(days, b[mid][zoom], color=colour, lw=1.2, ls="--" if name.startswith("effect") else "-",
                label=f"{name} ({mid}, band {lo}-{hi})")
        top = max(top, float(b[hi][zoom].max()))
    for key, t in thresholds_for(pspec.spec.drug).items():
        if key in ("analgesia", "psychotomimetic"):
            ax.axhline(t.value, color=BAND_COLOURS[key], ls="--", lw=1, label=t.label)
    ax.set_ylim(0, top * 1.15)
    ax.set_xlabel("days from the first dose")
    ax.set_ylabel("ng/mL")
    ax.set_title("First course: levels across the population", fontsize=10)
    ax.legend(fontsize=7, loc="upper right")

    ax = axes[0, 1]
    if "relief" in result.bands:
        b = result.bands["relief"]
        days = b["time"] / 24.0
        ax.fill_between(days, 100 * b[lo], 100 * b[hi], color="#2e7d32", alpha=0.2, lw=0)
        ax.plot(days, 100 * b[mid], color="#2e7d32", lw=1.4, label=f"relief if responding ({mid})")
        ax.axhline(100 * pspec.relief_threshold, color="#616161", ls=":", lw=1,
                   label=f"relief threshold {pspec.relief_threshold:.0%}")
        ax.set_ylim(0, 100)
        ax.legend(fontsize=7, loc="upper right")
    ax.set_xlabel("days from the first dose")
    ax.set_ylabel("relief (% of baseline pain)")
    ax.set_title("Predicted relief in responders", fontsize=10)

    ax = axes[1, 0]
    s = result.subjects
    if "responder" in s:
        resp = s[s["responder"]]
        observed = resp.loc[~resp["relief_first_censored"], "relief_days_first"]
        ax.hist(observed, bins=40, color="#2e7d32", alpha=0.8)
        censored = int(resp["relief_first_censored"].sum())
        ax.set_title(f"Relief after course 1, {len(resp):,} responders ({censored:,} still relieved at the next "
                     "course)", fontsize=9)
    ax.set_xlabel("days until relief falls below the threshold")
    ax.set_ylabel("virtual patients")

    ax = axes[1, 1]
    cmax = s["cmax_ng_ml"].to_numpy()
    low = max(cmax.min(), 1e-3)
    ax.hist(cmax, bins=np.geomspace(low, max(cmax.max(), low * 1.01), 50), color=SERIES_COLOURS[0])
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    for key, t in thresholds_for(pspec.spec.drug).items():
        if key in ("analgesia", "psychotomimetic"):
            ax.axvline(t.value, color=BAND_COLOURS[key], ls="--", lw=1, label=t.label)
    ax.legend(fontsize=7)
    ax.set_xlabel("Cmax (ng/mL)")
    ax.set_ylabel("virtual patients")
    ax.set_title("Peak plasma level", fontsize=10)
    fig.suptitle(f"{pspec.regimen.label} - {len(s):,} virtual patients - model {pspec.spec.id}", fontsize=9)
    return fig


def render_population_report(result, path: str | Path, facts: list[tuple[str, str]], findings=()) -> None:
    """Write the population report: key numbers, percentile bands, per-subject spread, model and citations."""
    columns, rows = subject_quantile_rows(result)
    band_tables = [{"name": name, "columns": list(frame.columns),
                    "rows": [[f"{v:.4g}" for v in r] for r in frame.itertuples(index=False)]}
                   for name, frame in result.bands.items()]
    html = template_environment().get_template("population.html.j2").render(
        title=f"ketaplan population - {result.pspec.regimen.label}", disclaimer=POPULATION_DISCLAIMER,
        facts=facts, headline=headline_facts(result), quantile_columns=columns, quantile_rows=rows,
        figures=[{"title": "Population levels, relief and spread", "svg": svg_text(population_figure(result))}],
        band_tables=band_tables, findings=list(findings), model=model_context(result.pspec.spec), version=__version__)
    Path(path).write_text(html, encoding="utf-8")


def render_search_report(result, path: str | Path, facts: list[tuple[str, str]], model_spec) -> None:
    """Write the regimen-search report: the trade-off table and the chosen regimen."""
    table = result.table
    columns = list(table.columns)
    rows = [[_cell(v) for v in r] for r in table.itertuples(index=False)]
    html = template_environment().get_template("search.html.j2").render(
        title="ketaplan regimen search", disclaimer=POPULATION_DISCLAIMER, facts=facts, columns=columns, rows=rows,
        chosen=result.chosen_text, model=model_context(model_spec), version=__version__)
    Path(path).write_text(html, encoding="utf-8")


def _cell(v) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, float):
        return "beyond next course" if np.isinf(v) else ("-" if np.isnan(v) else f"{v:.4g}")
    return str(v)
