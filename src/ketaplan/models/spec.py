"""Model specifications: plain, validated data describing a published PK/PD model.

A :class:`ModelSpec` lists compartments, first-order flows between them (by clearance or rate
constant, with a formation fraction and molar-mass conversion for metabolites), effect sites,
routes of administration, parameters (value, unit, source, confidence, covariate effects),
inter-individual variability, residual error and pharmacodynamic layers. It holds no code; the
engine turns it into rate matrices. Library models and a user's own YAML file load through the
same path (:func:`ketaplan.models.library.load_model`).
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ketaplan.regimen.units import MOLAR_MASS_G_PER_MOL

Confidence = Literal["high", "moderate", "low"]
ANALYTES = ("ketamine", "s-ketamine", "r-ketamine", "norketamine", "s-norketamine", "hydroxynorketamine",
            "s-hydroxynorketamine")
"""Analytes a compartment may hold; molar masses come from :data:`ketaplan.regimen.units.MOLAR_MASS_G_PER_MOL`."""


def molar_mass(analyte: str) -> float:
    """Molar mass (g/mol) of an analyte; enantiomers weigh the same as the racemate."""
    base = analyte.removeprefix("s-").removeprefix("r-")
    if base == "hydroxynorketamine":
        return 239.70  # C12H14ClNO2, IUPAC atomic weights
    return MOLAR_MASS_G_PER_MOL[base]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Citation(Strict):
    """A publication the model rests on."""

    key: str
    text: str
    doi: str | None = None
    pmid: str | None = None
    note: str | None = None


class CovariateEffect(Strict):
    """How a covariate changes a parameter's typical value.

    * ``power``: x (cov / reference) ** exponent (allometric weight scaling);
    * ``linear``: + slope * (cov - reference) in the parameter's unit; with ``above_reference``
      only above the reference (e.g. hepatic flow falling with age above 60 y);
    * ``factor``: x factor when a categorical covariate equals ``level`` (e.g. sex = female).
    """

    covariate: Literal["weight", "age", "height", "sex", "lbm"]
    kind: Literal["power", "linear", "factor"]
    reference: float | None = None
    exponent: float | None = None
    slope: float | None = None
    above_reference: bool = False
    level: str | None = None
    factor: float | None = None
    source: str | None = None

    @model_validator(mode="after")
    def _complete(self) -> CovariateEffect:
        need = {"power": ("reference", "exponent"), "linear": ("reference", "slope"), "factor": ("level", "factor")}
        for name in need[self.kind]:
            if getattr(self, name) is None:
                raise ValueError(f"a {self.kind} covariate effect needs '{name}'")
        return self


class Parameter(Strict):
    """A parameter's typical value with its unit, provenance and covariate effects.

    Units are pint strings; a unit per kg ("L/kg") scales linearly with body weight. ``derived``
    marks values computed from published ones (not published themselves), ``assumed`` marks
    modelling assumptions.
    """

    value: float
    unit: str = "1"
    source: str
    confidence: Confidence
    derived: bool = False
    assumed: bool = False
    note: str | None = None
    user_settable: bool = False
    covariates: tuple[CovariateEffect, ...] = ()

    @field_validator("value")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not np.isfinite(v):
            raise ValueError("must be a finite number")
        return v


class Compartment(Strict):
    """A compartment; ``volume`` names a parameter (required where concentrations are read)."""

    name: str
    role: Literal["depot", "central", "peripheral", "transit", "hepatic"]
    volume: str | None = None
    analyte: str | None = None

    @field_validator("analyte")
    @classmethod
    def _known(cls, v: str | None) -> str | None:
        if v is not None and v not in ANALYTES:
            raise ValueError(f"unknown analyte {v!r}; allowed: {', '.join(ANALYTES)}")
        return v


class Flow(Strict):
    """First-order flow from ``source`` to ``target`` (None: leaves the body).

    Give ``clearance`` (k = CL / V(source)), ``rate`` (a rate-constant parameter) or
    ``transit_time`` (k = stages / MTT, for a chain of ``stages`` transit compartments).
    ``fraction`` (number or parameter name) is the part of the flow that arrives;
    ``molar_mass_ratio`` converts mass between analytes (e.g. ketamine -> norketamine 223.70/237.73).
    """

    source: str
    target: str | None = None
    clearance: str | None = None
    rate: str | None = None
    transit_time: str | None = None
    stages: int = 1
    fraction: float | str = 1.0
    molar_mass_ratio: bool = False

    @model_validator(mode="after")
    def _one_kind(self) -> Flow:
        given = [x for x in (self.clearance, self.rate, self.transit_time) if x is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of 'clearance', 'rate' and 'transit_time'")
        if self.stages < 1:
            raise ValueError("stages must be >= 1")
        return self


Factor = float | str
"""A number, a parameter name, or '1-NAME' (one minus a parameter)."""


def factor_names(value: Factor | tuple[Factor, ...]) -> list[str]:
    """Parameter names used by a bioavailability given as a number, a name or a product of factors."""
    items = value if isinstance(value, tuple) else (value,)
    names = []
    for item in items:
        if isinstance(item, str):
            names.append(item[2:].strip() if item.replace(" ", "").startswith("1-") else item)
    return names


class EffectSite(Strict):
    """Effect compartment following ``scale`` x the concentration of ``follows``.

    Its rate is the parameter ``ke0`` or ln 2 / the parameter ``half_life``.

    ``scale`` converts between forms where a PD model was fitted on another analyte (for example
    0.5: the S-ketamine part of racemic ketamine); any scale other than 1 is an extrapolation and
    ``note`` must say so.
    """

    name: str
    follows: str
    ke0: str | None = None
    half_life: str | None = None
    scale: float = 1.0
    description: str | None = None
    note: str | None = None

    @model_validator(mode="after")
    def _labelled(self) -> EffectSite:
        if (self.ke0 is None) == (self.half_life is None):
            raise ValueError("give exactly one of 'ke0' and 'half_life'")
        if self.scale != 1.0 and not self.note:
            raise ValueError("an effect site with a scale other than 1 needs a note saying it is an extrapolation")
        return self


class RouteDose(Strict):
    """One part of a dose by a route: the compartment it enters, its fraction, lag and zero-order time.

    ``bioavailability`` is a number, a parameter name, or a list of factors multiplied together
    where '1-NAME' means one minus a parameter (e.g. [1-FRN, FGUT]).
    """

    compartment: str
    bioavailability: Factor | tuple[Factor, ...] = 1.0
    lag: str | None = None
    duration: str | None = None


class Route(Strict):
    """How a dose by this route enters the body.

    Either a single ``compartment`` (with bioavailability, lag and zero-order duration), or
    ``split`` into several parts (e.g. an oral film absorbed partly through the mucosa and partly
    swallowed). ``evidence`` says where the route's numbers come from.
    """

    compartment: str | None = None
    bioavailability: Factor | tuple[Factor, ...] = 1.0
    lag: str | None = None
    duration: str | None = None
    split: tuple[RouteDose, ...] = ()
    evidence: str | None = None

    @model_validator(mode="after")
    def _one_form(self) -> Route:
        if (self.compartment is None) == (not self.split):
            raise ValueError("give either 'compartment' or 'split'")
        return self

    @property
    def parts(self) -> tuple[RouteDose, ...]:
        """The dose parts (one for a single-compartment route)."""
        if self.split:
            return self.split
        return (RouteDose(compartment=self.compartment, bioavailability=self.bioavailability, lag=self.lag,
                          duration=self.duration),)


class Variability(Strict):
    """Log-normal variability: covariance of eta on the named parameters.

    Between patients by default; with ``occasion: true`` between the courses of one patient (a new eta
    for every course, on top of the patient's own).
    """

    parameters: tuple[str, ...]
    omega: tuple[tuple[float, ...], ...]
    source: str
    note: str | None = None
    occasion: bool = False

    @model_validator(mode="after")
    def _square(self) -> Variability:
        n = len(self.parameters)
        if len(self.omega) != n or any(len(row) != n for row in self.omega):
            raise ValueError(f"omega must be a {n} x {n} matrix for {list(self.parameters)}")
        m = np.asarray(self.omega, dtype=float)
        if not np.allclose(m, m.T):
            raise ValueError("omega must be symmetric")
        if np.any(np.linalg.eigvalsh(m) < -1e-12):
            raise ValueError("omega must be positive semi-definite")
        return self


class ResidualError(Strict):
    """Residual error of one observed output: proportional SD (fraction) and/or additive SD."""

    proportional: float = 0.0
    additive: float = 0.0
    unit: str = "ng/mL"
    source: str


class Observable(Strict):
    """A concentration the model predicts: compartment (or effect site) and analyte."""

    compartment: str
    analyte: str
    description: str | None = None


class Threshold(Strict):
    """A named concentration with its source (analgesia, awakening, ...)."""

    name: str
    observable: str
    value: float
    unit: str = "ng/mL"
    source: str
    confidence: Confidence
    note: str | None = None


class SigmoidEmax(Strict):
    """E = E0 + Emax * C^gamma / (EC50^gamma + C^gamma) on an observable (acute effect)."""

    kind: Literal["sigmoid_emax"] = "sigmoid_emax"
    name: str
    input: str
    ec50: str
    emax: str
    gamma: str | float = 1.0
    e0: float = 0.0
    unit: str
    description: str | None = None


class LinearAdditive(Strict):
    """E = sum_i slope_i * C_i over observables (Olofsen 2012 style)."""

    kind: Literal["linear_additive"] = "linear_additive"
    name: str
    terms: tuple[tuple[str, str], ...]  # (observable, slope parameter)
    unit: str
    description: str | None = None


class LongLastingRelief(Strict):
    """Slow effect-site relief mapped to a pain score (Dahan 2011 style).

    relief = Ce^gamma / (C50^gamma + Ce^gamma) in responders; the expected relief is weighted by
    the response probability; pain = baseline * (1 - Emax * relief).
    """

    kind: Literal["long_lasting_relief"] = "long_lasting_relief"
    name: str
    input: str
    c50: str
    gamma: str | float = 1.0
    emax: str | float = 1.0
    p_response: str
    p_placebo: str | None = None
    baseline: str | None = None
    """Parameter: the patient's pain score (NRS 0-10) without treatment, when pain scores are fitted."""
    score_sd: str | None = None
    """Parameter: SD of a pain score around its prediction (NRS points; interval-censored normal likelihood)."""
    description: str | None = None


PDLayer = Annotated[SigmoidEmax | LinearAdditive | LongLastingRelief, Field(discriminator="kind")]


class Variant(Strict):
    """A documented alternative of a model: named parameters multiplied by factors."""

    description: str
    scale: dict[str, float]
    citation: str
    note: str | None = None


class TypicalUncertainty(Strict):
    """How sure the typical values are: the covariance of their estimates on the estimation scale (log for
    positive values, logit for fractions), from a learned model's covariance step. A published model has
    none (its sources give intervals for a few values, not a joint covariance)."""

    parameters: tuple[str, ...]
    transforms: tuple[Literal["log", "logit"], ...]
    covariance: tuple[tuple[float, ...], ...]
    source: str

    @model_validator(mode="after")
    def _square(self) -> TypicalUncertainty:
        n = len(self.parameters)
        if len(self.transforms) != n:
            raise ValueError(f"one transform per parameter is needed for {list(self.parameters)}")
        if len(self.covariance) != n or any(len(row) != n for row in self.covariance):
            raise ValueError(f"covariance must be a {n} x {n} matrix for {list(self.parameters)}")
        m = np.asarray(self.covariance, dtype=float)
        if not (np.all(np.isfinite(m)) and np.allclose(m, m.T)):
            raise ValueError("covariance must be finite and symmetric")
        if np.any(np.linalg.eigvalsh(m) < -1e-12 * max(1.0, float(np.abs(m).max()))):
            raise ValueError("covariance must be positive semi-definite")
        return self


class ModelSpec(Strict):
    """A published (or user) PK/PD model as data."""

    id: str
    title: str
    drug: Literal["racemic", "s-ketamine"]
    population: str
    sampling: str = "unknown"
    confidence: Confidence
    citations: tuple[Citation, ...]
    caveats: tuple[str, ...] = ()
    parameters: dict[str, Parameter]
    compartments: tuple[Compartment, ...]
    flows: tuple[Flow, ...]
    effect_sites: tuple[EffectSite, ...] = ()
    routes: dict[str, Route]
    observables: dict[str, Observable]
    variability: tuple[Variability, ...] = ()
    residual_error: dict[str, ResidualError] = Field(default_factory=dict)
    pd: tuple[PDLayer, ...] = ()
    thresholds: tuple[Threshold, ...] = ()
    doses_studied: str | None = None
    variants: dict[str, Variant] = Field(default_factory=dict)
    uncertainty: TypicalUncertainty | None = None
    kind: Literal["pk"] = "pk"

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not v.replace("_", "").replace("-", "").replace("+", "").replace(":", "").isalnum():
            raise ValueError("use letters, digits, '_' and '-' only ('+' and ':' join composed models and variants)")
        return v

    @model_validator(mode="after")
    def _references(self) -> ModelSpec:
        names = [c.name for c in self.compartments] + [e.name for e in self.effect_sites]
        if len(set(names)) != len(names):
            raise ValueError("compartment and effect-site names must be unique")
        states = set(names)
        comps = {c.name: c for c in self.compartments}
        params = set(self.parameters)

        def param(ref: str | float | None, where: str) -> None:
            if isinstance(ref, str) and ref not in params:
                raise ValueError(f"{where} refers to unknown parameter {ref!r}")

        for c in self.compartments:
            param(c.volume, f"compartment {c.name} volume")
        for i, f in enumerate(self.flows):
            where = f"flows[{i}] ({f.source} -> {f.target})"
            if f.source not in comps or (f.target is not None and f.target not in comps):
                raise ValueError(f"{where} refers to an unknown compartment")
            param(f.clearance, where)
            param(f.rate, where)
            param(f.transit_time, where)
            param(f.fraction, where)
            if f.clearance and comps[f.source].volume is None:
                raise ValueError(f"{where}: a flow by clearance needs a volume on {f.source}")
            if f.molar_mass_ratio and (comps[f.source].analyte is None or f.target is None
                                       or comps[f.target].analyte is None):
                raise ValueError(f"{where}: molar_mass_ratio needs analytes on both compartments")
        for e in self.effect_sites:
            if e.follows not in comps or comps[e.follows].volume is None:
                raise ValueError(f"effect site {e.name} must follow a compartment with a volume")
            param(e.ke0, f"effect site {e.name}")
            param(e.half_life, f"effect site {e.name}")
        for name, r in self.routes.items():
            for part in r.parts:
                if part.compartment not in comps:
                    raise ValueError(f"route {name} doses unknown compartment {part.compartment!r}")
                for ref in (*factor_names(part.bioavailability), part.lag, part.duration):
                    param(ref, f"route {name}")
        for name, o in self.observables.items():
            if o.compartment not in states:
                raise ValueError(f"observable {name} reads unknown compartment {o.compartment!r}")
            if o.compartment in comps and comps[o.compartment].volume is None:
                raise ValueError(f"observable {name} needs a volume on {o.compartment}")
        for v in self.variability:
            for p in v.parameters:
                param(p, "variability")
        for name in self.residual_error:
            if name not in self.observables:
                raise ValueError(f"residual_error names unknown observable {name!r}")
        for vname, variant in self.variants.items():
            for p in variant.scale:
                param(p, f"variant {vname}")
        for t in self.thresholds:
            if t.observable not in self.observables:
                raise ValueError(f"threshold {t.name} names unknown observable {t.observable!r}")
        for layer in self.pd:
            _check_pd(layer, self.observables, params)
        for p in self.uncertainty.parameters if self.uncertainty is not None else ():
            param(p, "uncertainty")
        return self

    @property
    def state_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.compartments) + tuple(e.name for e in self.effect_sites)

    def citation_text(self) -> str:
        """All citations, one per line."""
        return "\n".join(c.text for c in self.citations)


