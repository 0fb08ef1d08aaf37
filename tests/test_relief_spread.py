"""The spread of relief duration over patients (simulate, case-report) against independent computations.

* Without between-patient variability every draw is the typical patient: all quantiles equal the duration
  ``simulate`` computes from the typical values.
* With variability on C50 alone, duration falls as C50 rises, so its 5th/50th/95th percentiles are the
  durations at C50 x exp(+1.645 SD), C50, and C50 x exp(-1.645 SD), each computed by ``simulate`` with that
  C50 set directly (4,000 draws: the sampling error of a 5 % quantile is about 0.6 percentile points).
"""

from __future__ import annotations

import numpy as np
import pytest

from ketaplan.models.learned import with_learned_values
from ketaplan.models.spec import TypicalUncertainty
from ketaplan.planning.plan import simulate
from ketaplan.planning.relief_spread import relief_spread
from ketaplan.population.variability import eta_parameters, omega_matrix
from ketaplan.regimen.text import parse_regimen
from ketaplan.simulation.patient import Patient
from ketaplan.simulation.run import model_for

REGIMEN = "20 mg/h IV for 5 d"
PATIENT = Patient(80.0, 59.0, "male")


def spec_with(variances: dict[str, float]):
    spec = model_for(parse_regimen(REGIMEN))
    zero = {name: 0.0 for name in eta_parameters(spec)}
    return spec, with_learned_values(spec, {}, {**zero, **variances}, "test")


def typical_days(c50: float) -> float:
    return float(simulate(REGIMEN, PATIENT, overrides={"RELIEF_C50": c50}).summary["relief_days"].iloc[0])


def test_without_variability_every_quantile_is_the_typical_patient():
    spec, fixed = spec_with({})
    days = relief_spread(fixed, parse_regimen(REGIMEN), PATIENT, draws=50).courses[0].days
    expected = typical_days(spec.parameters["RELIEF_C50"].value)
    # simulate takes the first hour of its 1-h grid below the threshold (up to 1 h late); the spread
    # interpolates the crossing linearly on a 12-h grid of a slowly falling curve (minutes)
    assert np.allclose(days, expected, rtol=0, atol=1.5 / 24)


def test_quantiles_follow_the_c50_quantiles():
    spec, only_c50 = spec_with({"RELIEF_C50": 0.25})
    c50 = spec.parameters["RELIEF_C50"].value
    sd = np.sqrt(omega_matrix(only_c50)[list(eta_parameters(spec)).index("RELIEF_C50")] .max())
    days = relief_spread(only_c50, parse_regimen(REGIMEN), PATIENT, draws=4000).courses[0].days
    z = 1.6448536269514722
    expected = [typical_days(c50 * np.exp(z * sd)), typical_days(c50), typical_days(c50 * np.exp(-z * sd))]
    assert days == pytest.approx(expected, rel=0.04)
    assert days[0] < days[1] < days[2]


def test_simulate_reports_the_spread_and_the_probability_of_response():
    frame = simulate(REGIMEN, PATIENT)
    row = frame.summary.iloc[0]
    assert row["relief_days_p5"] < row["relief_days_median"] < row["relief_days_p95"]
    assert row["p_response"] == pytest.approx(0.67)
    doc = frame.to_json_dict()
    assert doc["relief"]["p_response"] == pytest.approx(0.67) and "median" in doc["relief"]["meaning"]


def with_uncertainty(spec, parameters: tuple[str, ...], transforms: tuple[str, ...], variances: list[float]):
    u = TypicalUncertainty(parameters=parameters, transforms=transforms,
                           covariance=tuple(tuple(v if i == j else 0.0 for j in range(len(variances)))
                                            for i, v in enumerate(variances)), source="test")
    return spec.model_copy(update={"uncertainty": u})


def test_uncertainty_of_a_typical_c50_adds_to_its_between_patient_variance():
    """On the log scale the typical value's error and the patient's effect add: C50 with variance 0.16 between
    patients and 0.09 of uncertainty spreads relief as C50 with variance 0.25 (the C50-quantile durations)."""
    spec, only_c50 = spec_with({"RELIEF_C50": 0.16})
    uncertain = with_uncertainty(only_c50, ("RELIEF_C50",), ("log",), [0.09])
    result = relief_spread(uncertain, parse_regimen(REGIMEN), PATIENT, draws=4000)
    c50, z = spec.parameters["RELIEF_C50"].value, 1.6448536269514722
    expected = [typical_days(c50 * np.exp(z * 0.5)), typical_days(c50), typical_days(c50 * np.exp(-z * 0.5))]
    assert result.courses[0].days == pytest.approx(expected, rel=0.04)
    assert result.parameter_uncertainty
    narrower = relief_spread(only_c50, parse_regimen(REGIMEN), PATIENT, draws=4000).courses[0].days
    assert narrower[0] > result.courses[0].days[0] and narrower[2] < result.courses[0].days[2]


def test_uncertainty_of_a_value_without_variability_gets_an_effect_of_its_own():
    """The Hill coefficient has no between-patient effect; its uncertainty alone spreads relief as its own
    quantiles do (a steeper curve crosses 30 % earlier: the 5th percentile of duration at the 95th of the
    coefficient)."""
    spec, fixed = spec_with({})
    uncertain = with_uncertainty(fixed, ("RELIEF_GAMMA",), ("log",), [0.04])
    days = relief_spread(uncertain, parse_regimen(REGIMEN), PATIENT, draws=4000).courses[0].days
    gamma, z = spec.parameters["RELIEF_GAMMA"].value, 1.6448536269514722

    def at(g: float) -> float:
        return float(simulate(REGIMEN, PATIENT, overrides={"RELIEF_GAMMA": g}).summary["relief_days"].iloc[0])

    assert days == pytest.approx([at(gamma * np.exp(z * 0.2)), at(gamma), at(gamma * np.exp(-z * 0.2))], rel=0.04)


def test_the_probability_of_response_gets_its_interval_on_the_logit_scale():
    spec = model_for(parse_regimen(REGIMEN))
    uncertain = with_uncertainty(spec, ("P_RESPONSE",), ("logit",), [0.25])
    result = relief_spread(uncertain, parse_regimen(REGIMEN), PATIENT, draws=50)
    # independent: the 5th and 95th percentiles of 400,000 draws of expit(logit 0.67 + N(0, 0.25)) (sampling
    # error of those quantiles about 0.1 %)
    draws = 1 / (1 + np.exp(-(np.log(0.67 / 0.33) + np.random.default_rng(3).normal(0, 0.5, 400_000))))
    assert result.p_response_90 == pytest.approx(np.quantile(draws, [0.05, 0.95]), rel=3e-3)
    assert relief_spread(spec, parse_regimen(REGIMEN), PATIENT, draws=50).p_response_90 is None
