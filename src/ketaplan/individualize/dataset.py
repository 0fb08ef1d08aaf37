"""From a NONMEM-style dataset to one estimation problem per individual.

Columns (case-insensitive): the standard ID, TIME (h), AMT (mg), RATE, DUR, EVID, CMT, II, ADDL, SS,
MDV, DV; ``DVID`` 1 = plasma parent drug (ng/mL), 2 = plasma metabolite (ng/mL), 3 = pain score (NRS
0-10); ``BLQ`` 1 for a level below the limit of quantification, with ``LLOQ`` (or DV) the limit; for
library models ``WT`` (kg, required), ``AGE``, ``SEX`` (male/female), ``HT`` (cm) and ``ROUTE`` (iv,
oral, intranasal, sublingual, im, rectal, topical; default iv).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ketaplan.errors import InputError
from ketaplan.individualize.observations import PAIN, Observations
from ketaplan.individualize.predpp_problem import individual_observations, predpp_problem
from ketaplan.individualize.problem import Problem, SpecModel, spec_problem
from ketaplan.limits import FIT_OBSERVATIONS
from ketaplan.models.library import load_model
from ketaplan.models.spec import ModelSpec
from ketaplan.nonmem.dataset import Individual, numeric_column, split_individuals
from ketaplan.nonmem.predpp import load_model as load_predpp
from ketaplan.regimen.events import ROUTES, DoseEvent, Regimen
from ketaplan.regimen.safety import check_plan
from ketaplan.simulation.patient import Patient
from ketaplan.simulation.run import analyte_outputs, model_for
from ketaplan.user_yaml import read_yaml_file

DVID_OUTPUTS = {1: "parent", 2: "metabolite", 3: PAIN}


@dataclass
class FitCase:
    """One individual's estimation problem; ``model`` is set for library models (forecasts need it)."""

    label: str
    id: object
    problem: Problem
    model: SpecModel | None
    patient: Patient | None


def is_predpp_file(model: str | Path) -> bool:
    """True for a PREDPP model file (it names an ``advan``)."""
    path = Path(str(model))
    if path.suffix.lower() not in (".yaml", ".yml") or not path.is_file():
        return False
    raw = read_yaml_file(path, "--model")
    return isinstance(raw, dict) and any(str(k).lower() == "advan" for k in raw)


def fit_cases(data: pd.DataFrame, model: str | Path | ModelSpec, force: bool = False) -> list[FitCase]:
    """One :class:`FitCase` per individual of ``data``; raises InputError naming the first bad row.

    The doses of a library-model dataset get the same checks as a plan in ``simulate``: a likely unit slip
    (a rate above any reported, a dose far below any analgesic one) is refused unless ``force``, and then kept
    among the warnings with the unusual ones.
    """
    individuals = split_individuals(data)
    if not isinstance(model, ModelSpec) and is_predpp_file(model):
        pm = load_predpp(model)
        cases = []
        for ind in individuals:
            problem = predpp_problem(pm, data, ind)
            _check_size(problem, ind)
            cases.append(FitCase(f"ID {ind.id}", ind.id, problem, None, None))
        return cases
    pk = load_model(model) if not isinstance(model, ModelSpec) else model
    cases = []
    for ind in individuals:
        patient = _patient(data, ind)
        regimen = _regimen(data, ind, pk.drug)
        try:
            findings = check_plan(regimen, patient.weight, force=force, purpose="fit")
        except InputError as exc:
            raise InputError(f"ID {ind.id}, {exc.field}", exc.value, exc.allowed) from None
        spec = model_for(regimen, model if isinstance(model, ModelSpec) else str(model))
        obs = _observations(data, ind, spec)
        problem, sm = spec_problem(spec, regimen, patient.covariates(), obs, label=f"ID {ind.id}")
        _check_size(problem, ind)
        problem.notes += [f"Dose check: {f.message} ({f.source})" for f in findings if f.severity != "info"]
        problem.notes += _unit_check(problem)
        cases.append(FitCase(f"ID {ind.id}", ind.id, problem, sm, patient))
    return cases


def _check_size(problem: Problem, ind: Individual) -> None:
    FIT_OBSERVATIONS.check(f"ID {ind.id}", len(problem.observations), "fit fewer observations (for example one "
                           "pain score a day and the measured levels)")


