"""The command line starts at once: registering the commands and printing help load no heavy library.

Start-up is timed by ``benchmarks/bench_cli.py``, not here; these tests only check what is imported.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("numpy", "pandas", "scipy", "pint", "matplotlib", "sqlalchemy", "dask", "yaml")

HELP_RUN = """
import sys
from ketaplan.cli import main
sys.argv = ["ketaplan", *{args!r}]
try:
    main()
except SystemExit:
    pass
print("LOADED:" + ",".join(m for m in {heavy!r} if m in sys.modules))
"""


def loaded_after(code: str) -> list[str]:
    """The heavy libraries in ``sys.modules`` after running ``code`` in a fresh interpreter."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    marker = next(line for line in done.stdout.splitlines() if line.startswith("LOADED:"))
    return [m for m in marker.removeprefix("LOADED:").split(",") if m]


def test_import_ketaplan_cli_loads_no_heavy_library():
    code = f"import sys, ketaplan.cli; print('LOADED:' + ','.join(m for m in {HEAVY!r} if m in sys.modules))"
    assert loaded_after(code) == []


@pytest.mark.parametrize("args", [["--help"], ["simulate", "--help"], ["pump", "--help"], ["clinic", "--help"],
                                  ["models", "--help"]])
def test_help_loads_no_heavy_library(args):
    assert loaded_after(HELP_RUN.format(args=args, heavy=HEAVY)) == []


def test_units_hide_dask_from_pint_only_while_pint_is_imported():
    code = ("import sys; from ketaplan.regimen.units import Kind, parse; assert parse('20 mg/h', Kind.RATE) == 20.0; "
            "print('LOADED:' + ','.join(m for m in ('dask',) if m in sys.modules)); import dask.base")
    assert loaded_after(code) == []


def test_the_cached_unit_registry_converts_like_a_fresh_one():
    import pint

    from ketaplan.regimen import units

    fresh = pint.UnitRegistry(autoconvert_offset_to_baseunit=True)
    for text, unit in [("20 mg/h", "mg/h"), ("0.5 mg/min", "mg/h"), ("500 ug", "mg"), ("11 weeks", "h"),
                       ("3.5 year", "h"), ("1 month", "h"), ("50 mL", "L"), ("1 mg/mL", "ng/mL"), ("2 g/L", "ng/mL")]:
        assert units.Q_(text).to(unit).magnitude == fresh.Quantity(text).to(unit).magnitude, text


def test_the_library_read_with_libyaml_equals_safe_load():
    import yaml

    from ketaplan.models.library import _library_dir, _raw_library

    for path in _library_dir().iterdir():
        if path.name.endswith(".yaml"):
            assert _raw_library()[path.name.removesuffix(".yaml")] == yaml.safe_load(path.read_text()), path.name
