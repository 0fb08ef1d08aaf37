"""Figures of the validation page: one per study (predicted band with the published points) and a summary.

Levels: the median over virtual patients (line) and their 5-95 % range (band) per regimen; published means
are drawn at their time of peak with the reported spread (SD, or x/÷ geometric SD) as bars. Pain: the
expected difference in NRS between trial arms against the published differences with their 95 % intervals.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from ketaplan.validation.criteria import observed_interval
from ketaplan.validation.run import Comparison, StudyResult

COLOURS = {"ketamine": "#1565c0", "norketamine": "#ef6c00"}
PASS_COLOUR, FAIL_COLOUR = "#2e7d32", "#c62828"
SHORT_HOURS = 8.0
"""Single doses are drawn over their first 8 h."""
LONG_HOURS = 48.0
"""Regimens simulated for longer than this are drawn in days, whole."""
DRAWN = ("cmax", "level")


def _bars(obs) -> tuple[float, float]:
    interval = observed_interval(obs)
    if interval is None:
        return 0.0, 0.0
    return obs.value - interval[0], interval[1] - obs.value


def _peak_points(result: StudyResult, regimen: str, output: str) -> list[tuple[Comparison, Comparison | None]]:
    """(Cmax or level comparison, matching Tmax comparison or None) drawn on a regimen's panel."""
    by_metric = {(c.observation.simulate.metric, c.observation.simulate.output): c for c in result.comparisons
                 if c.observation.simulate.regimen == regimen}
    points = []
    for c in result.comparisons:
        sim = c.observation.simulate
        if sim.regimen == regimen and sim.output == output and sim.metric in ("cmax", "level") and not sim.per_mg:
            points.append((c, by_metric.get(("tmax", output)) if sim.metric == "cmax" else None))
    return points


def _has_peak(result: StudyResult, tmax: Comparison) -> bool:
    """Whether a Tmax comparison is drawn as the x of its regimen's Cmax point."""
    sim = tmax.observation.simulate
    return any(c.observation.simulate.metric == "cmax" and c.observation.simulate.regimen == sim.regimen
               and c.observation.simulate.output == sim.output for c in result.comparisons)


def _dodge(result: StudyResult, regimen: str, time: float, output: str, span: float) -> float:
    """Horizontal shift (h) of a published level so that two analytes measured at one time do not share error bars:
    ketamine 1.5 % of the drawn span to the left, norketamine as far to the right."""
    outputs = {c.observation.simulate.output for c in result.comparisons
               if c.observation.simulate.regimen == regimen and c.observation.simulate.metric == "level"
               and c.observation.simulate.time == time}
    if len(outputs) < 2:
        return 0.0
    return (-0.015 if output == "ketamine" else 0.015) * span


def _note(c: Comparison) -> str:
    """A comparison not drawn on the curves, as one line of text."""
    o = c.observation
    return (f"{o.quantity}: published {o.value:.3g}, predicted {c.prediction.value:.3g} - "
            f"{'pass' if c.passed else 'FAIL'}")


def _level_panel(ax, result: StudyResult, regimen: str) -> None:
    curves = [c for c in result.curves if c.regimen == regimen]
    long_run = max(c.time[-1] for c in curves) > LONG_HOURS
    for curve in curves:
        keep = curve.time <= (curve.time[-1] if long_run else SHORT_HOURS)
        t = curve.time[keep] / (24.0 if long_run else 1.0)
        colour = COLOURS[curve.output]
        ax.fill_between(t, curve.p5[keep], curve.p95[keep], color=colour, alpha=0.15, lw=0)
        ax.plot(t, curve.p50[keep], color=colour, lw=1.3, label=f"{curve.output}: predicted median, 5-95 %")
        for comp, tmax in _peak_points(result, regimen, curve.output):
            obs = comp.observation
            if tmax is not None:
                x = tmax.observation.value
            elif obs.simulate.metric == "level":  # dodged where both analytes were measured at that time
                x = obs.simulate.time + _dodge(result, regimen, obs.simulate.time, curve.output, curve.time[-1])
            else:  # no published Tmax: drawn at the predicted median's peak
                x = float(curve.time[np.argmax(np.where(keep, curve.p50, -np.inf))])
            x /= 24.0 if long_run else 1.0
            xerr = np.array(_bars(tmax.observation)).reshape(2, 1) if tmax else None
            ax.errorbar(x, obs.value, yerr=np.array(_bars(obs)).reshape(2, 1), xerr=xerr, fmt="o", ms=5,
                        color=colour, mfc=PASS_COLOUR if comp.passed else FAIL_COLOUR, capsize=2,
                        label=f"{curve.output}: published ({obs.statistic.replace('_', ' ')})")
    notes = [_note(c) for c in result.comparisons if c.observation.simulate.regimen == regimen
             and (c.observation.simulate.metric not in DRAWN or c.observation.simulate.per_mg)
             and not (c.observation.simulate.metric == "tmax" and _has_peak(result, c))]
    if notes:  # single doses: bottom right, under the falling curves; infusions: top right, in the headroom
        y, va = (0.97, "top") if long_run else (0.03, "bottom")
        ax.text(0.98, y, "\n".join(notes), transform=ax.transAxes, fontsize=6, ha="right", va=va,
                bbox={"boxstyle": "round", "fc": "white", "ec": "#bbbbbb", "alpha": 0.9})
    ax.set_title(regimen, fontsize=9)
    ax.set_xlabel("days from the start" if long_run else "hours from the dose")
    ax.set_ylabel("ng/mL" + ("" if long_run else " (log scale)"))
    if long_run:  # headroom above the band for the legend and the notes
        ax.set_ylim(0, ax.get_ylim()[1] * 1.45)
    else:  # single doses: a log scale shows the IV spike and the small oral levels alike
        ax.set_yscale("log")
        ax.set_ylim(1.0, ax.get_ylim()[1])
    if long_run:  # below the axes: inside, it would cover the band
        ax.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
    else:
        ax.legend(fontsize=6, loc="upper right")


