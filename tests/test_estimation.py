"""Population estimation end to end: NONMEM's phenobarbital results reproduced from its initial values,
MAXEVAL=0, the covariance step, NONMEM-style names, plain warnings and refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import ketaplan
from ketaplan.errors import InputError

DATA = Path(__file__).parent / "data"
# NONMEM 7.4.2 FOCE-I, phenobarbital (pheno.ext of pharmpy's example models): final estimates, objective and
# standard errors (sandwich, $COVARIANCE default).
NONMEM = {"THETA(1)": 4.69555e-03, "THETA(2)": 9.84258e-01, "THETA(3)": 1.58920e-01, "OMEGA(1,1)": 2.93508e-02,
          "OMEGA(2,2)": 2.79060e-02, "SIGMA(1,1)": 1.32410e-02}
NONMEM_SE = {"THETA(1)": 2.09967e-04, "THETA(2)": 2.68946e-02, "THETA(3)": 8.37555e-02, "OMEGA(1,1)": 1.34156e-02,
             "OMEGA(2,2)": 7.47591e-03, "SIGMA(1,1)": 2.27991e-03}
NONMEM_OFV = 586.27605628520962
NONMEM_CONDITION_NUMBER = 1.57836 / 0.359348  # largest over smallest eigenvalue of the correlation matrix


@pytest.fixture(scope="module")
def pheno():
    return ketaplan.estimate(DATA / "pheno.csv", DATA / "pheno.yaml")


def test_phenobarbital_foce_i_matches_nonmem(pheno):
    assert pheno.converged
    assert pheno.ofv == pytest.approx(NONMEM_OFV, abs=0.05)
    found = {**pheno.theta, **pheno.omega, **pheno.sigma}
    for name, value in NONMEM.items():
        assert found[name] == pytest.approx(value, rel=0.01), name
    for name, value in NONMEM_SE.items():
        assert pheno.se[name] == pytest.approx(value, rel=0.05), name
    assert pheno.covariance.condition_number == pytest.approx(NONMEM_CONDITION_NUMBER, rel=0.05)
    assert pheno.n_subjects == 59 and pheno.n_observations == 155


def test_the_estimates_document_uses_nonmem_names(pheno):
    doc = pheno.to_json_dict()
    for key in ("method", "ofv", "converged", "iterations", "n_subjects", "n_observations", "condition_number",
                "theta", "omega", "sigma", "se"):
        assert key in doc
    assert set(doc["theta"]) == {"THETA(1)", "THETA(2)", "THETA(3)"}
    assert set(doc["omega"]) == {"OMEGA(1,1)", "OMEGA(2,2)"} and set(doc["sigma"]) == {"SIGMA(1,1)"}
    assert doc["method"] == "foce-i" and doc["iterations"] > 0
    etas = pheno.etas_frame()
    assert list(etas.columns) == ["ID", "ETA1", "ETA2", "ETA1_SD", "ETA2_SD", "OFV"]
    assert etas["OFV"].sum() == pytest.approx(pheno.ofv, abs=1e-6)
    assert (etas["ETA1_SD"] > 0).all() and (etas["ETA1_SD"] < np.sqrt(pheno.omega["OMEGA(1,1)"])).all()


def test_evaluate_keeps_the_values_and_gives_nonmems_initial_objective():
    result = ketaplan.estimate(DATA / "pheno.csv", DATA / "pheno.yaml", evaluate=True, covariance=False)
    assert result.ofv == pytest.approx(587.36644134661617, abs=0.01)
    assert result.theta["THETA(1)"] == 0.00469307 and result.evaluated_only and result.covariance is None


def _two_eta_block_model(omega) -> dict:
    return {"advan": 1, "theta": [{"init": 0.0047, "lower": 0}, {"init": 1.0, "lower": 0}],
            "parameters": {"CL": "THETA(1) * WGT * exp(ETA(1))", "V": "THETA(2) * WGT * exp(ETA(2))"},
            "omega": omega, "sigma": {"proportional": 0.013}}


def test_a_block_omega_is_estimated_and_named_with_its_covariance():
    result = ketaplan.estimate(DATA / "pheno.csv", _two_eta_block_model([{"block": [[0.03], [0.005, 0.03]]}]),
                               covariance=False)
    assert set(result.omega) == {"OMEGA(1,1)", "OMEGA(2,1)", "OMEGA(2,2)"}
    om = result.estimates.omega
    assert np.all(np.linalg.eigvalsh(om) > 0) and om[0, 1] == om[1, 0]


def test_fixed_values_stay_where_they_are():
    model = _two_eta_block_model([0.03, {"value": 0.05, "fix": True}])
    model["theta"][1]["fix"] = True
    result = ketaplan.estimate(DATA / "pheno.csv", model, covariance=False)
    assert result.theta["THETA(2)"] == 1.0 and result.omega["OMEGA(2,2)"] == 0.05
    assert "THETA(2)" not in result.space.free_names() and "OMEGA(2,2)" not in result.space.free_names()


@pytest.mark.parametrize("method", ["foce", "fo", "laplace"])
def test_other_methods_estimate_phenobarbital_near_foce_i(method):
    result = ketaplan.estimate(DATA / "pheno.csv", DATA / "pheno.yaml", method=method, covariance=False)
    assert result.converged
    assert result.theta["THETA(1)"] == pytest.approx(NONMEM["THETA(1)"], rel=0.1)
    assert result.theta["THETA(2)"] == pytest.approx(NONMEM["THETA(2)"], rel=0.1)


def test_a_variance_the_data_cannot_support_is_reported():
    frame = pd.read_csv(DATA / "pheno.csv")
    model = _two_eta_block_model([0.03, 0.03])
    model["parameters"]["V"] = "THETA(2) * WGT * exp(ETA(2)) * exp(ETA(3))"  # two effects on one parameter
    model["omega"] = [0.03, 0.03, 0.03]
    result = ketaplan.estimate(frame, model, covariance=False)
    assert any("OMEGA" in w and "went to" in w for w in result.warnings) or result.converged


@pytest.mark.parametrize("change, message", [
    ({"sigma": None}, "estimation needs the residual error"),
    ({"omega": [0.03]}, "use ETA\\(2\\) but omega has 1 variance"),
    ({"theta": [{"init": 0.0047, "lower": 0}]}, "uses THETA\\(2\\) but theta lists 1 value"),
    ({"theta": [{"init": -1, "lower": 0}, 1.0]}, "an initial value strictly between the bounds"),
    ({"omega": [{"block": [[0.03], [0.05, 0.03]]}]}, "positive definite"),
    ({"sigma": {"proportional": -0.1}}, "a variance: a number >= 0"),
    ({"sigma": {"exponential": 0.1, "additive": 0.1}}, "exponential error stands alone"),
])
def test_bad_models_are_refused_in_one_sentence(change, message):
    model = _two_eta_block_model([0.03, 0.03])
    for key, value in change.items():
        if value is None:
            model.pop(key)
        else:
            model[key] = value
    with pytest.raises(InputError, match=message):
        ketaplan.estimate(DATA / "pheno.csv", model)


def test_bad_method_and_data_are_refused():
    with pytest.raises(InputError, match="allowed methods are"):
        ketaplan.estimate(DATA / "pheno.csv", DATA / "pheno.yaml", method="its2")
    frame = pd.read_csv(DATA / "pheno.csv")
    frame.loc[1, "DV"] = np.nan
    with pytest.raises(InputError, match="row 2, column DV"):
        ketaplan.estimate(frame, DATA / "pheno.yaml")
