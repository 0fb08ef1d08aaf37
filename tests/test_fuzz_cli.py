"""Fuzzing as a test: generated datasets, model files, regimen texts and options, each run as a separate process
under limits (30 s CPU, 2 GB of address space), must end in exit code 0 or 2, without traceback or library
warning, with a one-sentence refusal that writes nothing, and finite numbers in whatever is written
(:func:`fuzz_inputs.check_run`).

The examples are derandomised, so CI runs the same ones every time within a fixed budget (about a minute on two
cores); ``python benchmarks/fuzz_cli.py`` runs many more, with new random examples each time.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from fuzz_inputs import (
    Case,
    check_run,
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


def run_case(zygote: Zygote, case: Case) -> None:
    folder = Path(tempfile.mkdtemp(prefix="ketaplan-fuzz-"))
    try:
        for name, text in case.files.items():
            (folder / name).write_text(text)
        before = {p.name for p in folder.iterdir()}
        check_run(zygote.run(case.args, folder), folder, before, case)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _settings(name: str):
    return settings(max_examples=BUDGET[name], derandomize=True, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                           HealthCheck.data_too_large])


@_settings("simulate")
@given(case=simulate_cases())
def test_simulate_regimen_texts_and_options(zygote, case):
    run_case(zygote, case)


@_settings("dataset")
@given(case=dataset_cases())
def test_simulate_dataset_with_odd_datasets(zygote, case):
    run_case(zygote, case)


@_settings("model")
@given(case=model_cases())
def test_simulate_dataset_with_odd_model_files(zygote, case):
    run_case(zygote, case)


@_settings("pump")
@given(case=pump_cases())
def test_pump_options(zygote, case):
    run_case(zygote, case)


@_settings("population")
@given(case=population_cases())
def test_population_options(zygote, case):
    run_case(zygote, case)


@_settings("search")
@given(case=search_cases())
def test_search_options(zygote, case):
    run_case(zygote, case)


@_settings("compare")
@given(case=compare_cases())
def test_compare_options(zygote, case):
    run_case(zygote, case)


@_settings("fit")
@given(case=fit_cases())
def test_fit_with_odd_levels_and_doses(zygote, case):
    run_case(zygote, case)
