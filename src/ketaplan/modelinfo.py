"""What ``ketaplan models show`` prints: a library entry as plain data, with derived quantities."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

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


def render_entry(info: dict, console: Console) -> None:
    """Print a description made by :func:`describe_entry`."""
    s = info["summary"]
    console.print(f"[bold]{s['id']}[/bold] ({s['kind']}, {s['drug']}) - {info['title']}")
    console.print(f"Population: {s['population']}. Confidence: {s['confidence']}.", highlight=False)
    if "structure" in info:
        comps = ", ".join(f"{c['name']} ({c['role']})" for c in info["structure"]["compartments"])
        console.print(f"Compartments: {comps}", highlight=False)
        for f in info["structure"]["flows"]:
            how = f.get("clearance") or f.get("rate") or f"{f.get('stages', 1)}/{f.get('transit_time')}"
            console.print(f"  flow {f['source']} -> {f.get('target') or 'out'} by {how}"
                          + (f", fraction {f['fraction']}" if f.get("fraction", 1.0) != 1.0 else ""), highlight=False)
        for e in info["structure"]["effect_sites"]:
            console.print(f"  effect site {e['name']} follows {e['follows']}", highlight=False)
    if info.get("parameters"):
        t = Table(title="Parameters")
        for col in ("name", "value", "unit", "confidence", "labels", "source"):
            t.add_column(col, overflow="fold")
        for p in info["parameters"]:
            t.add_row(p["name"], f"{p['value']:g}", p["unit"], p["confidence"], ", ".join(p["labels"]), p["source"])
        console.print(t)
    if isinstance(info.get("routes"), dict):
        for name, r in info["routes"].items():
            console.print(f"Route {name}: {r.get('evidence', '')}", highlight=False)
    if "derived" in info:
        d = Table(title=f"Derived ({info['derived']['for']})")
        for col in ("analyte", "CL (L/h)", "V central (L)", "Vss (L)", "half-lives"):
            d.add_column(col)
        for v in info["derived"]["values"]:
            hl = ", ".join(f"{m:.3g} min" if m < 120 else f"{m / 60:.3g} h" for m in v["half_lives_min"])
            d.add_row(v["analyte"], f"{v['clearance_L_per_h']:.4g}", f"{v['central_volume_L']:.4g}",
                      f"{v['Vss_L']:.4g}", hl)
        console.print(d)
    for key in ("effect_sites", "layers"):
        for item in info.get(key, []):
            console.print(f"{key.replace('_', ' ')}: {item}", highlight=False)
    for v in info.get("variability", []):
        console.print(f"Variability on {', '.join(v['parameters'])}: omega {v['omega']} ({v['source']})",
                      highlight=False)
    for name, r in info.get("residual_error", {}).items():
        console.print(f"Residual error {name}: proportional {r['proportional']}, additive {r['additive']} "
                      f"({r['source']})", highlight=False)
    for name, v in info.get("variants", {}).items():
        console.print(f"Variant {name}: {v['description']}", highlight=False)
    for t in info.get("thresholds", []):
        tags = " (assumption)" if t.get("assumed") else ""
        tags += " (extrapolation)" if t.get("extrapolated") else ""
        val = t.get("value_ng_per_mL", t.get("value"))
        console.print(f"Threshold {t['name']}: {val:g} ng/mL{tags} - {t['source']}", highlight=False)
    console.print("[bold]Citations[/bold]")
    for c in info["citations"]:
        console.print(f"  {c['text']}", highlight=False)
    if info["caveats"]:
        console.print("[bold]Caveats[/bold]")
        for c in info["caveats"]:
            console.print(f"  - {c}", highlight=False)
