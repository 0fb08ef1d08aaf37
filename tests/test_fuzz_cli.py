"""Fuzzing as a test: generated datasets, model files, regimen texts and options, each run as a separate process
under limits (30 s CPU, 2 GB of address space), must end in exit code 0 or 2, without traceback or library
warning, with a one-sentence refusal that writes nothing, and finite numbers in whatever is written
(:func:`fuzz_inputs.check_run`).

The examples are derandomised, so CI runs the same ones every time within a fixed budget (about a minute on two
cores); ``python benchmarks/fuzz_cli.py`` runs many more, with new random examples each time.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from fuzz_inputs import (
    checked_run,
    compare_cases,
    dataset_cases,
    fit_cases,
    model_cases,
    population_cases,
    pump_cases,
    search_cases,
    simulate_cases,
)
from fuzz_runner import Zygote

BUDGET = {"simulate": 80, "dataset": 80, "model": 80, "pump": 40, "population": 25, "search": 15, "compare": 20,
          "fit": 15}
"""Examples per strategy in CI: 355 command runs, about a minute on two shared cores."""


@pytest.fixture(scope="module")
def zygote():
    z = Zygote()
    yield z
    z.close()


def fuzz_test(name: str, strategy):
    """A test that runs ``BUDGET[name]`` derandomised examples of ``strategy`` through the command line."""

    @settings(max_examples=BUDGET[name], derandomize=True, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                     HealthCheck.data_too_large])
    @given(case=strategy())
    def test(zygote, case):
        with checked_run(zygote, case):
            pass

    return test


test_simulate_regimen_texts_and_options = fuzz_test("simulate", simulate_cases)
test_simulate_dataset_with_odd_datasets = fuzz_test("dataset", dataset_cases)
test_simulate_dataset_with_odd_model_files = fuzz_test("model", model_cases)
test_pump_options = fuzz_test("pump", pump_cases)
test_population_options = fuzz_test("population", population_cases)
test_search_options = fuzz_test("search", search_cases)
test_compare_options = fuzz_test("compare", compare_cases)
test_fit_with_odd_levels_and_doses = fuzz_test("fit", fit_cases)
