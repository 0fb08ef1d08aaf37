"""Small, readable SVG charts written directly (no plotting library, nothing external): stacked panels over
one time axis, lines, shaded intervals, points, bars, reference lines, a "today" line, and a <title> and
<desc> for screen readers.

Time is in hours from ``origin``; with an origin the axis shows dates (each label once: days, weeks,
months or years as the span needs), without one it counts days from the first dose.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from html import escape

from ketaplan.web.i18n import Translator

WIDTH = 960
LEFT, RIGHT = 78, 24
PANEL_HEIGHT = 200
FONT = 18
"""Text size in the chart's units: 18 px on a workstation (the chart is at most WIDTH px wide), 12 px on a tablet
held upright."""
GAP = 3 * FONT + 50
"""Each panel's height beyond its plot: its title above, its date labels and its legend below."""


@dataclass
class Series:
    """One thing drawn in a panel: 'line', 'band' (y to y2), 'points' or 'bars' (x to x2 at height y)."""

    kind: str
    x: list[float]
    y: list[float]
    colour: str
    label: str
    y2: list[float] | None = None
    x2: list[float] | None = None


@dataclass
class Panel:
    title: str
    unit: str
    series: list[Series] = field(default_factory=list)
    lines: list[tuple[float, str, str]] = field(default_factory=list)
    """Horizontal reference lines: (value, label, colour)."""
    top: float | None = None
    height: int = PANEL_HEIGHT


