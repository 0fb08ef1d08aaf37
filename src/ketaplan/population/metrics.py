"""Per-subject summary metrics and histogram counts of one simulated slice of a population.

Target attainment: at least ``window_fraction`` of the dosing time spent, while the doses run, with
plasma levels above the analgesic threshold and below the psychotomimetic one (thresholds from the
model library, with sources).
Relief (responders only; whether a virtual patient responds is a Bernoulli draw with the model's
P_RESPONSE): days from the end of a course until predicted relief falls below the relief threshold,
looked for until the next course starts (or the horizon); when it has not fallen by then the value is
that lower bound and the ``..._censored`` flag is set.
"""

from __future__ import annotations

import numpy as np

from ketaplan.engine.pd import hill
from ketaplan.models.thresholds import thresholds_for
from ketaplan.population.covariates import STREAM_RESPONSE, block_uniforms
from ketaplan.population.model_run import PopulationSpec, SliceValues
from ketaplan.population.stream import Binning, Histograms
from ketaplan.population.variability import add_residual_error


def trapezoid_weights(t: np.ndarray) -> np.ndarray:
    """Weights w such that c @ w is the trapezoidal integral of c over t."""
    dt = np.diff(t)
    w = np.zeros_like(t)
    w[:-1] += dt / 2
    w[1:] += dt / 2
    return w


