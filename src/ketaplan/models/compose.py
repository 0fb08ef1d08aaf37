"""Putting models together: variants, route data and PD layers on a PK model.

Pure functions over immutable specs: each returns a new :class:`ModelSpec` and changes nothing.

* :func:`apply_variant` scales named parameters (e.g. Domino clearance to the Kamp 2020 mean);
* :func:`with_routes` adds extravascular routes a PK model lacks, from a route table;
* :func:`with_pd` attaches a PD model's effect sites and layers. A PD model fitted on
  S-ketamine, attached to a racemic model, follows ``s_fraction`` x the racemic concentration
  (default 0.5: equal disposition of S and R assumed); this is an extrapolation and is written
  into the model's caveats and the effect site's note.
"""

from __future__ import annotations

from collections.abc import Iterable

from ketaplan.errors import InputError
from ketaplan.models.spec import (
    Citation,
    Compartment,
    EffectSite,
    Flow,
    LinearAdditive,
    ModelSpec,
    Observable,
    PDModelSpec,
    Route,
    RouteTable,
)

S_FRACTION_SOURCE = (
    "S-ketamine taken as {f:g} x the racemic concentration (equal S and R disposition assumed; Geisslinger 1993 "
    "and Wang 2019 report a smaller R-ketamine clearance, so the S part may be somewhat less than half)"
)


def _validated(spec: ModelSpec) -> ModelSpec:
    """Re-check a composed spec as a whole (references, names, labels)."""
    return ModelSpec.model_validate(spec.model_dump())


def apply_variant(spec: ModelSpec, name: str) -> ModelSpec:
    """The model with a documented variant applied (parameters multiplied by the variant's factors)."""
    if name not in spec.variants:
        allowed = ", ".join(spec.variants) or "none"
        raise InputError("variant", name, f"model {spec.id} has variants: {allowed}")
    v = spec.variants[name]
    params = dict(spec.parameters)
    for pname, factor in v.scale.items():
        p = params[pname]
        note = f"x {factor:g} for variant {name} ({v.note or v.description})"
        params[pname] = p.model_copy(update={"value": p.value * factor, "derived": True,
                                              "note": f"{p.note}; {note}" if p.note else note})
    return _validated(spec.model_copy(update={
        "id": f"{spec.id}:{name}",
        "title": f"{spec.title} - variant {name}: {v.description}",
        "parameters": params,
        "citations": _merge_citations(spec.citations, [Citation(key=f"variant-{name}", text=v.citation)]),
        "caveats": (*spec.caveats, f"Variant {name}: {v.description}."),
        "variants": {},
    }))


def _merge_citations(a: Iterable[Citation], b: Iterable[Citation]) -> tuple[Citation, ...]:
    seen, out = set(), []
    for c in (*a, *b):
        if c.key not in seen:
            seen.add(c.key)
            out.append(c)
    return tuple(out)


def _check_new(names: Iterable[str], existing: Iterable[str], what: str, source: str) -> None:
    clash = set(names) & set(existing)
    if clash:
        raise InputError(what, sorted(clash)[0], f"is defined both by the model and by {source}")


def central_compartment(spec: ModelSpec) -> str:
    """The compartment IV doses enter (the plasma compartment of the parent drug)."""
    if "iv" in spec.routes:
        return spec.routes["iv"].parts[0].compartment
    return next(c.name for c in spec.compartments if c.role == "central")


def with_routes(spec: ModelSpec, table: RouteTable, only: Iterable[str] | None = None) -> ModelSpec:
    """Add the routes of ``table`` that ``spec`` lacks (depot + first-order absorption into its central).

    ``only`` limits the addition to the routes a regimen uses (so only their sources are cited).
    """
    if table.drug != spec.drug:
        raise InputError("route table", table.id, f"is for {table.drug}, the model is {spec.drug}")
    wanted = set(table.routes) if only is None else set(only)
    missing = [r for r in table.routes if r not in spec.routes and r in wanted]
    if not missing:
        return spec
    central = central_compartment(spec)
    used = {p for r in missing for p in (table.routes[r].bioavailability, table.routes[r].absorption_rate,
                                         table.routes[r].lag) if p}
    _check_new(used, spec.parameters, "parameter", table.id)
    compartments, flows, routes = list(spec.compartments), list(spec.flows), dict(spec.routes)
    for r in missing:
        recipe = table.routes[r]
        depot = f"depot_{r}"
        compartments.append(Compartment(name=depot, role="depot"))
        flows.append(Flow(source=depot, target=central, rate=recipe.absorption_rate))
        routes[r] = Route(compartment=depot, bioavailability=recipe.bioavailability, lag=recipe.lag,
                          evidence=f"{recipe.evidence} (route table {table.id})")
    params = {**spec.parameters, **{p: table.parameters[p] for p in sorted(used)}}
    caveat = (f"Routes {', '.join(missing)} are not from this model's study: their bioavailability and absorption "
              f"come from the route table {table.id} (see each parameter's source).")
    keys = {k for r in missing for k in table.routes[r].cites}
    cited = [c for c in table.citations if c.key in keys]
    return _validated(spec.model_copy(update={
        "compartments": tuple(compartments), "flows": tuple(flows), "routes": routes, "parameters": params,
        "citations": _merge_citations(spec.citations, cited),
        "caveats": (*spec.caveats, caveat, *table.caveats),
    }))