def nice_top(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^k at or above ``value`` (at least 1)."""
    if not math.isfinite(value) or value <= 1:
        return 1.0
    exp = 10 ** math.floor(math.log10(value))
    return next(m * exp for m in (1, 2, 2.5, 5, 10) if m * exp >= value * (1 - 1e-9))


def y_ticks(top: float) -> tuple[float, list[float]]:
    """A round axis top at or above ``top`` and 4 to 6 round ticks from 0 to it."""
    step = nice_top(top / 5) if top > 5 else (1.0 if top > 2.5 else 0.5)
    top = step * math.ceil(top / step - 1e-9)
    return top, [step * i for i in range(round(top / step) + 1)]


def time_ticks(lo: float, hi: float, origin: datetime | None, t: Translator) -> list[tuple[float, str]]:
    """Tick positions (h) and labels: each label once, about 4 to 10 of them."""
    span_days = (hi - lo) / 24
    if origin is None:
        step = next(s for s in (1, 2, 7, 14, 28, 56, 91, 182, 364, 728) if span_days / s <= 10)
        first = math.ceil(lo / 24 / step) * step
        return [(d * 24.0, t.gettext("day %(n)s", n=int(d) + 1)) for d in range(int(first), int(hi / 24) + 1, step)]
    start, end = origin + timedelta(hours=lo), origin + timedelta(hours=hi)
    out: list[tuple[float, str]] = []
    if span_days <= 12:
        day = datetime(start.year, start.month, start.day) + timedelta(days=1)
        step = 1 if span_days <= 6 else 2
        while day <= end:
            out.append((day, t.date(day, "d MMM")))
            day += timedelta(days=step)
    elif span_days <= 80:
        day = datetime(start.year, start.month, start.day) + timedelta(days=(7 - start.weekday()) % 7 or 7)
        step = 7 if span_days <= 56 else 14
        while day <= end:
            out.append((day, t.date(day, "d MMM")))
            day += timedelta(days=step)
    else:
        months = max(1, math.ceil(span_days / 30.4 / 9))
        months = next(m for m in (1, 2, 3, 6, 12, 24) if m >= months)
        y, m = start.year, start.month + 1
        while True:
            y, m = y + (m - 1) // 12, (m - 1) % 12 + 1
            day = datetime(y, m, 1)
            if day > end:
                break
            if (m - 1) % months == 0:
                out.append((day, str(y) if months >= 12 else t.month(day)))
            m += 1
    return [((d - origin).total_seconds() / 3600.0, label) for d, label in out]


def chart(panels: list[Panel], lo: float, hi: float, origin: datetime | None, t: Translator, title: str, desc: str,
          chart_id: str, now_h: float | None = None, marks: list[tuple[float, str, str]] = ()) -> str:
    """The SVG markup. ``marks`` are vertical lines through every panel: (h, label, colour); ``now_h`` draws
    the "today" line."""
    hi = hi if hi > lo else lo + 24
    plot_w = WIDTH - LEFT - RIGHT
    height = sum(p.height + GAP for p in panels) + 10

    def x_of(h: float) -> float:
        return LEFT + plot_w * (min(max(h, lo), hi) - lo) / (hi - lo)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" role="img" '
             f'aria-labelledby="{chart_id}-title {chart_id}-desc" font-family="system-ui, sans-serif" '
             f'font-size="{FONT}">',
             f'<title id="{chart_id}-title">{escape(title)}</title>',
             f'<desc id="{chart_id}-desc">{escape(desc)}</desc>']
    y0 = 4
    ticks = time_ticks(lo, hi, origin, t)
    for panel in panels:
        top, yticks = y_ticks(panel.top or max([1.0] + [v for s in panel.series for v in (s.y2 or s.y)
                                                        if math.isfinite(v)] + [v * 1.05 for v, _, _ in panel.lines]))
        py = y0 + FONT + 10
        ph = panel.height

        def y_of(v: float, py=py, ph=ph, top=top) -> float:
            return py + ph - ph * min(max(v, 0.0), top) / top

        parts.append(f'<text x="{LEFT}" y="{y0 + FONT}" font-weight="600" fill="#1f2933">{escape(panel.title)}'
                     f'<tspan fill="#52606d" font-weight="400"> ({escape(panel.unit)})</tspan></text>')
        for v in yticks:
            y = y_of(v)
            parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e4e7eb"/>')
            parts.append(f'<text x="{LEFT - 8}" y="{y + FONT / 3:.1f}" text-anchor="end" fill="#3e4c59">'
                         f'{escape(t.number(v, 1))}</text>')
        for h, _ in ticks:
            parts.append(f'<line x1="{x_of(h):.1f}" x2="{x_of(h):.1f}" y1="{py}" y2="{py + ph}" stroke="#eef1f4"/>')
        for s in panel.series:
            parts.append(_series(s, x_of, y_of))
        shown = [(y_of(v), label, colour) for v, label, colour in panel.lines if v <= top]
        for y, _, colour in shown:
            parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="{colour}" '
                         f'stroke-width="1.5" stroke-dasharray="6 4"/>')
        for (_, label, colour), base in zip(shown, line_label_baselines([y for y, _, _ in shown], py, ph),
                                            strict=True):
            parts.append(f'<text x="{WIDTH - RIGHT - 4}" y="{base:.1f}" text-anchor="end" fill="{colour}"{HALO}>'
                         f'{escape(label)}</text>')
        visible = [(x_of(h), label, colour) for h, label, colour in
                   [*marks, *([(now_h, t.gettext("today"), "#0b3d5c")] if now_h is not None else [])] if lo <= h <= hi]
        for x, _, colour in visible:
            parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{py}" y2="{py + ph}" stroke="{colour}" '
                         f'stroke-width="2"/>')
        if panel is panels[0]:
            for (x, label, colour), (anchor, row) in zip(visible, mark_label_places(
                    [(x, label) for x, label, _ in visible]), strict=True):
                dx = -4 if anchor == "end" else 4
                parts.append(f'<text x="{x + dx:.1f}" y="{py + FONT + 2 + row * (FONT + 4)}" text-anchor="{anchor}" '
                             f'fill="{colour}" font-weight="600"{HALO}>{escape(label)}</text>')
        parts.append(f'<rect x="{LEFT}" y="{py}" width="{plot_w}" height="{ph}" fill="none" stroke="#9aa5b1"/>')
        for h, label in ticks:
            parts.append(f'<text x="{x_of(h):.1f}" y="{py + ph + FONT + 6}" text-anchor="middle" fill="#3e4c59">'
                         f'{escape(label)}</text>')
        legend_x = LEFT
        for s in panel.series:
            if not s.label:
                continue
            parts.append(f'<rect x="{legend_x}" y="{py + ph + 2 * FONT + 11}" width="16" height="12" fill="{s.colour}" '
                         f'opacity="{0.35 if s.kind == "band" else 1}"/>')
            parts.append(f'<text x="{legend_x + 21}" y="{py + ph + 2 * FONT + 22}" fill="#1f2933">'
                         f'{escape(s.label)}</text>')
            legend_x += 37 + text_width(s.label)
        y0 = py + ph + GAP - FONT - 10
    parts.append("</svg>")
    return "".join(parts)


HALO = ' paint-order="stroke" stroke="#fff" stroke-width="4" stroke-linejoin="round"'
"""A white outline under labels, so that no line drawn across a label makes it hard to read."""


def text_width(label: str, bold: bool = False) -> float:
    """The width of a label at :data:`FONT` (an estimate: average glyph width of a sans-serif font)."""
    return len(label) * FONT * (0.6 if bold else 0.55)


def line_label_baselines(ys: list[float], py: float, ph: float) -> list[float]:
    """Baselines of the labels of horizontal reference lines at heights ``ys`` (in the panel from ``py``, ``ph``
    high): just above each line, moved apart where lines lie closer than a line of text, and inside the panel."""
    step = FONT + 2
    order = sorted(range(len(ys)), key=lambda i: ys[i])
    base = {}
    previous = py + FONT - step  # the first label may start at the top of the panel
    for i in order:  # top to bottom: each label at least a line of text below the one above
        base[i] = previous = max(ys[i] - 5, previous + step)
    following = py + ph - 3 + step
    for i in reversed(order):  # bottom to top: none below the panel
        base[i] = following = min(base[i], following - step)
    return [base[i] for i in range(len(ys))]


def mark_label_places(marks: list[tuple[float, str]]) -> list[tuple[str, int]]:
    """For labels of vertical lines at x (left to right or not): the side of the line each is written on
    ('start': right of it, 'end': left of it, near the right edge) and its row, so that no two overlap."""
    rows: list[list[tuple[float, float]]] = []
    places: list[tuple[str, int]] = [("start", 0)] * len(marks)
    for i in sorted(range(len(marks)), key=lambda k: marks[k][0]):
        x, label = marks[i]
        w = text_width(label, bold=True) + 8
        anchor = "end" if x + w > WIDTH - RIGHT else "start"
        span = (x - w, x) if anchor == "end" else (x, x + w)
        row = next((r for r, taken in enumerate(rows) if all(span[1] <= a or span[0] >= b for a, b in taken)),
                   len(rows))
        if row == len(rows):
            rows.append([])
        rows[row].append(span)
        places[i] = (anchor, row)
    return places


def _series(s: Series, x_of, y_of) -> str:
    pts = [(x, y) for x, y in zip(s.x, s.y, strict=True) if math.isfinite(y)]
    if s.kind == "line" and pts:
        path = " ".join(f"{x_of(x):.1f},{y_of(y):.1f}" for x, y in pts)
        return f'<polyline points="{path}" fill="none" stroke="{s.colour}" stroke-width="2.2"/>'
    if s.kind == "band" and s.y2:
        upper = [(x, y) for x, y in zip(s.x, s.y2, strict=True) if math.isfinite(y)]
        path = " ".join(f"{x_of(x):.1f},{y_of(y):.1f}" for x, y in pts + upper[::-1])
        return f'<polygon points="{path}" fill="{s.colour}" opacity="0.22"/>'
    if s.kind == "points":
        return "".join(f'<circle cx="{x_of(x):.1f}" cy="{y_of(y):.1f}" r="5" fill="{s.colour}" stroke="#fff"/>'
                       for x, y in pts)
    if s.kind == "bars" and s.x2:
        return "".join(f'<rect x="{x_of(a):.1f}" y="{y_of(y):.1f}" width="{max(x_of(b) - x_of(a), 2):.1f}" '
                       f'height="{y_of(0) - y_of(y):.1f}" fill="{s.colour}" opacity="0.85"/>'
                       for a, b, y in zip(s.x, s.x2, s.y, strict=True))
    return ""
