"""``ketaplan compare``: routes and forms side by side, as a table and a figure."""

from __future__ import annotations

import math
from pathlib import Path

import typer

from ketaplan.cli.common import DISCLAIMER, check_output, console, echo_json, guarded, write_atomically
from ketaplan.cli.tables import Column, print_table


@guarded
def compare_command(
    routes: str = typer.Option("iv,oral,intranasal,sublingual,topical", help="Comma-separated routes."),
    forms: str = typer.Option("racemic,s-ketamine", help="Comma-separated drug forms."),
    dose: str = typer.Option("25 mg", help="Dose per scenario (equal dose) or of the racemic IV reference."),
    basis: str = typer.Option("dose", help="'dose' (same mg) or 'exposure' (same potency-equivalent AUC)."),
    weight: float = typer.Option(70.0, help="Body weight (kg)."),
    age: float = typer.Option(45.0, help="Age (years)."),
    hours: str = typer.Option("12 h", help="Time window for exposure."),
    iv_over: str = typer.Option("40 min", help="IV doses are infusions of this length."),
    plot: Path = typer.Option(None, help="Figure as .png or .svg."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Compare routes (IV, oral, intranasal, sublingual, topical, ...) and forms (racemic, S-ketamine)."""
    from ketaplan.planning.compare import compare
    from ketaplan.regimen.units import Kind, parse
    from ketaplan.simulation.patient import Patient

    check_output(plot, "--plot", (".png", ".svg"))
    table, curves, notes = compare([r.strip() for r in routes.split(",") if r.strip()],
                                   [f.strip().lower() for f in forms.split(",") if f.strip()],
                                   parse(dose, Kind.AMOUNT, "--dose"), basis, Patient(weight, age),
                                   parse(hours, Kind.DURATION, "--hours"), parse(iv_over, Kind.DURATION, "--iv-over"))
    if plot is not None:
        from ketaplan.report.figures import comparison_figure, save

        fig = comparison_figure(curves, "concentration", f"Plasma parent drug, equal {basis}")
        write_atomically(plot, lambda p: save(fig, p))
    if as_json:
        echo_json({"rows": table.to_dict(orient="records"), "notes": notes, "disclaimer": DISCLAIMER})
        return
    cols = [c for c in COMPARE_COLUMNS if c[1] in table]
    rows = [[_fmt(row.get(key), fmt) for _, key, fmt in cols] for _, row in table.iterrows()]
    print_table(f"Routes and forms at equal {basis}", [Column(title, "left" if i < 2 else "right")
                                                       for i, (title, _, _) in enumerate(cols)], rows, key=2)
    for n in notes:
        console.print(f"note: {n}", highlight=False)
    console.print(DISCLAIMER)
    if plot is not None:
        console.print(f"wrote {plot}")


COMPARE_COLUMNS = [("form", "form", "{}"), ("route", "route", "{}"), ("dose\nmg", "dose_mg", "{:.3g}"),
                   ("systemic\nF", "systemic_F", "{:.0%}"), ("Cmax\nng/mL", "cmax_ng_ml", "{:.1f}"),
                   ("Tmax\nh", "tmax_h", "{:.2f}"), ("AUC\nng·h/mL", "auc_ng_h_ml", "{:.0f}"),
                   ("potency-eq.\nAUC", "potency_equivalent_auc", "{:.0f}"),
                   ("h above\nanalgesia", "hours_above_analgesia", "{:.2f}"),
                   ("h above\npsychotomimetic", "hours_above_psychotomimetic", "{:.2f}"),
                   ("norketamine\nAUC", "norketamine_auc_ng_h_ml", "{:.0f}")]
"""Header, field and format of each column of the comparison table."""


def _fmt(value, fmt: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return fmt.format(value)
