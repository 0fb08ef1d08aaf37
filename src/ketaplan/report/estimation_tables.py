"""The numbers of a population fit as text rows, shared by the command line and the HTML report (no figures)."""

from __future__ import annotations

import numpy as np

ESTIMATE_COLUMNS = ("parameter", "estimate", "SE", "RSE %")
OBJECTIVE_NOTE = ("The objective is -2 log L without the constant n log(2 pi) (n observations), as NONMEM "
                  "reports it; add n log(2 pi) = 1.8379 n to compare with programs that include it. Standard "
                  "errors come from the sandwich covariance R^-1 S R^-1, NONMEM's default.")


def estimate_rows(result) -> list[list[str]]:
    """One row per THETA, OMEGA element and SIGMA: NONMEM name, estimate, SE and RSE % ('fixed' when fixed)."""
    se = result.se
    cov = result.covariance
    rse = dict(zip(cov.names, cov.rse_percent, strict=True)) if se else {}
    free = set(result.space.free_names())
    rows = []
    for name, value in {**result.theta, **result.omega, **result.sigma}.items():
        if name in se:
            relative = f"{rse[name]:.1f}" if np.isfinite(rse[name]) else "-"
            rows.append([name, f"{value:.6g}", f"{se[name]:.4g}", relative])
        else:
            rows.append([name, f"{value:.6g}", "fixed" if name not in free else "-", "-"])
    return rows


def shrinkage_rows(result) -> list[list[str]]:
    """ETABAR and ETASHRINKSD per ETA, and EPSSHRINKSD."""
    shrink = result.shrinkage()
    etabar = result.etabar()
    rows = [[name, f"{etabar[name]:.4g}", f"{shrink[name]:.2f}"] for name in etabar]
    rows.append(["EPS (IWRES)", "", f"{shrink['EPS']:.2f}"])
    return rows


def run_facts(result) -> list[tuple[str, str]]:
    """Method, sizes, objective, convergence and the covariance step, as label-value pairs."""
    cov = result.covariance
    if cov is None:
        covariance = "not run"
    elif cov.ok:
        covariance = f"ok; condition number {cov.condition_number:.4g}"
    else:
        covariance = f"failed: {cov.failure}"
    objective = f"{result.ofv:.6f}"
    if result.ofv_se is not None:
        objective += f" (importance sampling, Monte Carlo SE {result.ofv_se:.3g})"
    if result.evaluated_only:
        search = [("search", "none: evaluated at the given values (MAXEVAL=0)")]
    else:
        search = [("converged", f"{'yes' if result.converged else 'no'}: {result.message}"),
                  ("iterations", f"{max(len(result.iterations) - 1, 0)} ({result.evaluations} objective evaluations)")]
    return [("method", result.method.upper()), ("individuals", str(result.n_subjects)),
            ("observations", str(result.n_observations)), ("objective (OFV)", objective), *search,
            ("covariance step", covariance)]


def correlation_rows(result) -> tuple[list[str], list[list[str]]]:
    """The correlation matrix of the estimates (names and rows), empty when the covariance step failed."""
    cov = result.covariance
    if cov is None or cov.correlation is None:
        return [], []
    return cov.names, [[name, *(f"{v:.3f}" for v in row)] for name, row in zip(cov.names, cov.correlation,
                                                                                strict=True)]
