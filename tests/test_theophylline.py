"""Theophylline (12 subjects, oral, one compartment): ketaplan's estimates against published NONMEM and nlmixr2 runs.

The data are R's datasets::Theoph as NONMEM records (tests/data/theo_sd.csv, see tests/data/README.md); the
control streams are in tests/data/theophylline/. References, with the objective in NONMEM's convention
(-2 log L without n log 2 pi) throughout:

* NONMEM run2-run6 (FO, FOCE, FOCE-I, Laplace, Laplace with interaction), as recorded with NONMEM's final
  estimates in Pumas.jl's test suite (test/nlme/theophylline.jl): THEOPP with KA by group of subjects and
  additive ETAs. No standard errors are published there.
* NONMEM's FO run of Kim, Yim & Bae (Transl Clin Pharmacol 2015;23:1-7), as reproduced to NONMEM's digits by
  their R package nmw (inst/doc/nmw-vignette.Rout.txt): estimates, objective and sandwich standard errors.
* nlmixr2's FOCEi fit of its one.compartment example to theo_sd (nlmixr2est reference page of saveFit):
  OBJF 116.8036 with AIC 373.4033 = OBJF + 132 log(2 pi) + 2 x 7, so OBJF is already NONMEM's convention.
  nlmixr2 reports the between-subject variability as CV% = 100 sqrt(exp(omega) - 1) and the residual error as
  an SD with its SE; both are converted here (omega = log(1 + CV^2), SE(SD) = SE(variance) / (2 SD)).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import ketaplan

RUNS = Path(__file__).parent / "data" / "theophylline"

NONMEM = {  # file: method, OFV, THETA, OMEGA (lower triangle as estimated), SIGMA by kind
    "run2.ctl": ("fo", 71.979975297638589, (4.20241, 7.25283e-02, 3.57499e-02, 2.12401),
                 (1.81195e+01, -1.12474e-02, 2.25098e-04, -3.05266e-02, 1.04586e-02, 5.99850e-01),
                 {"additive": 2.66533e-01}),
    "run3.ctl": ("foce", 121.89849118143030, (1.67977, 8.49011e-02, 3.93898e-02, 2.10668), (1.62087, 2.26449e-01),
                 {"additive": 5.14069e-01}),
    "run4.ctl": ("foce-i", 115.40505381367598, (1.58896, 8.52144e-02, 3.97132e-02, 2.03889), (1.49637, 2.62862e-01),
                 {"additive": 2.09834e-01, "proportional": 1.13479e-02}),
    "run5.ctl": ("laplace", 123.76439574418291, (1.68975, 8.54637e-02, 3.95757e-02, 2.11952), (1.596, 2.27638e-01),
                 {"additive": 5.14457e-01}),
    "run6.ctl": ("laplace", 116.97275684239327, (1.60941, 8.55663e-02, 3.97472e-02, 2.05830), (1.48117, 2.67215e-01),
                 {"additive": 1.88050e-01, "proportional": 1.25319e-02}),
}

RUN5_EBES_AT_INITIAL = np.array([  # NONMEM's ETAs for run5 at the initial estimates (MAXEVAL=0)
    [-1.29964, -0.832445], [-0.502283, 0.104703], [-0.243001, 0.151238], [-1.51174, -0.102357],
    [-1.19255, 0.215326], [-1.43398, 0.589950], [-0.690249, 0.511417], [0.0115977, 0.387675],
    [4.83842, -0.554201], [-0.829081, -0.163510], [2.63035, 0.777899], [-0.482787, -0.0532906]])


def _check(result, theta, omega, sigma, rel=0.01) -> None:
    assert list(result.theta.values()) == pytest.approx(theta, rel=rel)
    assert list(result.omega.values()) == pytest.approx(omega, rel=rel)
    assert result.estimates.sigma == pytest.approx(sigma, rel=rel)


@pytest.mark.filterwarnings("error::RuntimeWarning")  # run6's trial steps once warned from slogdet of a NaN Hessian
@pytest.mark.parametrize("run", sorted(NONMEM))
def test_nonmem_theophylline_runs(run):
    method, ofv, theta, omega, sigma = NONMEM[run]
    result = ketaplan.estimate(None, RUNS / run, covariance=False)
    assert result.method == method and result.converged
    assert result.ofv == pytest.approx(ofv, abs=0.05)
    _check(result, theta, omega, sigma)


def test_nonmem_laplace_etas_and_objective_at_the_initial_estimates():
    result = ketaplan.estimate(None, RUNS / "run5.ctl", evaluate=True, covariance=False)
    assert result.ofv == pytest.approx(141.296, abs=1e-3)
    assert result.etas == pytest.approx(RUN5_EBES_AT_INITIAL, rel=1e-3, abs=1e-5)


def test_nonmem_fo_of_kim_yim_bae_with_standard_errors():
    result = ketaplan.estimate(None, RUNS / "nmw_fo.ctl")
    assert result.method == "fo"
    assert result.ofv == pytest.approx(57.32106, abs=0.05)
    _check(result, (3.16946754, 38.25213460, 0.10501808),
           (1.19823325, 0.13747849, 0.03134899, 0.37015671, 0.04340042, 0.25068582),
           {"proportional": 0.01207782, "additive": 0.05427434})
    se = (0.641076544, 1.685217844, 0.023072024, 0.420617306, 0.082197497, 0.019812976, 0.340273208, 0.023052142,
          0.289524327, 0.003576926, 0.032078283)
    assert list(result.se.values()) == pytest.approx(se, rel=0.05)


def test_nlmixr2_focei_theo_sd():
    result = ketaplan.estimate(None, RUNS / "nlmixr2_focei.ctl")
    assert result.method == "foce-i"
    assert result.ofv == pytest.approx(116.8036, abs=0.05)
    cv = np.array([70.52, 26.75, 13.90]) / 100
    _check(result, (0.4655, 1.012, 3.460), tuple(np.log1p(cv**2)), {"additive": 0.6947**2})
    sd = np.sqrt(result.estimates.sigma["additive"])
    se = result.se
    assert [se["THETA(1)"], se["THETA(2)"], se["THETA(3)"], se["SIGMA(1,1)"] / (2 * sd)] == pytest.approx(
        [0.1954, 0.07555, 0.04289, 0.09264], rel=0.05)
