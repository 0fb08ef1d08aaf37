"""Predictions for published observations across virtual patients.

Each regimen is simulated once for all the observations that use it, with the population simulator and the
default model for the drug form: covariates of adults with neuropathic pain and the model's between-patient
variability (the studies' own patients were not retrievable). Levels are sampled on a grid dense enough for
peaks (every minute for 2 h, every 10 minutes to 12 h, hourly after) and each observation's metric is
computed per virtual patient; the pain-score difference between trial arms comes from the percentiles of
predicted relief.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ketaplan.models.observed import Observation, Simulation, Study
from ketaplan.population.api import simulate_population
from ketaplan.population.run import PopulationResult
from ketaplan.regimen.courses import administrations
from ketaplan.regimen.text import parse_regimen
from ketaplan.simulation.run import analyte_outputs, relief_layer

RELIEF_PERCENTILES = tuple(float(q) for q in range(1, 100, 2))
"""Relief percentiles whose average is the mean relief (midpoint rule over 50 equal probability slices)."""


@dataclass(frozen=True)
class Prediction:
    """One observation's prediction: the statistic over virtual patients and their 5-95 % range."""

    value: float
    low: float | None
    high: float | None
    fraction_meeting: float | None = None
    """For a bound (``below`` / ``at_least``), the fraction of virtual patients that meet it."""


@dataclass(frozen=True)
class Curve:
    """Percentiles over virtual patients of one output under one regimen, for figures."""

    regimen: str
    output: str
    time: np.ndarray
    p5: np.ndarray
    p50: np.ndarray
    p95: np.ndarray


def sample_grid(until: float, extra: Iterable[float] = ()) -> np.ndarray:
    """Sampling times (h): every minute to 2 h, every 10 min to 12 h, hourly to ``until``, plus ``extra``."""
    pieces = [np.arange(0.0, min(until, 2.0), 1 / 60), np.arange(2.0, min(until, 12.0), 1 / 6),
              np.arange(12.0, until, 1.0), np.array([until, *extra])]
    grid = np.unique(np.round(np.concatenate(pieces), 6))
    return grid[(grid >= 0) & (grid <= until)]


def _needed_times(sims: list[Simulation]) -> list[float]:
    times = []
    for s in sims:
        times += [x for x in (s.time, s.reference_time) if x is not None]
        times += list(s.window or ())
    return times


@dataclass
class RegimenRun:
    """Sampled levels of every virtual patient under one regimen."""

    regimen: str
    times: np.ndarray
    levels: dict[str, np.ndarray]
    """(patients, times) per output name: 'ketamine' and 'norketamine' (plasma, ng/mL)."""
    result: PopulationResult | None = None


def run_regimen(regimen: str, sims: list[Simulation], n: int, seed: int, model: str | None = None) -> RegimenRun:
    """Simulate ``n`` virtual patients under ``regimen`` and sample the levels the observations need.

    ``model``: a PK model id instead of the default for the drug form (e.g. to compare clearances).
    """
    reg = parse_regimen(regimen)
    last_dose_end = max(a.end for a in administrations(reg.resolve(70.0)))
    # at least 12 h past the last dose: the population's relief summary needs a few grid points after it
    until = max([*_needed_times(sims), last_dose_end + 12.0]) + 1.0
    with warnings.catch_warnings():  # one column per sampling time: pandas warns about the many inserts
        warnings.simplefilter("ignore", pd.errors.PerformanceWarning)
        if any(s.metric == "nrs_difference" for s in sims):
            result = simulate_population(reg, n, seed=seed, model=model, until=until,
                                         percentiles=RELIEF_PERCENTILES, sample_times=[float(s.time) for s in sims])
            return RegimenRun(regimen, np.array([]), {}, result)
        times = sample_grid(until, _needed_times(sims))
        result = simulate_population(reg, n, seed=seed, model=model, until=until, sample_times=times.tolist())
    parent, metabolite, _ = analyte_outputs(result.pspec.spec)
    levels = {}
    for label, name in (("ketamine", parent), ("norketamine", metabolite)):
        if name is not None:
            cols = [f"{name}_pred_{t:g}h" for t in times]
            levels[label] = result.subjects[cols].to_numpy(dtype=float)
    return RegimenRun(regimen, times, levels, result)