def _check_pd(layer, observables, params) -> None:
    refs: list[str] = []
    if isinstance(layer, SigmoidEmax):
        inputs, refs = [layer.input], [layer.ec50, layer.emax, layer.gamma]
    elif isinstance(layer, LinearAdditive):
        inputs, refs = [t[0] for t in layer.terms], [t[1] for t in layer.terms]
    else:
        inputs, refs = [layer.input], [layer.c50, layer.gamma, layer.emax, layer.p_response, layer.p_placebo,
                                       layer.baseline, layer.score_sd]
    for i in inputs:
        if i not in observables:
            raise ValueError(f"pd layer {layer.name} reads unknown observable {i!r}")
    for r in refs:
        if isinstance(r, str) and r not in params:
            raise ValueError(f"pd layer {layer.name} refers to unknown parameter {r!r}")


class PDEffectSite(Strict):
    """An effect site a PD model needs: it follows the plasma concentration of ``analyte``."""

    name: str
    analyte: str
    ke0: str | None = None
    half_life: str | None = None
    description: str | None = None

    @model_validator(mode="after")
    def _rate(self) -> PDEffectSite:
        if (self.ke0 is None) == (self.half_life is None):
            raise ValueError("give exactly one of 'ke0' and 'half_life'")
        if self.analyte not in ANALYTES:
            raise ValueError(f"unknown analyte {self.analyte!r}")
        return self