def hours_above(t: np.ndarray, c: np.ndarray, level: float, inside: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hours with c (S, T) above ``level``, in all and within the grid intervals marked ``inside``.

    Linear interpolation inside grid intervals, as :func:`ketaplan.simulation.course_levels.time_above_batch`, from the
    runs of grid points above the level and the intervals where c crosses it (a few per course), not from a
    pass per interval: whole intervals of a run add up to a clock's difference between its ends.
    """
    s, n = c.shape
    padded = np.zeros((s, n + 2), dtype=bool)
    np.greater(c, level, out=padded[:, 1:-1])
    rows, change = np.nonzero(padded[:, 1:] != padded[:, :-1])  # per row: start, end + 1, start, end + 1, ...
    run_rows, first, last = rows[0::2], change[0::2], change[1::2] - 1
    cross_rows = np.concatenate([run_rows[first > 0], run_rows[last < n - 1]])
    col = np.concatenate([first[first > 0] - 1, last[last < n - 1]])  # the crossing lies in (t[col], t[col + 1])
    a, b = c[cross_rows, col] - level, c[cross_rows, col + 1] - level
    part = np.where(a > 0, a / (a - b), b / (b - a))
    dt = np.diff(t)
    dt_in = np.where(inside, dt, 0.0)
    totals = []
    for clock, width in ((t, dt), (np.concatenate([[0.0], np.cumsum(dt_in)]), dt_in)):
        whole = np.bincount(run_rows, clock[last] - clock[first], s)
        totals.append(whole + np.bincount(cross_rows, part * width[col], s))
    return totals[0], totals[1]


def relief_window(t: np.ndarray, end: float, until: float) -> tuple[int, int]:
    """Grid columns lo..hi-1 searched for the end of relief after a course ending at ``end``."""
    return int(np.searchsorted(t, end)), int(np.searchsorted(t, until, side="right"))


def relief_days(t: np.ndarray, relief: np.ndarray, end: float, until: float, threshold: float
                ) -> tuple[np.ndarray, np.ndarray]:
    """Days from ``end`` until relief falls below ``threshold`` after its peak, searched up to ``until``.

    Returns the days and a censored flag: 0 days if relief does not reach the threshold between ``end``
    and ``until``; (until - end) days and censored=True if it is still above the threshold at ``until``.
    The crossing is interpolated linearly between grid times.
    """
    lo, hi = relief_window(t, end, until)
    window = relief[:, lo:hi]
    if window.shape[1] == 0:
        return np.zeros(len(relief)), np.zeros(len(relief), dtype=bool)
    tw = t[lo:hi]
    peak = np.argmax(window, axis=1)
    below = (window < threshold) & (np.arange(window.shape[1])[None, :] > peak[:, None])
    found = below.any(axis=1)
    j = np.maximum(np.argmax(below, axis=1), 1)
    rows = np.arange(len(window))
    r0, r1 = window[rows, j - 1], window[rows, j]
    frac = np.clip((r0 - threshold) / np.where(r0 > r1, r0 - r1, 1.0), 0.0, 1.0)
    crossing = tw[j - 1] + frac * (tw[j] - tw[j - 1])
    days = np.where(found, (crossing - end) / 24.0, (until - end) / 24.0)
    never = window[rows, peak] < threshold
    return np.where(never, 0.0, days), ~found & ~never


def response_draws(pspec: PopulationSpec, start: int, stop: int) -> np.ndarray:
    """Uniform numbers deciding who responds (same per subject whatever the chunking)."""
    return block_uniforms(pspec.seed, STREAM_RESPONSE, start, stop, 1)[:, 0]


Columns = dict[str, np.ndarray]
"""Per-subject results: one array per column, one value per subject (a DataFrame is built once, at the end)."""


def subject_metrics(pspec: PopulationSpec, sv: SliceValues, scale: float = 1.0,
                    histograms: Histograms | None = None) -> Columns:
    """One value per subject and column; with ``histograms`` the outputs at the band times are added to them.

    ``scale`` multiplies every dose (the PK is linear): the regimen search uses it to evaluate several
    rates from one simulation.
    """
    t = pspec.times
    c = _scaled(sv, sv.parent, scale)
    th = thresholds_for(pspec.spec.drug)
    courses = pspec.courses
    dosing_hours = sum(a.end - a.start for course in courses for a in course.administrations)
    inside = np.zeros(len(t) - 1, dtype=bool)  # grid intervals while a dose runs (the grid holds starts/ends)
    for course in courses:
        for a in course.administrations:
            inside |= (t[:-1] >= a.start) & (t[1:] <= a.end)
    cmax = c.max(axis=1)
    above_a, in_a = hours_above(t, c, th["analgesia"].value, inside)
    above_p, in_p = np.zeros(len(c)), np.zeros(len(c))
    reach = np.flatnonzero(cmax > th["psychotomimetic"].value)  # the others spend 0 h above it
    above_p[reach], in_p[reach] = hours_above(t, c[reach], th["psychotomimetic"].value, inside)
    in_window = in_a - in_p
    stop = sv.start + len(c)
    cov = sv.covariates
    rows = {
        "subject": np.arange(sv.start, stop), "weight": cov.weight, "age": cov.age, "sex": cov.sex,
        "height": cov.height, "cmax_ng_ml": cmax, "auc_ng_h_ml": c @ trapezoid_weights(t),
        "hours_above_analgesia": above_a, "hours_above_psychotomimetic": above_p, "hours_in_window": in_window,
        "target_attained": in_window >= pspec.window_fraction * max(dosing_hours, 1e-9),
        "psychotomimetic": above_p > 0,
    }
    band = pspec.band_index
    if histograms is not None:
        histograms.add(sv.parent, c[:, band], Binning.concentration())
    for name in (sv.metabolite, sv.effect):
        if name:
            values = _scaled(sv, name, scale)
            if histograms is not None:
                histograms.add(name, values[:, band], Binning.concentration())
            if name == sv.metabolite:
                rows["norketamine_cmax_ng_ml"] = values.max(axis=1)
                rows["norketamine_auc_ng_h_ml"] = values @ trapezoid_weights(t)
    _observation_columns(rows, pspec, sv, scale)
    if sv.relief is not None:
        cols = relief_grid(t, courses, band)
        relief = _relief(sv, scale, cols)
        rows["responder"] = response_draws(pspec, sv.start, stop) < _param(sv, sv.relief.p_response)[:, 0]
        _relief_columns(rows, t[cols], relief, courses, pspec.relief_threshold)
        if histograms is not None:
            histograms.add("relief", relief[:, np.searchsorted(cols, band)], Binning.fraction())
    return rows


def relief_grid(t: np.ndarray, courses, band: np.ndarray) -> np.ndarray:
    """The grid columns where relief is read: the band times, the end of course 1 and each course's search
    window (not the doses' own time, about half the grid)."""
    cols = [band, [min(int(np.searchsorted(t, courses[0].end)), len(t) - 1)]]
    for k, course in enumerate(courses):
        until = courses[k + 1].start if k + 1 < len(courses) else t[-1]
        cols.append(np.arange(*relief_window(t, course.end, max(until, course.end))))
    return np.unique(np.concatenate(cols).astype(int))


def _scaled(sv: SliceValues, name: str, scale: float) -> np.ndarray:
    """An output (S, T) for doses times ``scale`` (a view when the scale is 1)."""
    return sv.output(name) * scale if scale != 1.0 else sv.output(name)


def _observation_columns(rows: Columns, pspec: PopulationSpec, sv: SliceValues, scale: float) -> None:
    """Predicted and observed (with residual error) plasma levels at the sampling times."""
    if not pspec.sample_times:
        return
    idx = np.searchsorted(pspec.times, pspec.sample_times)
    for k, name in enumerate(n for n in (sv.parent, sv.metabolite) if n):
        pred = sv.output(name)[:, idx] * scale
        obs = add_residual_error(pspec.spec, name, pred, pspec.seed, sv.start, k)
        for j, t in enumerate(pspec.sample_times):
            rows[f"{name}_pred_{t:g}h"] = pred[:, j]
            rows[f"{name}_obs_{t:g}h"] = obs[:, j]


def _relief(sv: SliceValues, scale: float, cols: np.ndarray) -> np.ndarray:
    """Relief (S, len(cols)) at the grid columns ``cols``."""
    layer = sv.relief
    ce = sv.output(layer.input)[:, cols]
    if scale != 1.0:
        ce *= scale
    relief = hill(ce, _param(sv, layer.c50, cols), _param(sv, layer.gamma, cols))
    relief *= _param(sv, layer.emax, cols)
    return relief


def _relief_columns(rows: Columns, t: np.ndarray, relief: np.ndarray, courses, threshold: float) -> None:
    end_index = min(int(np.searchsorted(t, courses[0].end)), len(t) - 1)  # the grid holds each dose's end
    rows["relief_at_end"] = relief[:, end_index]
    maintained = np.ones(len(relief), dtype=bool)
    for k, course in enumerate(courses):
        until = courses[k + 1].start if k + 1 < len(courses) else t[-1]
        days, censored = relief_days(t, relief, course.end, max(until, course.end), threshold)
        if k == 0:
            rows["relief_days_first"] = days
            rows["relief_first_censored"] = censored
        if k + 1 < len(courses):
            maintained &= censored
    if len(courses) > 1:
        rows["relief_maintained"] = maintained


def _param(sv: SliceValues, ref, cols: np.ndarray | slice = slice(None)) -> np.ndarray:
    """A parameter as (S, 1), or (S, len(cols)) at grid columns ``cols`` when it changes from course to course."""
    if isinstance(ref, str) and sv.course_builts is not None:
        per_course = np.stack([np.asarray(b.params[ref], dtype=float) for b in sv.course_builts], axis=1)
        return per_course[:, sv.course_of_time[cols]]
    v = sv.built.params[ref] if isinstance(ref, str) else np.full(sv.built.n_subjects, float(ref))
    return np.asarray(v, dtype=float).reshape(-1, 1)
