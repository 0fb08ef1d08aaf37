"""The charts of the dashboard: a patient's course over the years, and a planned regimen's levels and relief."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np

from ketaplan.web.i18n import Translator
from ketaplan.web.svg import Panel, Series, chart, nice_top

BLUE, PURPLE, GREEN, RED, GREY, ORANGE, TEAL = ("#1565c0", "#6a1b9a", "#2e7d32", "#b71c1c", "#52606d", "#b45309",
                                                "#00695c")
MAX_POINTS = 900


def _thin(*arrays, n: int = MAX_POINTS):
    """At most ``n`` evenly chosen points of each array (the same points of all)."""
    size = len(arrays[0])
    idx = np.unique(np.linspace(0, size - 1, min(n, size)).round().astype(int)) if size else np.array([], int)
    return [np.asarray(a)[idx] for a in arrays]


def _hours(t: datetime, origin: datetime) -> float:
    return (t - origin).total_seconds() / 3600.0


def course_chart(infusions, levels, diary, forecast: dict, today: datetime, t: Translator,
                 planned: datetime | None = None) -> str:
    """The patient's record and forecast: plasma ketamine (predicted, measured), pain, relief, infusions."""
    ok = forecast.get("status") == "ok"
    events = [i.start for i in infusions] + [lv.taken_at for lv in levels] + [e.recorded_at for e in diary]
    origin = datetime.fromisoformat(forecast["origin"]) if ok else min(events, default=today - timedelta(days=30))
    due = [datetime.fromisoformat(d) if d else None for d in forecast.get("next_due", [None] * 3)] if ok else [None] * 3
    last = max([today] + events + [d for d in due if d] + ([planned] if planned else []))
    lo, hi = 0.0, _hours(last, origin) + 14 * 24
    conc = Panel(t.gettext("Ketamine in plasma"), "ng/mL")
    pain = Panel(t.gettext("Pain"), t.gettext("NRS 0-10"), top=10)
    relief = Panel(t.gettext("Relief"), t.gettext("% of baseline pain"), top=100)
    dose = Panel(t.gettext("Infusions"), "mg/h", height=90)
    if ok:
        c = forecast["curves"]
        out = np.array(c["output"])
        time = np.array(c["time_h"])
        for name, panel, scale, colour in (("ketamine", conc, 1.0, BLUE), ("s-ketamine", conc, 1.0, BLUE),
                                           ("pain_nrs", pain, 1.0, BLUE), ("relief", relief, 100.0, GREEN)):
            sel = out == name
            if sel.any():
                x, p5, p95, mid = _thin(time[sel], *(scale * np.array(c[k])[sel] for k in ("p5", "p95", "map")))
                panel.series.append(Series("band", list(x), list(p5), colour, t.gettext("90 % interval"),
                                           y2=list(p95)))
                panel.series.append(Series("line", list(x), list(mid), colour, t.gettext("predicted")))
        relief.lines.append((100 * forecast["threshold"], t.gettext("threshold %(p)s %%", p=t.number(
            100 * forecast["threshold"], 0)), GREY))
    measured = [lv for lv in levels if lv.value_ng_ml is not None and lv.analyte in ("ketamine", "s-ketamine")]
    if measured:
        conc.series.append(Series("points", [_hours(lv.taken_at, origin) for lv in measured],
                                  [lv.value_ng_ml for lv in measured], RED, t.gettext("measured")))
    conc.lines.append((100.0, t.gettext("analgesia"), GREEN))
    top = max([100.0] + [lv.value_ng_ml for lv in measured]
              + [v for s in conc.series if s.kind in ("line", "band") for v in (s.y2 or s.y) if np.isfinite(v)])
    conc.top = nice_top(top * 1.25)
    if diary:
        pain.series.append(Series("points", [_hours(e.recorded_at, origin) for e in diary], [e.nrs for e in diary],
                                  RED, t.gettext("pain diary")))
    if infusions:
        dose.series.append(Series("bars", [_hours(i.start, origin) for i in infusions],
                                  [i.rate_mg_h for i in infusions], BLUE, t.gettext("infusion"),
                                  x2=[_hours(i.end, origin) for i in infusions]))
    marks = []
    if due[1]:
        marks.append((_hours(due[1], origin), t.gettext("relief wears off %(date)s", date=t.date(due[1], "d MMM")),
                      RED))
    if planned:
        marks.append((_hours(planned, origin), t.gettext("planned %(date)s", date=t.date(planned, "d MMM")), PURPLE))
    desc = _patient_desc(t, infusions, measured, diary, due[1], planned)
    return chart([conc, pain, relief, dose], lo, hi, origin, t, t.gettext("The course over time"), desc,
                 "course-chart", now_h=_hours(today, origin), marks=marks)


