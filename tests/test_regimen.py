"""Regimens: constructors, repeats, weight resolution, NONMEM round trips and refusals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ketaplan.errors import InputError
from ketaplan.nonmem.records import nonmem_observations, regimen_from_records, regimen_to_records
from ketaplan.regimen.events import DoseEvent, Regimen


def test_infusion_constructor_with_courses():
    r = Regimen.infusion("20 mg/h", duration="5 d", every="11 weeks", courses=4)
    (e,) = r.events
    assert (e.amount, e.rate, e.ii, e.addl, e.route) == (2400.0, 20.0, 1848.0, 3, "iv")
    assert r.total_amount() == 9600.0
    assert r.end_time() == pytest.approx(3 * 1848 + 120)


def test_regimens_are_immutable_and_ordered():
    r = Regimen.bolus("25 mg", route="IN", at="2 h") + Regimen.infusion("20 mg/h", duration="1 h")
    assert [e.time for e in r.events] == [0.0, 2.0]
    with pytest.raises(AttributeError):
        r.events = ()  # type: ignore[misc]
    assert r.shifted(10).events[0].time == 10.0 and r.events[0].time == 0.0


def test_weight_based_rate_with_cap():
    r = Regimen.infusion("0.35 mg/kg/h", duration="4 h", max_rate="25 mg/h")
    with pytest.raises(InputError, match="needs the patient's body weight"):
        r.resolve(None)
    light, heavy = r.resolve(60).events[0], r.resolve(90).events[0]
    assert light.rate == pytest.approx(21.0) and light.amount == pytest.approx(84.0)
    assert heavy.rate == pytest.approx(25.0) and heavy.amount == pytest.approx(100.0)  # capped, same 4 h


def test_hcl_salt_is_converted_to_base():
    r = Regimen.bolus("100 mg", salt="HCl")
    assert r.events[0].amount == pytest.approx(100 * 237.73 / 274.19)


@pytest.mark.parametrize(("call", "message"), [
    (lambda: Regimen.infusion("20 mg/kg/h", duration="-1 h"), "duration"),
    (lambda: Regimen.infusion("20 mg", duration="5 d"), "is an amount"),
    (lambda: Regimen.infusion("20 mg/h", duration="5 d", courses=3), "repeated courses need an interval"),
    (lambda: Regimen.infusion("20 mg/h", duration="5 d", every="11 weeks", courses=0), "whole number >= 1"),
    (lambda: Regimen.bolus("25 mg", route="intrathecal"), "allowed routes"),
    (lambda: Regimen.bolus("-5 mg"), "doses must be finite and >= 0"),
    (lambda: Regimen.infusion("20 mg/h"), "give a duration"),
    (lambda: Regimen.bolus("25 mg", salt="sulfate"), "allowed values are 'base' and 'HCl'"),
])
def test_bad_regimens_are_refused(call, message):
    with pytest.raises(InputError, match=message):
        call()


def test_nonmem_round_trip_of_every_event_kind():
    data = pd.DataFrame({
        "ID": 1,
        "TIME": [0.0, 0.0, 4.0, 10.0, 24.0, 30.0, 36.0, 48.0, 60.0],
        "AMT": [100.0, 0.0, 0.0, 50.0, 0.0, 0.0, 80.0, 120.0, 0.0],
        "RATE": [20.0, 0.0, 0.0, 0.0, 0.0, 0.0, -2.0 * 0, 0.0, 0.0],
        "DUR": [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 4.0, 0.0, 0.0],
        "EVID": [1, 0, 2, 1, 0, 3, 4, 1, 0],
        "CMT": [2, 2, 2, 1, 2, 1, 2, 1, 2],
        "II": [0.0, 0.0, 0.0, 12.0, 0.0, 0.0, 0.0, 24.0, 0.0],
        "ADDL": [0, 0, 0, 1, 0, 0, 0, 0, 0],
        "SS": [0, 0, 0, 0, 0, 0, 0, 1, 0],
        "MDV": [1, 0, 1, 1, 0, 1, 1, 1, 1],
        "DV": [np.nan, 3.2, np.nan, np.nan, 1.5, np.nan, np.nan, np.nan, np.nan],
    })
    regimen = regimen_from_records(data, route_of_cmt={1: "oral", 2: "iv"})
    assert [e.evid for e in regimen.events] == [1, 1, 3, 4, 1]
    again = regimen_to_records(regimen, 1, observations=nonmem_observations(data))
    pd.testing.assert_frame_equal(again, data, check_dtype=False)


def test_to_nonmem_needs_a_compartment_for_extravascular_routes():
    with pytest.raises(InputError, match="cmt_of_route"):
        regimen_to_records(Regimen.bolus("25 mg", route="oral"))
    frame = regimen_to_records(Regimen.bolus("25 mg", route="oral"), cmt_of_route={"oral": 1}, observations=[1, 2])
    assert list(frame["CMT"]) == [1, 1, 1] and list(frame["EVID"]) == [1, 0, 0]


def test_dose_event_checks():
    with pytest.raises(InputError, match="not both"):
        DoseEvent(0, 100, rate=10, duration=5)
    with pytest.raises(InputError, match="interval"):
        DoseEvent(0, 100, addl=2)
