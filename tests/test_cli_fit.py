"""``ketaplan fit`` on the command line: library and PREDPP models, outputs, report, bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import invoke_cli

invoke = invoke_cli
pytestmark = pytest.mark.usefixtures("wide_console")


def seed_case_csv(path):
    rows = [dict(ID=7, TIME=t, AMT=".", RATE=".", EVID=0, MDV=0, DV=v, DVID=3) for t, v in
            zip(np.arange(7) * 24.0, [7, 7, 8, 7, 6, 7, 7], strict=True)]
    rows.append(dict(ID=7, TIME=168, AMT=2400, RATE=20, EVID=1, MDV=1, DV=".", DVID="."))
    rows += [dict(ID=7, TIME=t, AMT=".", RATE=".", EVID=0, MDV=0, DV=v, DVID=1) for t, v in ((192, 160), (260, 175))]
    end = 288.0
    for w, v in zip(range(1, 14), [2, 2, 2, 2, 2, 2, 2, 3, 3, 4, 5, 6, 7], strict=True):
        rows.append(dict(ID=7, TIME=end + 168 * w, AMT=".", RATE=".", EVID=0, MDV=0, DV=v, DVID=3))
    frame = pd.DataFrame(rows).sort_values("TIME", kind="stable")
    frame["WT"], frame["AGE"], frame["SEX"] = 80, 59, "M"
    frame.to_csv(path, index=False)


def test_fit_a_library_model_prints_estimates_forecast_and_writes_outputs(tmp_path):
    data, out, report = tmp_path / "diary.csv", tmp_path / "etas.csv", tmp_path / "fit.html"
    seed_case_csv(data)
    r = invoke("fit", str(data), "--model", "domino_racemic_3cmt_nk", "--out", str(out), "--report", str(report),
               "--start", "2026-01-05 09:00", "--target-level", "150 ng/mL", "--target-relief", "10 weeks")
    assert r.exit_code == 0, r.output
    assert "individual estimates (MAP)" in r.output and "RELIEF_HALF_LIFE" in r.output
    assert "next course due 2026-" in r.output
    assert "For a steady-state level of 150 ng/mL" in r.output
    table = pd.read_csv(out)
    assert table["ID"].tolist() == [7]
    assert {"k10", "RELIEF_C50", "ETA1", "ETA6", "SD_ETA1", "OFV", "P_RESPONDER"} <= set(table.columns)
    html = report.read_text()
    assert "Next course due 2026-" in html and "<svg" in html and "Relief forecast" in html


def test_fit_json(tmp_path):
    data = tmp_path / "diary.csv"
    seed_case_csv(data)
    r = invoke("fit", str(data), "--model", "domino_racemic_3cmt_nk", "--json")
    assert r.exit_code == 0, r.output
    payload = json.loads(r.stdout)
    [patient] = payload["patients"]
    assert patient["id"] == "7" and 60 < patient["next_course"]["relief_days"][1] < 90


def test_fit_a_predpp_model_with_omega_and_sigma_writes_etas_in_omega_order(tmp_path):
    model = tmp_path / "model.yaml"
    model.write_text(yaml.safe_dump({"advan": 3, "CL": 5.0, "V1": 20.0, "Q": 2.0, "V2": 40.0,
                                     "omega": {"V1": 0.04, "CL": 0.09, "CL~V1": 0.01},
                                     "sigma": {"proportional": 0.01, "additive": 0.25}}, sort_keys=False))
    rows = []
    for i, scale in ((1, 1.0), (2, 1.6)):
        rows.append([i, 0, 100, 1, 1, ".", 1])
        rows += [[i, t, ".", 0, 0, round(scale * c, 3), 1] for t, c in ((0.5, 4.1), (2, 2.9), (6, 1.4), (12, 0.7))]
    data = tmp_path / "data.csv"
    pd.DataFrame(rows, columns=["ID", "TIME", "AMT", "EVID", "MDV", "DV", "CMT"]).to_csv(data, index=False)
    out = tmp_path / "etas.csv"
    r = invoke("fit", str(data), "--model", str(model), "--out", str(out))
    assert r.exit_code == 0, r.output
    table = pd.read_csv(out)
    assert list(table.columns[:5]) == ["ID", "V1", "CL", "ETA1", "ETA2"]
    assert table.loc[1, "ETA1"] < table.loc[0, "ETA1"]  # higher levels: smaller central volume
    assert table.loc[0, "V1"] == pytest.approx(20.0 * np.exp(table.loc[0, "ETA1"]))
    assert "Eta shrinkage over the individuals" in r.output


@pytest.mark.parametrize(("args", "message"), [
    (["--model", "no_such_model"], "no_such_model"),
    (["--out", "x.txt"], "--out"),
    (["--target-level", "150 mg"], "--target-level"),
    (["--relief-threshold", "1.5"], "--relief-threshold"),
])
def test_fit_bad_input_is_one_sentence(tmp_path, args, message):
    data = tmp_path / "diary.csv"
    seed_case_csv(data)
    full = ["fit", str(data)] + (["--model", "domino_racemic_3cmt_nk"] if "--model" not in args else []) + args
    r = invoke(*full)
    assert r.exit_code == 2, r.output
    assert message in r.stderr and r.stderr.startswith("error: ")


def test_a_refused_dose_in_a_fit_is_spoken_of_as_fitted_not_planned(tmp_path):
    data = tmp_path / "diary.csv"
    seed_case_csv(data)
    frame = pd.read_csv(data, dtype=str)
    dose = frame["EVID"] == "1"
    frame.loc[dose, "RATE"], frame.loc[dose, "AMT"] = "2000", str(2000 * 120)  # mg typed for ug: 25 mg/kg/h
    frame.to_csv(data, index=False)
    refused = invoke("fit", str(data), "--model", "domino_racemic_3cmt_nk")
    assert refused.exit_code == 2
    assert "use --force to fit it anyway" in refused.output and "plan it" not in refused.output
    forced = invoke("fit", str(data), "--model", "domino_racemic_3cmt_nk", "--force")
    assert "fitted anyway with --force" in forced.output and "planned anyway" not in forced.output
