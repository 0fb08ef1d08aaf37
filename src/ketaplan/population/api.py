"""The Python entry points of virtual populations: ``simulate_population`` and ``search``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from ketaplan.errors import InputError
from ketaplan.models.spec import ModelSpec
from ketaplan.population.covariates import read_covariates
from ketaplan.population.model_run import PopulationSpec, make_spec
from ketaplan.population.run import DEFAULT_PERCENTILES, PopulationResult, chunk_size, run_population
from ketaplan.population.search import SearchCriteria, SearchResult, SearchSpace, search_regimens, split_values
from ketaplan.population.work import Work, check_patients, check_points
from ketaplan.regimen.events import Regimen
from ketaplan.regimen.text import load_regimen
from ketaplan.regimen.units import Kind, parse, parse_dose
from ketaplan.simulation.run import check_overrides, model_for


def simulate_population(
    regimen: str | Regimen,
    n: int = 10_000,
    *,
    seed: int = 1,
    model: str | ModelSpec | None = None,
    covariates: str | Path | pd.DataFrame | None = None,
    percentiles: Sequence[float] = DEFAULT_PERCENTILES,
    relief_threshold: float = 0.3,
    window_fraction: float = 0.8,
    until: float | None = None,
    overrides: dict[str, float] | None = None,
    sample_times: Sequence[float] = (),
    effect_site: bool = False,
    workers: int | None = None,
    scheduler: str | None = None,
    chunk: int | None = None,
    on_chunk: Callable[[int, int], None] | None = None,
    before_run: Callable[[PopulationSpec], None] | None = None,
) -> PopulationResult:
    """Simulate ``n`` virtual patients under ``regimen`` and summarise them.

    Returns a :class:`PopulationResult`: ``.subjects`` (one row per virtual patient: covariates, Cmax,
    AUC, hours above the thresholds, target attained, responder, relief duration), ``.bands``
    (percentile bands over time per output), ``.summary`` (probability of target attainment,
    psychotomimetic risk, responder fraction, relief duration). The same ``seed`` gives the same
    result whatever ``chunk``, ``workers`` or ``scheduler``. ``until`` is the horizon in hours.
    ``sample_times`` (h) adds predicted and observed (model residual error) plasma levels per patient;
    ``effect_site`` adds the effect-site percentile band. ``before_run(pspec)`` is called once the population
    is specified and sized, before any patient is simulated (the command line estimates the time there and
    may refuse a large run without --yes).
    """
    chunk = chunk_size(n, workers, chunk, scheduler)
    check_patients(n, workers, chunk)
    reg = load_regimen(regimen) if isinstance(regimen, str) else regimen
    spec = model_for(reg, model)
    table = None
    if covariates is not None:
        table = covariates if isinstance(covariates, pd.DataFrame) else read_covariates(covariates)
        if len(table) == 0:
            raise InputError("--covariates", str(covariates), "the table has no rows")
    for name, value in (("--relief-threshold", relief_threshold), ("--window-fraction", window_fraction)):
        if not 0 <= value <= 1:
            raise InputError(name, value, "a fraction between 0 and 1")
    if until is not None and until <= 0:
        raise InputError("--until", until, "the horizon must be longer than 0 h")
    check_overrides(spec, overrides)
    pspec = make_spec(reg, spec, n, seed, horizon=until, relief_threshold=relief_threshold,
                      window_fraction=window_fraction, covariate_table=table, overrides=dict(overrides or {}),
                      sample_times=tuple(sample_times), effect_site=effect_site)
    check_points("population", Work(pspec.n, len(pspec.times)))
    if before_run is not None:
        before_run(pspec)
    return run_population(pspec, chunk=chunk, percentiles=percentiles, workers=workers, scheduler=scheduler,
                          on_chunk=on_chunk)


def search(
    rates: str | Sequence[str],
    durations: str | Sequence[str],
    intervals: str | Sequence[str],
    *,
    courses: int = 4,
    drug: str = "racemic",
    model: str | ModelSpec | None = None,
    psychotomimetic_cap: float = 0.10,
    maintained_fraction: float = 0.25,
    relief_threshold: float = 0.3,
    window_fraction: float = 0.8,
    n: int = 2000,
    seed: int = 1,
    allow_warnings: bool = False,
    screen: Callable[[Regimen], list[str]] | None = None,
    on_step: Callable[[int, int], None] | None = None,
    before_run: Callable | None = None,
) -> SearchResult:
    """Search IV infusion regimens: e.g. ``search("10,15,20,25 mg/h", "3,5,7 d", "4,8,11 weeks")``.

    Rates are all absolute (mg/h) or all per kg (mg/kg/h); every candidate is evaluated on the same
    ``n`` virtual patients. ``screen(regimen)`` returns a candidate's dose warnings (the command line
    passes the planning layer's checks); ``before_run(work, estimate)`` sees the sized work before anything is
    simulated. See :mod:`ketaplan.population.search` for the criteria.
    """
    doses = [parse_dose(x, Kind.RATE, "--rates") for x in split_values(rates, "--rates")]
    if len({d.per_kg for d in doses}) > 1:
        raise InputError("--rates", rates, "give all rates per kg (mg/kg/h) or all absolute (mg/h), not a mix")
    if drug not in ("racemic", "s-ketamine"):
        raise InputError("--drug", drug, "racemic or s-ketamine")
    space = SearchSpace(tuple(d.value for d in doses),
                        tuple(parse(x, Kind.DURATION, "--durations") for x in split_values(durations, "--durations")),
                        tuple(parse(x, Kind.DURATION, "--intervals") for x in split_values(intervals, "--intervals")),
                        courses, doses[0].per_kg, drug)
    criteria = SearchCriteria(psychotomimetic_cap, maintained_fraction, relief_threshold, window_fraction,
                              allow_warnings)
    spec = model_for(space.regimen(space.rates[0], space.durations_h[0], space.intervals_h[0]), model)
    return search_regimens(space, criteria, spec, n=n, seed=seed, on_step=on_step, screen=screen,
                           before_run=before_run)
