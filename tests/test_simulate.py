"""The main job: per-course summary checked against the engine and hand calculations; safety findings."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest

from ketaplan.errors import InputError
from ketaplan.models.thresholds import thresholds_for
from ketaplan.planning.plan import simulate
from ketaplan.regimen.events import Regimen
from ketaplan.simulation.patient import Patient
from ketaplan.simulation.predict import predict


@pytest.fixture(scope="module")
def seed():
    return simulate("20 mg/h IV for 5 d every 11 weeks x 4 starting 2026-12-01 09:00", weight=70, age=59, sex="male",
                    baseline_pain=7)


def test_summary_matches_the_engine_and_hand_calculations(seed):
    s = seed.summary
    assert list(s["course"]) == [1, 2, 3, 4]
    assert s["dose_mg"].tolist() == [2400.0] * 4
    # steady state of a constant infusion: rate / CL (Domino CL 115.9 L/h at 70 kg x 0.6816, the Kamp 2020 mean)
    np.testing.assert_allclose(s["css_avg_ng_ml"], 20 / (115.92 * 0.6816) * 1000, rtol=1e-3)
    t = np.linspace(0, 1848, 184801)
    c = predict(seed.spec, Regimen.infusion("20 mg/h", duration="5 d"), Patient(70, 59, "male"), t)["ketamine"]
    assert s["cmax_ng_ml"].iloc[0] == pytest.approx(c.max(), rel=1e-6)
    assert s["auc_ng_h_ml"].iloc[0] == pytest.approx(np.trapezoid(c, t), rel=2e-3)
    above = t[c.to_numpy() > 100]
    assert s["hours_above_analgesia"].iloc[0] == pytest.approx(above[-1] - above[0], abs=0.05)
    above = t[c.to_numpy() > 150]  # the psychotomimetic central value (range 50-250 ng/mL)
    assert s["hours_above_psychotomimetic"].iloc[0] == pytest.approx(above[-1] - above[0], abs=0.05)


def test_relief_duration_and_next_course_date(seed):
    s = seed.summary
    site = seed["relief_site"].to_numpy()
    t = seed["time"].to_numpy()
    relief = site / (10.5 + site)  # Dahan: responder relief with gamma 1 and Emax 1
    np.testing.assert_allclose(seed["relief"], relief, rtol=1e-12)
    after = (t >= 120) & (relief < 0.3)
    expected_days = (t[after][0] - 120) / 24
    assert s["relief_days"].iloc[0] == pytest.approx(expected_days)
    assert s["next_course_due_date"].iloc[0] == datetime(2026, 12, 1, 9) + (
        s["next_course_due_date"].iloc[0] - datetime(2026, 12, 1, 9))
    assert (s["next_course_due_h"].iloc[0] - 120) / 24 == pytest.approx(expected_days)
    np.testing.assert_allclose(seed["pain_nrs"], 7 * (1 - relief), rtol=1e-12)


def test_relief_threshold_is_settable():
    a = simulate("20 mg/h IV for 5 d", weight=70, relief_threshold=0.3).summary["relief_days"].iloc[0]
    b = simulate("20 mg/h IV for 5 d", weight=70, relief_threshold=0.5).summary["relief_days"].iloc[0]
    assert b < a


def test_findings_for_liver_and_levels():
    f = simulate("20 mg/h IV for 5 d every 2 weeks x 2", weight=70)
    codes = {x.code for x in f.findings}
    assert {"liver_monitoring", "repeated_long_infusions", "cumulative_dose"} <= codes
    cumulative = next(x for x in f.findings if x.code == "cumulative_dose")
    assert "year 1: 4800 mg in 2 courses" in cumulative.message
    assert all(x.source for x in f.findings)
    high = simulate("2.5 mg/kg/h IV for 2 h", weight=70)
    codes = {x.code for x in high.findings}
    assert {"rate_above_range", "above_psychotomimetic"} <= codes


def test_psychotomimetic_warning_says_expected_only_above_the_top_of_the_reported_range():
    psycho = thresholds_for("racemic")["psychotomimetic"]

    def peak_and_message(text: str, weight: float) -> tuple[float, str]:
        r = simulate(text, weight=weight)
        return (r.summary["cmax_ng_ml"].iloc[0],
                next(x.message for x in r.findings if x.code == "above_psychotomimetic"))

    # the seed regimen in 80 kg: steady state 20 mg/h / (79 L/h x 80/70) = 221 ng/mL, inside 150-250
    cmax, message = peak_and_message("20 mg/h IV for 5 d", 80)
    assert psycho.value < cmax <= psycho.high
    assert "are possible" in message and f"expected above {psycho.high:g} ng/mL" in message
    assert "expect dissociation" not in message
    cmax, message = peak_and_message("2.5 mg/kg/h IV for 2 h", 70)
    assert cmax > psycho.high and "expect dissociation" in message


@pytest.mark.parametrize("slip", ["20 mg/kg/h IV for 5 d", "20 mg/min IV for 1 h", "500 mg/kg IV bolus over 1 min"])
def test_unit_slips_are_refused_unless_forced(slip):
    with pytest.raises(InputError, match="refused because"):
        simulate(slip, weight=80, until=48)
    forced = simulate(slip, weight=80, until=48, force=True)
    assert forced.findings[0].severity == "refused"


def test_per_kg_regimen_needs_a_weight_and_bad_settings_are_refused():
    with pytest.raises(InputError, match="weight"):
        simulate("0.35 mg/kg/h IV for 4 h")
    with pytest.raises(InputError, match="relief threshold"):
        simulate("20 mg/h IV for 5 d", weight=70, relief_threshold=3)
    with pytest.raises(InputError, match="no such parameter"):
        simulate("20 mg/h IV for 5 d", weight=70, overrides={"NOPE": 1})


def test_topical_absorbed_fraction_is_user_settable():
    zero = simulate("topical 10% cream 1 g tid for 2 d", weight=70)
    assert zero.summary["cmax_ng_ml"].iloc[0] == 0.0
    some = simulate("topical 10% cream 1 g tid for 2 d", weight=70, overrides={"F_TOPICAL": 0.05})
    assert 0 < some.summary["cmax_ng_ml"].iloc[0] < 50


def test_s_ketamine_uses_its_default_model_and_acute_pd():
    f = simulate("S-ketamine 0.2 mg/kg/h IV for 100 h", weight=70)
    assert f.spec.id.startswith("otto_2021_s_ketamine_norketamine")
    assert {"s_ketamine", "s_norketamine", "acute_pain_change", "relief"} <= set(f.columns)
    assert f.summary["css_avg_ng_ml"].iloc[0] == pytest.approx(14 / 95.2 * 1000, rel=1e-3)


def test_json_is_serialisable(seed):
    import json

    data = json.loads(json.dumps(seed.to_json_dict(), default=str))
    assert data["summary"][0]["course"] == 1 and data["model"]["citations"] and data["findings"]


@pytest.mark.parametrize(("regimen", "kwargs", "message"), [
    ("20 mg/h IV for 5 d (max 10 mg/h)", {}, "a cap '(max ...)' limits a weight-based dose"),
    ("0.35 mg/kg/h IV for 4 h (max 0 mg/h)", {}, "must be > 0"),
    ("20 mg/h IV for 5 d every 11 weeks x 100000", {}, "got 100,000 doses; the limit is 25,000 doses per plan"),
    ("20 mg/h IV for 5 d every 11 weeks x 200", {}, "got 42 years; the limit is 20 years"),
    ("20 mg/h IV for 500 years", {}, "got 500 years; the limit is 20 years"),
    ("20 mg/h IV for 5 d starting 1800-01-01 09:00", {}, "a start date between 1950 and 2100"),
    ("topical 10% cream 1 g tid for 14 d", {"overrides": {"F_TOPICAL": 5.0}}, "a bioavailability is a fraction"),
])
def test_plans_that_cannot_be_meant_are_refused_in_one_sentence(regimen, kwargs, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        simulate(regimen, weight=80, age=59, sex="male", **kwargs)


def test_a_single_dose_has_no_steady_state_level():
    assert np.isnan(simulate("20 mg IV", weight=80, age=59, sex="male").summary["css_avg_ng_ml"].iloc[0])
    repeated = simulate("50 mg PO q8h for 14 d", weight=80, age=59, sex="male").summary["css_avg_ng_ml"].iloc[0]
    assert 0 < repeated < 1000


@pytest.mark.parametrize("regimen", ["20 mg/h IV for 5 d every 1 weeks x 3", "20 mg/h IV for 5 d every 3 weeks x 2"])
def test_long_infusions_close_together_warn_even_within_one_course(regimen):
    """Infusions under a week apart form one course; the liver check still looks at each infusion."""
    f = simulate(regimen, weight=80, age=59, sex="male")
    assert "repeated_long_infusions" in [x.code for x in f.findings if x.severity == "warning"]
