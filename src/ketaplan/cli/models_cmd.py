"""``ketaplan models list`` and ``ketaplan models show``."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

from ketaplan.cli.common import console, guarded

models_app = typer.Typer(no_args_is_help=True, help="The model library: published PK/PD models with citations.")


@models_app.command("list")
@guarded
def models_list(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """All library models: id, kind, drug form, population, routes, PD layers, confidence."""
    from ketaplan.models.describe import summary_row
    from ketaplan.models.library import library_ids, load_entry

    rows = [summary_row(i, load_entry(i)) for i in library_ids()]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="ketaplan model library")
    for col in ("id", "kind", "drug", "population", "routes", "PD layers", "confidence"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r["id"], r["kind"], r["drug"], r["population"], ", ".join(r["routes"]),
                      ", ".join(r["pd_layers"]), r["confidence"])
    console.print(table)


@models_app.command("show")
@guarded
def models_show(
    model_id: str = typer.Argument(..., help="Library id (id:variant for a variant) or a model YAML file."),
    weight: float = typer.Option(70.0, help="Body weight (kg) for the derived quantities."),
    age: float = typer.Option(45.0, help="Age (years) for the derived quantities."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Structure, every parameter with unit, source and confidence, citations, derived values, caveats."""
    from ketaplan.simulation.model_info import describe_entry

    info = describe_entry(model_id, weight, age)
    if as_json:
        typer.echo(json.dumps(info, indent=2, default=str))
        return
    render_entry(info, console)


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
