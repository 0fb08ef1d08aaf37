"""Published observations that the default models are checked against (``models/validation/*.yaml``).

Each file is one study: its citation, what was retrieved (abstract, table), the population and design, whether
the default models were built on it, and its observations. An observation holds the number as reported (the
statistic, its spread, n), how sure the transcription is, and how to simulate it: the regimen, the output,
the metric and the pass criterion. Only data: :mod:`ketaplan.validation` runs the comparisons.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Literal

from pydantic import model_validator

from ketaplan._data import read_yaml
from ketaplan.models.spec import Citation, Confidence, Strict

Statistic = Literal["mean", "geometric_mean", "median", "qualitative", "derived"]
Metric = Literal["cmax", "tmax", "auc", "level", "ratio", "plateau_fraction", "nrs_difference"]
Criterion = Literal["ratio", "spread", "ci95", "below", "at_least"]
Role = Literal["validation", "calibration", "not_independent"]

RATIO_LIMITS = (0.67, 1.5)
"""Predicted / observed limits of the ``ratio`` criterion (see :mod:`ketaplan.validation.criteria`)."""


class Spread(Strict):
    """How the observed value varies: one of SD, SEM, geometric SD, a range or a 95 % interval."""

    sd: float | None = None
    sem: float | None = None
    gsd: float | None = None
    range: tuple[float, float] | None = None
    ci95: tuple[float, float] | None = None

    @model_validator(mode="after")
    def _one(self) -> Spread:
        given = [k for k in ("sd", "sem", "gsd", "range", "ci95") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of sd, sem, gsd, range and ci95")
        return self


class Simulation(Strict):
    """How to predict an observation: regimen, output and metric (times in hours from the first dose).

    * ``cmax``, ``tmax``, ``auc``: over ``window``;
    * ``level``: the level at ``time``;
    * ``ratio``: ``output`` / ``reference_output`` at ``time`` (e.g. norketamine / ketamine);
    * ``plateau_fraction``: level at ``time`` / level at ``reference_time``;
    * ``nrs_difference``: expected pain score (NRS) on drug minus without drug at ``time``.
    """

    regimen: str
    output: Literal["ketamine", "norketamine", "nrs"]
    metric: Metric
    window: tuple[float, float] | None = None
    time: float | None = None
    reference_output: Literal["ketamine", "norketamine"] | None = None
    reference_time: float | None = None
    per_mg: float | None = None
    """Divide the metric by this dose (mg), e.g. for AUC per mg of dose."""

    @model_validator(mode="after")
    def _complete(self) -> Simulation:
        need = {"cmax": ("window",), "tmax": ("window",), "auc": ("window",), "level": ("time",),
                "ratio": ("time", "reference_output"), "plateau_fraction": ("time", "reference_time"),
                "nrs_difference": ("time",)}
        for name in need[self.metric]:
            if getattr(self, name) is None:
                raise ValueError(f"metric {self.metric} needs '{name}'")
        if (self.metric == "nrs_difference") != (self.output == "nrs"):
            raise ValueError("the nrs_difference metric goes with output nrs, and only it")
        return self


class Observation(Strict):
    """One published number (or statement) and how the model's prediction of it is judged."""

    id: str
    quantity: str
    reported: str
    """What the source says, as close to verbatim as the retrieved copy allows."""
    statistic: Statistic
    value: float
    unit: str
    spread: Spread | None = None
    n: int | None = None
    certainty: Confidence
    """How sure the transcription is (not how precise the study was)."""
    certainty_note: str | None = None
    role: Role = "validation"
    role_note: str | None = None
    simulate: Simulation
    criterion: Criterion
    note: str | None = None

    @model_validator(mode="after")
    def _judgeable(self) -> Observation:
        if self.criterion in ("spread", "ci95") and self.spread is None:
            raise ValueError(f"criterion {self.criterion} needs the observed spread")
        if self.criterion == "ci95" and self.spread.sem is None and self.spread.ci95 is None:
            raise ValueError("criterion ci95 needs a SEM or a 95 % interval")
        if self.role != "validation" and not self.role_note:
            raise ValueError(f"say why the observation is {self.role} in 'role_note'")
        return self


class Study(Strict):
    """A publication with observations the default models are checked against."""

    kind: Literal["validation"]
    id: str
    title: str
    citation: Citation
    retrieved: str
    """What of the publication was read (abstract, a table, full text) and where."""
    population: str
    design: str
    drug: Literal["racemic", "s-ketamine"]
    observations: tuple[Observation, ...]
    caveats: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _unique(self) -> Study:
        ids = [o.id for o in self.observations]
        if len(set(ids)) != len(ids):
            raise ValueError("observation ids must be unique within a study")
        return self


def _folder():
    return resources.files("ketaplan.models") / "validation"


@lru_cache(maxsize=1)
def load_studies() -> tuple[Study, ...]:
    """Every study in ``models/validation``, sorted by id."""
    files = sorted((p for p in _folder().iterdir() if p.name.endswith(".yaml")), key=lambda p: p.name)
    return tuple(Study.model_validate(read_yaml(p)) for p in files)
