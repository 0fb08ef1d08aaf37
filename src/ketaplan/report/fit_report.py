"""The HTML report of individual fits: estimates, warnings, forecast figure, next course, recommendations."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from ketaplan import __version__
from ketaplan.individualize.observations import PAIN
from ketaplan.report.figures import SERIES_COLOURS, svg_text
from ketaplan.report.html import DISCLAIMER, model_context, template_environment


def fit_figure(fit, followup, threshold: float) -> plt.Figure:
    """Measured levels and pain scores with the individual predictions (90 % bands) and the relief forecast."""
    curves = followup.curves
    obs = fit.estimate.problem.observations
    has_pain = PAIN in set(curves["output"])
    fig, axes = plt.subplots(1, 3 if has_pain else 2, figsize=(13, 4), constrained_layout=True)
    ax = axes[0]
    levels = [n for n in curves["output"].unique() if n not in ("relief", PAIN)]
    for name, colour in zip(levels, SERIES_COLOURS, strict=False):
        c = curves[curves["output"] == name]
        days = c["time"] / 24.0
        ax.fill_between(days, c["p5"], c["p95"], color=colour, alpha=0.2, lw=0)
        ax.plot(days, c["map"], color=colour, lw=1.2, label=f"{name} (individual, 90 % band)")
        seen = (obs.output == name) & ~obs.blq
        if seen.any():
            ax.plot(obs.time[seen] / 24.0, obs.value[seen], "o", color=colour, ms=4, label=f"{name} measured")
        below = (obs.output == name) & obs.blq
        if below.any():
            ax.plot(obs.time[below] / 24.0, obs.lloq[below], "v", color=colour, ms=5, label=f"{name} < LLOQ")
    last = max(float(obs.time[~obs.is_score].max()) if (~obs.is_score).any() else 0.0, 24.0 * 10)
    ax.set_xlim(0, last / 24.0 + 1)
    ax.set_xlabel("days")
    ax.set_ylabel("ng/mL")
    ax.set_title("Plasma levels", fontsize=10)
    ax.legend(fontsize=7)
    nc = followup.next
    if has_pain:
        ax = axes[1]
        c = curves[curves["output"] == PAIN]
        days = c["time"] / 24.0
        ax.fill_between(days, c["p5"], c["p95"], color="#1565c0", alpha=0.2, lw=0)
        ax.plot(days, c["map"], color="#1565c0", lw=1.2, label="predicted NRS (responder)")
        seen = obs.is_score
        ax.plot(obs.time[seen] / 24.0, obs.value[seen], "o", color="#c62828", ms=4, label="diary")
        ax.set_ylim(0, 10)
        ax.set_xlabel("days")
        ax.set_ylabel("pain NRS 0-10")
        ax.set_title("Pain diary and individual prediction", fontsize=10)
        ax.legend(fontsize=7)
    ax = axes[-1]
    c = curves[curves["output"] == "relief"]
    if len(c):
        days = c["time"] / 24.0
        ax.fill_between(days, 100 * c["p5"], 100 * c["p95"], color="#2e7d32", alpha=0.2, lw=0)
        ax.plot(days, 100 * c["map"], color="#2e7d32", lw=1.4, label="predicted relief (90 % band)")
        ax.axhline(100 * threshold, color="#616161", ls=":", lw=1, label=f"threshold {threshold:.0%}")
        if nc is not None and np.isfinite(nc.due_h[1]):
            lo = nc.due_h[0] / 24.0
            hi = nc.due_h[2] / 24.0 if np.isfinite(nc.due_h[2]) else ax.get_xlim()[1]
            ax.axvspan(lo, hi, color="#c62828", alpha=0.1, label="next course due (90 %)")
            ax.axvline(nc.due_h[1] / 24.0, color="#c62828", lw=1)
        ax.set_ylim(0, 100)
        ax.legend(fontsize=7)
    ax.set_xlabel("days")
    ax.set_ylabel("relief (% of baseline pain)")
    ax.set_title("Relief forecast", fontsize=10)
    model_id = fit.model.spec.id if fit.model is not None else "PREDPP"
    fig.suptitle(f"{fit.case.label} - model {model_id}", fontsize=9)
    return fig


def render_fit_report(fits, followups, path: str | Path, start: datetime | None, threshold: float,
                      shrinkage: dict) -> None:
    """Write the fit report of one or more patients (figures inline, no network needed)."""
    from ketaplan.simulation.summary import when_text

    patients = []
    for f, fu in zip(fits, followups, strict=True):
        est = f.estimate
        rows = [[r["parameter"], r["unit"], f"{r['population']:.4g}", f"{r['individual']:.4g}",
                 f"{r['p5']:.4g} - {r['p95']:.4g}", f"{r['eta']:.3f}", f"{r['shrinkage']:.0%}"]
                for _, r in est.table().iterrows()]
        item = {"label": f.case.label, "rows": rows, "warnings": f.warnings, "p_responder": f.p_responder,
                "objective": f"{est.objective:.2f}", "evaluations": est.evaluations,
                "n_obs": len(est.problem.observations), "mcmc": est.diagnostics, "lines": [], "figure": None,
                "plan_rows": []}
        if fu is not None:
            item["figure"] = svg_text(fit_figure(f, fu, threshold))
            nc = fu.next
            if nc is not None:
                lo, mid, hi = nc.relief_days
                item["lines"].append(f"Relief after the last course: {mid:.0f} days (90 % interval {lo:.0f} to "
                                     f"{'beyond the horizon' if not np.isfinite(hi) else f'{hi:.0f}'}).")
                item["lines"].append(f"Next course due {when_text(nc.due_h[1], start)} (90 %: "
                                     f"{when_text(nc.due_h[0], start)} to {when_text(nc.due_h[2], start)}).")
            if fu.rate is not None:
                r = fu.rate
                item["lines"].append(f"Rate for {r.target_ng_ml:g} ng/mL at steady state: {r.rate_mg_h:g} mg/h "
                                     f"(level at that rate {r.level_interval_ng_ml[0]:.0f}-"
                                     f"{r.level_interval_ng_ml[1]:.0f} ng/mL, 90 %).")
                item["lines"] += [f"{x.severity.upper()}: {x.message}" for x in r.findings]
            if fu.plan is not None:
                item["plan_target"] = fu.plan.target_days
                item["plan_rows"] = [[f"{r['rate_mg_h']:g}", f"{r['duration_d']:g}", f"{r['dose_mg']:.0f}",
                                      f"{r['relief_days_p50']:.0f}", f"{r['probability_target']:.0%}",
                                      f"{r['css_ng_ml']:.0f}", r["dose_warnings"] or "-",
                                      "yes" if r["feasible"] else "no"] for _, r in fu.plan.table.head(15).iterrows()]
                item["lines"].append("Recommended: " + (f"{fu.plan.chosen['rate_mg_h']:g} mg/h IV for "
                                                        f"{fu.plan.chosen['duration_d']:g} d"
                                     if fu.plan.chosen is not None else "no candidate meets the target"))
            item["lines"] += list(fu.notes)
        patients.append(item)
    first = fits[0]
    model = model_context(first.model.spec) if first.model is not None else None
    html = template_environment().get_template("fit.html.j2").render(
        title="ketaplan - individual fit", disclaimer=DISCLAIMER, patients=patients, shrinkage=shrinkage,
        model=model, version=__version__)
    Path(path).write_text(html, encoding="utf-8")
