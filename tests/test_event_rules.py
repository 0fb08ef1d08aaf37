"""NONMEM event rules, each checked against a value computed by hand.

One-compartment model, CL = 1 L/h, V = 10 L (k = 0.1 /h), so C = A/10 and exponentials are easy.
The datasets go through ``simulate_dataset``, the path pharmacometricians use to check NONMEM.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ketaplan.nonmem.simulate import simulate_dataset

K, V, CL = 0.1, 10.0, 1.0
TOL = dict(rtol=1e-10, atol=1e-12)


def frame(rows):
    cols = ["ID", "TIME", "EVID", "AMT", "RATE", "DUR", "II", "ADDL", "SS", "CMT"]
    out = []
    for r in rows:
        base = {c: 0 for c in cols}
        base.update({"ID": 1, "CMT": 1})
        base.update(r)
        out.append(base)
    return pd.DataFrame(out)


def ipred(rows, **model):
    spec = {"advan": 1, "CL": CL, "V": V, **model}
    return simulate_dataset(frame(rows), spec)["IPRED"].to_numpy()


def obs(t, **kw):
    return {"TIME": t, "EVID": 0, **kw}


def test_bolus_bioavailability_scales_amount():
    c = ipred([{"TIME": 0, "EVID": 1, "AMT": 100}, obs(3)], F1=0.5)
    np.testing.assert_allclose(c, [5.0, 5.0 * np.exp(-0.3)], **TOL)


def test_bioavailability_changes_infusion_duration_not_rate():
    # RATE 10, AMT 100, F 0.5: 50 mg at 10 mg/h, so it ends at 5 h, not 10 h
    c = ipred([{"TIME": 0, "EVID": 1, "AMT": 100, "RATE": 10}, obs(5), obs(8)], F1=0.5)
    c5 = 10 / CL * (1 - np.exp(-K * 5))
    np.testing.assert_allclose(c[1:], [c5, c5 * np.exp(-K * 3)], **TOL)


def test_modelled_rate_rate_minus_one():
    c = ipred([{"TIME": 0, "EVID": 1, "AMT": 100, "RATE": -1}, obs(2.5), obs(4)], F1=0.5, R1=20)
    c25 = 20 / CL * (1 - np.exp(-K * 2.5))  # 50 mg at 20 mg/h lasts 2.5 h
    np.testing.assert_allclose(c[1:], [c25, c25 * np.exp(-K * 1.5)], **TOL)


def test_modelled_duration_rate_minus_two_and_dur_item():
    # 50 mg over a fixed 4 h: rate 12.5 mg/h
    c4 = 12.5 / CL * (1 - np.exp(-K * 4))
    modelled = ipred([{"TIME": 0, "EVID": 1, "AMT": 100, "RATE": -2}, obs(4), obs(6)], F1=0.5, D1=4)
    data_dur = ipred([{"TIME": 0, "EVID": 1, "AMT": 100, "DUR": 4}, obs(4), obs(6)], F1=0.5)
    np.testing.assert_allclose(modelled[1:], [c4, c4 * np.exp(-K * 2)], **TOL)
    np.testing.assert_allclose(data_dur, modelled, **TOL)


def test_lag_time_shifts_the_dose():
    c = ipred([{"TIME": 0, "EVID": 1, "AMT": 100}, obs(1), obs(3)], ALAG1=2)
    np.testing.assert_allclose(c, [0.0, 0.0, 10 * np.exp(-K)], **TOL)


def test_additional_doses():
    c = ipred([{"TIME": 0, "EVID": 1, "AMT": 100, "II": 12, "ADDL": 2}, obs(30)])
    expected = 10 * (np.exp(-K * 30) + np.exp(-K * 18) + np.exp(-K * 6))
    np.testing.assert_allclose(c[1], expected, **TOL)


def test_reset_evid3_and_cancelled_pending_doses():
    c = ipred([{"TIME": 0, "EVID": 1, "AMT": 100, "II": 12, "ADDL": 5}, obs(29), {"TIME": 30, "EVID": 3},
               obs(31), obs(40)])
    before = 10 * sum(np.exp(-K * (29 - t)) for t in (0, 12, 24))
    np.testing.assert_allclose(c, [10.0, before, 0.0, 0.0, 0.0], **TOL)


def test_reset_turns_off_a_running_infusion():
    c = ipred([{"TIME": 0, "EVID": 1, "AMT": 100, "RATE": 5}, {"TIME": 4, "EVID": 3}, obs(10)])
    np.testing.assert_allclose(c[-1], 0.0, atol=1e-12)


def test_reset_and_dose_evid4_with_additional_doses_resets_once():
    rows = [{"TIME": 0, "EVID": 1, "AMT": 100}, {"TIME": 50, "EVID": 4, "AMT": 100, "II": 12, "ADDL": 2}, obs(62),
            obs(80)]
    c = ipred(rows)
    c62 = 10 * np.exp(-K * 12) + 10  # only the first dose of the EVID 4 record resets
    c80 = 10 * (np.exp(-K * 30) + np.exp(-K * 18) + np.exp(-K * 6))
    np.testing.assert_allclose(c[2:], [c62, c80], **TOL)
    np.testing.assert_allclose(c[1], 10.0, **TOL)  # IPRED on the EVID 4 record: after reset and its bolus


def test_steady_state_bolus_ss1_and_ss2():
    css = 10 / (1 - np.exp(-K * 12))
    c = ipred([{"TIME": 0, "EVID": 1, "AMT": 100, "II": 12, "SS": 1}, obs(6),
               {"TIME": 6, "EVID": 1, "AMT": 50, "II": 12, "SS": 2}, obs(6), obs(9)])
    second = 5 / (1 - np.exp(-K * 12))
    c6 = css * np.exp(-K * 6)
    np.testing.assert_allclose(c, [css, c6, c6 + second, c6 + second, (c6 + second) * np.exp(-K * 3)], **TOL)


def test_ss1_resets_previous_amounts_and_pending_doses():
    c = ipred([{"TIME": 0, "EVID": 1, "AMT": 500, "II": 6, "ADDL": 10},
               {"TIME": 20, "EVID": 1, "AMT": 100, "II": 12, "SS": 1}, obs(30)])
    css = 10 / (1 - np.exp(-K * 12))
    np.testing.assert_allclose(c[-1], css * np.exp(-K * 10), **TOL)


def _ss_infusion_by_summation(rate, dur, ii, t, lag=0.0, terms=4000):
    """Superposition of implied infusions started at lag - k*ii (k >= 1), evaluated at time t."""
    total = 0.0
    for k in range(1, terms):
        s = t + k * ii - lag
        if s <= 0:
            continue
        if s <= dur:
            total += rate / CL * (1 - np.exp(-K * s))
        else:
            total += rate / CL * (1 - np.exp(-K * dur)) * np.exp(-K * (s - dur))
    return total


def _single_infusion(rate, dur, s):
    if s <= 0:
        return 0.0
    if s <= dur:
        return rate / CL * (1 - np.exp(-K * s))
    return rate / CL * (1 - np.exp(-K * dur)) * np.exp(-K * (s - dur))


@pytest.mark.parametrize("dur", [5.0, 12.0, 18.0, 30.0])
def test_steady_state_infusions_shorter_equal_longer_than_ii(dur):
    rate, ii = 20.0, 12.0
    times = [0.0, 3.0, 7.0, 12.0]
    rows = [{"TIME": 0, "EVID": 1, "AMT": rate * dur, "RATE": rate, "II": ii, "SS": 1}] + [obs(t) for t in times]
    c = ipred(rows)[1:]
    # after the SS record: implied infusions continue, plus the record's own infusion from time 0
    expected = [_ss_infusion_by_summation(rate, dur, ii, t) + _single_infusion(rate, dur, t) for t in times]
    np.testing.assert_allclose(c, expected, rtol=1e-10)


def test_steady_state_with_lag_time():
    ii, lag = 12.0, 3.0
    c = ipred([{"TIME": 0, "EVID": 1, "AMT": 100, "II": ii, "SS": 1}, obs(0), obs(2), obs(3), obs(5)], ALAG1=lag)
    css_peak = 10 / (1 - np.exp(-K * ii))
    at0 = css_peak * np.exp(-K * (ii - lag))  # computed without lag, advanced II - ALAG
    np.testing.assert_allclose(c[1:], [at0, at0 * np.exp(-K * 2), at0 * np.exp(-K * 3) + 10,
                                       (at0 * np.exp(-K * 3) + 10) * np.exp(-K * 2)], **TOL)


def test_steady_state_constant_infusion_amt_zero():
    # AMT 0, RATE 10, SS 1, II 0: amounts of an infusion run forever; nothing runs after the record
    c = ipred([{"TIME": 0, "EVID": 1, "AMT": 0, "RATE": 10, "SS": 1}, obs(0), obs(5)], F1=0.3)
    np.testing.assert_allclose(c[1:], [10.0, 10 * np.exp(-K * 5)], **TOL)  # F does not apply (NONMEM)


def test_lagged_and_additional_doses_land_before_an_observation_at_the_same_time():
    c = ipred([{"TIME": 0, "EVID": 1, "AMT": 100, "II": 12, "ADDL": 1}, obs(12)], ALAG1=0)
    np.testing.assert_allclose(c[1], 10 * np.exp(-K * 12) + 10, **TOL)
    lagged = ipred([{"TIME": 0, "EVID": 1, "AMT": 100}, obs(2)], ALAG1=2)
    np.testing.assert_allclose(lagged[1], 10.0, **TOL)


def test_record_order_at_equal_times_and_ipred_on_dose_records():
    c = ipred([{"TIME": 0, "EVID": 1, "AMT": 100}, obs(12), {"TIME": 12, "EVID": 1, "AMT": 100}, obs(12)])
    before = 10 * np.exp(-K * 12)
    # observation listed before the dose does not see it; the dose record reports after its bolus
    np.testing.assert_allclose(c, [10.0, before, before + 10, before + 10], **TOL)


def test_overlapping_infusions_add_up():
    c = ipred([{"TIME": 0, "EVID": 1, "AMT": 100, "RATE": 10}, {"TIME": 5, "EVID": 1, "AMT": 200, "RATE": 20},
               obs(10), obs(16)])
    expected = [_single_infusion(10, 10, t) + _single_infusion(20, 10, t - 5) for t in (10, 16)]
    np.testing.assert_allclose(c[2:], expected, **TOL)


def test_infusion_into_depot():
    ka = 0.7
    spec = {"advan": 2, "CL": CL, "V": V, "KA": ka}
    data = frame([{"TIME": 0, "EVID": 1, "AMT": 70, "RATE": 10, "CMT": 1}, obs(3, CMT=2), obs(10, CMT=2)])
    out = simulate_dataset(data, spec)
    # depot: dA/dt = 10 - ka A (7 h); at 3 h the depot holds 10/ka (1 - e^{-ka 3})
    np.testing.assert_allclose(out["A1"].iloc[1], 10 / ka * (1 - np.exp(-ka * 3)), **TOL)
    # central during infusion into depot: convolution of a step with the Bateman kernel
    t = 3.0
    central = 10 * ka * ((1 - np.exp(-K * t)) / (K * ka) - (np.exp(-K * t) - np.exp(-ka * t)) / (ka * (ka - K)))
    np.testing.assert_allclose(out["A2"].iloc[1], central, **TOL)


def test_time_varying_clearance_next_observation_carried_backward():
    data = frame([{"TIME": 0, "EVID": 1, "AMT": 100}, obs(5), obs(10), obs(15)])
    data["CLV"] = [1.0, 1.0, 2.0, 2.0]
    c = simulate_dataset(data, {"advan": 1, "CL": "CLV", "V": V})["IPRED"].to_numpy()
    c5 = 10 * np.exp(-0.1 * 5)
    # the record at t=10 carries CL=2 for the interval (5, 10]
    np.testing.assert_allclose(c, [10.0, c5, c5 * np.exp(-0.2 * 5), c5 * np.exp(-0.4 * 5)], **TOL)
