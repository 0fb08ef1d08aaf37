"""Does a learned relief model predict when the next course is due better than the published one?

K-fold cross-validation over patients: the patients are split into ``folds`` groups at random; for each group
the population values are learned again from the other patients (starting from the values learned from all
of them), and the held-out patients' gaps between courses are predicted by those values, by the published
ones alike (both as a new patient: from the population alone, conditional on response, since a course is
repeated only for a patient it helped). The two are compared by the median absolute error of the predicted
median gap and by how often the observed gap falls inside the predicted 90 % interval.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ketaplan.estimation.library_cohort import BoundCohort, ReliefTable
from ketaplan.estimation.library_estimation import LearnedValues, LearningResult, Prior, learn
from ketaplan.estimation.relief_timing import (
    GapErrors,
    ReliefSpread,
    after_courses,
    course_gaps,
    gap_errors,
    half_life_range,
    predicted_gaps,
)

MIN_PATIENTS_PER_FOLD = 2


@dataclass(frozen=True)
class TimingCheck:
    """Cross-validated next-course timing of the published and the learned model on the same gaps."""

    folds: int
    published: GapErrors
    learned: GapErrors

    @property
    def learned_better(self) -> bool:
        return self.learned.median_abs_error_weeks < self.published.median_abs_error_weeks

    def as_dict(self) -> dict:
        return {"folds": self.folds, "published": self.published.as_dict(), "learned": self.learned.as_dict(),
                "learned_better": self.learned_better}


def spread_of(bound: BoundCohort, values: LearnedValues) -> ReliefSpread:
    """The relief spread of learned (or published) population values."""
    return ReliefSpread.of(bound.spec, values.typical, values.variances)


def cross_validate(bound: BoundCohort, prior: Prior, result: LearningResult, table: ReliefTable, folds: int = 5,
                   seed: int = 1, threshold: float = 0.3, draws: int = 200, max_iterations: int = 40,
                   on_fold: Callable[[int, int], None] | None = None) -> TimingCheck | None:
    """The timing check of ``result`` (learned from ``bound`` with ``prior``; ``table`` its relief-site
    table), or None when the cohort has too few patients or no repeated course to check against."""
    n = bound.n_patients
    gaps = course_gaps(bound.cohort)
    if folds < 2 or n < folds * MIN_PATIENTS_PER_FOLD or len(gaps) == 0:
        return None
    published = ReliefSpread.of(bound.spec)
    learned_all = spread_of(bound, result.learned)
    after = after_courses(bound.spec, bound.cohort, gaps, half_life_range(bound.spec, [published, learned_all]))
    rng = np.random.default_rng(seed)
    fold_of = np.empty(n, dtype=int)
    fold_of[rng.permutation(n)] = np.arange(n) % folds
    drawn_published = predicted_gaps(after, published, threshold, draws, seed)
    drawn_learned = np.empty_like(drawn_published)
    for k in range(folds):
        if on_fold is not None:
            on_fold(k + 1, folds)
        train = np.flatnonzero(fold_of != k)
        refit = learn(bound.take(train), prior, max_iterations=max_iterations, start=result.vector,
                      covariance=False, table=table.take(train))
        held_out = fold_of[gaps.patient] == k
        drawn = predicted_gaps(after, spread_of(bound, refit.learned), threshold, draws, seed)
        drawn_learned[held_out] = drawn[held_out]
    return TimingCheck(folds, gap_errors(gaps.observed_h, drawn_published),
                       gap_errors(gaps.observed_h, drawn_learned))
