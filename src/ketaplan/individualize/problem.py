"""An estimation problem: one patient's measurements, a prior on the random effects and a predictor.

:class:`Problem` is what the estimators need and nothing more; :func:`spec_problem` makes one from a
library model (engine, PD layers, pain scores) and :mod:`ketaplan.individualize.predpp_problem` from
a PREDPP model file with ``omega`` and ``sigma``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ketaplan.engine.build import Covariates, build_from_parameters, internal_unit, parameter_values
from ketaplan.engine.dosing import regimen_records
from ketaplan.engine.exact import solve
from ketaplan.engine.pd import hill
from ketaplan.engine.schedule import compile_schedule
from ketaplan.individualize.likelihood import ResidualModel, neg2_log_likelihood
from ketaplan.individualize.observations import PAIN, Observations, check_observations
from ketaplan.models.spec import LongLastingRelief, ModelSpec
from ketaplan.population.variability import eta_parameters, omega_matrix
from ketaplan.regimen import Regimen
from ketaplan.simulation import administrations, analyte_outputs, relief_layer


@dataclass
class Problem:
    """One patient's data, model and prior.

    ``predict(etas)`` maps random effects (S, k) to predictions (S, n_obs) of the observations;
    individual parameter values are ``typical * exp(eta)``.
    """

    eta_names: tuple[str, ...]
    omega: np.ndarray
    typical: np.ndarray
    units: tuple[str, ...]
    observations: Observations
    residual: ResidualModel
    predict: Callable[[np.ndarray], np.ndarray]
    label: str = "patient"
    evaluations: int = 0
    notes: list[str] = field(default_factory=list)

    def objective(self, etas: np.ndarray) -> np.ndarray:
        """-2 log posterior (up to a constant) of each row of ``etas`` (S, k): NONMEM's conditional objective."""
        etas = np.atleast_2d(etas)
        self.evaluations += len(etas)
        pred = self.predict(etas)
        prior = np.einsum("si,ij,sj->s", etas, self.precision, etas)
        value = neg2_log_likelihood(pred, self.observations, self.residual) + prior
        return np.where(np.isfinite(value), value, np.inf)

    @property
    def precision(self) -> np.ndarray:
        return np.linalg.inv(self.omega)

    @property
    def k(self) -> int:
        return len(self.eta_names)


@dataclass
class SpecModel:
    """Predictions of a library model for one patient under a regimen, for many parameter sets at once."""

    spec: ModelSpec
    regimen: Regimen
    covariates: Covariates
    eta_names: tuple[str, ...]
    responder: bool = True

    def __post_init__(self) -> None:
        self.typical_params = parameter_values(self.spec, self.covariates)
        self.relief = relief_layer(self.spec)
        self.parent, self.metabolite, _ = analyte_outputs(self.spec)
        probe = build_from_parameters(self.spec, self.typical_params, 1)
        self.records, self.parts = regimen_records(self.regimen, probe.route_parts, float(self.covariates.weight[0]))
        self.route_parts = probe.route_parts

    def parameters(self, etas: np.ndarray) -> dict[str, np.ndarray]:
        """Individual parameter values (S,) for each row of etas (S, k)."""
        s = len(etas)
        out = {name: np.broadcast_to(v, (s,)).copy() for name, v in self.typical_params.items()}
        for j, name in enumerate(self.eta_names):
            out[name] = out[name] * np.exp(etas[:, j])
        return out

    def curves(self, etas: np.ndarray, times: np.ndarray, names: Sequence[str]) -> dict[str, np.ndarray]:
        """Outputs (S, T) at ``times``: observables, and 'relief' and 'pain_nrs' with a relief layer."""
        params = self.parameters(etas)
        built = build_from_parameters(self.spec, params, len(etas))
        schedule = compile_schedule(self.records, built.modifiers(self.parts), built.structure.n_states)
        layer = self.relief
        pk_names = [n for n in names if n not in ("relief", PAIN)]
        if layer is not None and any(n in ("relief", PAIN) for n in names) and layer.input not in pk_names:
            pk_names.append(layer.input)
        values = solve(built.rate_matrix(), schedule, np.asarray(times, dtype=float), built.readout(pk_names))
        out = {n: values[:, :, i] for i, n in enumerate(pk_names)}
        if layer is not None and any(n in ("relief", PAIN) for n in names):
            relief = relief_of(layer, params, out[layer.input]) if self.responder else np.zeros_like(out[pk_names[0]])
            out["relief"] = relief
            if layer.baseline is not None:
                out[PAIN] = params[layer.baseline][:, None] * (1.0 - relief)
        return {n: out[n] for n in names}

    def outputs(self) -> set[str]:
        names = set(self.spec.observables)
        if self.relief is not None and self.relief.baseline is not None:
            names.add(PAIN)
        return names


