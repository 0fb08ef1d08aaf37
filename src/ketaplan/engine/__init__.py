"""Exact solution of linear compartment systems with NONMEM event semantics; ODE cross-check."""

from ketaplan.engine.exact import solve
from ketaplan.engine.ode import solve_ode
from ketaplan.engine.schedule import DoseModifiers, DoseRecords, Schedule, compile_schedule
from ketaplan.engine.system import EffectLink, LinearStructure, Transfer

__all__ = [
    "DoseModifiers",
    "DoseRecords",
    "EffectLink",
    "LinearStructure",
    "Schedule",
    "Transfer",
    "compile_schedule",
    "solve",
    "solve_ode",
]