_FORM_OF = {"ketamine": ("racemic", "ketamine"), "norketamine": ("racemic", "norketamine"),
            "s-ketamine": ("s", "ketamine"), "s-norketamine": ("s", "norketamine")}


def _source_observable(spec: ModelSpec, analyte: str, s_fraction: float) -> tuple[str, float, str | None] | None:
    """The PK observable to follow for a PD analyte, the scale factor and the extrapolation note."""
    by_analyte = {o.analyte: name for name, o in spec.observables.items()
                  if o.compartment in {c.name for c in spec.compartments}}
    if analyte in by_analyte:
        return by_analyte[analyte], 1.0, None
    if analyte not in _FORM_OF:
        return None
    form, base = _FORM_OF[analyte]
    other = f"s-{base}" if form == "racemic" else base
    if other not in by_analyte:
        return None
    note = S_FRACTION_SOURCE.format(f=s_fraction)
    if form == "s":  # PD wants S, model gives racemic
        return by_analyte[other], s_fraction, f"EXTRAPOLATION: {note}"
    return by_analyte[other], 1.0 / s_fraction, f"EXTRAPOLATION: racemic concentration taken as S / {s_fraction:g}"


def with_pd(spec: ModelSpec, pd: PDModelSpec, s_fraction: float = 0.5) -> ModelSpec:
    """Attach the effect sites and layers of ``pd`` to ``spec`` (see the module docstring)."""
    if not 0 < s_fraction <= 1:
        raise InputError("s_fraction", s_fraction, "the S-ketamine part of racemic ketamine must be in (0, 1]")
    _check_new(pd.parameters, spec.parameters, "parameter", pd.id)
    _check_new([e.name for e in pd.effect_sites], spec.state_names, "effect site", pd.id)
    comps = {c.name for c in spec.compartments}
    sites, observables, caveats, dropped = list(spec.effect_sites), dict(spec.observables), [], []
    for e in pd.effect_sites:
        found = _source_observable(spec, e.analyte, s_fraction)
        if found is None:
            dropped.append(e.name)
            continue
        obs_name, scale, note = found
        follows = spec.observables[obs_name].compartment
        assert follows in comps
        sites.append(EffectSite(name=e.name, follows=follows, ke0=e.ke0, half_life=e.half_life, scale=scale,
                                description=e.description, note=note))
        observables[e.name] = Observable(compartment=e.name, analyte=e.analyte,
                                         description=e.description or f"effect site of {pd.id}")
        if note:
            caveats.append(f"{pd.id} ({e.name}): {note}.")
    layers = []
    for layer in pd.layers:
        if isinstance(layer, LinearAdditive):
            terms = tuple(t for t in layer.terms if t[0] not in dropped)
            if len(terms) < len(layer.terms):
                lost = ", ".join(t[0] for t in layer.terms if t[0] in dropped)
                caveats.append(f"{pd.id}: the term(s) {lost} are left out because model {spec.id} has no matching "
                               "metabolite.")
            if terms:
                layers.append(layer.model_copy(update={"terms": terms}))
            continue
        if layer.input in dropped:
            raise InputError("pd", pd.id, f"needs {layer.input}, which model {spec.id} cannot provide")
        layers.append(layer)
    return _validated(spec.model_copy(update={
        "id": f"{spec.id}+{pd.id}",
        "effect_sites": tuple(sites), "observables": observables,
        "parameters": {**spec.parameters, **pd.parameters},
        "pd": (*spec.pd, *layers),
        "variability": (*spec.variability, *pd.variability),
        "residual_error": {**spec.residual_error, **pd.residual_error},
        "citations": _merge_citations(spec.citations, pd.citations),
        "caveats": (*spec.caveats, *caveats, *(f"{pd.id}: {c}" for c in pd.caveats)),
    }))