def relief_of(layer: LongLastingRelief, params: dict[str, np.ndarray], ce: np.ndarray) -> np.ndarray:
    """Relief in a responder (S, T) from the relief-site concentration."""
    def value(ref):
        return (params[ref] if isinstance(ref, str) else np.full(len(ce), float(ref)))[:, None]

    return value(layer.emax) * hill(ce, value(layer.c50), value(layer.gamma))


def spec_problem(spec: ModelSpec, regimen: Regimen, covariates: Covariates, observations: Observations,
                 responder: bool = True, label: str = "patient", row_label: str = "row") -> tuple[Problem, SpecModel]:
    """The estimation problem of one patient with a library model (random effects from its variability)."""
    names = tuple(eta_parameters(spec))
    omega = omega_matrix(spec)
    keep = np.diag(omega) > 0
    names = tuple(n for n, k in zip(names, keep, strict=True) if k)
    omega = omega[np.ix_(keep, keep)]
    model = SpecModel(spec, regimen, covariates, names, responder)
    doses = [a.start for a in administrations(regimen.resolve(float(covariates.weight[0])))]
    check_observations(observations, min(doses) if doses else None, model.outputs(), row_label)
    residual = _residual(spec, model, observations)
    times, index = np.unique(observations.time, return_inverse=True)
    outputs = list(dict.fromkeys(observations.output))
    out_index = np.array([outputs.index(o) for o in observations.output])

    def predict(etas: np.ndarray) -> np.ndarray:
        curves = model.curves(etas, times, outputs)
        stacked = np.stack([curves[o] for o in outputs], axis=2)  # (S, T, n_out)
        return stacked[:, index, out_index]

    typical = np.array([float(model.typical_params[n][0]) for n in names])
    units = tuple(internal_unit(spec.parameters[n].unit) for n in names)
    return Problem(names, omega, typical, units, observations, residual, predict, label), model


def _residual(spec: ModelSpec, model: SpecModel, obs: Observations) -> ResidualModel:
    n = len(obs)
    prop, add, score = np.zeros(n), np.zeros(n), np.ones(n)
    for i, name in enumerate(obs.output):
        if name == PAIN:
            ref = model.relief.score_sd
            score[i] = float(model.typical_params[ref][0]) if ref else 1.0
            continue
        err = spec.residual_error.get(name)
        if err is None:
            from ketaplan.errors import InputError

            raise InputError("model", spec.id, f"has no residual error model for {name}; levels of {name} cannot "
                             "be fitted with it")
        prop[i], add[i] = err.proportional, err.additive
    return ResidualModel(prop, add, score)


def prior_problem(model: SpecModel) -> Problem:
    """A problem without measurements (the population prior of ``model``'s random effects), for forecasts
    of a patient with nothing measured yet."""
    names = model.eta_names
    full = tuple(eta_parameters(model.spec))
    omega = omega_matrix(model.spec)
    idx = [full.index(n) for n in names]
    empty = Observations.of([], [], [])
    typical = np.array([float(model.typical_params[n][0]) for n in names])
    units = tuple(internal_unit(model.spec.parameters[n].unit) for n in names)
    return Problem(names, omega[np.ix_(idx, idx)], typical, units, empty, ResidualModel(*(np.zeros(0),) * 3),
                   lambda etas: np.zeros((len(etas), 0)))