def _nrs_panel(ax, result: StudyResult) -> None:
    t, diff = result.nrs_curve
    ax.plot(t / 168.0, diff, color=COLOURS["ketamine"], lw=1.4, label="predicted (expected over patients)")
    for comp in result.comparisons:
        obs = comp.observation
        lo, hi = observed_interval(obs)
        ax.errorbar(obs.simulate.time / 168.0, obs.value, yerr=[[obs.value - lo], [hi - obs.value]], fmt="o",
                    ms=6, color="black", mfc=PASS_COLOUR if comp.passed else FAIL_COLOUR, capsize=3,
                    label=f"{obs.id.replace('_', ' ')} ({obs.statistic}), 95 % interval")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel("weeks from the start of the infusion")
    ax.set_ylabel("NRS on drug minus placebo")
    ax.set_title("Pain-score difference between arms", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")


def study_figure(result: StudyResult) -> plt.Figure:
    """The study's panels: one per regimen with levels, or the pain-score difference."""
    if result.nrs_curve is not None:
        fig, ax = plt.subplots(figsize=(7, 4), constrained_layout=True)
        _nrs_panel(ax, result)
    else:
        regimens = list(dict.fromkeys(c.regimen for c in result.curves))
        cols = min(len(regimens), 2)
        rows = -(-len(regimens) // cols)
        fig, axes = plt.subplots(rows, cols, figsize=(6 * cols, 3.6 * rows), constrained_layout=True, squeeze=False)
        for ax, regimen in zip(axes.flat, regimens, strict=False):
            _level_panel(ax, result, regimen)
        for ax in list(axes.flat)[len(regimens):]:
            ax.set_visible(False)
    fig.suptitle(f"{result.study.title}\nmodel {result.model}", fontsize=9)
    return fig


def summary_figure(results: list[StudyResult]) -> plt.Figure:
    """Predicted against published for every comparison judged by ratio (log axes, 0.67-1.5 lines).

    Points carry a number and the key beside the axes names them: labels written next to the points overlap
    where several comparisons land close together.
    """
    fig, (ax, key) = plt.subplots(1, 2, figsize=(10, 6), constrained_layout=True,
                                  gridspec_kw={"width_ratios": [3, 2]})
    comps = [c for r in results for c in r.comparisons if c.observation.criterion == "ratio"]
    values = np.array([[c.observation.value, c.prediction.value] for c in comps])
    lo, hi = values.min() / 2, values.max() * 2
    line = np.array([lo, hi])
    ax.plot(line, line, color="grey", lw=1)
    ax.plot(line, line * 0.67, color="grey", lw=0.8, ls="--")
    ax.plot(line, line * 1.5, color="grey", lw=0.8, ls="--")
    markers = {"validation": "o", "calibration": "s", "not_independent": "^"}
    for number, c in enumerate(comps, start=1):
        ax.plot(c.observation.value, c.prediction.value, markers[c.observation.role], ms=6,
                color=PASS_COLOUR if c.passed else FAIL_COLOUR, alpha=0.85)
        ax.annotate(str(number), (c.observation.value, c.prediction.value), fontsize=6, xytext=(4, 1),
                    textcoords="offset points")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("published (each in its own unit)")
    ax.set_ylabel("predicted (same unit)")
    ax.set_title("Predicted against published: green passes 0.67-1.5 (dashed);\n"
                 "circle validation, square calibration, triangle not independent", fontsize=9)
    key.axis("off")
    rows = [f"{number:>2}  {c.study.id}: {c.observation.id} - {'pass' if c.passed else 'FAIL'}"
            for number, c in enumerate(comps, start=1)]
    key.text(0.0, 1.0, "\n".join(rows), transform=key.transAxes, fontsize=7, va="top", ha="left",
             family="monospace")
    return fig
