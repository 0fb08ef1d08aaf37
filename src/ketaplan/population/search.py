"""Regimen search: the infusion rate, duration and retreatment interval that maximise target attainment.

Every candidate is evaluated on the same virtual patients (common random numbers), so differences
between candidates are not sampling noise between populations. The PK is linear in dose, so each
(duration, interval) pair is simulated once at 1 mg/h (or 1 mg/kg/h) and every rate is a scaling of
it; relief and thresholds are then applied to the scaled levels.

Feasible candidates keep the psychotomimetic risk (fraction of patients ever above the psychotomimetic
threshold) at or below a cap, for repeat courses keep relief above the relief threshold until the next
course in at least a chosen fraction of responders, and raise no dose warning (for instance long courses
repeated within the liver-injury window) unless warnings are allowed. Among them the highest probability of target
attainment wins; ties go to the longer interval (fewer admissions), then the lower dose per course.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import product

import numpy as np
import pandas as pd

from ketaplan.errors import InputError
from ketaplan.models.spec import ModelSpec
from ketaplan.population.metrics import Columns, subject_metrics
from ketaplan.population.model_run import PopulationSpec, make_spec, simulate_slice
from ketaplan.population.run import chunk_ranges
from ketaplan.population.work import Work, check_candidates, check_patients, check_points
from ketaplan.regimen.events import Regimen


@dataclass(frozen=True)
class SearchSpace:
    """Candidate IV infusion regimens: every combination of rate, duration and interval."""

    rates: tuple[float, ...]
    durations_h: tuple[float, ...]
    intervals_h: tuple[float, ...]
    courses: int = 4
    per_kg: bool = False
    drug: str = "racemic"

    def __post_init__(self) -> None:
        for name, values in (("--rates", self.rates), ("--durations", self.durations_h),
                             ("--intervals", self.intervals_h)):
            if not values or any(not np.isfinite(v) or v <= 0 for v in values):
                raise InputError(name, list(values), "give one or more values above 0")
        if self.courses < 1:
            raise InputError("--courses", self.courses, "at least 1 course")
        check_candidates(len(self.rates) * len(self.durations_h) * len(self.intervals_h))
        for d, i in product(self.durations_h, self.intervals_h):
            if self.courses > 1 and i <= d:
                raise InputError("--intervals", f"{i / 24:g} d", f"each interval must be longer than the infusion "
                                                                   f"({d / 24:g} d)")

    @property
    def rate_unit(self) -> str:
        return "mg/kg/h" if self.per_kg else "mg/h"

    def regimen(self, rate: float, duration_h: float, interval_h: float) -> Regimen:
        """The candidate as a Regimen (built from its regimen-language text)."""
        from ketaplan.regimen.text import parse_regimen

        return parse_regimen(self.text(rate, duration_h, interval_h))

    def text(self, rate: float, duration_h: float, interval_h: float) -> str:
        """The candidate in the regimen language, e.g. '20 mg/h IV for 5 d every 11 weeks x 4'."""
        form = "S-ketamine " if self.drug == "s-ketamine" else ""
        text = f"{form}{rate:g} {self.rate_unit} IV for {_duration_text(duration_h)}"
        if self.courses > 1:
            text += f" every {_interval_text(interval_h)} x {self.courses}"
        return text


def _duration_text(hours: float) -> str:
    return f"{hours / 24:g} d" if hours % 24 == 0 else f"{hours:g} h"


def _interval_text(hours: float) -> str:
    if hours % 168 == 0:
        return f"{hours / 168:g} weeks"
    return f"{hours / 24:g} d" if hours % 24 == 0 else f"{hours:g} h"


@dataclass(frozen=True)
class SearchCriteria:
    """Constraints and definitions of the search."""

    psychotomimetic_cap: float = 0.10
    maintained_fraction: float = 0.25
    relief_threshold: float = 0.3
    window_fraction: float = 0.8
    allow_warnings: bool = False

    def __post_init__(self) -> None:
        for name, v in (("--psychotomimetic-cap", self.psychotomimetic_cap), ("--maintained", self.maintained_fraction),
                        ("--relief-threshold", self.relief_threshold), ("--window-fraction", self.window_fraction)):
            if not 0 <= v <= 1:
                raise InputError(name, v, "a fraction between 0 and 1")


@dataclass
class SearchResult:
    """The trade-off table (one row per candidate, best first) and the chosen candidate (or None)."""

    table: pd.DataFrame
    chosen: pd.Series | None
    space: SearchSpace
    criteria: SearchCriteria
    n: int

    @property
    def chosen_text(self) -> str | None:
        return None if self.chosen is None else str(self.chosen["regimen"])


def search_regimens(space: SearchSpace, criteria: SearchCriteria, spec: ModelSpec, n: int = 2000, seed: int = 1,
                    chunk: int = 2000, on_step: Callable[[int, int], None] | None = None,
                    screen: Callable[[Regimen], list[str]] | None = None,
                    before_run: Callable[[Work, Callable[[], float]], None] | None = None) -> SearchResult:
    """Evaluate every candidate on the same ``n`` virtual patients and choose the best feasible one.

    ``screen`` (given by the planning layer) returns the dose warnings of a candidate regimen; unless
    ``criteria.allow_warnings`` a candidate with warnings is not feasible. ``before_run(work, estimate)`` is
    called once the work is sized and before any candidate is simulated; ``estimate()`` times a pilot chunk
    and returns the seconds the whole search should take here (the command line prints it and may refuse).
    """
    if n < 10:
        raise InputError("--n", n, "at least 10 virtual patients per candidate")
    check_patients(n, None, chunk)
    pairs = list(product(space.durations_h, space.intervals_h))
    pspecs = [make_spec(space.regimen(1.0, duration, interval), spec, n, seed,
                        relief_threshold=criteria.relief_threshold, window_fraction=criteria.window_fraction)
              for duration, interval in pairs]
    work = Work(n, max(len(p.times) for p in pspecs), len(pairs))
    check_points("search", work)
    if before_run is not None:
        before_run(work, lambda: estimate_search_seconds(pspecs, space.rates, n))
    rows = []
    for step, ((duration, interval), pspec) in enumerate(zip(pairs, pspecs, strict=True), start=1):
        sums = {rate: _Tally() for rate in space.rates}
        for a, b in chunk_ranges(n, chunk):
            sv = simulate_slice(pspec, a, b)
            for rate in space.rates:
                sums[rate].add(subject_metrics(pspec, sv, scale=rate))
        for rate in space.rates:
            warnings = screen(space.regimen(rate, duration, interval)) if screen else []
            rows.append({"regimen": space.text(rate, duration, interval), "rate": rate, "rate_unit": space.rate_unit,
                         "duration_d": duration / 24, "interval_weeks": interval / 168,
                         "dose_per_course_mg": rate * duration if not space.per_kg else np.nan,
                         **sums[rate].summary(space.courses > 1),
                         "dose_warnings": "; ".join(dict.fromkeys(warnings))})
        if on_step:
            on_step(step, len(pairs))
    table = pd.DataFrame(rows)
    table["feasible"] = table["psychotomimetic_risk"] <= criteria.psychotomimetic_cap
    if not criteria.allow_warnings:
        table["feasible"] &= table["dose_warnings"] == ""
    if space.courses > 1:
        table["feasible"] &= table["relief_maintained"].fillna(0.0) >= criteria.maintained_fraction
    table = table.sort_values(["feasible", "pta", "interval_weeks", "rate"], ascending=[False, False, False, True],
                              kind="mergesort", ignore_index=True)
    chosen = table.iloc[0] if bool(table["feasible"].iloc[0]) else None
    return SearchResult(table, chosen, space, criteria, n)


class _Tally:
    """Per-candidate running sums over chunks."""

    def __init__(self) -> None:
        self.parts: list[Columns] = []

    def add(self, subjects: Columns) -> None:
        keep = ["target_attained", "psychotomimetic", "cmax_ng_ml"]
        keep += [c for c in ("responder", "relief_days_first", "relief_first_censored", "relief_maintained")
                 if c in subjects]
        self.parts.append({name: subjects[name] for name in keep})

    def summary(self, repeat: bool) -> dict:
        s = pd.DataFrame({name: np.concatenate([p[name] for p in self.parts]) for name in self.parts[0]})
        n = len(s)
        pta = float(s["target_attained"].mean())
        out = {"pta": pta, "pta_se": float(np.sqrt(pta * (1 - pta) / n)),
               "psychotomimetic_risk": float(s["psychotomimetic"].mean()),
               "cmax_median_ng_ml": float(s["cmax_ng_ml"].median())}
        if "responder" in s:
            resp = s[s["responder"]]
            out["responders"] = float(s["responder"].mean())
            days = np.where(resp["relief_first_censored"], np.inf, resp["relief_days_first"])
            out["relief_days_median"] = float(np.percentile(days, 50, method="inverted_cdf")) if len(days) else np.nan
            out["relief_maintained"] = (float(resp["relief_maintained"].mean())
                                        if repeat and len(resp) and "relief_maintained" in resp else np.nan)
        return out


def split_values(text: str | Sequence[str], field: str) -> list[str]:
    """'10,15,20 mg/h' or '10 mg/h, 15 mg/h' -> ['10 mg/h', '15 mg/h', '20 mg/h'] (a trailing unit applies to bare
    numbers)."""
    items = [x.strip() for x in (text.split(",") if isinstance(text, str) else text) if x.strip()]
    if not items:
        raise InputError(field, text, "give one or more comma-separated values with a unit, e.g. '10,15,20 mg/h'")
    parts = items[-1].split(None, 1)
    unit = parts[1] if len(parts) == 2 else ""
    return [f"{item} {unit}" if _is_number(item) else item for item in items]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


PILOT_POINTS = 200_000
"""Grid values (patients x times) of the pilot chunk that times a search (well under a second)."""


def estimate_search_seconds(pspecs: Sequence[PopulationSpec], rates: Sequence[float], n: int) -> float:
    """Seconds a search should take here: a pilot chunk of the first duration-interval pair simulated and
    summarised at every rate, as the search does it, scaled to ``n`` patients and every pair."""
    pspec = pspecs[0]
    size = max(1, min(n, PILOT_POINTS // max(len(pspec.times), 1)))
    start = time.perf_counter()
    sv = simulate_slice(pspec, 0, size)
    for rate in rates:
        subject_metrics(pspec, sv, scale=rate)
    return (time.perf_counter() - start) / size * n * len(pspecs)
