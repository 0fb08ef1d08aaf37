"""The prediction-corrected VPC against a direct computation, and its behaviour on simulated data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ketaplan.estimation.api import estimate
from ketaplan.estimation.vpc import correct, time_bins, vpc_statistics

MODEL = {"advan": 1, "theta": [{"init": 2.0, "lower": 0}, {"init": 20.0, "lower": 0}],
         "parameters": {"CL": "THETA(1) * exp(ETA(1))", "V": "THETA(2) * exp(ETA(2))"},
         "omega": [0.09, 0.04], "sigma": {"proportional": 0.02}}


def test_vpc_statistics_against_a_direct_computation():
    rng = np.random.default_rng(0)
    time = np.array([0.5, 1.0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 12.0, 18.0, 24.0])
    pred = 10 * np.exp(-0.1 * time) * np.where(np.arange(12) % 2, 1.0, 3.0)  # two dose levels
    observed = pred * np.exp(rng.normal(0, 0.3, 12))
    sims = pred * np.exp(rng.normal(0, 0.3, (60, 12)))
    vpc = vpc_statistics(time, observed, pred, sims, n_bins=3)
    edges = np.quantile(time, [0, 1 / 3, 2 / 3, 1])
    assert vpc.bins["time_lo"].tolist() == pytest.approx(edges[:-1].tolist())
    for b in range(3):
        last = b == 2
        sel = (time >= edges[b]) & ((time <= edges[b + 1]) if last else (time < edges[b + 1]))
        bin_pred = np.median(pred[sel])
        pc_obs = observed[sel] * bin_pred / pred[sel]
        pc_sim = sims[:, sel] * bin_pred / pred[sel]
        row = vpc.bins.iloc[b]
        assert row["n"] == sel.sum()
        assert row["time"] == pytest.approx(np.median(time[sel]))
        for p, key in ((5, "p5"), (50, "p50"), (95, "p95")):
            assert row[f"obs_{key}"] == pytest.approx(np.percentile(pc_obs, p))
            per_replicate = [np.percentile(pc_sim[k], p) for k in range(60)]
            assert row[f"sim_{key}_lo"] == pytest.approx(np.percentile(per_replicate, 2.5))
            assert row[f"sim_{key}_med"] == pytest.approx(np.median(per_replicate))
            assert row[f"sim_{key}_hi"] == pytest.approx(np.percentile(per_replicate, 97.5))
    np.testing.assert_allclose(vpc.observations["DV"][vpc.observations["BIN"] == 1],
                               (observed * np.median(pred[time < edges[1]]) / pred)[time < edges[1]])


def test_prediction_correction_on_the_log_scale_is_the_multiplicative_one():
    pred = np.array([2.0, 5.0, 9.0])
    values = np.array([[1.5, 6.0, 8.0], [2.5, 4.0, 12.0]])
    bin_pred = np.full(3, 5.0)
    np.testing.assert_allclose(np.exp(correct(np.log(values), np.log(pred), np.log(bin_pred), log_scale=True)),
                               correct(values, pred, bin_pred, log_scale=False))


def test_time_bins_keep_tied_times_together():
    time = np.array([1.0, 1.0, 1.0, 1.0, 2.0, 8.0, 8.0, 8.0, 24.0])
    edges, index = time_bins(time, 4)
    assert np.all(np.diff(edges) > 0)
    for t in np.unique(time):
        assert len(set(index[time == t])) == 1
    assert index.min() == 0 and index.max() == len(edges) - 2


def _design(n: int = 40) -> pd.DataFrame:
    rows = []
    for i in range(1, n + 1):
        dose = 100.0 if i % 2 else 400.0  # doses fourfold apart: a plain VPC mixes them, a pcVPC not
        rows.append({"ID": i, "TIME": 0.0, "AMT": dose, "DV": 0.0, "EVID": 1, "MDV": 1})
        rows += [{"ID": i, "TIME": t, "AMT": 0.0, "DV": 1.0, "EVID": 0, "MDV": 0} for t in (1.0, 3.0, 8.0, 16.0)]
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def design_fit():
    return estimate(_design(), MODEL, evaluate=True, covariance=False)


def test_pcvpc_intervals_cover_data_simulated_from_the_model(design_fit):
    """Datasets simulated from the model fall inside the 95 % intervals about 95 % of the time."""
    data = design_fit.data
    simulated = design_fit.replicates(300, seed=5)[:, data.obs_mask]
    pred = design_fit.residuals().pred[data.obs_mask]
    time = data.obs_time[data.obs_mask]
    inside = []
    for observed in design_fit.replicates(60, seed=6)[:, data.obs_mask]:
        vpc = vpc_statistics(time, observed, pred, simulated, n_bins=4)
        assert vpc.bins["n"].tolist() == [40, 40, 40, 40] and vpc.n_replicates == 300 and vpc.corrected
        for key in ("p5", "p50", "p95"):
            inside += list((vpc.bins[f"obs_{key}"] >= vpc.bins[f"sim_{key}_lo"])
                           & (vpc.bins[f"obs_{key}"] <= vpc.bins[f"sim_{key}_hi"]))
    assert 0.91 < np.mean(inside) < 0.99


def test_prediction_correction_removes_the_dose_spread(design_fit):
    corrected = design_fit.vpc(replicates=300, seed=5, bins=4)
    plain = design_fit.vpc(replicates=300, seed=5, bins=4, corrected=False)
    width = (corrected.bins["sim_p95_med"] - corrected.bins["sim_p5_med"]) / corrected.bins["sim_p50_med"]
    plain_width = (plain.bins["sim_p95_med"] - plain.bins["sim_p5_med"]) / plain.bins["sim_p50_med"]
    assert np.all(width < 0.7 * plain_width)  # doses fourfold apart no longer widen the bins


def test_vpc_follows_its_seed(design_fit):
    a = design_fit.vpc(replicates=100, seed=1, bins=4)
    pd.testing.assert_frame_equal(a.bins, design_fit.vpc(replicates=100, seed=1, bins=4).bins)
    assert not np.allclose(a.bins["sim_p50_med"], design_fit.vpc(replicates=100, seed=2, bins=4).bins["sim_p50_med"])


def test_exponential_error_vpc_is_shown_on_the_natural_scale():
    design = _design(10)
    design.loc[design["MDV"] == 0, "DV"] = 2.0
    result = estimate(design, {**MODEL, "sigma": {"exponential": 0.04}}, evaluate=True, covariance=False)
    vpc = result.vpc(replicates=50, seed=1, bins=2, corrected=False)
    assert not vpc.log_scale
    assert np.allclose(vpc.bins["obs_p50"], 2.0) and (vpc.observations["DV"] == 2.0).all()
    assert (vpc.bins["sim_p50_med"] > 0.5).all()  # concentrations, not their logs
