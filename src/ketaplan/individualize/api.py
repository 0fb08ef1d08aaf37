"""Python entry points: fit one patient, or every individual of a NONMEM-style dataset."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ketaplan.errors import InputError
from ketaplan.individualize.dataset import FitCase, fit_cases
from ketaplan.individualize.estimate import Estimate, fit
from ketaplan.individualize.mcmc import sample_posterior
from ketaplan.individualize.observations import PAIN, Observations
from ketaplan.individualize.plausibility import implausible
from ketaplan.individualize.problem import OCCASION_MARK, SpecModel, spec_problem
from ketaplan.limits import MCMC_STEPS
from ketaplan.models.spec import ModelSpec
from ketaplan.regimen.events import Regimen
from ketaplan.regimen.text import load_regimen
from ketaplan.simulation.patient import Patient
from ketaplan.simulation.run import analyte_outputs, model_for


@dataclass
class PatientFit:
    """One patient's estimate: MAP, Laplace (and MCMC) uncertainty, shrinkage, warnings, response."""

    case: FitCase
    estimate: Estimate
    p_responder: float | None = None
    failure: str | None = None
    """Why the estimate is withheld (:mod:`ketaplan.individualize.plausibility`), or None for a usable fit."""

    @property
    def model(self) -> SpecModel | None:
        return self.case.model

    @property
    def warnings(self) -> list[str]:
        out = list(self.estimate.warnings)
        if self.p_responder is not None and self.p_responder < 0.5:
            out.append(f"The pain diary fits a non-responder better (probability of response {self.p_responder:.0%}): "
                       "relief forecasts assume a responder.")
        return out

    def row(self) -> dict:
        """One row for --out: ID, individual parameter values, ETA1.. (order of the random effects), OFV."""
        est = self.estimate
        row = {"ID": self.case.id}
        row.update({name: float(v) for name, v in zip(est.problem.eta_names, est.values, strict=True)})
        row.update({f"ETA{i + 1}": float(e) for i, e in enumerate(est.eta)})
        row.update({f"SD_ETA{i + 1}": float(s) for i, s in enumerate(est.sd)})
        row["OFV"] = est.objective
        if self.p_responder is not None:
            row["P_RESPONDER"] = self.p_responder
        return row


def fit_case(case: FitCase, mcmc: bool = False, mcmc_steps: int = 2000, seed: int = 1) -> PatientFit:
    """MAP and Laplace (and MCMC) for one case; with pain scores also the probability of response."""
    MCMC_STEPS.check("--mcmc-steps", mcmc_steps, "a longer chain than this adds nothing a clinic can use")
    if mcmc and mcmc_steps < 100:
        raise InputError("--mcmc-steps", mcmc_steps, "at least 100 steps per walker")
    est = fit(case.problem)
    m = case.model
    failure = implausible(est, m.relief.baseline if m is not None and m.relief is not None else None)
    if failure is not None:
        return PatientFit(case, est, None, failure)
    if mcmc:
        sample_posterior(est, steps=mcmc_steps, burn=min(500, mcmc_steps // 4), seed=seed)
    p_resp = None
    if m is not None and m.relief is not None and case.problem.observations.is_score.any():
        problem0, _ = spec_problem(m.spec, m.regimen, m.covariates, case.problem.observations, responder=False,
                                   label=case.label)
        est0 = fit(problem0)
        prior = float(m.typical_params[m.relief.p_response][0])
        log_odds = np.log(prior) - np.log1p(-prior) + est.log_evidence() - est0.log_evidence()
        p_resp = float(1.0 / (1.0 + np.exp(-np.clip(log_odds, -700, 700))))
    return PatientFit(case, est, p_resp)


def fit_dataset(data: pd.DataFrame, model: str | Path | ModelSpec, mcmc: bool = False, mcmc_steps: int = 2000,
                seed: int = 1, force: bool = False) -> list[PatientFit]:
    """Fit every individual of a NONMEM-style dataset (see :mod:`ketaplan.individualize.dataset`); a fit whose
    estimate is implausible carries the reason in ``failure``."""
    return [fit_case(case, mcmc, mcmc_steps, seed) for case in fit_cases(data, model, force)]


def fit_patient(regimen: str | Regimen, observations: pd.DataFrame, patient: Patient,
                model: str | ModelSpec | None = None, mcmc: bool = False, mcmc_steps: int = 2000,
                seed: int = 1) -> PatientFit:
    """Fit one patient: ``observations`` has columns time (h), output ('ketamine', 'norketamine', ... or
    'pain' for NRS scores), value, and optionally blq (bool) and lloq (ng/mL)."""
    reg = load_regimen(regimen) if isinstance(regimen, str) else regimen
    spec = model_for(reg, model)
    obs = observations_from_frame(observations, spec)
    problem, sm = spec_problem(spec, reg, patient.covariates(), obs)
    return fit_case(FitCase("patient", 1, problem, sm, patient), mcmc, mcmc_steps, seed)


def observations_from_frame(frame: pd.DataFrame, spec: ModelSpec) -> Observations:
    cols = {str(c).lower(): c for c in frame.columns}
    for need in ("time", "output", "value"):
        if need not in cols:
            raise InputError("observations", list(frame.columns), "columns time, output and value are required")
    parent, metabolite, _ = analyte_outputs(spec)
    aliases = {"pain": PAIN, "nrs": PAIN, PAIN: PAIN, "parent": parent, "metabolite": metabolite}
    outputs = [aliases.get(str(o).strip().lower(), str(o).strip()) for o in frame[cols["output"]]]
    blq = frame[cols["blq"]].astype(bool).to_numpy() if "blq" in cols else None
    lloq = frame[cols["lloq"]].to_numpy(dtype=float) if "lloq" in cols else None
    return Observations.of(frame[cols["time"]].to_numpy(dtype=float), outputs,
                           frame[cols["value"]].to_numpy(dtype=float), blq, lloq)


def population_shrinkage(fits: Sequence[PatientFit]) -> dict[str, float]:
    """Eta shrinkage of the between-patient effects over the fitted individuals: 1 - SD(eta_hat) / omega
    (needs at least 2; effects are matched by name, so patients may have different numbers of courses)."""
    if len(fits) < 2:
        return {}
    first = fits[0].estimate.problem
    out = {}
    for i, name in enumerate(first.eta_names):
        if OCCASION_MARK in name:
            continue
        etas = [f.estimate.eta[f.estimate.problem.eta_names.index(name)] for f in fits
                if name in f.estimate.problem.eta_names]
        if len(etas) >= 2:
            out[name] = float(1 - np.std(etas, ddof=1) / np.sqrt(first.omega[i, i]))
    return out