def _patient_desc(t: Translator, infusions, measured, diary, due, planned) -> str:
    parts = [t.ngettext("%(num)s infusion segment", "%(num)s infusion segments", len(infusions))]
    if measured:
        parts.append(t.gettext("measured ketamine %(lo)s to %(hi)s ng/mL", lo=t.number(min(lv.value_ng_ml for lv in
                                                                                             measured)),
                               hi=t.number(max(lv.value_ng_ml for lv in measured))))
    if diary:
        parts.append(t.gettext("last pain score %(nrs)s on %(date)s", nrs=diary[-1].nrs, date=t.date(
            diary[-1].recorded_at)))
    if due:
        parts.append(t.gettext("relief predicted to wear off on %(date)s", date=t.date(due)))
    if planned:
        parts.append(t.gettext("next course planned on %(date)s", date=t.date(planned)))
    return "; ".join(parts) + "."


def plan_chart(frame, bands: dict, t: Translator, baseline_pain: float | None) -> str:
    """A simulated regimen: plasma ketamine and norketamine with the thresholds, the effect site, relief and
    pain, each with the 90 % interval of patients like this one, and the next course due."""
    run = frame.run
    origin = run.regimen.start
    time, = _thin(frame["time"].to_numpy())
    idx = np.searchsorted(frame["time"].to_numpy(), time)
    panels = []
    th = run.thresholds

    def panel(name: str | None, title: str, unit: str, colour: str, scale: float = 1.0) -> Panel | None:
        if name is None or name not in frame:
            return None
        p = Panel(title, unit)
        band = bands.get(name)
        if band is not None:
            bt, b5, b95 = _thin(band["time"].to_numpy(), band["p5"].to_numpy(), band["p95"].to_numpy())
            p.series.append(Series("band", list(bt), list(scale * b5), colour, t.gettext("90 % of patients like this"),
                                   y2=list(scale * b95)))
        p.series.append(Series("line", list(time), list(scale * frame[name].to_numpy()[idx]), colour,
                               t.gettext("typical patient")))
        panels.append(p)
        return p

    conc = panel(run.parent, t.gettext("Ketamine in plasma") if run.parent != "s-ketamine"
                 else t.gettext("S-ketamine in plasma"), "ng/mL", BLUE)
    peak = float(frame[run.parent].max())
    for key, label, colour in (("analgesia", t.gettext("analgesia"), GREEN),
                               ("psychotomimetic", t.gettext("dissociation likely"), ORANGE),
                               ("awakening", t.gettext("awakening level"), RED)):
        if key in th and th[key].value <= max(peak * 1.6, th["analgesia"].value * 1.3):
            conc.lines.append((th[key].value, label, colour))
    band = bands.get(run.parent)
    spread = float(np.nanmax(band["p95"].to_numpy())) if band is not None and len(band) else 0.0
    conc.top = max(peak * 1.3, th["analgesia"].value * 1.3, spread * 1.05)  # the interval whole, not cut off
    panel(run.metabolite, t.gettext("Norketamine in plasma"), "ng/mL", PURPLE)
    panel(run.effect, t.gettext("Effect site"), "ng/mL", TEAL)
    threshold = frame.settings["relief_threshold"]
    rp = panel("relief", t.gettext("Relief"), t.gettext("% of baseline pain"), GREEN, 100.0)
    if rp is not None:
        rp.top = 100
        rp.lines.append((100 * threshold, t.gettext("threshold %(p)s %%", p=t.number(100 * threshold, 0)), GREY))
        if baseline_pain is not None and "pain_nrs" in frame:
            pp = Panel(t.gettext("Pain"), t.gettext("NRS 0-10"), top=10)
            band = bands.get("relief")
            if band is not None:
                bt, b5, b95 = _thin(band["time"].to_numpy(), band["p5"].to_numpy(), band["p95"].to_numpy())
                pp.series.append(Series("band", list(bt), list(baseline_pain * (1 - b95)), BLUE,
                                        t.gettext("90 % of patients like this"), y2=list(baseline_pain * (1 - b5))))
            pp.series.append(Series("line", list(time), list(frame["pain_nrs"].to_numpy()[idx]), BLUE,
                                    t.gettext("typical patient")))
            panels.append(pp)
    due = [float(h) for h in frame.summary.get("next_course_due_h", []) if np.isfinite(h)]
    marks = [(h, t.gettext("next course due"), RED) for h in due]
    summary = frame.summary.iloc[0]
    desc = t.gettext("Typical patient: ketamine peaks at %(cmax)s ng/mL, analgesia threshold %(an)s ng/mL; ",
                     cmax=t.number(summary["cmax_ng_ml"], 0), an=t.number(th["analgesia"].value, 0))
    desc += (t.gettext("next course due after %(days)s days.", days=t.number(due[0] / 24, 0)) if due
             else t.gettext("relief lasts beyond the end of the chart."))
    end = float(frame["time"].iloc[-1])
    return chart(panels, 0.0, end, origin, t, t.gettext("Predicted levels and relief"), desc, "plan-chart",
                 marks=marks)
