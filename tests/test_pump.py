"""Pump plans against hand calculations: mL/h, container changes, totals, rounding."""

from __future__ import annotations

import pytest

from ketaplan.errors import InputError
from ketaplan.planning.plan import simulate
from ketaplan.planning.pump import pump_plan
from ketaplan.planning.pump_levels import pump_horizon, pump_levels
from ketaplan.regimen.text import parse_regimen


def test_20_mg_per_h_from_1_mg_per_ml():
    plan = pump_plan(parse_regimen("20 mg/h IV for 5 d starting 2026-12-01 09:00"), 80, 1.0, "syringe", 50, 0.1)
    (seg,) = plan.segments
    assert seg.rate_ml_h == 20.0 and seg.rate_ml_h_rounded == 20.0
    times = [c.time_h for c in plan.changes]
    assert times[:3] == [0.0, 2.5, 5.0]  # a 50 mL syringe lasts 2.5 h
    assert len(plan.changes) == 48  # 2400 mL over 5 days
    assert plan.changes[1].clock == "2026-12-01 11:30"
    assert plan.per_course[0].drug_mg == pytest.approx(2400.0)
    assert [d.drug_mg for d in plan.per_day] == pytest.approx([300, 480, 480, 480, 480, 180])


def test_bags_respect_the_hang_time():
    plan = pump_plan(parse_regimen("20 mg/h IV for 5 d"), 80, 1.0, "bag", 500, 0.1, max_hang_h=24)
    assert [c.time_h for c in plan.changes] == [0, 24, 48, 72, 96]  # 500 mL would last 25 h


def test_rounding_to_the_pump_increment_and_the_level_it_gives():
    reg = parse_regimen("0.35 mg/kg/h IV for 4 h daily x 3 days")
    plan = pump_plan(reg, 83, 2.0, "syringe", 50, 0.1)
    seg = plan.segments[0]
    assert seg.rate_ml_h == pytest.approx(0.35 * 83 / 2.0)  # 14.525 mL/h
    assert seg.rate_ml_h_rounded == pytest.approx(14.5)
    assert seg.delivered_mg_h == pytest.approx(29.0)
    assert seg.per_kg == "0.35 mg/kg/h x 83 kg = 29.05 mg/h"
    planned = simulate(reg, weight=83, until=80).summary["cmax_ng_ml"].iloc[0]
    delivered = simulate(plan.delivered_regimen(reg, 83), weight=83, until=80).summary["cmax_ng_ml"].iloc[0]
    assert delivered / planned == pytest.approx(29.0 / 29.05, rel=1e-6)  # linear PK


@pytest.mark.parametrize(("text", "weight"), [
    ("20 mg/h IV for 5 d every 11 weeks x 2", 80.0),
    ("0.35 mg/kg/h IV for 4 h daily x 3 days", 83.0),
    ("0.3 mg/kg IV bolus over 1 min; 20 mg/h IV for 1 d; 20 mg/h IV for 1 d at 3 d", 70.0),
    ("20 mg/h IV for 1 d; 100 mg ketamine HCl PO q8h for 3 d at 24 h", 80.0),  # oral doses after the pump
    ("20 mg/h IV for 1 d; 0.3 mg/kg IV bolus over 1 min at 3 d", 80.0),
    ("S-ketamine 0.2 mg/kg/h IV for 100 h", 70.0),
])
def test_pump_levels_are_the_levels_simulate_reports(text, weight):
    """The pump's pandas-free path (parent only) against the full simulation: same grid, same formulas, so the
    numbers agree to rounding, and the same dose and level findings are raised."""
    reg = parse_regimen(text)
    plan = pump_plan(reg, weight, 10.0, "syringe", 50, 0.1)
    levels, findings = pump_levels(reg, plan, weight, None, force=False)
    horizon = pump_horizon(reg, plan, weight)
    assert horizon >= max(e.time + e.infusion_hours for e in reg.resolve(weight).events) + 24.0
    planned = simulate(reg, weight=weight, until=horizon, spread=False)
    delivered = simulate(plan.delivered_regimen(reg, weight), weight=weight, until=horizon, spread=False, force=True)
    for key, frame, column in (("planned_css", planned, "css_avg_ng_ml"), ("delivered_css", delivered, "css_avg_ng_ml"),
                               ("planned_cmax", planned, "cmax_ng_ml"), ("delivered_cmax", delivered, "cmax_ng_ml")):
        assert levels[key] == pytest.approx(float(frame.summary[column].iloc[0]), rel=1e-12, nan_ok=True)
    assert [(f.code, f.message) for f in findings] == [(f.code, f.message) for f in planned.findings]


def test_titration_and_boluses():
    plan = pump_plan(parse_regimen("10 mg/h IV titrate +5 mg/h every 2 h to 40 mg/h for 1 d"), 80, 1.0, "syringe", 50)
    assert [round(c.time_h, 3) for c in plan.changes[:3]] == [0.0, 4.0, 6.4]  # 20 + 30 mL, then 50/15+...
    bolus = pump_plan(parse_regimen("0.3 mg/kg IV bolus over 1 min"), 80, 10.0, "syringe", 50)
    assert bolus.boluses[0]["volume_ml"] == pytest.approx(2.4)


@pytest.mark.parametrize(("args", "message"), [
    (dict(concentration_mg_ml=0), "concentration"),
    (dict(container="bucket"), "syringe and bag"),
    (dict(increment_ml_h=-1), "pump increment"),
    (dict(concentration_mg_ml=1000, increment_ml_h=1), "rounds to 0 mL/h"),
])
def test_bad_pump_settings(args, message):
    kw = dict(concentration_mg_ml=1.0, container="syringe", container_ml=50.0, increment_ml_h=0.1) | args
    with pytest.raises(InputError, match=message):
        pump_plan(parse_regimen("20 mg/h IV for 5 d"), 80, **kw)


def test_no_iv_dose_for_a_pump():
    with pytest.raises(InputError, match="no IV dose"):
        pump_plan(parse_regimen("25 mg IN"), 80, 1.0)


def test_a_concentration_slip_is_flagged_by_the_volume_it_implies():
    slip = pump_plan(parse_regimen("20 mg/h IV for 5 d"), 80.0, 0.05)  # 50 ug/mL typed where 50 mg/mL was meant
    assert any("check the concentration" in n and "400 mL/h" in n for n in slip.notes)
    usual = pump_plan(parse_regimen("20 mg/h IV for 5 d"), 80.0, 1.0)
    assert not any("check the concentration" in n for n in usual.notes)


def test_a_simulation_that_ends_inside_a_course_says_so():
    f = simulate("20 mg/h IV for 5 d", weight=80, age=59, sex="male", until=1.0)
    assert [x.code for x in f.findings if x.severity == "warning"] == ["horizon_inside_course"]
