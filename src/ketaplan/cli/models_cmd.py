"""``ketaplan models list`` and ``ketaplan models show``."""

from __future__ import annotations

import json

import typer
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
    from ketaplan.modelinfo import describe_entry, render_entry

    info = describe_entry(model_id, weight, age)
    if as_json:
        typer.echo(json.dumps(info, indent=2, default=str))
        return
    render_entry(info, console)
