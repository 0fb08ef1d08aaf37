"""``ketaplan.estimate``: population estimates from a NONMEM-style dataset and a model file.

    result = estimate("pheno.csv", "pheno.yaml", method="foce-i")
    result.ofv, result.theta, result.omega, result.sigma, result.se, result.etas

Methods: ``foce-i`` (FOCE with interaction, the default), ``foce``, ``fo``, ``laplace``, and ``saem``
(:mod:`ketaplan.estimation.saem`, seeded by ``seed``, sized by ``saem_options``). ``evaluate=True``
computes the objective and the conditional ETAs at the given values without moving them (NONMEM's
MAXEVAL=0; for ``saem``, the importance-sampling objective alone, NONMEM's IMP with EONLY=1). The
objective is NONMEM's: -2 log L without the n log(2 pi) constant; for ``saem`` it is estimated by
importance sampling and ``ofv_se`` is its Monte Carlo standard error. After SAEM the ETAs reported are
the conditional modes at the SAEM estimates, and the covariance step is the FOCE-I one
(:func:`~ketaplan.estimation.covariance.covariance_step` with ``foce-i``: the curvature and
per-individual gradients of the FOCE-I objective, evaluated at the SAEM estimates).
After FO the ETAs are the conditional modes at the final estimates (NONMEM's POSTHOC), so that IPRED,
CWRES and shrinkage exist.

Diagnostics on request: ``result.table()`` (one row per record: PRED, IPRED, RES, WRES, CWRES, IWRES,
NPDE), ``result.shrinkage()`` and ``result.vpc()`` (:mod:`ketaplan.estimation.diagnostics`,
:mod:`ketaplan.estimation.vpc`); NPDE and the VPC share one set of simulated replicates per seed.

A NONMEM control stream (``run1.mod``, ``run1.ctl``) may stand for the model: without ``data`` its $DATA is
read (relative to the control stream), and without ``method``/``evaluate`` its $ESTIMATION decides.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ketaplan.errors import InputError
from ketaplan.estimation.covariance import CovarianceStep, covariance_step
from ketaplan.estimation.data import EstimationData, population_model, prepare
from ketaplan.estimation.diagnostics import (
    Residuals,
    eps_shrinkage,
    eta_shrinkage,
    npde,
    record_table,
    residuals,
)
from ketaplan.estimation.objective import METHODS as OBJECTIVE_METHODS
from ketaplan.estimation.objective import conditional_modes, information_hessian, objective
from ketaplan.estimation.optimize import Iteration, search
from ketaplan.estimation.parameters import Estimates, ParameterSpace
from ketaplan.estimation.replicates import simulate_replicates
from ketaplan.estimation.saem import SaemOptions, evaluate_objective, saem
from ketaplan.estimation.vpc import VPC, dataset_vpc
from ketaplan.nonmem.control_stream import is_control_stream, read_control_stream
from ketaplan.nonmem.predpp import PredppModel, load_model

VARIANCE_FLOOR = 1e-6
"""A variance estimated below this (or below 1e-4 of its initial value) is reported as gone to zero."""
CORRELATION_LIMIT = 0.99
METHODS = (*OBJECTIVE_METHODS, "saem")


@dataclass
class EstimationResult:
    """Everything an estimation run produced (see :meth:`to_json_dict` for the NONMEM-style names)."""

    method: str
    data: EstimationData
    space: ParameterSpace
    estimates: Estimates
    ofv: float
    converged: bool
    message: str
    evaluated_only: bool
    iterations: list[Iteration]
    evaluations: int
    etas: np.ndarray  # (N, m) conditional modes (EBEs)
    eta_sd: np.ndarray  # (N, m) from the inverse of phi's Hessian / 2
    individual_ofv: np.ndarray  # (N,)
    covariance: CovarianceStep | None
    warnings: list[str] = field(default_factory=list)
    ofv_se: float | None = None  # Monte Carlo standard error of an importance-sampling objective
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def n_subjects(self) -> int:
        return self.data.n_individuals

    @property
    def n_observations(self) -> int:
        return self.data.n_observations

    @property
    def theta(self) -> dict[str, float]:
        return dict(zip(self.space.theta_names(), map(float, self.estimates.theta), strict=True))

    @property
    def omega(self) -> dict[str, float]:
        elements = self.data.model.omega.all_elements()
        return {name: float(self.estimates.omega[i, j])
                for name, (i, j) in zip(self.space.omega_names(elements), elements, strict=True)}

    @property
    def sigma(self) -> dict[str, float]:
        order = self.data.model.sigma.order
        return dict(zip(self.space.sigma_names(order), (float(self.estimates.sigma[k]) for k in order), strict=True))

    @property
    def se(self) -> dict[str, float]:
        if self.covariance is None or self.covariance.se is None:
            return {}
        return dict(zip(self.covariance.names, map(float, self.covariance.se), strict=True))

    def etas_frame(self) -> pd.DataFrame:
        """ID, ETA1..ETAm, their SDs and each individual's objective contribution."""
        frame = pd.DataFrame({"ID": self.data.ids})
        for j in range(self.etas.shape[1]):
            frame[f"ETA{j + 1}"] = self.etas[:, j]
        for j in range(self.etas.shape[1]):
            frame[f"ETA{j + 1}_SD"] = self.eta_sd[:, j]
        frame["OFV"] = self.individual_ofv
        return frame

    def iterations_frame(self) -> pd.DataFrame:
        """One row per iteration: OFV, the estimated parameters, the largest gradient element, evaluations so far;
        after ``evaluate`` one row 0 at the given values (no gradient)."""
        rows = [{"ITERATION": it.iteration, "OFV": it.ofv, **it.parameters, "GRADIENT_MAX": it.gradient_norm,
                 "EVALUATIONS": it.evaluations} for it in self.iterations]
        if not rows:
            values = dict(zip(self.space.free_names(), self.space.natural(self.estimates), strict=True))
            rows = [{"ITERATION": 0, "OFV": self.ofv, **values, "GRADIENT_MAX": np.nan,
                     "EVALUATIONS": self.evaluations}]
        return pd.DataFrame(rows)

    def residuals(self) -> Residuals:
        """PRED, IPRED, RES, WRES, CWRES and IWRES on the observation grid (computed once)."""
        if "residuals" not in self._cache:
            self._cache["residuals"] = residuals(self.data, self.estimates, self.etas, self.method != "foce")
        return self._cache["residuals"]

    def shrinkage(self) -> dict[str, float]:
        """ETASHRINKSD (%) of each ETA and EPSSHRINKSD (%) from IWRES, as NONMEM prints them."""
        eta = eta_shrinkage(self.etas, self.estimates.omega)
        return {**{f"ETA({k + 1})": float(v) for k, v in enumerate(eta)}, "EPS": eps_shrinkage(self.residuals().iwres)}

    def etabar(self) -> dict[str, float]:
        """The mean of each ETA's EBEs (NONMEM's ETABAR)."""
        return {f"ETA({k + 1})": float(v) for k, v in enumerate(self.etas.mean(axis=0))}

    def replicates(self, n: int = 1000, seed: int = 1) -> np.ndarray:
        """``n`` datasets simulated from the estimates with ``seed`` (K, N, W; computed once per n and seed)."""
        key = ("replicates", n, seed)
        if key not in self._cache:
            self._cache[key] = simulate_replicates(self.data, self.estimates, n, seed)
        return self._cache[key]

    def table(self, npde_replicates: int = 1000, seed: int = 1) -> pd.DataFrame:
        """Every record with ID, TIME, DV, MDV, PRED, IPRED, RES, WRES, CWRES, IWRES and NPDE (from
        ``npde_replicates`` simulated datasets, 0 for none); observation-only columns are NaN elsewhere."""
        values = npde(self.data.dv, self.replicates(npde_replicates, seed), self.data.obs_mask) \
            if npde_replicates > 0 else None
        return record_table(self.data, self.estimates, self.etas, self.residuals(), values)

    def vpc(self, replicates: int = 1000, seed: int = 1, bins: int | None = None, corrected: bool = True) -> VPC:
        """The prediction-corrected VPC from ``replicates`` simulated datasets (the same as NPDE's)."""
        return dataset_vpc(self.data, self.estimates, n_bins=bins, simulated=self.replicates(replicates, seed),
                           corrected=corrected)

    def to_json_dict(self) -> dict:
        """The estimates document: method, objective, convergence, sizes, THETA/OMEGA/SIGMA and SE by name."""
        cov = self.covariance
        return {
            "method": self.method,
            "ofv": self.ofv,
            "ofv_se": self.ofv_se,
            "objective": "-2 log L without the n log(2 pi) constant (NONMEM's convention)",
            "converged": self.converged,
            "message": self.message,
            "evaluated_only": self.evaluated_only,
            "iterations": len(self.iterations) - 1 if self.iterations else 0,
            "objective_evaluations": self.evaluations,
            "n_subjects": self.n_subjects,
            "n_observations": self.n_observations,
            "condition_number": cov.condition_number if cov is not None else None,
            "theta": self.theta,
            "omega": self.omega,
            "sigma": self.sigma,
            "se": self.se,
            "rse_percent": dict(zip(cov.names, map(float, cov.rse_percent), strict=True))
            if cov is not None and cov.rse_percent is not None else {},
            "covariance_step": None if cov is None else ("ok" if cov.ok else cov.failure),
            "correlation": _named_matrix(cov.names, cov.correlation) if cov is not None and
            cov.correlation is not None else {},
            "etabar": self.etabar(),
            "shrinkage_sd_percent": self.shrinkage(),
            "warnings": list(self.warnings),
        }


