"""What ``ketaplan models show`` prints: a library entry as plain data, with derived quantities."""

from __future__ import annotations

from pathlib import Path

from ketaplan.engine.build import Covariates, build
from ketaplan.engine.derived import derived_quantities
from ketaplan.models.describe import layer_text, parameter_rows, summary_row
from ketaplan.models.library import library_ids, load_entry, load_model
from ketaplan.models.spec import ModelSpec, PDModelSpec, RouteTable
from ketaplan.models.thresholds import thresholds_for


def describe_entry(ref: str, weight: float = 70.0, age: float = 45.0) -> dict:
    """A library entry (or model file) as a dict: everything ``models show`` displays."""
    base = ref.partition(":")[0]
    entry = load_model(ref) if (base in library_ids("pk") or Path(ref).suffix in (".yaml", ".yml")) \
        else load_entry(ref)
    info = {"summary": summary_row(getattr(entry, "id", ref), entry),
            "title": getattr(entry, "title", ref),
            "citations": [c.model_dump(exclude_none=True) for c in getattr(entry, "citations", ())],
            "caveats": list(getattr(entry, "caveats", ()))}
    if hasattr(entry, "parameters"):
        info["parameters"] = parameter_rows(entry.parameters)
    if isinstance(entry, ModelSpec):
        info.update(_pk(entry, weight, age))
    elif isinstance(entry, PDModelSpec):
        info["effect_sites"] = [e.model_dump(exclude_none=True) for e in entry.effect_sites]
        info["layers"] = [layer_text(layer) for layer in entry.layers]
    elif isinstance(entry, RouteTable):
        info["routes"] = {k: v.model_dump(exclude_none=True) for k, v in entry.routes.items()}
    else:
        info["thresholds"] = [t.model_dump(exclude_none=True) for t in entry.thresholds]
    return info


def _pk(spec: ModelSpec, weight: float, age: float) -> dict:
    covariates = Covariates.of(weight, age, "male", 175.0)
    built = build(spec, covariates)
    derived = [{"analyte": d.analyte, "clearance_L_per_h": round(d.clearance_l_per_h, 3),
                "central_volume_L": round(d.central_volume_l, 3), "Vss_L": round(d.vss_l, 2),
                "half_lives_h": [round(h, 4) for h in d.half_lives_h],
                "half_lives_min": [round(60 * h, 2) for h in d.half_lives_h]} for d in derived_quantities(built)]
    return {
        "drug": spec.drug, "sampling": spec.sampling, "doses_studied": spec.doses_studied,
        "structure": {
            "compartments": [c.model_dump(exclude_none=True) for c in spec.compartments],
            "flows": [f.model_dump(exclude_none=True) for f in spec.flows],
            "effect_sites": [e.model_dump(exclude_none=True) for e in spec.effect_sites],
        },
        "routes": {k: {**r.model_dump(exclude_none=True, exclude={"split"}),
                       "parts": [p.model_dump(exclude_none=True) for p in r.parts]} for k, r in spec.routes.items()},
        "variability": [v.model_dump(exclude_none=True) for v in spec.variability],
        "residual_error": {k: v.model_dump() for k, v in spec.residual_error.items()},
        "variants": {k: v.model_dump(exclude_none=True) for k, v in spec.variants.items()},
        "derived": {"for": f"{weight:g} kg, {age:g} years (derived from the model, not published values)",
                    "values": derived},
        "thresholds": [{"name": t.name, "role": t.role, "value_ng_per_mL": t.value, "source": t.source,
                        "confidence": t.confidence, "assumed": t.assumed, "extrapolated": t.extrapolated}
                       for t in thresholds_for(spec.drug).values()],
    }


