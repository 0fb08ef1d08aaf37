"""From a :class:`~ketaplan.models.spec.ModelSpec` and patients to the engine's inputs.

Individual parameter values: typical value (with linear covariate terms in the parameter's own
unit) x power and factor covariate effects, converted to internal units (L, h, L/h, 1/h; a
per-kg unit multiplied by body weight), x exp(eta) for parameters with variability.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache

import numpy as np

from ketaplan.engine.schedule import DoseModifiers
from ketaplan.engine.system import EffectLink, LinearStructure, Transfer
from ketaplan.errors import InputError, Verbatim
from ketaplan.models.spec import ModelSpec, Parameter, RouteDose, molar_mass
from ketaplan.regimen.units import Q_, _prepare

_INTERNAL = {
    "[length] ** 3": "L",
    "[length] ** 3 / [time]": "L/h",
    "1 / [time]": "1/h",
    "[time]": "h",
    "dimensionless": "",
    "[mass] / [length] ** 3": "ng/mL",
}


@dataclass(frozen=True)
class Covariates:
    """Covariates of S patients (arrays of length S)."""

    weight: np.ndarray
    age: np.ndarray
    sex: np.ndarray
    height: np.ndarray

    @classmethod
    def of(cls, weight, age=None, sex=None, height=None) -> Covariates:
        """Broadcast scalars or sequences to arrays; missing age/sex/height become NaN/'unknown'."""
        w = np.atleast_1d(np.asarray(weight, dtype=float))
        n = len(w)
        a = np.full(n, np.nan) if age is None else np.broadcast_to(np.asarray(age, dtype=float), (n,)).copy()
        s = np.full(n, "unknown", dtype=object) if sex is None else np.broadcast_to(np.asarray(sex, dtype=object),
                                                                                  (n,)).copy()
        h = np.full(n, np.nan) if height is None else np.broadcast_to(np.asarray(height, dtype=float), (n,)).copy()
        return cls(w, a, s, h)

    def __len__(self) -> int:
        return len(self.weight)

    def take(self, idx) -> Covariates:
        return Covariates(self.weight[idx], self.age[idx], self.sex[idx], self.height[idx])

    def values(self, name: str) -> np.ndarray:
        if name == "lbm":
            return lean_body_mass(self.weight, self.height, self.sex)
        return getattr(self, name)


def lean_body_mass(weight: np.ndarray, height_cm: np.ndarray, sex: np.ndarray) -> np.ndarray:
    """Lean body mass (kg), Janmahasatian S et al. Clin Pharmacokinet 2005;44(10):1051-65."""
    bmi = weight / (height_cm / 100.0) ** 2
    male = np.asarray(sex == "male")
    return np.where(male, 9270 * weight / (6680 + 216 * bmi), 9270 * weight / (8780 + 244 * bmi))


@dataclass
class BuiltModel:
    """A model made concrete for S patients: structure, parameters and dose handling."""

    spec: ModelSpec
    structure: LinearStructure
    params: dict[str, np.ndarray]
    n_subjects: int
    route_parts: dict[str, tuple[tuple[int, RouteDose], ...]] = field(default_factory=dict)

    @property
    def cmt_of_route(self) -> dict[str, tuple[int, ...]]:
        """Dose compartment(s) of each route."""
        return {route: tuple(i for i, _ in parts) for route, parts in self.route_parts.items()}

    def rate_matrix(self) -> np.ndarray:
        return self.structure.rate_matrix(self.params)

    def readout(self, observables: Sequence[str]) -> np.ndarray:
        """(S, n_out, n) matrix turning amounts into concentrations (ng/mL) of the observables."""
        n = self.structure.n_states
        r = np.zeros((self.n_subjects, len(observables), n))
        comps = {c.name: c for c in self.spec.compartments}
        for i, name in enumerate(observables):
            if name not in self.spec.observables:
                raise InputError("output", name, f"this model predicts {', '.join(self.spec.observables)}")
            o = self.spec.observables[name]
            j = self.structure.index(o.compartment)
            if o.compartment in comps:
                r[:, i, j] = 1000.0 / self.params[comps[o.compartment].volume]
            else:
                r[:, i, j] = 1000.0  # effect sites hold mg/L
        return r

    def modifiers(self, parts: Sequence[tuple[str, int]]) -> DoseModifiers:
        """Per-subject F, lag and zero-order duration of each record, from its route part."""
        s, n_rec = self.n_subjects, len(parts)
        f = np.ones((s, n_rec))
        lag = np.zeros((s, n_rec))
        dur = np.full((s, n_rec), np.nan)
        for k, (route, index) in enumerate(parts):
            if route not in self.route_parts:
                continue
            part = self.route_parts[route][index][1]
            f[:, k] = self.bioavailability(part.bioavailability)
            if part.lag is not None:
                lag[:, k] = self.params[part.lag]
            if part.duration is not None:
                dur[:, k] = self.params[part.duration]
        return DoseModifiers(f, lag, np.full((s, n_rec), np.nan), dur)

    def bioavailability(self, ref) -> np.ndarray:
        """A number, a parameter, or a product of factors where '1-NAME' is one minus a parameter."""
        total = np.ones(self.n_subjects)
        for item in ref if isinstance(ref, tuple) else (ref,):
            if not isinstance(item, str):
                total = total * float(item)
            elif item.replace(" ", "").startswith("1-"):
                total = total * (1.0 - self.params[item.replace(" ", "")[2:]])
            else:
                total = total * self.params[item]
        return total


def parameter_values(spec: ModelSpec, covariates: Covariates, etas: Mapping[str, np.ndarray] | None = None,
                     overrides: Mapping[str, float] | None = None) -> dict[str, np.ndarray]:
    """Individual parameter values in internal units for each patient."""
    etas = etas or {}
    overrides = overrides or {}
    unknown = set(overrides) - set(spec.parameters)
    if unknown:
        name = sorted(unknown)[0]
        raise InputError("parameter", name, f"model {spec.id} has {', '.join(spec.parameters)}")
    out = {}
    for name, p in spec.parameters.items():
        typical = _typical(name, p, covariates, overrides.get(name))
        if name in etas:
            typical = typical * np.exp(etas[name])
        _check_value(spec, name, p, typical)
        out[name] = typical
    return out


def _check_value(spec: ModelSpec, name: str, p: Parameter, values: np.ndarray) -> None:
    """Refuse a value no patient can have (from a model file, a variant, --set or variability): not finite, a
    volume that is not > 0, or a negative clearance, rate constant or time."""
    low, high = float(np.min(values, initial=np.inf)), float(np.max(values, initial=-np.inf))
    kind = _sign_rule(p.unit)
    if np.isfinite(low) and np.isfinite(high) and (kind is None or (low > 0 if kind == "volume" else low >= 0)):
        return
    i = int(np.argmax(~np.isfinite(values) | ((values <= 0) if kind == "volume" else (values < 0))))
    allowed = {"volume": "a volume must be a finite number > 0", "rate": "a clearance, rate constant or time must "
               "be a finite number >= 0"}.get(kind, "a finite number is required")
    who = f" (patient {i + 1})" if len(values) > 1 else ""
    shown = Verbatim(f"{float(values[i]):g} {internal_unit(p.unit)}")
    raise InputError(f"model {spec.id}: parameter {name}{who}", shown, f"{allowed} (the model gives {p.value:g} "
                     f"{p.unit})")


@cache
def _sign_rule(unit: str) -> str | None:
    """'volume' for volumes, 'rate' for clearances, rate constants and times, None for anything else."""
    internal = internal_unit(unit)
    return {"L": "volume", "L/h": "rate", "1/h": "rate", "h": "rate"}.get(internal)


def _typical(name: str, p: Parameter, cov: Covariates, override: float | None) -> np.ndarray:
    value = np.full(len(cov), p.value if override is None else float(override))
    factor = np.ones(len(cov))
    for eff in p.covariates:
        x = cov.values(eff.covariate)
        if eff.kind == "factor":
            factor = factor * np.where(x == eff.level, eff.factor, 1.0)
            continue
        x = np.asarray(x, dtype=float)
        if np.any(~np.isfinite(x)):
            raise InputError(eff.covariate, "missing", f"parameter {name} of this model depends on the "
                             f"patient's {eff.covariate}; give it")
        if eff.kind == "power":
            factor = factor * (x / eff.reference) ** eff.exponent
        else:
            delta = x - eff.reference
            if eff.above_reference:
                delta = np.maximum(delta, 0.0)
            value = value + eff.slope * delta
    return _to_internal(p.unit, value * factor, cov.weight)


def _to_internal(unit: str, value: np.ndarray, weight: np.ndarray) -> np.ndarray:
    per_kg, factor = _conversion(unit)
    if per_kg:
        value = value * weight
    return np.asarray(value if factor is None else value * factor, dtype=float)


@cache
def _conversion(unit: str) -> tuple[bool, float | None]:
    """(per kg, factor): a value in ``unit`` (times body weight if per kg) times the factor is in internal units;
    no factor for units used as given (PD slopes etc.). pint converts by exactly this product, so taking the
    factor once per unit gives the same numbers as converting every array with pint."""
    q = Q_(1.0, _prepare(unit))
    per_kg = q.check("[body_weight]") or "[body_weight]" in str(q.dimensionality)
    if per_kg:
        q = q * Q_(1.0, "kgbw")
    target = _INTERNAL.get(str(q.dimensionality))
    if target is None:
        return per_kg, None
    factor = float(q.to(target).magnitude)
    if (q * 0.0).to(target).magnitude != 0.0 or (q * 3.0).to(target).magnitude != 3.0 * factor:
        raise InputError("unit", unit, "a parameter unit that converts by a factor (not an offset or logarithmic "
                         "unit)")
    return per_kg, factor


def internal_unit(unit: str) -> str:
    """The unit a parameter given in ``unit`` has inside the engine (per-kg units become absolute)."""
    q = Q_(1.0, _prepare(unit))
    if "[body_weight]" in str(q.dimensionality):
        q = q * Q_(1.0, "kgbw")
    dim = str(q.dimensionality)
    return _INTERNAL.get(dim, unit) or "1"


def build(spec: ModelSpec, covariates: Covariates, etas: Mapping[str, np.ndarray] | None = None,
          overrides: Mapping[str, float] | None = None) -> BuiltModel:
    """Structure, parameters and route mapping of ``spec`` for the given patients."""
    return build_from_parameters(spec, parameter_values(spec, covariates, etas, overrides), len(covariates))


def build_from_parameters(spec: ModelSpec, parameters: Mapping[str, np.ndarray], n: int) -> BuiltModel:
    """Like :func:`build`, from individual parameter values (S,) already in internal units."""
    params = dict(parameters)
    comps = {c.name: c for c in spec.compartments}
    transfers = []
    for i, f in enumerate(spec.flows):
        rate_name = f"_k{i}"
        if f.clearance is not None:
            params[rate_name] = params[f.clearance] / params[comps[f.source].volume]
        elif f.rate is not None:
            params[rate_name] = params[f.rate]
        else:
            params[rate_name] = f.stages / params[f.transit_time]
        y = np.full(n, float(f.fraction)) if not isinstance(f.fraction, str) else params[f.fraction]
        if f.molar_mass_ratio:
            y = y * molar_mass(comps[f.target].analyte) / molar_mass(comps[f.source].analyte)
        yield_name = f"_y{i}"
        params[yield_name] = y
        transfers.append(Transfer(f.source, f.target, rate_name, yield_name))
    effects = []
    for e in spec.effect_sites:
        ke0_name = f"_ke0_{e.name}"
        params[ke0_name] = params[e.ke0] if e.ke0 is not None else np.log(2) / params[e.half_life]
        volume_name = f"_v_{e.name}"
        params[volume_name] = params[comps[e.follows].volume] / e.scale
        effects.append(EffectLink(e.name, e.follows, ke0_name, volume_name))
    structure = LinearStructure(spec.state_names, tuple(transfers), tuple(effects))
    route_parts = {name: tuple((structure.index(p.compartment), p) for p in r.parts) for name, r in spec.routes.items()}
    return BuiltModel(spec, structure, params, n, route_parts)
