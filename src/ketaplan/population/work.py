"""The work a virtual population or a regimen search asks for, sized before it is done.

The cost of a run is about (patients x time points of the shared grid): every patient's levels are computed on
the grid and reduced. :func:`check_patients` and :func:`check_points` refuse what lies beyond the limits of
:mod:`ketaplan.limits` before any patient is simulated; a small pilot chunk, timed, says
how long a large run will take here (:func:`ketaplan.population.run.estimate_seconds`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ketaplan.errors import InputError
from ketaplan.limits import (
    CHUNKS,
    PATIENT_POINTS,
    PATIENT_POINTS_WITHOUT_YES,
    SEARCH_CANDIDATES,
    VIRTUAL_PATIENTS,
    WORKERS,
)

ESTIMATE_ABOVE = 2e8
"""Runs of more patient-time points than this print their estimated time before they start."""


def check_patients(n: int, workers: int | None, chunk: int) -> None:
    """Refuse a number of patients, workers or chunks beyond the limits (nothing is built yet)."""
    if n < 1:
        raise InputError("--n", n, "at least 1 virtual patient is needed")
    VIRTUAL_PATIENTS.check("--n", n, "simulate fewer patients (at one million the Monte Carlo standard error of a "
                           "fraction is at most 0.05 percentage points)")
    if workers is not None:
        if workers < 1:
            raise InputError("--workers", workers, "at least 1 worker")
        WORKERS.check("--workers", workers, "use at most one worker per processor core, or --scheduler for a cluster")
    if chunk < 1:
        raise InputError("--chunk", chunk, "must be at least 1 subject")
    CHUNKS.check("--chunk", -(-n // chunk), "give a larger --chunk")


@dataclass(frozen=True)
class Work:
    """Patients times grid points of one run: what its time and memory grow with."""

    patients: int
    time_points: int
    repeats: int = 1  # duration x interval pairs of a search

    @property
    def points(self) -> float:
        return float(self.patients) * self.time_points * self.repeats

    def text(self) -> str:
        runs = f" x {self.repeats:,} duration-interval pairs" if self.repeats > 1 else ""
        return f"{self.patients:,} virtual patients x {self.time_points:,} time points{runs}"


def check_points(item: str, work: Work) -> None:
    """Refuse a run beyond :data:`ketaplan.limits.PATIENT_POINTS`."""
    PATIENT_POINTS.check(item, work.points, f"that is {work.text()}; give fewer patients, a shorter horizon or a "
                         "plan with fewer doses")


def needs_confirmation(work: Work) -> bool:
    """True when the run is large enough that `population` asks for --yes."""
    return work.points > PATIENT_POINTS_WITHOUT_YES.value


def check_candidates(n_candidates: int) -> None:
    SEARCH_CANDIDATES.check("search", n_candidates, "give fewer rates, durations or intervals")


def duration_text(seconds: float) -> str:
    """'about 40 s', 'about 12 min', 'about 3.5 h', 'about 2.1 days'."""
    if seconds < 90:
        return f"about {max(seconds, 1):.0f} s"
    if seconds < 5400:
        return f"about {seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"about {seconds / 3600:.1f} h"
    return f"about {seconds / 86400:.1f} days"
