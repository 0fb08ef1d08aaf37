"""``ketaplan estimate DATA --model library:dahan_2011_crps_pkpd``: the library's relief model learned from a
NONMEM-style dataset with the published values as priors (the same machinery as ``clinic learn``)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conftest import invoke_cli
from ketaplan.estimation.simulated_cohort import Truth, simulate_cohort
from ketaplan.individualize.observations import PAIN
from ketaplan.regimen.text import parse_regimen
from ketaplan.simulation.run import model_for


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    spec = model_for(parse_regimen("20 mg/h IV for 5 d"))
    cohort, _ = simulate_cohort(spec, Truth({"RELIEF_C50": 0.4, "RELIEF_HALF_LIFE": 20.0}, 0.7, years=1.5), 12,
                                seed=7)
    rows = []
    for p in cohort.patients:
        c = p.covariates
        base = {"ID": p.id, "WT": round(float(c.weight[0]), 1), "AGE": round(float(c.age[0])),
                "SEX": int(c.sex[0] == "female")}
        for e in p.regimen.events:
            rows.append({**base, "TIME": e.time, "EVID": 1, "AMT": e.amount, "RATE": e.rate, "DV": 0, "DVID": 0,
                         "MDV": 1})
        for t, o, v in zip(p.observations.time, p.observations.output, p.observations.value, strict=True):
            rows.append({**base, "TIME": t, "EVID": 0, "AMT": 0, "RATE": 0, "DV": v, "DVID": 3 if o == PAIN else 1,
                         "MDV": 0})
    path = tmp_path_factory.mktemp("relief") / "relief.csv"
    pd.DataFrame(rows).sort_values(["ID", "TIME"], kind="stable").to_csv(path, index=False)
    return path


def test_learns_from_the_dataset_and_writes_its_estimates(dataset, tmp_path):
    r = invoke_cli("estimate", str(dataset), "--model", "library:dahan_2011_crps_pkpd", "--folds", "2",
                   "--out-dir", str(tmp_path / "out"), "--json")
    assert r.exit_code == 0, r.output + r.stderr
    doc = json.loads(r.stdout)
    assert json.loads((tmp_path / "out" / "estimates.json").read_text()) == doc
    typical = {row["name"]: row for row in doc["typical"]}
    assert doc["patients"] == 12 and doc["prior_weight"] == 0.25
    assert typical["RELIEF_C50"]["learned"] < 10.5 / 3  # towards the truth, 0.4
    # the prior's -2 log p is 0 at the published values; each inverse-Wishart term (nu = 0.25 x 5) can go below
    # 0 down to 2 - (nu + 2) ln(1 + 2 / nu) at its mode, so the penalty is bounded below by three of those
    nu = 0.25 * 5
    assert doc["objective"]["change"] < 0
    assert doc["objective"]["prior_penalty"] >= 3 * (2 - (nu + 2) * np.log(1 + 2 / nu))
    timing = doc["timing"]
    assert timing["folds"] == 2 and timing["learned"]["gaps"] > 0
    # held out, the learned values predict the gaps between courses better than the published ones
    assert timing["learned_better"]
    assert timing["learned"]["median_abs_error_weeks"] < timing["published"]["median_abs_error_weeks"] / 2
    assert all(0 <= row["shrinkage_percent"] <= 100 for row in doc["variances"])


def test_a_dataset_without_dvid_is_one_sentence(dataset, tmp_path):
    frame = pd.read_csv(dataset).drop(columns="DVID")
    bad = tmp_path / "bad.csv"
    frame.to_csv(bad, index=False)
    r = invoke_cli("estimate", str(bad), "--model", "library:dahan_2011_crps_pkpd", "--out-dir", str(tmp_path / "o"))
    assert r.exit_code == 2
    assert "DVID" in r.stderr and r.stderr.strip().count("\n") == 0
    assert not (tmp_path / "o").exists()
