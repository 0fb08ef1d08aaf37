"""Individual predictions with 90 % intervals from the posterior (Laplace draws or MCMC samples)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ketaplan.individualize.estimate import Estimate
from ketaplan.individualize.problem import SpecModel

DRAWS = 500


def posterior_curves(est: Estimate, model: SpecModel, times: np.ndarray, names: Sequence[str], draws: int = DRAWS,
                     seed: int = 1) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Outputs at the MAP (T,) and for ``draws`` posterior draws (draws, T), per name."""
    etas = np.vstack([est.eta[None, :], est.draws(draws, seed)])
    curves = model.curves(etas, np.asarray(times, dtype=float), list(names))
    return {n: c[0] for n, c in curves.items()}, {n: c[1:] for n, c in curves.items()}


def prediction_table(est: Estimate, model: SpecModel, times: np.ndarray, names: Sequence[str],
                     draws: int = DRAWS, seed: int = 1, level: float = 0.9) -> pd.DataFrame:
    """Long table: time, output, MAP prediction, median and the equal-tailed ``level`` interval over the posterior
    (columns p5 and p95 for the default 90 %)."""
    at_map, sampled = posterior_curves(est, model, times, names, draws, seed)
    tail = (1 - level) / 2
    frames = []
    for name in names:
        lo, mid, hi = np.quantile(sampled[name], [tail, 0.5, 1 - tail], axis=0)
        frames.append(pd.DataFrame({"time": times, "output": name, "map": at_map[name], f"p{100 * tail:g}": lo,
                                    "p50": mid, f"p{100 * (1 - tail):g}": hi}))
    return pd.concat(frames, ignore_index=True)