def estimate(data: pd.DataFrame | str | Path | None, model: Mapping | str | Path | PredppModel,
             method: str | None = None, evaluate: bool | None = None, covariance: bool = True,
             on_iteration: Callable[[Iteration], None] | None = None, seed: int = 0,
             saem_options: SaemOptions | None = None) -> EstimationResult:
    """Estimate THETA, OMEGA and SIGMA of ``model`` from ``data`` (a frame, or a CSV/Parquet path).

    ``method`` defaults to ``foce-i`` and ``evaluate`` to False, or to a control stream's $ESTIMATION.
    """
    if is_control_stream(model):
        stream = read_control_stream(model)
        data = stream.read_data() if data is None else data
        method, evaluate, model = method or stream.method, stream.evaluate if evaluate is None else evaluate, \
            stream.model
    if data is None:
        raise InputError("DATA", None, "give a dataset (or a control stream whose $DATA names one)")
    method, evaluate = str(method or "foce-i").lower(), bool(evaluate)
    if method not in METHODS:
        raise InputError("--method", method, f"allowed methods are {', '.join(METHODS)}")
    pm = model if isinstance(model, PredppModel) else load_model(model)
    popmodel = population_model(pm)
    if method == "saem" and any(b.same_as is not None for b in popmodel.omega.blocks):
        raise InputError("--method", method, "SAEM does not tie repeated OMEGA blocks (SAME) yet; use foce-i, foce, "
                         "fo or laplace")
    frame = _frame(data)
    prepared = prepare(popmodel, frame)
    space = ParameterSpace(popmodel)
    start = space.initial()
    if method == "saem":
        return _estimate_saem(prepared, space, start, evaluate, covariance, on_iteration, seed,
                              saem_options or SaemOptions())
    if evaluate:
        ofv, _per, cond = objective(prepared, [start], np.zeros((1, prepared.n_individuals, popmodel.n_eta)), method)
        if not np.isfinite(ofv[0]):
            raise InputError("initial estimates", "these values", "the objective cannot be computed there; check "
                             "the THETA values and the model's expressions")
        final, eta, value = start, cond.eta[0], float(ofv[0])
        converged, message, iterations, evaluations = True, "evaluated at the given values (MAXEVAL=0)", [], 1
    else:
        found = search(prepared, space, method, start, on_iteration)
        final, eta, value = found.estimates, found.eta, found.ofv
        converged, message, iterations, evaluations = found.converged, found.message, found.iterations, \
            found.evaluations
    _ofv, per, cond = objective(prepared, [final], eta[None], method)
    if method == "fo":  # POSTHOC: the conditional modes at the final estimates
        cond = conditional_modes(prepared, [final], cond.eta, interaction=True)
    eta = cond.eta[0]
    eta_sd = _eta_sd(information_hessian(prepared, [final], cond)[0])
    cov = covariance_step(prepared, space, final, eta, method) if covariance else None
    result = EstimationResult(method, prepared, space, final, value, converged, message, evaluate, iterations,
                              evaluations, eta, eta_sd, per[0], cov)
    result.warnings = _warnings(result, start)
    return result


