"""The patient's course over the years as one inline SVG: pain diary with the individual prediction, relief
with its interval and the next course due, infusions and measured levels."""

from __future__ import annotations

from datetime import datetime, timedelta

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np

from ketaplan.report.figures import svg_text


def course_chart(infusions, levels, diary, forecast: dict) -> str:
    """SVG markup (self-contained)."""
    fig, (ax_pain, ax_relief, ax_dose) = plt.subplots(3, 1, figsize=(10, 6.4), sharex=True, constrained_layout=True,
                                                      gridspec_kw={"height_ratios": [3, 2, 2]})
    ok = forecast.get("status") == "ok"
    if ok:
        origin = datetime.fromisoformat(forecast["origin"])
        c = forecast["curves"]
        t = np.array(c["time_h"])
        out = np.array(c["output"])
        for name, ax, scale, colour in (("pain_nrs", ax_pain, 1.0, "#1565c0"), ("relief", ax_relief, 100.0,
                                                                                "#2e7d32")):
            sel = out == name
            if not sel.any():
                continue
            when = [origin + timedelta(hours=float(h)) for h in t[sel]]
            ax.fill_between(when, scale * np.array(c["p5"])[sel], scale * np.array(c["p95"])[sel], color=colour,
                            alpha=0.18, lw=0)
            ax.plot(when, scale * np.array(c["map"])[sel], color=colour, lw=1.2,
                    label="predicted (90 % interval)")
        ax_relief.axhline(100 * forecast["threshold"], color="#616161", ls=":", lw=1,
                          label=f"threshold {forecast['threshold']:.0%}")
        lo, mid, hi = (datetime.fromisoformat(d) if d else None for d in forecast["next_due"])
        if mid is not None:
            for ax in (ax_pain, ax_relief, ax_dose):
                ax.axvline(mid, color="#c62828", lw=1)
                if lo is not None:
                    ax.axvspan(lo, hi or mid, color="#c62828", alpha=0.08)
            ax_relief.text(mid, 95, f" next course due {mid:%Y-%m-%d}", color="#c62828", fontsize=8, va="top")
    if diary:
        ax_pain.plot([e.recorded_at for e in diary], [e.nrs for e in diary], "o", ms=3, color="#c62828",
                     label="pain diary")
    ax_pain.set_ylim(0, 10)
    ax_pain.set_ylabel("pain NRS")
    _legend(ax_pain, "upper left")
    ax_relief.set_ylim(0, 100)
    ax_relief.set_ylabel("relief %")
    _legend(ax_relief, "upper left")
    for i in infusions:
        ax_dose.barh(0, (i.end - i.start).total_seconds() / 86400.0, left=i.start, height=0.6, color="#1565c0")
    ax_dose.set_yticks([0], ["infusions"])
    ax_levels = ax_dose.twinx()
    if levels:
        shown = [lv for lv in levels if lv.value_ng_ml is not None]
        ax_levels.plot([lv.taken_at for lv in shown], [lv.value_ng_ml for lv in shown], "s", ms=3, color="#6a1b9a",
                       label="levels (ng/mL)")
        ax_levels.set_ylabel("ng/mL")
        _legend(ax_levels, "upper right")
    ax_dose.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m"))
    fig.autofmt_xdate()
    return svg_text(fig)


def _legend(ax, where: str) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc=where)
