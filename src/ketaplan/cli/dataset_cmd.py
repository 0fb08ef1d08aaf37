"""``ketaplan simulate-dataset``: NONMEM-style datasets simulated unchanged, chunk by chunk."""

from __future__ import annotations

from pathlib import Path

import typer

from ketaplan.cli.common import check_output, console, guarded, progress


@guarded
def simulate_dataset_command(
    data: Path = typer.Argument(..., help="NONMEM-style dataset (.csv or .parquet)."),
    model: Path = typer.Option(..., "--model", help="PREDPP model file (YAML)."),
    out: Path = typer.Option(..., "--out", help="Output .csv or .parquet: every input row plus IPRED and A1..An."),
    chunk_rows: int = typer.Option(500_000, "--chunk-rows", min=1_000,
                                   help="Rows read, simulated and written at a time (whole individuals)."),
) -> None:
    """Simulate a NONMEM-style dataset unchanged with a PREDPP model (ADVAN1-4, 11, 12)."""
    from ketaplan.nonmem.files import FORMATS, count_rows, simulate_file
    from ketaplan.nonmem.predpp import load_model

    check_output(out, "--out", FORMATS)
    pm = load_model(model)
    chunks = count_rows(data) // chunk_rows + 1
    with progress(chunks, "simulating the dataset") as step:
        rows = simulate_file(data, pm, out, chunk_rows, progress=lambda done: step(f"{done:,} rows simulated"))
    console.print(f"wrote {rows:,} rows to {out}")
