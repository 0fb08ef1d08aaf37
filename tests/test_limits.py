"""The pieces behind issue 14: limits and their README table, users' YAML, finite results, plausible fits."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ketaplan import limits
from ketaplan.errors import InputError
from ketaplan.finite import all_finite, require_finite
from ketaplan.individualize.estimate import Estimate
from ketaplan.individualize.plausibility import implausible
from ketaplan.user_yaml import load_yaml

README = Path(__file__).resolve().parents[1] / "README.md"


def _limits_section() -> str:
    text = README.read_text()
    start = text.index("## Limits")
    return text[start:text.index("\n## ", start + 1)]


@pytest.mark.parametrize("name", [n for n in limits.ALL if n != "WORKERS"])
def test_every_limit_is_in_the_readme_with_its_value(name):
    limit = limits.ALL[name]
    rows = [line for line in _limits_section().splitlines() if line.startswith(f"| {limits._count(limit.value)} ")
            and limit.unit.split()[0] in line.split("|")[1]]
    assert rows, f"README's Limits table has no row for {name} ({limit.text()})"


def test_the_readme_names_no_limit_the_code_does_not_have():
    values = {limits._count(limit.value) for limit in limits.ALL.values()}
    rows = re.findall(r"^\| ([\d,]+) ", _limits_section(), flags=re.M)
    assert set(rows) <= values


def test_a_limit_refuses_in_one_sentence_naming_item_amount_and_limit():
    with pytest.raises(InputError) as caught:
        limits.DOSES_PER_PLAN.check("regimen", 1e9, "give fewer repeats")
    assert str(caught.value) == ("regimen: got 1,000,000,000 doses; the limit is 25,000 doses per plan (every "
                                 "repeat counted); give fewer repeats.")
    limits.DOSES_PER_PLAN.check("regimen", 25_000, "never said")  # the limit itself is allowed


@pytest.mark.parametrize(("text", "expected"), [
    ("a: 1e3\nb: 2E-5\nc: -1.5e+2\nd: 10\ne: 1.0\n", {"a": 1000.0, "b": 2e-5, "c": -150.0, "d": 10, "e": 1.0}),
    ("a: '1e3'\nb: 1.2.3\nc: 2026-01-05\n", {"a": "1e3", "b": "1.2.3", "c": __import__("datetime").date(2026, 1, 5)}),
    ("base: &b {CL: 1, V: 2}\nmodel: {<<: *b, V: 3}\n", {"base": {"CL": 1, "V": 2}, "model": {"CL": 1, "V": 3}}),
])
def test_users_yaml_reads_numbers_in_exponent_form_and_plain_data(text, expected):
    assert load_yaml(text, "model") == expected


def test_users_yaml_keeps_special_floats_for_the_callers_to_refuse():
    data = load_yaml("a: .inf\nb: -.inf\nc: .nan\n", "model")
    assert data["a"] == np.inf and data["b"] == -np.inf and np.isnan(data["c"])


@pytest.mark.parametrize(("text", "message"), [
    ("CL: 5\nV: 1\nCL: 6\n", "model: got 'CL' twice (lines 1 and 3); a key may appear only once"),
    ("outer:\n  a: 1\n  a: 2\n", "got 'a' twice (lines 2 and 3)"),
    ("? [1, 2]\n: 3\n", "mapping keys must be plain values"),
    ("a: [1, 2\n", "is not valid YAML"),
    ("\x1f", "is not valid YAML"),
    ("!!python/object:os.system {}\n", "is not valid YAML"),
    ("[" * 5000 + "]" * 5000, "nested too deeply"),
])
def test_users_yaml_refuses_in_one_sentence(text, message):
    with pytest.raises(InputError, match=re.escape(message)):
        load_yaml(text, "model")


def test_an_alias_bomb_is_refused_before_anything_is_built():
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for previous, name in zip("abcdefghi", "bcdefghij", strict=True):
        lines.append(f"{name}: &{name} [{', '.join(['*' + previous] * 9)}]")  # 9^10 values expanded
    start = time.perf_counter()
    with pytest.raises(InputError, match="values per YAML file, aliases expanded"):
        load_yaml("\n".join(lines), "model")
    assert time.perf_counter() - start < 1.0


def test_an_oversized_yaml_text_is_refused():
    with pytest.raises(InputError, match="the limit is 1,000,000 bytes"):
        load_yaml("a: " + "x" * 1_000_001, "model")


def test_results_that_are_not_finite_are_refused_naming_where():
    require_finite({"IPRED": np.array([1.0, 2.0])})
    with pytest.raises(InputError, match=r"^row 3, IPRED: got inf; the result is not a finite number"):
        require_finite({"A1": np.array([1.0, 2.0, 3.0]), "IPRED": np.array([1.0, 2.0, np.inf])})
    with pytest.raises(InputError, match=r"^time 2 h, ketamine: got nan"):
        require_finite({"ketamine": np.array([0.0, np.nan])}, lambda i: f"time {2 * i:g} h")


def test_the_fine_grid_has_no_near_copies_of_its_points():
    from ketaplan.regimen.courses import Administration
    from ketaplan.simulation.run import time_grid

    admins = [Administration(8.0 * k, 8.0 * k, 20.0, "oral", 0.0) for k in range(30)]
    grid = time_grid(admins, 300.0)
    assert np.all(np.diff(grid) > 1e-6)
    assert len(grid) == 2441 + 56  # every 0.1 h to 244 h (12 h after the last dose) once, then hourly to 300 h
    assert 3.0 in grid and 239.9 in grid


class _Problem:
    def __init__(self, names, units, typical, sd, n_obs=10):
        self.eta_names, self.units, self.typical = names, units, np.asarray(typical, dtype=float)
        self.omega = np.diag(np.asarray(sd, dtype=float) ** 2)
        self.observations = np.zeros(n_obs)


def _estimate(problem, eta, objective=20.0):
    eta = np.asarray(eta, dtype=float)
    return Estimate(problem, eta, problem.omega.copy(), objective, True, 10, 100)


@pytest.mark.parametrize(("eta", "objective", "reason"), [
    ([0.0, 0.0, 0.0], 20.0, None),
    ([np.log(16.7 / 7), 0.0, 0.0], 20.0, "BASELINE_PAIN = 16.7 lies outside the pain scale 0-10"),
    ([0.0, np.log(9000 / 261.6), 0.0], 20.0, "RELIEF_HALF_LIFE = 9e+03 h means a half-life of 1.03 years"),
    ([0.0, 0.0, np.log(1e-5 / 26.29)], 20.0, "k10 = 1e-05 1/h means a half-life of 7.91 years"),
    ([0.0, 0.0, -2.0], 20.0, "k10 = 3.558 1/h is 0.135 x the population value (26.29), 5.7 SD"),
    ([0.0, 0.0, 0.0], 1e20, "the predictions miss the observations by about 3.16e+09 residual SDs"),
    ([0.0, 0.0, 0.0], np.inf, "the data cannot be fitted with this model"),
])
def test_implausible_estimates_say_why(eta, objective, reason):
    problem = _Problem(("BASELINE_PAIN", "RELIEF_HALF_LIFE", "k10"), ("1", "h", "1/h"), (7.0, 261.6, 26.29),
                       (0.2, 0.4, 0.35))
    got = implausible(_estimate(problem, eta, objective), baseline="BASELINE_PAIN")
    assert (got is None) if reason is None else (got is not None and got.startswith(reason)), got


def test_learning_is_sized_before_its_relief_table_is_built(monkeypatch):
    """The relief-site table (half-life grid x patients x measurements) is checked before the engine fills it."""
    from ketaplan import limits
    from ketaplan.estimation import library_cohort
    from ketaplan.estimation.library_cohort import bind, relief_table
    from ketaplan.estimation.simulated_cohort import Truth, simulate_cohort
    from ketaplan.regimen.text import parse_regimen
    from ketaplan.simulation.run import model_for

    spec = model_for(parse_regimen("20 mg/h IV for 5 d"))
    cohort, _ = simulate_cohort(spec, Truth({"RELIEF_C50": 0.4}, 0.7, years=0.5), 3, seed=1)
    bound = bind(spec, cohort)
    small = limits.Limit(1000, "table cells", "for learning a relief model", "test")
    monkeypatch.setattr(library_cohort, "LEARNING_CELLS", small)
    with pytest.raises(InputError, match=r"learning: got [\d,]+ table cells; the limit is 1,000 table cells"):
        relief_table(bound)


def test_covariate_and_diary_files_are_sized_before_they_are_read(tmp_path, monkeypatch):
    from ketaplan import limits
    from ketaplan.population import covariates

    path = tmp_path / "cov.csv"
    path.write_text("weight\n" + "80\n" * 100)
    monkeypatch.setattr(covariates, "TABLE_FILE_BYTES", limits.Limit(50, "bytes", "per table", "test"))
    with pytest.raises(InputError, match=r"--covariates: got 3[0-9]{2} bytes; the limit is 50 bytes"):
        covariates.read_covariates(path)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True, width=64), min_size=0, max_size=40),
       st.sampled_from(["contiguous", "strided", "2d", "int"]))
def test_the_one_pass_finiteness_check_agrees_with_numpy(values, layout):
    """all_finite (a dot product of the values with themselves) against np.isfinite(...).all(), including
    values near the largest double whose squares overflow, NaN and infinities of either sign."""
    arr = np.asarray(values, dtype=float)
    if layout == "strided":
        arr = np.repeat(arr, 2)[::2]
    elif layout == "2d" and len(arr) % 2 == 0:
        arr = arr.reshape(2, -1)
    elif layout == "int":
        arr = np.nan_to_num(arr, nan=0, posinf=0, neginf=0).clip(-1e15, 1e15).astype(np.int64)
    assert all_finite(arr) == bool(np.isfinite(arr).all())
    assert all_finite(np.array([1e300, -1e300]))  # squares overflow, the values are finite
