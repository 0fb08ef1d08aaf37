"""Regimen search: rate scaling equals direct simulation, the choice obeys the constraints, text round-trips."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import invoke_cli
from ketaplan.errors import InputError
from ketaplan.planning.regimen_search import dose_warning_codes, search_regimens, typical_weight
from ketaplan.population.api import search, simulate_population
from ketaplan.population.search import SearchSpace, split_values
from ketaplan.regimen.text import parse_regimen

GRID = {"rates": "7.5,10,15 mg/h", "durations": "3,5 d", "intervals": "4,6,8 weeks"}
CAP, MAINTAINED = 0.30, 0.05
"""Constraints loose enough for feasible candidates with the default racemic model (psychotomimetic threshold
150 ng/mL, Kamp 2020 clearance): at the defaults (0.10, 0.25) no candidate of this grid is feasible."""


@pytest.fixture(scope="module")
def result():
    return search(**GRID, n=400, seed=3, psychotomimetic_cap=CAP, maintained_fraction=MAINTAINED)


def test_every_candidate_equals_a_direct_population_simulation(result):
    """The linear rate scaling gives exactly what simulating the candidate regimen gives."""
    for _, row in result.table.sample(4, random_state=1).iterrows():
        direct = simulate_population(row["regimen"], 400, seed=3)
        s = direct.summary
        assert row["pta"] == pytest.approx(s["probability_of_target_attainment"], abs=1e-12)
        assert row["psychotomimetic_risk"] == pytest.approx(s["psychotomimetic_risk"], abs=1e-12)
        assert row["cmax_median_ng_ml"] == pytest.approx(direct.subjects["cmax_ng_ml"].median(), rel=1e-9)
        responders = direct.subjects[direct.subjects["responder"]]
        assert row["relief_maintained"] == pytest.approx(responders["relief_maintained"].mean(), abs=1e-12)


def test_the_chosen_candidate_is_the_best_feasible_one(result):
    t = result.table
    assert len(t) == 3 * 2 * 3
    feasible = t[(t["psychotomimetic_risk"] <= CAP) & (t["relief_maintained"] >= MAINTAINED)]
    assert len(feasible) > 0
    assert result.chosen is not None
    assert result.chosen["pta"] == feasible["pta"].max()
    assert result.chosen["psychotomimetic_risk"] <= CAP and result.chosen["relief_maintained"] >= MAINTAINED
    assert set(t.loc[t["feasible"], "regimen"]) == set(feasible["regimen"])
    # psychotomimetic risk grows with the rate, as it must
    by_rate = t.groupby("rate")["psychotomimetic_risk"].mean()
    assert by_rate.is_monotonic_increasing


def test_longer_intervals_keep_relief_in_fewer_responders(result):
    t = result.table
    for (rate, days), group in t.groupby(["rate", "duration_d"]):
        kept = group.sort_values("interval_weeks")["relief_maintained"].to_numpy()
        assert np.all(np.diff(kept) <= 1e-12), (rate, days)


def test_the_chosen_regimen_is_printed_in_the_regimen_language(result):
    text = result.chosen_text
    regimen = parse_regimen(text)
    row = result.chosen
    e = regimen.events[0]
    assert e.rate == pytest.approx(row["rate"])
    assert e.amount / e.rate == pytest.approx(row["duration_d"] * 24)
    assert e.ii == pytest.approx(row["interval_weeks"] * 168) and e.addl == 3


def test_nothing_feasible_gives_no_choice():
    r = search("30 mg/h", "2 d", "8 weeks", psychotomimetic_cap=0.0, n=200)
    assert r.chosen is None and r.chosen_text is None
    assert not r.table["feasible"].any()


def test_candidates_with_dose_warnings_are_not_chosen_unless_allowed():
    weight = typical_weight()
    flagged = parse_regimen("20 mg/h IV for 5 d every 4 weeks x 4")
    assert "repeated_long_infusions" in dose_warning_codes(flagged, weight)
    # the psychotomimetic cap is lifted so that only the dose warnings separate the candidates
    strict = search_regimens("15 mg/h", "5 d", "4,8 weeks", n=300, maintained_fraction=0.0, psychotomimetic_cap=1.0)
    assert strict.chosen_text == "15 mg/h IV for 5 d every 8 weeks x 4"
    row = strict.table.set_index("regimen").loc["15 mg/h IV for 5 d every 4 weeks x 4"]
    assert "repeated_long_infusions" in row["dose_warnings"] and not row["feasible"]
    loose = search_regimens("15 mg/h", "5 d", "4,8 weeks", n=300, maintained_fraction=0.0, psychotomimetic_cap=1.0,
                            allow_warnings=True)
    assert loose.table["feasible"].all()


def test_per_kg_rates_and_s_ketamine():
    r = search("0.1,0.25 mg/kg/h", "3 d", "6 weeks", drug="s-ketamine", n=200)
    assert r.table["regimen"].iloc[0].startswith("S-ketamine ")
    assert set(r.table["rate_unit"]) == {"mg/kg/h"}
    parse_regimen(r.table["regimen"].iloc[0])


def test_values_with_a_trailing_unit():
    assert split_values("10, 15,20 mg/h", "--rates") == ["10 mg/h", "15 mg/h", "20 mg/h"]
    assert split_values("1 d, 36 h", "--durations") == ["1 d", "36 h"]
    assert SearchSpace((20.0,), (36.0,), (24.0 * 30,)).text(20, 36, 24 * 30) == "20 mg/h IV for 36 h every 30 d x 4"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"rates": "10 mg/h, 0.2 mg/kg/h"}, "^--rates: .*not a mix"),
    ({"rates": "10,20 mg"}, "^--rates"),
    ({"durations": "5 mg"}, "^--durations"),
    ({"intervals": "3 d"}, "^--intervals: .*longer than the infusion"),
    ({"psychotomimetic_cap": 2.0}, "^--psychotomimetic-cap"),
    ({"n": 5}, "^--n"),
    ({"drug": "arketamine"}, "^--drug"),
])
def test_bad_search_input_is_one_sentence(kwargs, message):
    args = {**GRID, "n": 100, **kwargs}
    with pytest.raises(InputError, match=message):
        search(**args)


def test_a_very_large_search_says_how_long_it_would_take_and_needs_yes(tmp_path):
    """Two million patients x the one-year grid x two duration-interval pairs is above the 2e9 patient-time
    points that start only with --yes: the command times a pilot chunk, names the work and the estimate in one
    sentence, and writes nothing."""
    out = tmp_path / "table.csv"
    r = invoke_cli("search", "--rates", "10,20 mg/h", "--durations", "5 d",
                   "--intervals", "8,11 weeks", "--n", "2000000", "--out", str(out))
    assert r.exit_code == 2, r.output + r.stderr
    message = " ".join(r.stderr.split())
    assert "2,000,000 virtual patients x" in message and "x 2 duration-interval pairs" in message, message
    assert "here)" in message and "about" in message and "--yes" in message, message
    assert not out.exists()


def test_the_pilot_estimate_of_a_search_is_a_positive_time():
    from ketaplan.population.model_run import make_spec
    from ketaplan.population.search import estimate_search_seconds
    from ketaplan.simulation.run import model_for

    space = SearchSpace((10.0, 20.0), (120.0,), (8 * 168.0, 11 * 168.0), 4, False, "racemic")
    spec = model_for(space.regimen(10.0, 120.0, 8 * 168.0))
    pspecs = [make_spec(space.regimen(1.0, 120.0, interval), spec, 1000) for interval in space.intervals_h]
    seconds = estimate_search_seconds(pspecs, space.rates, 1000)
    assert 0 < seconds < 600
