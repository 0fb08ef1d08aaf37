"""Every reproduction of issue 14 ("unbreakable input"), kept as a regression test.

Each runs the command line in its own process under 30 s of CPU and 2 GB of address space (as the fuzz tests
do) and must keep the contract of :func:`fuzz_inputs.check_run` - exit 0 or 2, no traceback, no library warning,
one sentence, nothing written on refusal, finite numbers written - and say the expected words.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest

from conftest import invoke_cli
from fuzz_inputs import Case, checked_run, diary_text
from fuzz_runner import Zygote

HEADER = "ID,TIME,AMT,RATE,EVID,CMT,II,ADDL,SS,DV,MDV\n"
OBS = "1,1,0,0,0,1,0,0,0,5,0\n"
MODEL = "advan: 1\nCL: 1\nV: 10\n"


def dataset(*rows: str) -> str:
    return HEADER + "".join(r + "\n" for r in rows)


def model(*lines: str) -> str:
    return "\n".join(lines) + "\n"


def simulate_dataset(data: str, model_text: str = MODEL) -> Case:
    return Case(["simulate-dataset", "data.csv", "--model", "model.yaml", "--out", "out.csv"],
                {"data.csv": data, "model.yaml": model_text}, ("out.csv",))


def alias_bomb() -> str:
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    previous = "a"
    for name in "bcdefghi":
        lines.append(f"{name}: &{name} [{', '.join(['*' + previous] * 9)}]")
        previous = name
    return "\n".join([*lines, "advan: 1", "CL: 1", "V: 10"]) + "\n"


REPRODUCTIONS = {
    # crashes (a traceback and exit 1)
    "ADDL 1e9": (simulate_dataset(dataset("1,0,100,0,1,1,1,1000000000,0,.,1", OBS)), 2,
                 "row 1, column ADDL: got 1e+09"),
    "SS infusion far longer than II": (simulate_dataset(dataset("1,0,100000,1,1,1,0.001,0,1,.,1", OBS)), 2,
                                       "row 1: SS infusion: got 200,000,001 dose events; the limit is 200,000"),
    "CL .nan": (simulate_dataset(dataset("1,0,100,0,1,1,0,0,0,.,1", OBS), model("advan: 1", "CL: .nan", "V: 10")), 2,
                "MODEL CL: got nan"),
    "CL .inf": (simulate_dataset(dataset("1,0,100,0,1,1,0,0,0,.,1", OBS), model("advan: 1", "CL: .inf", "V: 10")), 2,
                "MODEL CL: got inf"),
    "parameters a list": (simulate_dataset(dataset("1,0,100,0,1,1,0,0,0,.,1", OBS),
                                           model("advan: 1", "parameters: [1, 2]")), 2,
                          "MODEL parameters: got [1, 2]; a mapping"),
    "YAML alias bomb": (simulate_dataset(dataset("1,0,100,0,1,1,0,0,0,.,1", OBS), alias_bomb()), 2,
                        "the limit is 100,000 values per YAML file, aliases expanded"),
    "fit with a level of 1e12 ng/mL": (Case(["fit", "diary.csv", "--model", "domino_racemic_3cmt_nk"],
                                            {"diary.csv": diary_text("1e12", "2400", "20")}), 2,
                                       "ID 7: got 'its data'; the fit failed: the predictions miss the observations"),
    "simulate x 1e9": (Case(["simulate", "20 mg/h IV for 5 d every 11 weeks x 1000000000", "--weight", "80"]), 2,
                       "got 1,000,000,000 doses; the limit is 25,000 doses per plan"),
    "search --courses 100000": (Case(["search", "--courses", "100000", "--n", "10"]), 2,
                                "got 100,000 doses; the limit is 25,000 doses per plan"),
    "population --workers 100": (Case(["population", "20 mg/h IV for 5 d", "--n", "100", "--workers", "100"]), 2,
                                 "--workers: got 100 worker processes; the limit is"),
    # hangs
    "ADDL 1e6 at II 1 with an observation at 1e6 h": (
        simulate_dataset(dataset("1,0,100,0,1,1,1,1000000,0,.,1", "1,1000000,0,0,0,1,0,0,0,5,0")), 2,
        "row 1, column ADDL: got 1e+06"),
    "ADDL 1e7 at II 1e-9": (simulate_dataset(dataset("1,0,100,0,1,1,1e-9,10000000,0,.,1", OBS)), 2,
                            "row 1, column ADDL: got 1e+07"),
    "intranasal every minute x 100000": (Case(["simulate", "25 mg IN every 1 min x 100000", "--weight", "80"]), 2,
                                         "got 100,000 doses; the limit is 25,000 doses per plan"),
    "pump at 1e-9 mg/mL": (Case(["pump", "20 mg/h IV for 5 d", "--concentration", "1e-9 mg/mL"]), 2,
                           "pump plan: got 48,000,000,006 container changes; the limit is 10,000"),
    "population --n 1e9": (Case(["population", "20 mg/h IV for 5 d", "--n", "1000000000"]), 2,
                           "--n: got 1,000,000,000 virtual patients; the limit is 10,000,000"),
    # silent or absurd results
    "a model key given twice": (simulate_dataset(dataset("1,0,100,0,1,1,0,0,0,.,1", OBS),
                                                 model("advan: 1", "CL: 5", "CL: 6", "V: 10")), 2,
                                "MODEL: got 'CL' twice (lines 2 and 3)"),
    "a dataset column given twice": (simulate_dataset("ID,TIME,AMT,AMT,EVID\n1,0,100,100,1\n1,1,0,0,0\n"), 2,
                                     "DATA columns: got 'AMT' and 'AMT'"),
    "a column given twice in another case and spacing": (
        simulate_dataset("ID,TIME,amt, AMT,EVID\n1,0,100,100,1\n1,1,0,0,0\n"), 2, "got 'amt' and ' AMT'"),
    "AMT inf": (simulate_dataset("ID,TIME,AMT,EVID\n1,0,inf,1\n1,1,0,0\n"), 2, "row 1, column AMT: got 'inf'"),
    "AMT 1e308 with scale 1000": (simulate_dataset("ID,TIME,AMT,EVID\n1,0,1e308,1\n1,1,0,0\n",
                                                   model("advan: 1", "CL: 1", "V: 0.01", "scale: 1000")), 2,
                                  "row 1, IPRED: got inf; the result is not a finite number"),
    "scale .inf": (simulate_dataset(dataset("1,0,100,0,1,1,0,0,0,.,1", OBS),
                                    model("advan: 1", "CL: 1", "V: 10", "scale: .inf")), 2, "MODEL scale: got inf"),
    "V .inf": (simulate_dataset(dataset("1,0,100,0,1,1,0,0,0,.,1", OBS), model("advan: 1", "CL: 1", "V: .inf")), 2,
               "MODEL V: got inf"),
    "scale 0": (simulate_dataset(dataset("1,0,100,0,1,1,0,0,0,.,1", OBS), model("advan: 1", "CL: 1", "V: 10",
                                                                                  "scale: 0")), 2,
                "MODEL scale: got 0; volumes, the clearance CL (or K) and the scale must be > 0"),
    "negative OMEGA": (simulate_dataset(dataset("1,0,100,0,1,1,0,0,0,.,1", OBS), model(MODEL, "omega: {CL: -0.1}")),
                       2, "MODEL omega CL: got -0.1; a variance must be > 0"),
    "text OMEGA": (simulate_dataset(dataset("1,0,100,0,1,1,0,0,0,.,1", OBS), model(MODEL, "omega: {CL: abc}")), 2,
                   "MODEL omega CL: got 'abc'"),
    "negative SIGMA": (simulate_dataset(dataset("1,0,100,0,1,1,0,0,0,.,1", OBS),
                                        model(MODEL, "sigma: {proportional: -0.1}")), 2,
                       "MODEL sigma proportional: got -0.1"),
    "OMEGA not positive definite": (simulate_dataset(dataset("1,0,100,0,1,1,0,0,0,.,1", OBS),
                                                     model(MODEL, "omega: {CL: 0.1, V: 0.1, CL~V: 0.5}")), 2,
                                    "the covariance matrix must be positive definite"),
    "transform sqrt": (simulate_dataset(dataset("1,0,100,0,1,1,0,0,0,.,1", OBS), model(MODEL, "transform: sqrt")), 2,
                       "MODEL transform: got 'sqrt'"),
    "advan true": (simulate_dataset(dataset("1,0,100,0,1,1,0,0,0,.,1", OBS), model("advan: true", "CL: 1", "V: 10")),
                   2, "MODEL advan: got True"),
    "fit with a 1e9 mg infusion": (Case(["fit", "diary.csv", "--model", "domino_racemic_3cmt_nk"],
                                        {"diary.csv": diary_text("160", "1e9", "8333333")}), 2,
                                   "ID 7, dose: got '8.33333e+06 mg/h IV'; refused because"),
    "fit with 10,000 observations": (Case(["fit", "diary.csv", "--model", "domino_racemic_3cmt_nk"],
                                          {"diary.csv": diary_text("160", "2400", "20", extra_rows=10_000)}), 2,
                                     "ID 7: got 10,015 observations; the limit is 5,000"),
    "far too low a rate": (Case(["simulate", "0.0000001 mg/h IV for 5 d", "--weight", "80"]), 2,
                           "is far below any analgesic rate"),
    "100 overlapping infusions": (Case(["simulate", "20 mg/h IV for 5 d every 1 h x 100", "--weight", "80"]), 2,
                                  "so 100 would run at once"),
    # messages that misled
    "nan named as nan": (simulate_dataset("ID,TIME,AMT,EVID\n1,0,nan,1\n1,1,0,0\n"), 2,
                         "row 1, column AMT: got 'nan'; a finite number is required"),
    "TIME inf named as inf": (simulate_dataset("ID,TIME,AMT,EVID\n1,inf,100,1\n"), 2, "column TIME: got 'inf'"),
    "1e3 in a model file is a number": (simulate_dataset(dataset("1,0,100,0,1,1,0,0,0,.,1", OBS),
                                                         model("advan: 1", "CL: 1e3", "V: 10")), 0, ""),
    "CMT 1e20": (simulate_dataset("ID,TIME,AMT,EVID,CMT\n1,0,100,1,1e20\n1,1,0,0,1\n"), 2,
                 "row 1, column CMT: got 1e+20"),
    "a row with an extra field": (simulate_dataset("ID,TIME,AMT,EVID\n1,0,100,1,5\n1,1,0,0\n"), 2,
                                  "DATA row 1: got 5 fields; the header names 4 columns"),
    "a row with an extra field in fit": (Case(["fit", "data.csv", "--model", "model.yaml"],
                                              {"data.csv": "ID,TIME,AMT,EVID\n1,0,100,1,5\n1,1,0,0\n",
                                               "model.yaml": MODEL}), 2, "DATA row 1: got 5 fields"),
    "nan as a number option": (Case(["simulate", "20 mg/h IV for 5 d", "--weight", "nan"]), 2,
                               "--weight: got nan; a finite number is required"),
}


@pytest.fixture(scope="module")
def zygote():
    z = Zygote()
    yield z
    z.close()


@pytest.mark.parametrize("name", list(REPRODUCTIONS))
def test_issue_14_reproduction(zygote, name):
    case, code, words = REPRODUCTIONS[name]
    with checked_run(zygote, case) as (run, folder):
        assert run.code == code, run.stderr
        assert words in run.stderr, run.stderr
        if name == "1e3 in a model file is a number":  # CL = 1000 L/h, V = 10 L: 100 mg are gone within the hour
            out = pd.read_csv(folder / "out.csv")
            assert out["IPRED"].iloc[1] == pytest.approx(10 * math.exp(-100), rel=1e-9)


def test_a_level_in_mg_per_ml_is_refused_as_a_unit_slip(tmp_path, monkeypatch):
    path = str(tmp_path / "clinic.db")
    monkeypatch.setenv("KETAPLAN_PASSWORD", "admin-password-1")
    monkeypatch.setenv("KETAPLAN_USER", "dr.a")
    assert invoke_cli("clinic", "init", "--db", path, "--admin", "admin").exit_code == 0
    assert invoke_cli("clinic", "add-patient", "KP-0009", "--birth-year", "1966", "--sex", "male", "--diagnosis",
                      "CRPS", "--weight", "80", "--consent-version", "2026-11-01", "--db", path).exit_code == 0
    r = invoke_cli("clinic", "add-level", "KP-0009", "--at", "2026-01-06 09:00", "--value", "160 mg/mL", "--db", path)
    assert r.exit_code == 2
    assert "--value: got '160 mg/mL'; that is more than 100000 ng/mL, far above any ketamine level" in r.stderr
    assert "the unit is likely wrong" in r.stderr
