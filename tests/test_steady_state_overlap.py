"""Steady states of infusions longer than their interval, in closed form whatever the ratio, against an
independent superposition of the dose history written out dose by dose.

The reference sums, for every earlier infusion and the record's own, the exact response of one zero-order
infusion (matrix exponentials from scipy, not the engine's eigen-decomposition), over enough past doses
that the rest is below 1e-15 of the total.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from ketaplan.engine.propagators import whole_intervals
from ketaplan.errors import InputError
from ketaplan.nonmem.simulate import simulate_dataset

TWO_CMT = {"advan": 3, "CL": 3.0, "V1": 10.0, "Q": 2.0, "V2": 30.0}


def rate_matrix(p: dict) -> np.ndarray:
    k, k12, k21 = p["CL"] / p["V1"], p["Q"] / p["V1"], p["Q"] / p["V2"]
    return np.array([[-k - k12, k21], [k12, -k21]])


def one_infusion(kmat: np.ndarray, rate: float, start: np.ndarray, dur: float, t: float) -> np.ndarray:
    """Amounts (n,) at time t from infusions of ``rate`` into compartment 1 starting at each of ``start``:
    K^-1 (e^(K on) - I) b filled while on, then e^(K (t - end)) of it (numpy's eigenvectors, not the engine's)."""
    lam, vec = np.linalg.eig(kmat)
    b = np.zeros(len(kmat))
    b[0] = rate
    z = np.linalg.solve(vec, b)
    s = start[start < t]
    on = np.minimum(t, s + dur) - s
    modes = np.expm1(lam * on[:, None]) / lam * np.exp(lam * (t - s - on)[:, None])  # (doses, n)
    return (vec @ (modes.sum(axis=0) * z)).real


def superposition(p: dict, rate: float, dur: float, ii: float, lag: float, times: list[float]) -> np.ndarray:
    kmat = rate_matrix(p)
    slowest = -np.max(np.linalg.eigvals(kmat).real)
    past = int(np.ceil((dur + 40.0 / slowest) / ii)) + 2  # e^-40 of the slowest mode: nothing left
    starts = lag - ii * np.arange(0, past + 1)  # the record's own infusion (j = 0) and the implied ones
    return np.array([one_infusion(kmat, rate, starts, dur, t)[0] / p["V1"] for t in times])


@pytest.mark.parametrize(("dur", "ii", "lag"), [
    (0.5, 1.0, 0.0),  # shorter than II
    (3.0, 1.0, 0.0),  # exactly three intervals
    (3.7, 1.0, 0.0),
    (7.3, 0.9, 0.4),  # with a lag
    (52.5, 0.25, 0.0),  # 210 intervals
    (250.3, 1.0, 0.6),
])
def test_overlapping_steady_state_infusions_match_the_dose_history(dur, ii, lag):
    rate = 2.0
    times = sorted([0.0, 0.05, lag + 0.3, dur / 2, dur + 1.0, dur + 30.0])
    rows = [{"ID": 1, "TIME": 0.0, "EVID": 1, "AMT": rate * dur, "RATE": rate, "II": ii, "SS": 1, "CMT": 1}]
    rows += [{"ID": 1, "TIME": t, "EVID": 0, "AMT": 0, "RATE": 0, "II": 0, "SS": 0, "CMT": 1} for t in times]
    model = {**TWO_CMT, "ALAG1": lag} if lag else TWO_CMT
    got = simulate_dataset(pd.DataFrame(rows), model)["IPRED"].to_numpy()[1:]
    want = superposition(TWO_CMT, rate, dur, ii, lag, times)
    np.testing.assert_allclose(got, want, rtol=1e-9)


def test_steady_state_cost_does_not_grow_with_the_ratio():
    """The amounts at an SS record for an infusion 10^8 times longer than II come in one closed form."""
    from ketaplan.engine.propagators import ModalPropagator

    kmat = rate_matrix(TWO_CMT)[None]
    prop, bad = ModalPropagator.decompose(kmat)
    assert not bad.any()
    r = np.array([[1.0, 0.0]])
    start = time.perf_counter()
    amounts = prop.steady_state_infusion(r, np.array([1e5]), np.array([1e-3]), np.array([0.0]))
    assert time.perf_counter() - start < 0.5
    constant = prop.steady_state_constant(r * 1e8)  # 10^8 infusions running: the same as a constant 10^8 rate
    np.testing.assert_allclose(amounts, constant, rtol=1e-9)


def test_whole_intervals_split_the_duration_exactly():
    whole, part = whole_intervals(np.array([3.0, 3.7, 0.5, 1e5, 0.0]), np.array([1.0, 1.0, 1.0, 1e-3, 2.0]))
    np.testing.assert_array_equal(whole[[0, 2, 4]], [3, 0, 0])
    assert whole[1] == 3 and part[1] == pytest.approx(0.7)
    assert np.all((part >= 0) & (part <= [1, 1, 1, 1e-3, 2]))


def test_infusions_still_running_after_the_record_are_counted_before_allocating():
    rows = [{"ID": 1, "TIME": 0, "EVID": 1, "AMT": 100000, "RATE": 1, "II": 0.001, "SS": 1, "CMT": 1},
            {"ID": 1, "TIME": 1, "EVID": 0, "AMT": 0, "RATE": 0, "II": 0, "SS": 0, "CMT": 1}]
    with pytest.raises(InputError, match=r"row 1: SS infusion: got 200,000,001 dose events; the limit is 200,000"):
        simulate_dataset(pd.DataFrame(rows), {"advan": 1, "CL": 1, "V": 10})


def test_matrix_exponential_path_gives_the_same_steady_state():
    """The path for defective systems splits the duration the same way."""
    from ketaplan.engine.propagators import ExpmPropagator, ModalPropagator

    kmat = rate_matrix(TWO_CMT)[None]
    modal, _ = ModalPropagator.decompose(kmat)
    r, dur, ii, lag = np.array([[2.0, 0.0]]), np.array([7.3]), np.array([0.9]), np.array([0.4])
    np.testing.assert_allclose(ExpmPropagator(kmat).steady_state_infusion(r, dur, ii, lag),
                               modal.steady_state_infusion(r, dur, ii, lag), rtol=1e-10)