def _index(times: np.ndarray, t: float) -> int:
    i = int(np.argmin(np.abs(times - t)))
    if abs(times[i] - t) > 1e-6:
        raise ValueError(f"time {t:g} h is not on the sampling grid")
    return i


def per_patient(run: RegimenRun, sim: Simulation) -> np.ndarray:
    """The metric of ``sim`` for every virtual patient."""
    t, c = run.times, run.levels[sim.output]
    if sim.metric in ("cmax", "tmax", "auc"):
        lo, hi = (_index(t, x) for x in sim.window)
        tw, cw = t[lo:hi + 1], c[:, lo:hi + 1]
        if sim.metric == "cmax":
            values = cw.max(axis=1)
        elif sim.metric == "tmax":
            values = tw[np.argmax(cw, axis=1)]
        else:
            values = np.trapezoid(cw, tw, axis=1)
    elif sim.metric == "level":
        values = c[:, _index(t, sim.time)]
    elif sim.metric == "ratio":
        i = _index(t, sim.time)
        values = c[:, i] / run.levels[sim.reference_output][:, i]
    elif sim.metric == "plateau_fraction":
        values = c[:, _index(t, sim.time)] / c[:, _index(t, sim.reference_time)]
    else:
        raise ValueError(f"metric {sim.metric} is not computed per patient")
    return values / sim.per_mg if sim.per_mg else values


def summarise(obs: Observation, values: np.ndarray) -> Prediction:
    """The observation's statistic over virtual patients, with the 5th and 95th percentiles."""
    if obs.statistic == "geometric_mean":
        value = float(np.exp(np.mean(np.log(values))))
    elif obs.statistic in ("mean", "derived"):
        value = float(np.mean(values))
    else:
        value = float(np.median(values))
    fraction = None
    if obs.criterion == "below":
        fraction = float(np.mean(values < obs.value))
    elif obs.criterion == "at_least":
        fraction = float(np.mean(values >= obs.value))
    low, high = np.percentile(values, [5, 95])
    return Prediction(value, float(low), float(high), fraction)


def nrs_difference(run: RegimenRun, time: float) -> float:
    """Expected NRS on drug minus without drug at ``time``: -baseline x P(response) x mean relief.

    The mean relief of all virtual patients (responders or not) at ``time`` is the average of 50 evenly
    spaced percentiles, interpolated between the band times; whether a patient responds is independent of
    their relief, so the expected relief is P(response) x that mean.
    """
    spec = run.result.pspec.spec
    layer = relief_layer(spec)
    band = run.result.bands["relief"]
    mean_relief = band[[f"p{q:g}" for q in RELIEF_PERCENTILES]].to_numpy().mean(axis=1)
    relief = float(np.interp(time, band["time"].to_numpy(), mean_relief))
    baseline = spec.parameters[layer.baseline].value
    p = spec.parameters[layer.p_response].value
    return -baseline * p * relief


def nrs_difference_curve(run: RegimenRun) -> tuple[np.ndarray, np.ndarray]:
    """Times (h) and expected NRS difference over the whole band, for figures."""
    t = run.result.bands["relief"]["time"].to_numpy()
    return t, np.array([nrs_difference(run, x) for x in t])


def curves(run: RegimenRun) -> list[Curve]:
    """5th, 50th and 95th percentiles over virtual patients of each sampled output."""
    out = []
    for name, c in run.levels.items():
        p5, p50, p95 = np.percentile(c, [5, 50, 95], axis=0)
        out.append(Curve(run.regimen, name, run.times, p5, p50, p95))
    return out


def runs_for(study: Study, n: int, seed: int, model: str | None = None,
             only: Iterable[str] | None = None) -> dict[str, RegimenRun]:
    """One population run per regimen of the study (of the observations named in ``only``, if given)."""
    by_regimen: dict[str, list[Simulation]] = {}
    for obs in study.observations:
        if only is None or obs.id in only:
            by_regimen.setdefault(obs.simulate.regimen, []).append(obs.simulate)
    return {reg: run_regimen(reg, sims, n, seed, model) for reg, sims in by_regimen.items()}
