"""``ketaplan simulate-dataset``: NONMEM-style datasets simulated unchanged."""

from __future__ import annotations

from pathlib import Path

import typer

from ketaplan.cli.common import check_output, console, guarded, write_atomically


@guarded
def simulate_dataset_command(
    data: Path = typer.Argument(..., help="NONMEM-style dataset (CSV)."),
    model: Path = typer.Option(..., "--model", help="PREDPP model file (YAML)."),
    out: Path = typer.Option(..., "--out", help="Output CSV: every input row plus IPRED and A1..An."),
) -> None:
    """Simulate a NONMEM-style dataset unchanged with a PREDPP model (ADVAN1-4, 11, 12)."""
    from ketaplan.nonmem.dataset import read_dataset
    from ketaplan.nonmem.simulate import simulate_dataset

    check_output(out, "--out", (".csv",))
    frame = read_dataset(data)
    result = simulate_dataset(frame, model)
    write_atomically(out, lambda p: result.to_csv(p, index=False))
    console.print(f"wrote {len(result)} rows to {out}")