def _estimate_saem(prepared: EstimationData, space: ParameterSpace, start: Estimates, evaluate: bool,
                   covariance: bool, on_iteration: Callable[[Iteration], None] | None, seed: int,
                   options: SaemOptions) -> EstimationResult:
    """SAEM (or, with ``evaluate``, the importance-sampling objective at ``start``), then the conditional modes
    and the FOCE-I covariance step at the estimates."""
    if evaluate:
        found, calls = evaluate_objective(prepared, start, options, seed)
        final, iterations = start, []
        message = "evaluated at the given values by importance sampling (IMP, EONLY=1)"
    else:
        run = saem(prepared, space, start, options, seed, on_iteration)
        final, found, iterations, calls = run.estimates, run.objective, run.iterations, run.engine_calls
        message = (f"SAEM: {options.burn_in} + {options.em} iterations with {options.chains} chains (not tested for "
                   "convergence, as in NONMEM and nlmixr2)")
    message += f"; -2 log L by importance sampling, {options.is_samples} samples per individual"
    cond = conditional_modes(prepared, [final], found.mean[None], interaction=True)
    eta = cond.eta[0]
    cov = covariance_step(prepared, space, final, eta, "foce-i") if covariance else None
    result = EstimationResult("saem", prepared, space, final, found.ofv, True, message, evaluate, iterations, calls,
                              eta, _eta_sd(information_hessian(prepared, [final], cond)[0]), found.individual, cov,
                              ofv_se=found.se)
    result.warnings = _warnings(result, start)
    return result