def _unit_check(problem) -> list[str]:
    """A plain warning when measured levels are 100-fold or more off the typical patient's prediction: far
    beyond any between-patient variability, and what mg/L or µg/mL typed as ng/mL look like."""
    obs = problem.observations
    levels = np.flatnonzero((obs.output != PAIN) & ~obs.blq & (obs.value > 0))
    if not len(levels):
        return []
    predicted = problem.predict(np.zeros((1, problem.k)))[0][levels]
    ok = predicted > 0
    if not ok.any():
        return []
    ratio = float(np.median(obs.value[levels][ok] / predicted[ok]))
    if 0.01 < ratio < 100:
        return []
    return [f"Unit check: the measured levels are about {ratio:.3g} x what the model predicts for a typical "
            "patient on these doses; check that they are in ng/mL (mg/L or µg/mL typed as ng/mL is 1000 x off)."]


def _column(data: pd.DataFrame, name: str) -> str | None:
    return next((c for c in data.columns if str(c).strip().upper() == name), None)


def _per_patient(data: pd.DataFrame, column: str, item: str, ind: Individual) -> float:
    """The individual's value of a covariate column, which library models take once per patient."""
    values = numeric_column(data, column, item)[ind.rows]
    given = np.flatnonzero(np.isfinite(values))
    first = values[given[0]] if len(given) else values[0]
    differs = [i for i in given if values[i] != first]
    if differs:
        raise InputError(f"row {ind.rows[differs[0]] + 1}, column {column}", float(values[differs[0]]),
                         f"library models take one {item} per patient ({first:g} on its first record); use a PREDPP "
                         "model file for covariates that change between records")
    return first


def _patient(data: pd.DataFrame, ind: Individual) -> Patient:
    first = ind.rows[0]
    wt = _column(data, "WT") or _column(data, "WEIGHT")
    if wt is None:
        raise InputError("DATA columns", list(map(str, data.columns)), "a WT column (body weight, kg) is needed "
                         "for library models")
    weight = _per_patient(data, wt, "WT", ind)
    age = _per_patient(data, c, "AGE", ind) if (c := _column(data, "AGE")) else None
    height = _per_patient(data, c, "HT", ind) if (c := _column(data, "HT")) else None
    sex = None
    if (c := _column(data, "SEX")) is not None:
        text = str(data[c].iloc[first]).strip().lower()
        sex = {"m": "male", "male": "male", "f": "female", "female": "female"}.get(text)
        if sex is None and text not in ("", ".", "nan"):
            raise InputError(f"row {first + 1}, column SEX", text, "male or female (M/F)")
    age = None if age is None or not np.isfinite(age) else float(age)
    height = None if height is None or not np.isfinite(height) else float(height)
    try:
        return Patient(float(weight), age, sex, height)
    except InputError as exc:
        raise InputError(f"row {first + 1}, {exc.field}", exc.value, exc.allowed) from None


def _regimen(data: pd.DataFrame, ind: Individual, drug: str) -> Regimen:
    route_col = _column(data, "ROUTE")
    events = []
    for k in range(ind.n_records):
        evid = int(ind.evid[k])
        if evid not in (1, 3, 4):
            continue
        route = "iv"
        if route_col is not None:
            route = str(data[route_col].iloc[ind.rows[k]]).strip().lower() or "iv"
            if route not in ROUTES:
                raise InputError(f"row {ind.rows[k] + 1}, column ROUTE", route, f"one of {', '.join(ROUTES)}")
        try:
            events.append(DoseEvent(time=float(ind.time[k]), amount=float(ind.amt[k]), route=route,
                                    rate=float(max(ind.rate[k], 0.0)), duration=float(ind.dur[k]),
                                    ii=float(ind.ii[k]), addl=int(ind.addl[k]), ss=int(ind.ss[k]), evid=evid))
        except InputError as exc:
            raise InputError(f"row {ind.rows[k] + 1}, {exc.field}", exc.value, exc.allowed) from None
    return Regimen(tuple(events), drug=drug)


def _observations(data: pd.DataFrame, ind: Individual, spec: ModelSpec) -> Observations:
    obs, positions = individual_observations(data, ind)
    dvid_col = _column(data, "DVID")
    dvid = numeric_column(data, dvid_col, "DVID")[ind.rows[positions]] if dvid_col else np.ones(len(positions))
    parent, metabolite, _ = analyte_outputs(spec)
    names = {"parent": parent, "metabolite": metabolite, PAIN: PAIN}
    outputs = []
    for i, d in enumerate(dvid):
        kind = DVID_OUTPUTS.get(int(d)) if np.isfinite(d) else None
        if kind is None or names[kind] is None:
            allowed = "1 (parent level), 2 (metabolite level) or 3 (pain score)"
            raise InputError(f"row {obs.row[i] + 1}, column DVID", d, allowed if kind is None
                             else f"{allowed}; model {spec.id} has no metabolite")
        outputs.append(names[kind])
    return Observations(obs.time, np.asarray(outputs, dtype=object), obs.value, obs.blq, obs.lloq, obs.row)
