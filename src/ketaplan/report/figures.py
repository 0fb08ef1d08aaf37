"""matplotlib figures: concentrations with threshold bands, relief and pain, course timeline, comparisons."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from ketaplan.errors import InputError

BAND_COLOURS = {"analgesia": "#2e7d32", "psychotomimetic": "#ef6c00", "awakening": "#c62828"}
SERIES_COLOURS = ["#1565c0", "#6a1b9a", "#00838f", "#8d6e63", "#546e7a"]


def _threshold_bands(ax, thresholds, top: float) -> None:
    for name in ("analgesia", "psychotomimetic", "awakening"):
        t = thresholds.get(name)
        if t is None or t.value > top * 1.4:
            continue
        ax.axhline(t.value, color=BAND_COLOURS[name], lw=1, ls="--")
        ax.text(ax.get_xlim()[0], t.value, f" {t.label}", color=BAND_COLOURS[name], fontsize=7, va="bottom")
    if "psychotomimetic" in thresholds and thresholds["psychotomimetic"].value <= top * 1.4:
        ax.axhspan(thresholds["psychotomimetic"].value, max(top * 1.4, thresholds["psychotomimetic"].value * 1.1),
                   color=BAND_COLOURS["psychotomimetic"], alpha=0.06)


def simulation_figure(frame) -> plt.Figure:
    """Four panels: first course, whole plan, predicted relief and pain, course timeline."""
    run = frame.run
    t = frame["time"].to_numpy()
    first = run.courses[0]
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5), constrained_layout=True)
    ax = axes[0, 0]
    zoom = (t >= first.start) & (t <= first.end + 24)
    top = 1.0
    for col, label, colour in ((run.parent, "plasma " + run.parent, SERIES_COLOURS[0]),
                               (run.effect, f"effect site ({run.effect})", SERIES_COLOURS[2])):
        if col is None:
            continue
        ax.plot(t[zoom], frame[col].to_numpy()[zoom], color=colour, lw=1.4, label=label)
        top = max(top, float(frame[col].to_numpy()[zoom].max()))
    ax.set_ylim(0, top * 1.3)
    _threshold_bands(ax, run.thresholds, top)
    ax.set_title(f"First course: {run.parent} (thresholds apply to it)", fontsize=10)
    ax.set_xlabel("hours from the first dose")
    ax.set_ylabel(f"{run.parent} ng/mL")
    ax.legend(fontsize=7, loc="upper left")
    if run.metabolite:
        ax_m = ax.twinx()
        ax_m.plot(t[zoom], frame[run.metabolite].to_numpy()[zoom], color=SERIES_COLOURS[1], lw=1.2, ls="--",
                  label="plasma " + run.metabolite)
        ax_m.set_ylabel(f"{run.metabolite} ng/mL")
        ax_m.set_ylim(0, float(frame[run.metabolite].to_numpy()[zoom].max()) * 1.3 + 1e-9)
        ax_m.legend(fontsize=7, loc="upper right")

    ax = axes[0, 1]
    days = t / 24.0
    ax.plot(days, frame[run.parent], color=SERIES_COLOURS[0], lw=1, label="plasma " + run.parent)
    if run.metabolite:
        ax.plot(days, frame[run.metabolite], color=SERIES_COLOURS[1], lw=1, label="plasma " + run.metabolite)
    ax.set_title("Whole plan", fontsize=10)
    ax.set_xlabel("days from the first dose")
    ax.set_ylabel("ng/mL")
    ax.legend(fontsize=7, loc="upper right")

    ax = axes[1, 0]
    threshold = frame.settings["relief_threshold"]
    if "relief" in frame:
        ax.plot(days, 100 * frame["relief"], color="#2e7d32", lw=1.4, label="predicted relief, responder (%)")
        ax.axhline(100 * threshold, color="#616161", ls=":", lw=1, label=f"relief threshold {threshold:.0%}")
        ax.set_ylim(0, 100)
        ax.set_ylabel("relief (% of baseline pain)")
        dues = frame.summary.get("next_due_median_h", frame.summary.get("next_course_due_h", pd.Series(dtype=float)))
        for due in dues.replace(np.inf, np.nan).dropna():
            ax.axvline(due / 24.0, color="#c62828", lw=0.8, alpha=0.6)
        if "pain_nrs" in frame:
            ax2 = ax.twinx()
            ax2.plot(days, frame["pain_nrs"], color="#1565c0", lw=1, label="predicted NRS (responder)")
            ax2.set_ylim(0, 10)
            ax2.set_ylabel("pain NRS 0-10")
            ax2.legend(fontsize=7, loc="lower right")
        ax.legend(fontsize=7, loc="upper right")
        ax.set_title("Predicted relief, typical responder (red lines: next course due, median)", fontsize=10)
    else:
        ax.text(0.5, 0.5, "no long-lasting relief model attached", ha="center", transform=ax.transAxes)
    ax.set_xlabel("days from the first dose")

    ax = axes[1, 1]
    for c in run.courses:
        ax.barh(c.index, max((c.end - c.start) / 24.0, 0.3), left=c.start / 24.0, color="#1565c0", height=0.6)
    summary = frame.summary
    spread = "next_due_median_h" in summary
    due = summary.get("next_due_median_h" if spread else "next_course_due_h")
    if due is not None:
        for k, (c, d) in enumerate(zip(run.courses, due, strict=True)):
            if spread:  # the 90 % interval over patients like this one who respond; open-ended when beyond
                lo, hi = summary["next_due_p5_h"].iloc[k], summary["next_due_p95_h"].iloc[k]
                if np.isfinite(lo):
                    right = hi if np.isfinite(hi) else float(np.asarray(days)[-1]) * 24.0
                    ax.plot([lo / 24.0, right / 24.0], [c.index, c.index], color="#c62828", lw=1, alpha=0.6)
            if np.isfinite(d):
                ax.plot(d / 24.0, c.index, marker="v", color="#c62828")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.invert_yaxis()
    ax.set_title("Course timeline (triangles: relief ends, median; line: 90 %)" if spread
                 else "Course timeline (triangles: relief predicted to end)", fontsize=10)
    ax.set_xlabel("days from the first dose")
    ax.set_ylabel("course")
    fig.suptitle(f"{frame.run.regimen.label} - model {frame.spec.id}", fontsize=9)
    return fig


def comparison_figure(curves: dict[str, pd.DataFrame], value: str, title: str) -> plt.Figure:
    """Overlaid concentration curves of several scenarios."""
    fig, ax = plt.subplots(figsize=(9, 4.5), constrained_layout=True)
    for (name, df), colour in zip(curves.items(), SERIES_COLOURS * 4, strict=False):
        ax.plot(df["time"], df[value], lw=1.4, label=name, color=colour)
    ax.set_xlabel("hours from the first dose")
    ax.set_ylabel(value)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    return fig


def save(fig: plt.Figure, path: str | Path) -> None:
    """Save as PNG or SVG by the file's suffix."""
    suffix = Path(path).suffix.lower()
    if suffix not in (".png", ".svg"):
        raise InputError("--plot", str(path), "the figure file must end in .png or .svg")
    fig.savefig(path, format=suffix[1:], dpi=150)
    plt.close(fig)


def svg_text(fig: plt.Figure) -> str:
    """The figure as inline SVG markup (self-contained, no external references)."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]
