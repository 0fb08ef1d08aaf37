"""``ketaplan models list`` and ``ketaplan models show``."""

from __future__ import annotations

import typer
from rich.console import Console

from ketaplan.cli.common import console, echo_json, guarded
from ketaplan.cli.tables import Column, print_table

models_app = typer.Typer(no_args_is_help=True, help="The model library: published PK/PD models with citations.")


@models_app.command("list")
@guarded
def models_list(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """All library models: id, kind, drug form, population, routes, PD layers, confidence."""
    from ketaplan.models.describe import summary_row
    from ketaplan.models.library import library_ids, load_entry

    rows = [summary_row(i, load_entry(i)) for i in library_ids()]
    if as_json:
        echo_json(rows)
        return
    print_table("ketaplan model library",
                [Column(c, "left", text=c in ("population", "routes")) for c in
                 ("id", "kind", "drug", "confidence", "PD layers", "routes", "population")],
                [[r["id"], r["kind"], r["drug"], r["confidence"], ", ".join(r["pd_layers"]) or "-",
                  ", ".join(r["routes"]) or "-", r["population"]] for r in rows], blocks=True)


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
        echo_json(info)
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
        print_table("Parameters", [Column("name", "left"), Column("value"), Column("unit", "left"),
                                   Column("confidence", "left"), Column("labels", "left", text=True),
                                   Column("source", "left", text=True)],
                    [[p["name"], f"{p['value']:g}", p["unit"], p["confidence"], ", ".join(p["labels"]) or "-",
                      p["source"]] for p in info["parameters"]], console=console)
    if isinstance(info.get("routes"), dict):
        for name, r in info["routes"].items():
            console.print(f"Route {name}: {r.get('evidence', '')}", highlight=False)
    if "derived" in info:
        rows = [[v["analyte"], f"{v['clearance_L_per_h']:.4g}", f"{v['central_volume_L']:.4g}", f"{v['Vss_L']:.4g}",
                 ", ".join(f"{m:.3g} min" if m < 120 else f"{m / 60:.3g} h" for m in v["half_lives_min"])]
                for v in info["derived"]["values"]]
        print_table(f"Derived ({info['derived']['for']})", [Column("analyte", "left"), Column("CL\nL/h"),
                                                            Column("V central\nL"), Column("Vss\nL"),
                                                            Column("half-lives", "left", text=True)],
                    rows, console=console)
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
