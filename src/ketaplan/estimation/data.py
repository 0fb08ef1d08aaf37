"""A population model bound to a dataset: individuals, their observations, covariates and dose schedules.

Everything that does not depend on THETA or ETA is done once here: the dataset is checked and split
(:func:`ketaplan.nonmem.dataset.check_records`), the dose schedules are compiled for every individual at
once when the dose modifiers are fixed, and the observations are laid out on an (individuals, width)
grid. Covariates that are constant within every individual are kept one value per individual, so the
parameters are evaluated once per individual; otherwise per record, with NONMEM's rule that the record
at the end of an interval sets the parameters over it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from ketaplan.engine.schedule import Schedule
from ketaplan.engine.superposition import SuperpositionPlan
from ketaplan.errors import InputError
from ketaplan.limits import ESTIMATION_CELLS
from ketaplan.nonmem.dataset import DatasetRecords, check_records, column_map, numeric_column
from ketaplan.nonmem.expressions import compile_expressions
from ketaplan.nonmem.predpp import PredppModel, dataset_columns
from ketaplan.nonmem.random_effects import OmegaSpec, SigmaSpec, parse_omega, parse_sigma, with_named_etas
from ketaplan.nonmem.simulate import batch_schedule

MAX_OBSERVATIONS_PER_INDIVIDUAL = 100_000


@dataclass(frozen=True)
class PopulationModel:
    """A PREDPP model with THETAs, OMEGA and SIGMA: what :func:`ketaplan.estimate` estimates."""

    predpp: PredppModel
    expressions: dict  # name -> Expression (parameters, F/ALAG/R/D modifiers, SCALE), ETAs included
    omega: OmegaSpec
    sigma: SigmaSpec

    @property
    def thetas(self):
        return self.predpp.thetas

    @property
    def n_eta(self) -> int:
        return self.omega.size


def population_model(predpp: PredppModel) -> PopulationModel:
    """The population model of a parsed model file; refuses files without omega or sigma."""
    if "sigma" not in predpp.extra:
        raise InputError("MODEL sigma", None, "estimation needs the residual error, e.g. sigma: {proportional: 0.01}")
    omega, named = parse_omega(predpp.extra.get("omega"), tuple(predpp.parameters))
    sigma = parse_sigma(predpp.extra.get("sigma"), predpp.extra.get("transform"))
    parameters = with_named_etas(predpp.parameters, named) if named else predpp.parameters
    expressions = {**parameters, **{f"{k}{n}": e for (k, n), e in predpp.modifiers.items()}, "SCALE": predpp.scale}
    used = max((max(e.etas, default=0) for e in expressions.values()), default=0)
    if used > omega.size:
        raise InputError("MODEL omega", omega.size, f"the parameters use ETA({used}) but omega has "
                         f"{omega.size} variance{'s' if omega.size != 1 else ''}")
    return PopulationModel(predpp, expressions, omega, sigma)


@dataclass
class EstimationData:
    """A dataset prepared for estimation under one population model."""

    model: PopulationModel
    frame: pd.DataFrame
    records: DatasetRecords
    ids: np.ndarray
    obs_rows: np.ndarray  # (N, W) dataset rows of the observations, -1 padding
    obs_mask: np.ndarray  # (N, W)
    dv: np.ndarray  # (N, W), 0 in padding (log of DV for exponential error)
    obs_local: np.ndarray  # (N, W) position of each observation among its individual's records
    obs_time: np.ndarray  # (N, W) padding repeats the last time
    covariates: dict[str, np.ndarray]  # per individual (N,) when constant, else per row
    per_individual: bool
    schedule: Schedule | None  # compiled once when the dose modifiers depend on no THETA or ETA
    evaluate: object  # compiled expressions: f(theta (B, P) or (P,), eta (B, m), cols) -> dict
    batches: dict[bytes, Schedule] = field(default_factory=dict, repr=False)  # see schedule_of
    plans: dict[bytes, SuperpositionPlan | None] = field(default_factory=dict, repr=False)  # see plan_of

    @property
    def n_individuals(self) -> int:
        return len(self.ids)

    @property
    def n_observations(self) -> int:
        return int(self.obs_mask.sum())

    def schedule_of(self, who: np.ndarray) -> Schedule:
        """The fixed schedules of the individuals ``who`` as one batch; the last few batches are remembered,
        since an estimation asks for the same rows over and over."""
        key = np.asarray(who, dtype=np.int64).tobytes()
        if key not in self.batches:
            if len(self.batches) >= 6:
                self.batches.pop(next(iter(self.batches)))
            self.batches[key] = self.schedule.take(np.asarray(who))
        return self.batches[key]

    def at_grid(self, obs_rows: np.ndarray, obs_mask: np.ndarray, dv: np.ndarray, obs_local: np.ndarray,
                obs_time: np.ndarray) -> EstimationData:
        """The same data predicted at another grid of points (e.g. every record); the superposition plans,
        which belong to the observation grid, are not carried over."""
        return replace(self, obs_rows=obs_rows, obs_mask=obs_mask, dv=dv, obs_local=obs_local, obs_time=obs_time,
                       plans={})

    def plan_of(self, who: np.ndarray) -> SuperpositionPlan | None:
        """The superposition plan of the individuals ``who`` at their observations (see
        :mod:`ketaplan.engine.superposition`), or None when the fixed schedules have steady states or resets
        or so many doses and levels that the engine's boundary loop is faster; remembered like
        :meth:`schedule_of`."""
        if b"all" not in self.plans:
            fits = self.schedule is not None and SuperpositionPlan.suits(self.schedule, self.obs_time)
            self.plans[b"all"] = SuperpositionPlan.build(self.schedule, self.obs_time, self.obs_local) if fits \
                else None
        whole = self.plans[b"all"]
        if whole is None:
            return None
        key = np.asarray(who, dtype=np.int64).tobytes()
        if key not in self.plans:
            if len(self.plans) >= 7:
                self.plans.pop(next(k for k in self.plans if k != b"all"))
            self.plans[key] = whole.take(np.asarray(who))
        return self.plans[key]


def prepare(model: PopulationModel, data: pd.DataFrame) -> EstimationData:
    """Bind ``model`` to ``data``: checks, observations, covariates and (when possible) schedules."""
    frame = data.reset_index(drop=True)
    records = check_records(frame)
    cols = column_map(frame)
    n = records.n_rows
    mdv = numeric_column(frame, cols["MDV"], "MDV") if "MDV" in cols else np.zeros(n)
    dv_all = numeric_column(frame, cols["DV"], "DV") if "DV" in cols else np.full(n, np.nan)
    evid = records.column("evid")
    is_obs = (evid == 0) & (np.nan_to_num(mdv) == 0)
    missing = np.flatnonzero(is_obs & ~np.isfinite(dv_all))
    if len(missing):
        raise InputError(f"row {missing[0] + 1}, column DV", "missing", "an observation record (EVID 0, MDV 0) needs "
                         "a DV; set MDV 1 on records without a measurement")
    if model.sigma.kind == "exponential" and not model.sigma.log_dv:
        bad = np.flatnonzero(is_obs & (dv_all <= 0))
        if len(bad):
            raise InputError(f"row {bad[0] + 1}, column DV", float(dv_all[bad[0]]), "exponential (log) residual "
                             "error needs DV > 0 on every observation")
    rows = np.flatnonzero(is_obs)
    if len(rows) == 0:
        raise InputError("DATA", "no observations", "estimation needs observation records (EVID 0, MDV 0, a DV)")
    subject = records.subject_of(rows)
    counts = np.bincount(subject, minlength=records.n_individuals)
    width = int(counts.max())
    if width > MAX_OBSERVATIONS_PER_INDIVIDUAL:
        raise InputError("DATA", f"{width} observations in one individual", f"at most "
                         f"{MAX_OBSERVATIONS_PER_INDIVIDUAL:,} per individual")
    ESTIMATION_CELLS.check("DATA", records.n_individuals * width, f"{records.n_individuals:,} individuals with up to "
                           f"{width:,} observations each are laid out as one grid; split the dataset or thin the "
                           "observations of the individual with most")
    slot = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
    shape = (records.n_individuals, width)
    obs_rows = np.full(shape, -1)
    obs_rows[subject, slot] = rows
    mask = obs_rows >= 0
    dv = np.zeros(shape)
    dv[subject, slot] = np.log(dv_all[rows]) if model.sigma.kind == "exponential" and not model.sigma.log_dv \
        else dv_all[rows]
    last = records.starts[1:] - 1
    obs_time = np.repeat(records.time[last][:, None], width, axis=1)
    obs_time[subject, slot] = records.time[rows]
    obs_local = np.full(shape, np.iinfo(np.int64).max)
    obs_local[subject, slot] = rows - records.starts[subject]

    columns = tuple(sorted({c for e in model.expressions.values() for c in e.columns}))
    values = dataset_columns(frame, columns, "parameters")
    for name, v in values.items():
        bad = np.flatnonzero(~np.isfinite(v))
        if len(bad):
            raise InputError(f"row {bad[0] + 1}, column {name}", "missing", "the model's parameters need a number "
                             "on every row")
    first = records.starts[:-1]
    per_individual = all(_constant_within(v, records) for v in values.values())
    covariates = {k: v[first] for k, v in values.items()} if per_individual else values
    evaluate = compile_expressions({k: e.expr for k, e in model.expressions.items()}, len(model.thetas),
                                   model.n_eta, columns)
    fixed_doses = all(not e.thetas and not e.etas for (k, _n), e in model.predpp.modifiers.items())
    schedule = None
    if fixed_doses:
        mods = {key: np.asarray(evaluate(np.zeros(len(model.thetas)), np.zeros((n, model.n_eta)), values)
                                [f"{key[0]}{key[1]}"]) for key in model.predpp.modifiers}
        schedule = batch_schedule(records, model.predpp, mods)
    return EstimationData(model, frame, records, records.ids, obs_rows, mask, dv, obs_local, obs_time, covariates,
                          per_individual, schedule, evaluate)


def _constant_within(values: np.ndarray, records: DatasetRecords) -> bool:
    changes = values[1:] != values[:-1]
    changes &= records.local[1:] != 0
    return not changes.any()