def _frame(data: pd.DataFrame | str | Path) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        return data
    path = Path(data)
    if path.suffix.lower() == ".parquet":
        if not path.is_file():
            raise InputError("DATA", str(data), "the dataset file does not exist")
        return pd.read_parquet(path)
    from ketaplan.nonmem.dataset import read_dataset

    return read_dataset(path)


def _named_matrix(names: list[str], matrix: np.ndarray) -> dict[str, dict[str, float]]:
    return {a: {b: float(matrix[i, j]) for j, b in enumerate(names)} for i, a in enumerate(names)}


def _eta_sd(information: np.ndarray) -> np.ndarray:
    """SDs of the conditional ETA distribution: the diagonal of (G' I G + Omega^-1)^-1, as NONMEM's FOCE."""
    with np.errstate(all="ignore"):
        cov = np.linalg.inv(information)
    return np.sqrt(np.clip(np.diagonal(cov, axis1=-2, axis2=-1), 0.0, None))


def _warnings(result: EstimationResult, start: Estimates) -> list[str]:
    out = []
    if not result.converged:
        out.append(f"The search did not converge ({result.message}); the estimates are the last values reached.")
    for name in result.space.at_bound(result.estimates):
        value = result.theta[name]
        out.append(f"{name} is at a bound ({value:.4g}): the data push it to the limit the model allows.")
    m = result.estimates.omega
    for i in range(len(m)):
        if m[i, i] < VARIANCE_FLOOR or m[i, i] < 1e-4 * start.omega[i, i]:
            out.append(f"OMEGA({i + 1},{i + 1}) went to {m[i, i]:.2g}: the data do not support variability on "
                       f"ETA({i + 1}); consider fixing it.")
    for i in range(len(m)):
        for j in range(i):
            if m[i, j] != 0 and m[i, i] > 0 and m[j, j] > 0:
                corr = m[i, j] / np.sqrt(m[i, i] * m[j, j])
                if abs(corr) > CORRELATION_LIMIT:
                    out.append(f"ETA({j + 1}) and ETA({i + 1}) are almost perfectly correlated ({corr:.3f}): one "
                               "random effect may be enough.")
    for kind, v in result.estimates.sigma.items():
        if kind not in result.data.model.sigma.fixed and v < VARIANCE_FLOOR * 1e-3:
            out.append(f"The {kind} residual variance went to {v:.2g}: that error component is not supported.")
    if result.covariance is not None and not result.covariance.ok:
        out.append(f"The covariance step failed: {result.covariance.failure}.")
    return out
