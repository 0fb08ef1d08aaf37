"""Routes and forms side by side."""

from __future__ import annotations

import numpy as np
import pytest

from ketaplan.errors import InputError
from ketaplan.planning.compare import compare
from ketaplan.simulation.patient import Patient


def test_equal_dose_bioavailability_follows_the_route_data():
    table, curves, notes = compare(["iv", "oral", "intranasal", "sublingual", "topical"], ["racemic"], 25.0, "dose",
                                   Patient(70), hours=72)
    f = table.set_index("route")["systemic_F"]
    assert f["iv"] == pytest.approx(1.0)
    assert f["oral"] == pytest.approx(0.20, abs=0.005)  # Yanagihara 2003 / Clements 1982
    assert f["intranasal"] == pytest.approx(0.13, abs=0.005)  # Pharmacotherapy 2022;42:298 (17, 13, 11 %)
    assert f["sublingual"] == pytest.approx(0.29, abs=0.005)  # Rolan 2014
    assert f["topical"] == 0.0
    assert len(curves) == 5 and notes


def test_equal_exposure_matches_potency_equivalent_auc():
    table, _, notes = compare(["iv", "oral", "topical"], ["racemic", "s-ketamine"], 25.0, "exposure", Patient(70),
                              hours=96)
    ok = table.dropna(subset=["potency_equivalent_auc"])
    np.testing.assert_allclose(ok["potency_equivalent_auc"], ok["potency_equivalent_auc"].iloc[0], rtol=1e-6)
    topical = table[table["route"] == "topical"]
    assert topical["dose_mg"].isna().all()
    assert any("extrapolation" in n for n in notes)


def test_compare_refuses_bad_input():
    with pytest.raises(InputError, match="allowed routes"):
        compare(["iv", "ear"], ["racemic"], 25.0, "dose", Patient(70))
    with pytest.raises(InputError, match="dose and exposure"):
        compare(["iv"], ["racemic"], 25.0, "cost", Patient(70))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"iv_over_h": 120.0}, "an IV infusion shorter than the window"),
    ({"hours": 876600.0}, "at most 168 h"),
    ({"dose_mg": 5000.0}, "unit slip"),
])
def test_compare_refuses_windows_and_doses_that_cannot_be_meant(kwargs, message):
    args = {"routes": ["iv", "oral"], "forms": ["racemic"], "dose_mg": 25.0, "basis": "dose",
            "patient": Patient(70, 40, "male"), "hours": 12.0, **kwargs}
    with pytest.raises(InputError, match=message):
        compare(**args)