class PDModelSpec(Strict):
    """A published PD model, attached to a PK model at run time (see :mod:`ketaplan.models.compose`).

    Layers read the effect sites by name. ``fitted_on`` is the drug form of the study.
    """

    kind: Literal["pd"]
    id: str
    title: str
    fitted_on: Literal["racemic", "s-ketamine"]
    population: str
    confidence: Confidence
    citations: tuple[Citation, ...]
    caveats: tuple[str, ...] = ()
    parameters: dict[str, Parameter]
    effect_sites: tuple[PDEffectSite, ...]
    layers: tuple[PDLayer, ...] = ()
    variability: tuple[Variability, ...] = ()
    residual_error: dict[str, ResidualError] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _refs(self) -> PDModelSpec:
        params = set(self.parameters)
        sites = {e.name for e in self.effect_sites}
        for e in self.effect_sites:
            for ref in (e.ke0, e.half_life):
                if ref is not None and ref not in params:
                    raise ValueError(f"effect site {e.name} refers to unknown parameter {ref!r}")
        for layer in self.layers:
            _check_pd(layer, {name: None for name in sites}, params)
        return self


class RouteRecipe(Strict):
    """An extravascular route for models that lack it: a depot with first-order absorption."""

    bioavailability: str
    absorption_rate: str
    lag: str | None = None
    evidence: str
    cites: tuple[str, ...]


