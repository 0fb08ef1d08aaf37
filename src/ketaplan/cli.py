"""The ``ketaplan`` command line (Typer + Rich).

Bad input is reported as one sentence on stderr with exit code 2, and nothing is written.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from functools import wraps
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from ketaplan.errors import InputError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="ketaplan: plan, simulate and follow ketamine therapy for refractory neuropathic pain.")
console = Console()
err_console = Console(stderr=True, soft_wrap=True)

DISCLAIMER = ("Decision support for clinicians and researchers, not a prescription: every number comes "
              "from the named model and publication.")


def guarded(func: Callable) -> Callable:
    """Turn InputError into one sentence on stderr and exit code 2."""

    @wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except InputError as exc:
            err_console.print(f"error: {exc}", markup=False, highlight=False)
            raise typer.Exit(code=2) from None

    return wrapper


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Write through a temporary file in the same folder, so a failure leaves nothing behind."""
    path = Path(path)
    if not path.parent.exists():
        raise InputError("--out", str(path), "the folder does not exist")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@app.command()
@guarded
def headline(
    weight: float = typer.Option(80.0, help="Body weight (kg)."),
    age: float = typer.Option(59.0, help="Age (years)."),
    sex: str = typer.Option("male", help="male or female."),
    model: str = typer.Option("domino_racemic_3cmt_nk", help="Model id or YAML file."),
) -> None:
    """The headline case: 20 mg/h IV ketamine for 5 days; plasma levels at 1, 24, 120, 121 and 130 h."""
    from ketaplan.models.compose import assemble
    from ketaplan.predict import Patient, predict
    from ketaplan.regimen import Regimen

    spec = assemble(model)
    regimen = Regimen.infusion("20 mg/h", duration="5 d")
    times = [1.0, 24.0, 120.0, 121.0, 130.0]
    frame = predict(spec, regimen, Patient(weight, age, sex), times)
    table = Table(title=f"20 mg/h IV for 5 days, {age:g}-year-old {sex}, {weight:g} kg")
    table.add_column("time (h)", justify="right")
    names = list(spec.observables)
    for name in names:
        table.add_column(f"{name} (ng/mL)", justify="right")
    for i, t in enumerate(frame["time"]):
        table.add_row(f"{t:g}", *(f"{frame[name].iloc[i]:.1f}" for name in names))
    console.print(table)
    console.print(f"Model: {spec.title}.")
    console.print(spec.citation_text(), highlight=False)
    console.print(DISCLAIMER)


models_app = typer.Typer(no_args_is_help=True, help="The model library: published PK/PD models with citations.")
app.add_typer(models_app, name="models")


@models_app.command("list")
@guarded
def models_list(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """All library models: id, kind, drug form, population, routes, PD layers, confidence."""
    import json

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
    import json

    from ketaplan.modelinfo import describe_entry, render_entry

    info = describe_entry(model_id, weight, age)
    if as_json:
        typer.echo(json.dumps(info, indent=2, default=str))
        return
    render_entry(info, console)


@app.command("simulate-dataset")
@guarded
def simulate_dataset_cmd(
    data: Path = typer.Argument(..., help="NONMEM-style dataset (CSV)."),
    model: Path = typer.Option(..., "--model", help="PREDPP model file (YAML)."),
    out: Path = typer.Option(..., "--out", help="Output CSV: every input row plus IPRED and A1..An."),
) -> None:
    """Simulate a NONMEM-style dataset unchanged with a PREDPP model (ADVAN1-4, 11, 12)."""
    from ketaplan.nmdata import read_dataset
    from ketaplan.nonmem import simulate_dataset

    frame = read_dataset(data)
    result = simulate_dataset(frame, model)
    write_atomically(out, lambda p: result.to_csv(p, index=False))
    console.print(f"wrote {len(result)} rows to {out}")


def main() -> None:
    """Entry point of the ``ketaplan`` script."""
    app()


if __name__ == "__main__":
    sys.exit(main())
