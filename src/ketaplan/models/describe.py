"""Plain-data descriptions of library entries, for ``ketaplan models list/show`` and reports."""

from __future__ import annotations

from pydantic import BaseModel

from ketaplan.models.spec import LinearAdditive, LongLastingRelief, ModelSpec, PDModelSpec, RouteTable, SigmoidEmax


def summary_row(entry_id: str, entry: BaseModel) -> dict:
    """One line of ``models list``: id, kind, drug form, population, routes, PD layers, confidence."""
    if isinstance(entry, ModelSpec):
        return {"id": entry_id, "kind": "pk", "drug": entry.drug, "population": entry.population,
                "routes": sorted(entry.routes), "pd_layers": [layer.name for layer in entry.pd],
                "confidence": entry.confidence}
    if isinstance(entry, PDModelSpec):
        return {"id": entry_id, "kind": "pd", "drug": entry.fitted_on, "population": entry.population,
                "routes": [],
                "pd_layers": [layer.name for layer in entry.layers] or [e.name for e in entry.effect_sites],
                "confidence": entry.confidence}
    if isinstance(entry, RouteTable):
        return {"id": entry_id, "kind": "routes", "drug": entry.drug, "population": "route data from several studies",
                "routes": sorted(entry.routes), "pd_layers": [], "confidence": "mixed (per parameter)"}
    return {"id": entry_id, "kind": "thresholds", "drug": "racemic and s-ketamine",
            "population": "concentration anchors", "routes": [], "pd_layers": [], "confidence": "mixed"}


def parameter_rows(parameters: dict) -> list[dict]:
    """Every parameter with value, unit, source, confidence and labels."""
    rows = []
    for name, p in parameters.items():
        labels = [t for t, on in (("derived", p.derived), ("assumed", p.assumed),
                                  ("user-settable", p.user_settable)) if on]
        rows.append({"name": name, "value": p.value, "unit": p.unit, "source": p.source, "confidence": p.confidence,
                     "labels": labels, "note": p.note,
                     "covariates": [c.model_dump(exclude_none=True) for c in p.covariates]})
    return rows


def layer_text(layer) -> str:
    if isinstance(layer, SigmoidEmax):
        return f"{layer.name}: {layer.e0:g} + {layer.emax} x C^{layer.gamma} / ({layer.ec50}^{layer.gamma} + C^...)"
    if isinstance(layer, LinearAdditive):
        return f"{layer.name} ({layer.unit}) = " + " + ".join(f"{s} x {c}" for c, s in layer.terms)
    if isinstance(layer, LongLastingRelief):
        return (f"{layer.name} = {layer.emax} x Ce^{layer.gamma} / ({layer.c50}^{layer.gamma} + Ce^{layer.gamma}) "
                f"in responders (probability {layer.p_response}); pain = baseline x (1 - {layer.name})")
    return str(layer)