class RouteTable(Strict):
    """Route data (bioavailability, absorption rate, lag) collected from several publications."""

    kind: Literal["routes"]
    id: str
    title: str
    drug: Literal["racemic", "s-ketamine"]
    citations: tuple[Citation, ...]
    caveats: tuple[str, ...] = ()
    parameters: dict[str, Parameter]
    routes: dict[str, RouteRecipe]

    @model_validator(mode="after")
    def _refs(self) -> RouteTable:
        keys = {c.key for c in self.citations}
        for name, r in self.routes.items():
            for ref in (r.bioavailability, r.absorption_rate, r.lag):
                if ref is not None and ref not in self.parameters:
                    raise ValueError(f"route {name} refers to unknown parameter {ref!r}")
            for key in r.cites:
                if key not in keys:
                    raise ValueError(f"route {name} cites unknown citation {key!r}")
        return self


class NamedThreshold(Strict):
    """A plasma concentration of clinical meaning, for one drug form.

    Where the literature gives a range rather than a threshold, ``value`` is the central value used for
    calculations (labelled ``assumed``) and ``low``/``high`` the reported range, with ``range_source``.
    """

    name: str
    role: Literal["target", "side_effect", "reference"]
    drug: Literal["racemic", "s-ketamine"]
    value: float
    unit: str = "ng/mL"
    source: str
    confidence: Confidence
    assumed: bool = False
    note: str | None = None
    low: float | None = None
    high: float | None = None
    range_source: str | None = None

    @model_validator(mode="after")
    def _range(self) -> NamedThreshold:
        if (self.low is None) != (self.high is None):
            raise ValueError("give both 'low' and 'high' for a range, or neither")
        if self.low is not None:
            if not self.low <= self.value <= self.high:
                raise ValueError(f"the central value {self.value:g} must lie within the range "
                                 f"{self.low:g}-{self.high:g}")
            if not self.range_source:
                raise ValueError("a range needs its 'range_source'")
        return self


class ThresholdTable(Strict):
    """Named concentration thresholds with their sources."""

    kind: Literal["thresholds"]
    id: str
    title: str
    citations: tuple[Citation, ...]
    potency_s_vs_racemic: Parameter
    thresholds: tuple[NamedThreshold, ...]
