"""Regimen search with the dose checks of the planning layer: candidates that raise a dose warning
(a rate outside the usual range, long courses repeated within the liver-injury window, ...) are not
chosen unless warnings are allowed. The search itself is :func:`ketaplan.population.api.search`.
"""

from __future__ import annotations

from collections.abc import Callable

from ketaplan.population.api import search
from ketaplan.population.covariates import builtin_population
from ketaplan.population.search import SearchResult
from ketaplan.regimen.events import Regimen
from ketaplan.regimen.safety import check_plan


def typical_weight() -> float:
    """Mean body weight of the built-in population (kg), at which candidates are checked."""
    return float(builtin_population()["weight"]["mean"])


def dose_warning_codes(regimen: Regimen, weight: float) -> list[str]:
    """Codes of the refusals and warnings the planning checks raise for ``regimen`` at ``weight``."""
    return [f.code for f in check_plan(regimen, weight, force=True) if f.severity in ("refused", "warning")]


def search_regimens(rates: str, durations: str, intervals: str, *, weight: float | None = None,
                    on_step: Callable[[int, int], None] | None = None, **options) -> SearchResult:
    """Search IV regimens (see :func:`ketaplan.population.api.search` for ``options``), screening each candidate
    with the dose checks at ``weight`` (default: the built-in population's mean weight)."""
    w = typical_weight() if weight is None else weight
    return search(rates, durations, intervals, screen=lambda reg: dose_warning_codes(reg, w), on_step=on_step,
                  **options)
