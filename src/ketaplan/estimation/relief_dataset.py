"""A NONMEM-style dataset of ketamine courses, levels and pain scores as a cohort for learning a relief model.

Columns (one row per record, NONMEM conventions): ID; TIME (h); EVID (1 dose, 0 observation); AMT (mg) and
RATE (mg/h; 0 or missing: a bolus) on doses, given IV as racemic ketamine; DV on observations, with DVID
saying what it is: 1 plasma ketamine (ng/mL), 2 plasma norketamine (ng/mL), 3 a pain score (NRS 0-10); MDV 1
skips an observation; covariates WT (kg), AGE (years) and SEX (0 male, 1 female), constant per individual.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ketaplan.engine.build import Covariates
from ketaplan.errors import InputError
from ketaplan.estimation.library_cohort import Cohort, CohortPatient
from ketaplan.individualize.observations import PAIN, Observations
from ketaplan.regimen.events import DoseEvent, Regimen
from ketaplan.simulation.run import analyte_outputs, model_for

REQUIRED = ("ID", "TIME", "EVID", "AMT", "DV", "DVID", "WT", "AGE", "SEX")
DVID_NAMES = {1: "ketamine", 2: "norketamine", 3: PAIN}


def relief_cohort(frame: pd.DataFrame) -> Cohort:
    """The dataset as a cohort; every problem is one sentence naming the row (1-based, after the header)."""
    columns = {c.strip().upper(): c for c in frame.columns}
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise InputError("dataset", missing[0], f"a column named {missing[0]} (needed: {', '.join(REQUIRED)})")
    data = pd.DataFrame({name: pd.to_numeric(frame[columns[name]], errors="coerce") for name in REQUIRED})
    data["RATE"] = pd.to_numeric(frame[columns["RATE"]], errors="coerce") if "RATE" in columns else 0.0
    data["MDV"] = pd.to_numeric(frame[columns["MDV"]], errors="coerce") if "MDV" in columns else 0.0
    data = data.fillna({"RATE": 0.0, "MDV": 0.0})
    for name in ("ID", "TIME", "EVID", "WT", "AGE", "SEX"):
        bad = ~np.isfinite(data[name].to_numpy(float))
        if bad.any():
            row = int(np.flatnonzero(bad)[0]) + 1
            raise InputError(f"dataset row {row}, {name}", frame[columns[name]].iloc[row - 1], "a finite number")
    parent, metabolite, _ = analyte_outputs(model_for(Regimen((DoseEvent(time=0.0, amount=1.0),))))
    names = {1: parent, 2: metabolite, 3: PAIN}
    patients = []
    for pid, rows in data.groupby("ID", sort=False):
        first = rows.iloc[0]
        for name in ("WT", "AGE", "SEX"):
            if rows[name].nunique() > 1:
                raise InputError(f"dataset ID {pid:g}, {name}", "changes", "a value constant per individual")
        if first["SEX"] not in (0, 1) or not 20 <= first["WT"] <= 300 or not 0 <= first["AGE"] <= 120:
            raise InputError(f"dataset ID {pid:g}", f"WT {first['WT']:g}, AGE {first['AGE']:g}, SEX {first['SEX']:g}",
                             "WT 20-300 kg, AGE 0-120 years and SEX 0 (male) or 1 (female)")
        doses = rows[rows["EVID"] == 1]
        if (doses["AMT"] <= 0).any() or (doses["RATE"] < 0).any():
            raise InputError(f"dataset ID {pid:g}", "a dose", "AMT above 0 mg and RATE 0 (bolus) or above (mg/h)")
        events = tuple(DoseEvent(time=float(t), amount=float(a), rate=float(r))
                       for t, a, r in zip(doses["TIME"], doses["AMT"], doses["RATE"], strict=True))
        obs = rows[(rows["EVID"] == 0) & (rows["MDV"] == 0)]
        unknown = obs[~obs["DVID"].isin(list(DVID_NAMES))]
        if len(unknown):
            raise InputError(f"dataset ID {pid:g}, DVID", unknown["DVID"].iloc[0], "1 (ketamine ng/mL), 2 "
                             "(norketamine ng/mL) or 3 (pain NRS 0-10)")
        if not events or not (obs["DVID"] == 3).any():
            continue  # nothing to learn relief from
        pain = obs["DVID"] == 3
        if ((obs.loc[pain, "DV"] < 0) | (obs.loc[pain, "DV"] > 10)).any():
            raise InputError(f"dataset ID {pid:g}, DV", "a pain score outside 0-10", "an NRS score from 0 to 10")
        observations = Observations.of(obs["TIME"].to_numpy(float), [names[int(d)] for d in obs["DVID"]],
                                       obs["DV"].to_numpy(float))
        covariates = Covariates.of(float(first["WT"]), float(first["AGE"]),
                                   "female" if first["SEX"] == 1 else "male")
        patients.append(CohortPatient(pid, Regimen(events), covariates, observations))
    if not patients:
        raise InputError("dataset", "no individual", "individuals with doses and pain scores (DVID 3)")
    return Cohort(tuple(patients), "dataset")
