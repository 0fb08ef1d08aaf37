"""Run every comparison of the default models with published observations.

``run_validation()`` simulates each study's regimens with the default model for its drug form and returns,
per observation, the prediction, the 5-95 % range over virtual patients and whether it passes its criterion
(:mod:`ketaplan.validation.criteria`). No I/O: the page is written by :mod:`ketaplan.report.validation_page`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ketaplan.models.observed import Observation, Study, load_studies
from ketaplan.simulation.run import DEFAULT_PK
from ketaplan.validation.criteria import judge
from ketaplan.validation.predict import (
    Curve,
    Prediction,
    curves,
    nrs_difference,
    nrs_difference_curve,
    per_patient,
    runs_for,
    summarise,
)


@dataclass(frozen=True)
class Comparison:
    """One observation against its prediction."""

    study: Study
    observation: Observation
    prediction: Prediction
    passed: bool
    criterion: str

    @property
    def ratio(self) -> float:
        """Predicted / observed."""
        return self.prediction.value / self.observation.value


@dataclass
class StudyResult:
    """A study's comparisons, the model used and the curves for its figure."""

    study: Study
    model: str
    comparisons: list[Comparison]
    curves: list[Curve] = field(default_factory=list)
    nrs_curve: tuple | None = None
    """(times h, expected NRS difference) for a pain-score study."""


def validate_study(study: Study, n: int = 400, seed: int = 1, model: str | None = None,
                   only: tuple[str, ...] | None = None) -> StudyResult:
    """Simulate a study's regimens with ``n`` virtual patients and judge each observation.

    ``model``: a PK model id instead of the default for the study's drug form; ``only``: observation ids.
    """
    runs = runs_for(study, n, seed, model, only)
    comparisons, figure_curves, nrs_curve = [], [], None
    for obs in study.observations:
        if only is not None and obs.id not in only:
            continue
        run = runs[obs.simulate.regimen]
        if obs.simulate.metric == "nrs_difference":
            prediction = Prediction(nrs_difference(run, obs.simulate.time), None, None)
            nrs_curve = nrs_difference_curve(run)
        else:
            prediction = summarise(obs, per_patient(run, obs.simulate))
        passed, words = judge(obs, prediction.value)
        comparisons.append(Comparison(study, obs, prediction, passed, words))
    for run in runs.values():
        if run.levels:
            figure_curves += curves(run)
    model = next(iter(runs.values())).result.pspec.spec.id if runs else DEFAULT_PK[study.drug]
    return StudyResult(study, model, comparisons, figure_curves, nrs_curve)


def run_validation(n: int = 400, seed: int = 1, studies: tuple[str, ...] | None = None) -> list[StudyResult]:
    """Every study in ``models/validation`` (or those named), each against the default model."""
    chosen = [s for s in load_studies() if studies is None or s.id in studies]
    return [validate_study(s, n, seed) for s in chosen]


CLEARANCE_CHECKS = (("koppel_icu", "ketamine_steady_state"), ("koppel_icu", "norketamine_steady_state"),
                    ("intranasal_2022", "iv_auc"), ("chong_2006", "iv_auc_per_mg"),
                    ("goldberg_2010", "norketamine_below_ketamine"))
"""Observations that depend on the ketamine clearance, used to compare it with the Domino clearance."""


def clearance_alternative(model: str = "domino_racemic_3cmt_nk", n: int = 400, seed: int = 1) -> list[Comparison]:
    """The clearance-dependent observations judged with another racemic model (default: Domino's clearance)."""
    studies = {s.id: s for s in load_studies()}
    out = []
    for sid in dict.fromkeys(sid for sid, _ in CLEARANCE_CHECKS):
        ids = tuple(oid for s2, oid in CLEARANCE_CHECKS if s2 == sid)
        out += validate_study(studies[sid], n, seed, model, ids).comparisons
    return out
