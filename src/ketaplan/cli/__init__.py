"""The ``ketaplan`` command line (Typer + Rich).

Bad input is reported as one sentence on stderr with exit code 2, and nothing is written.
"""

from __future__ import annotations

import sys

import typer

from ketaplan.cli import (
    case_cmd,
    clinic_cmd,
    compare_cmd,
    dataset_cmd,
    fit_cmd,
    models_cmd,
    population_cmd,
    pump_cmd,
    serve_cmd,
    simulate_cmd,
)
from ketaplan.cli.common import join_quantity_arguments

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="ketaplan: plan, simulate and follow ketamine therapy for refractory neuropathic pain.")
app.command("headline")(simulate_cmd.headline)
app.command("simulate")(simulate_cmd.simulate_command)
app.command("pump")(pump_cmd.pump_command)
app.command("case-report")(case_cmd.case_report_command)
app.command("compare")(compare_cmd.compare_command)
app.command("simulate-dataset")(dataset_cmd.simulate_dataset_command)
app.command("fit")(fit_cmd.fit_command)
app.command("serve")(serve_cmd.serve_command)
app.command("population")(population_cmd.population_command)
app.command("search")(population_cmd.search_command)
app.add_typer(models_cmd.models_app, name="models")
app.add_typer(clinic_cmd.clinic_app, name="clinic")


def main() -> None:
    """Entry point of the ``ketaplan`` script."""
    app(args=join_quantity_arguments(sys.argv[1:]), prog_name="ketaplan")


if __name__ == "__main__":
    main()
