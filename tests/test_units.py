"""Quantities: parsing, conversion, round trips and every refusal."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ketaplan.errors import UnitError
from ketaplan.regimen.units import Kind, base_to_hcl, convert, hcl_to_base, parse, parse_dose


@pytest.mark.parametrize(("text", "kind", "expected"), [
    ("50 mg", Kind.AMOUNT, 50.0), ("500 ug", Kind.AMOUNT, 0.5), ("500 µg", Kind.AMOUNT, 0.5),
    ("500 mcg", Kind.AMOUNT, 0.5), ("0.05 g", Kind.AMOUNT, 50.0),
    ("2 h", Kind.DURATION, 2.0), ("90 min", Kind.DURATION, 1.5), ("5 d", Kind.DURATION, 120.0),
    ("11 weeks", Kind.DURATION, 1848.0), ("1 week", Kind.DURATION, 168.0),
    ("0.5 L", Kind.VOLUME, 500.0), ("50 mL", Kind.VOLUME, 50.0),
    ("20 mg/h", Kind.RATE, 20.0), ("0.5 mg/min", Kind.RATE, 30.0),
    ("100 ng/mL", Kind.MASS_CONCENTRATION, 100.0), ("100 ug/L", Kind.MASS_CONCENTRATION, 100.0),
    ("0.1 mg/L", Kind.MASS_CONCENTRATION, 100.0), ("1 mg/mL", Kind.MASS_CONCENTRATION, 1e6),
    ("20 mL/h", Kind.VOLUME_RATE, 20.0),
])
def test_parse_known_units(text, kind, expected):
    assert parse(text, kind) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(("text", "kind", "value"), [
    ("0.35 mg/kg/h", Kind.RATE, 0.35), ("5 ug/kg/min", Kind.RATE, 0.3), ("0.5 mg/kg", Kind.AMOUNT, 0.5),
])
def test_weight_based_doses_stay_per_kg(text, kind, value):
    dose = parse_dose(text, kind)
    assert dose.per_kg
    assert dose.value == pytest.approx(value)
    assert dose.absolute(80.0, "dose") == pytest.approx(value * 80)


def test_per_kg_dose_without_weight_is_refused():
    with pytest.raises(UnitError, match="needs the patient's body weight"):
        parse_dose("0.35 mg/kg/h", Kind.RATE).absolute(None, "rate")


@pytest.mark.parametrize(("text", "kind", "message"), [
    ("20 mg/kg/h", Kind.RATE, "weight-based rate"),       # mg vs mg/kg slip
    ("20 mg", Kind.RATE, "is an amount"),                  # amount where a rate is expected
    ("20 mg/h", Kind.AMOUNT, "is an infusion rate"),       # rate where an amount is expected
    ("20", Kind.RATE, "a unit is required"),               # bare number
    ("20 blorbs", Kind.AMOUNT, "unknown unit"),            # unknown unit
    ("mg", Kind.AMOUNT, "a number is required"),          # no number
    ("5 kg", Kind.DURATION, "a duration such as"),         # wrong dimension
    ("nan mg", Kind.AMOUNT, "finite"),
])
def test_refusals_are_one_sentence(text, kind, message):
    with pytest.raises(UnitError) as info:
        parse(text, kind, field="rate")
    text_out = str(info.value)
    assert message in text_out
    assert text_out.count("\n") == 0 and text_out.endswith(".")
    assert text_out.startswith("rate: got ")


def test_rate_per_minute_is_not_confused_with_per_hour():
    assert parse("20 mg/min", Kind.RATE) == pytest.approx(1200.0)


def test_molar_and_mass_concentrations():
    assert convert(1, "umol/L", "ng/mL", "ketamine") == pytest.approx(237.73)
    assert convert(1, "umol/L", "ng/mL", "norketamine") == pytest.approx(223.70)
    assert convert(237.73, "ng/mL", "nmol/L", "ketamine") == pytest.approx(1000.0)
    assert convert(2.7, "umol/L", "ng/mL") == pytest.approx(641.87, rel=1e-4)  # Idvall 1979 recovery level
    with pytest.raises(UnitError, match="analyte"):
        convert(1, "umol/L", "ng/mL", "caffeine")
    with pytest.raises(UnitError, match="different things"):
        convert(1, "mg", "mL")


def test_hcl_and_base():
    # Spravato label: 32.3 mg esketamine HCl is 28 mg esketamine
    assert hcl_to_base(32.3) == pytest.approx(28.0, abs=0.02)
    assert hcl_to_base(100) == pytest.approx(100 * 237.73 / 274.19)


@given(st.floats(1e-6, 1e6))
def test_hcl_base_round_trip(x):
    assert base_to_hcl(hcl_to_base(x)) == pytest.approx(x, rel=1e-12)


@given(st.floats(1e-6, 1e6), st.sampled_from(["ng/mL", "ug/L", "mg/L", "ug/mL"]),
       st.sampled_from(["ng/mL", "ug/L", "mg/L", "nmol/L", "umol/L"]), st.sampled_from(["ketamine", "norketamine"]))
def test_concentration_round_trips(x, a, b, analyte):
    back = convert(convert(x, a, b, analyte), b, a, analyte)
    assert math.isclose(back, x, rel_tol=1e-12)


@given(st.floats(1e-3, 1e4), st.sampled_from([("mg/h", 1.0), ("mg/min", 60.0), ("ug/min", 0.06), ("g/d", 1000 / 24)]))
def test_rate_round_trip(x, unit):
    name, factor = unit
    assert parse(f"{x!r} {name}", Kind.RATE) == pytest.approx(x * factor, rel=1e-12)
    assert convert(parse(f"{x!r} {name}", Kind.RATE), "mg/h", name) == pytest.approx(x, rel=1e-12)
