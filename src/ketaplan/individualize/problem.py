"""An estimation problem: one patient's measurements, a prior on the random effects and a predictor.

:class:`Problem` is what the estimators need and nothing more; :func:`spec_problem` makes one from a
library model (engine, PD layers, pain scores) and :mod:`ketaplan.individualize.predpp_problem` from
a PREDPP model file with ``omega`` and ``sigma``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.linalg import block_diag

from ketaplan.engine.build import Covariates, build_from_parameters, internal_unit, parameter_values
from ketaplan.engine.dosing import regimen_records
from ketaplan.engine.exact import solve
from ketaplan.engine.occasions import expand_repeats, solve_by_occasion
from ketaplan.engine.pd import hill
from ketaplan.engine.schedule import compile_schedule
from ketaplan.individualize.likelihood import ResidualModel, neg2_log_likelihood
from ketaplan.individualize.observations import PAIN, Observations, check_observations
from ketaplan.models.spec import LongLastingRelief, ModelSpec
from ketaplan.population.variability import eta_parameters, omega_matrix
from ketaplan.regimen.courses import administrations, group_courses
from ketaplan.regimen.events import Regimen
from ketaplan.simulation.run import analyte_outputs, relief_layer


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
        """-2 log posterior (up to a constant) of each row of ``etas`` (S, k): NONMEM's conditional objective.

        Rows the optimiser may try but no patient can have (a random effect beyond :data:`MAX_ETA`, where
        parameters overflow) get +inf without being predicted.
        """
        etas = np.atleast_2d(etas)
        self.evaluations += len(etas)
        value = np.full(len(etas), np.inf)
        ok = np.all(np.isfinite(etas) & (np.abs(etas) <= MAX_ETA), axis=1)
        if ok.any():
            inside = etas[ok]
            pred = self.predict(inside)
            prior = np.einsum("si,ij,sj->s", inside, self.precision, inside)
            value[ok] = neg2_log_likelihood(pred, self.observations, self.residual) + prior
        return np.where(np.isfinite(value), value, np.inf)

    @property
    def precision(self) -> np.ndarray:
        return np.linalg.inv(self.omega)

    @property
    def k(self) -> int:
        return len(self.eta_names)


MAX_ETA = 30.0
"""Random effects beyond this (a factor e^30 = 1e13 on a parameter) are not predicted: the prior alone makes
them impossible, and the parameters they give overflow the engine."""

OCCASION_MARK = " x course "
"""Names of between-course effects: 'k10 x course 2' is the factor on k10 in the second course."""


def occasion_name(parameter: str, course: int) -> str:
    return f"{parameter}{OCCASION_MARK}{course}"


@dataclass
class SpecModel:
    """Predictions of a library model for one patient under a regimen, for many parameter sets at once.

    ``eta_names`` holds the between-patient effects (parameter names) and, for models with
    course-to-course variability, one effect per parameter and course (:func:`occasion_name`); courses
    without an effect of their own (future ones) use the typical course factor 1.
    """

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
        self.route_parts = probe.route_parts
        weight = float(self.covariates.weight[0])
        self.occasional = tuple(eta_parameters(self.spec, occasion=True))
        regimen = expand_repeats(self.regimen) if self.occasional else self.regimen
        self.records, self.parts = regimen_records(regimen, probe.route_parts, weight)
        self.course_starts = [c.start for c in group_courses(administrations(self.regimen.resolve(weight)))]

    def parameters(self, etas: np.ndarray, course: int | None = None) -> dict[str, np.ndarray]:
        """Individual parameter values (S,) for each row of etas (S, k), in ``course`` (1-based) if given."""
        s = len(etas)
        out = {name: np.broadcast_to(v, (s,)).copy() for name, v in self.typical_params.items()}
        for j, name in enumerate(self.eta_names):
            if OCCASION_MARK in name:
                parameter, k = name.split(OCCASION_MARK)
                if course is not None and int(k) == course:
                    out[parameter] = out[parameter] * np.exp(etas[:, j])
            else:
                out[name] = out[name] * np.exp(etas[:, j])
        return out

    def _by_course(self, etas: np.ndarray, times: np.ndarray, names: list[str]) -> np.ndarray:
        builts = [build_from_parameters(self.spec, self.parameters(etas, k + 1), len(etas))
                  for k in range(len(self.course_starts))]
        return solve_by_occasion(builts, self.course_starts, self.records, self.parts, times, names)

    def curves(self, etas: np.ndarray, times: np.ndarray, names: Sequence[str]) -> dict[str, np.ndarray]:
        """Outputs (S, T) at ``times``: observables, and 'relief' and 'pain_nrs' with a relief layer."""
        params = self.parameters(etas)
        layer = self.relief
        pk_names = [n for n in names if n not in ("relief", PAIN)]
        if layer is not None and any(n in ("relief", PAIN) for n in names) and layer.input not in pk_names:
            pk_names.append(layer.input)
        times = np.asarray(times, dtype=float)
        if self.occasional:
            values = self._by_course(etas, times, pk_names)
            params = self._pd_parameters(etas, times)
        else:
            built = build_from_parameters(self.spec, params, len(etas))
            schedule = compile_schedule(self.records, built.modifiers(self.parts), built.structure.n_states)
            values = solve(built.rate_matrix(), schedule, times, built.readout(pk_names))
        out = {n: values[:, :, i] for i, n in enumerate(pk_names)}
        if layer is not None and any(n in ("relief", PAIN) for n in names):
            relief = relief_of(layer, params, out[layer.input]) if self.responder else np.zeros_like(out[pk_names[0]])
            out["relief"] = relief
            if layer.baseline is not None:
                base = params[layer.baseline]
                out[PAIN] = (base if base.ndim == 2 else base[:, None]) * (1.0 - relief)
        return {n: out[n] for n in names}

    def _pd_parameters(self, etas: np.ndarray, times: np.ndarray) -> dict[str, np.ndarray]:
        """Parameters (S, T) of the course each time belongs to (the first course before it starts)."""
        courses = np.maximum(np.searchsorted(self.course_starts, times, side="right"), 1)
        per_course = {k: self.parameters(etas, int(k)) for k in np.unique(courses)}
        return {name: np.stack([per_course[k][name] for k in courses], axis=1) for name in self.typical_params}

    def outputs(self) -> set[str]:
        names = set(self.spec.observables)
        if self.relief is not None and self.relief.baseline is not None:
            names.add(PAIN)
        return names


def relief_of(layer: LongLastingRelief, params: dict[str, np.ndarray], ce: np.ndarray) -> np.ndarray:
    """Relief in a responder (S, T) from the relief-site concentration; parameters are (S,) or (S, T)."""
    def value(ref):
        v = params[ref] if isinstance(ref, str) else np.full(len(ce), float(ref))
        return v if v.ndim == 2 else v[:, None]

    return value(layer.emax) * hill(ce, value(layer.c50), value(layer.gamma))


def spec_problem(spec: ModelSpec, regimen: Regimen, covariates: Covariates, observations: Observations,
                 responder: bool = True, label: str = "patient", row_label: str = "row") -> tuple[Problem, SpecModel]:
    """The estimation problem of one patient with a library model: random effects from its variability and,
    for a learned model, the uncertainty of its typical values (:func:`population_effects`), so that a patient's
    own levels narrow what they inform and leave the rest (the relief values, until scores come) as uncertain
    as for a new patient."""
    names, omega = population_effects(spec, regimen, covariates)
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

    typical, units = _typical_and_units(spec, model, names)
    return Problem(names, omega, typical, units, observations, residual, predict, label), model


def random_effects(spec: ModelSpec, regimen: Regimen, covariates: Covariates) -> tuple[tuple[str, ...], np.ndarray]:
    """Between-patient effects, then one set of between-course effects per course of the regimen."""
    names = list(eta_parameters(spec))
    blocks = [omega_matrix(spec)]
    occasional = eta_parameters(spec, occasion=True)
    if occasional:
        weight = float(covariates.weight[0])
        n_courses = len(group_courses(administrations(regimen.resolve(weight))))
        for k in range(1, n_courses + 1):
            names += [occasion_name(p, k) for p in occasional]
            blocks.append(omega_matrix(spec, occasion=True))
    omega = block_diag(*blocks) if blocks else np.zeros((0, 0))
    keep = np.diag(omega) > 0
    return tuple(n for n, k in zip(names, keep, strict=True) if k), omega[np.ix_(keep, keep)]


def _typical_and_units(spec: ModelSpec, model: SpecModel, names) -> tuple[np.ndarray, tuple[str, ...]]:
    """Typical values and units; a between-course effect is reported as a factor (typical 1)."""
    typical = np.array([1.0 if OCCASION_MARK in n else float(model.typical_params[n][0]) for n in names])
    units = tuple("factor" if OCCASION_MARK in n else internal_unit(spec.parameters[n].unit) for n in names)
    return typical, units


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


def population_effects(spec: ModelSpec, regimen: Regimen, covariates: Covariates) -> tuple[tuple[str, ...],
                                                                                            np.ndarray]:
    """The random effects of a patient with nothing measured: between-patient (and between-course) effects
    and, where the model says how sure its typical values are (``spec.uncertainty``), their uncertainty.

    On the log scale a typical value's error adds to the patient's own effect (both multiply the parameter),
    so the two covariances add; a value with uncertainty but no between-patient effect (a learned Hill
    coefficient) gets an effect of its own. Values on another scale (the probability of response, a logit)
    do not enter the curves and are left out."""
    names, omega = random_effects(spec, regimen, covariates)
    u = spec.uncertainty
    if u is None:
        return names, omega
    typical = parameter_values(spec, covariates)
    layer = relief_layer(spec)
    unused = {layer.score_sd} if layer is not None else set()  # the score SD enters no curve
    used = [j for j, (p, t) in enumerate(zip(u.parameters, u.transforms, strict=True))
            if t == "log" and p in typical and p not in unused]
    extra = [u.parameters[j] for j in used if u.parameters[j] not in names]
    names = (*names, *extra)
    total = np.zeros((len(names), len(names)))
    total[:len(omega), :len(omega)] = omega
    index = [names.index(u.parameters[j]) for j in used]
    total[np.ix_(index, index)] += np.asarray(u.covariance)[np.ix_(used, used)]
    return names, total


def prior_problem(model: SpecModel) -> Problem:
    """A problem without measurements (the population prior of ``model``'s random effects, with the
    uncertainty of the typical values where known: :func:`population_effects`), for forecasts of a patient
    with nothing measured yet."""
    names, omega = population_effects(model.spec, model.regimen, model.covariates)
    if names != model.eta_names:
        raise ValueError("prior_problem needs a model built with population_effects' names")
    typical, units = _typical_and_units(model.spec, model, names)
    return Problem(names, omega, typical, units, Observations.of([], [], []), ResidualModel(*(np.zeros(0),) * 3),
                   lambda etas: np.zeros((len(etas), 0)))
