"""Shared helpers for the tests: small linear structures and a one-call simulator."""

from __future__ import annotations

import numpy as np
import pytest

from ketaplan.engine.exact import solve
from ketaplan.engine.ode import solve_ode
from ketaplan.engine.schedule import DoseModifiers, DoseRecords, compile_schedule
from ketaplan.engine.system import LinearStructure, Transfer


def one_compartment(depot: bool = False) -> LinearStructure:
    """depot (optional) -> central -> out, rates 'ka' and 'k'."""
    if depot:
        return LinearStructure(("depot", "central"),
                               (Transfer("depot", "central", "ka"), Transfer("central", None, "k")))
    return LinearStructure(("central",), (Transfer("central", None, "k"),))


def two_compartment() -> LinearStructure:
    return LinearStructure(("central", "peripheral"), (
        Transfer("central", None, "k10"), Transfer("central", "peripheral", "k12"),
        Transfer("peripheral", "central", "k21")))


def run(structure, params, records: DoseRecords, times, observe: str = "central", volume: float = 1.0,
        f=None, lag=None, rate=None, duration=None, ode: bool = False, orders=None):
    """Concentration (amount/volume) in ``observe`` for one subject."""
    n_rec = len(records)
    mods = DoseModifiers.neutral(1, n_rec)
    mods = DoseModifiers(
        np.full((1, n_rec), 1.0 if f is None else f), np.full((1, n_rec), 0.0 if lag is None else lag),
        np.full((1, n_rec), np.nan if rate is None else rate),
        np.full((1, n_rec), np.nan if duration is None else duration))
    sched = compile_schedule(records, mods, structure.n_states)
    k = structure.rate_matrix({key: np.atleast_1d(v) for key, v in params.items()})
    readout = np.zeros((1, structure.n_states))
    readout[0, structure.index(observe)] = 1.0 / volume
    solver = solve_ode if ode else solve
    return solver(k, sched, np.asarray(times, dtype=float), readout, orders)[0, :, 0]


@pytest.fixture
def rng():
    return np.random.default_rng(20261125)


@pytest.fixture
def wide_console():
    """Tables are checked by their numbers, so render them without wrapping."""
    from ketaplan.cli.common import console

    console.width = 250
    yield
    console.width = None


def invoke_cli(*args):
    """Run the ``ketaplan`` command line in-process; returns typer's Result."""
    from typer.testing import CliRunner

    from ketaplan.cli import app

    return CliRunner().invoke(app, list(args))
