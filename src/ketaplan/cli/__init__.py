"""The ``ketaplan`` command line (Typer + Rich).

Bad input is reported as one sentence on stderr with exit code 2, and nothing is written.
"""

from __future__ import annotations

import inspect
import os
import sys

import typer

from ketaplan.cli import (
    case_cmd,
    clinic_cmd,
    compare_cmd,
    dataset_cmd,
    estimate_cmd,
    fit_cmd,
    learn_cmd,
    models_cmd,
    population_cmd,
    pump_cmd,
    serve_cmd,
    simulate_cmd,
)
from ketaplan.cli.common import NEGATIVE_NUMBER, guarded, join_quantity_arguments


def _paragraphs(doc: str | None) -> str | None:
    """A docstring as help text: each paragraph on one line (the help wraps it to the terminal), not at the
    source's line breaks."""
    if not doc:
        return doc
    return "\n\n".join(" ".join(part.split()) for part in inspect.cleandoc(doc).split("\n\n"))


def _register(group: typer.Typer, name: str, func) -> None:
    group.command(name, help=_paragraphs(func.__doc__))(func)


app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="ketaplan: plan, simulate and follow ketamine therapy for refractory neuropathic pain.")
_register(app, "headline", simulate_cmd.headline)
_register(app, "simulate", simulate_cmd.simulate_command)
_register(app, "pump", pump_cmd.pump_command)
_register(app, "case-report", case_cmd.case_report_command)
_register(app, "compare", compare_cmd.compare_command)
_register(app, "simulate-dataset", dataset_cmd.simulate_dataset_command)
_register(app, "fit", fit_cmd.fit_command)
_register(app, "estimate", estimate_cmd.estimate_command)
_register(app, "serve", serve_cmd.serve_command)
_register(app, "population", population_cmd.population_command)
_register(app, "search", population_cmd.search_command)
app.add_typer(models_cmd.models_app, name="models")
app.add_typer(clinic_cmd.clinic_app, name="clinic")
_register(clinic_cmd.clinic_app, "learn", guarded(learn_cmd.learn_command))
clinic_cmd.clinic_app.add_typer(learn_cmd.models_app, name="models")


def main() -> None:
    """Entry point of the ``ketaplan`` script.

    Worker processes (Dask) inherit a filter that keeps their warnings off the terminal too. Anything that
    still escapes (a bug) is one sentence with exit code 1, never a traceback, unless ``KETAPLAN_DEBUG=1``.
    """
    if os.environ.get("KETAPLAN_WARNINGS", "").lower() != "show":
        os.environ.setdefault("PYTHONWARNINGS", "ignore")
    try:
        app(args=negative_arguments_last(join_quantity_arguments(sys.argv[1:])), prog_name="ketaplan")
    except (SystemExit, KeyboardInterrupt):
        raise
    except Exception as exc:
        if os.environ.get("KETAPLAN_DEBUG"):
            raise
        print(unexpected(exc), file=sys.stderr)
        sys.exit(1)


def unexpected(exc: BaseException) -> str:
    """One sentence for an error ketaplan did not foresee."""
    if isinstance(exc, MemoryError):
        return ("error: the computation needed more memory than this machine gave it (MemoryError); nothing was "
                "written. Please report the input: ketaplan should have refused it before starting.")
    return (f"error: ketaplan failed unexpectedly ({type(exc).__name__}: {exc}); nothing was written. This is a "
            "bug: please report it with the command (KETAPLAN_DEBUG=1 shows the details).")


def negative_arguments_last(args: list[str]) -> list[str]:
    """The arguments with the positional ones after '--' when one starts with a minus ('-20 mg/h IV for 5 d').

    The option parser takes such a word for an unknown option; after '--' it reaches the command, which
    refuses a negative dose, weight or course in one sentence naming the field. Options keep their
    values and order; an unknown option stays where the parser reports it.
    """
    if "--" in args or not any(NEGATIVE_NUMBER.match(a) for a in args):
        return args
    command, path, rest = typer.main.get_command(app), [], list(args)
    while rest and hasattr(command, "commands") and rest[0] in command.commands:
        command = command.commands[rest[0]]
        path.append(rest.pop(0))
    takes_value = {name: not (p.is_flag or p.count) for p in command.params if p.param_type_name == "option"
                   for name in (*p.opts, *p.secondary_opts)}
    options, positionals = [], []
    while rest:
        word = rest.pop(0)
        name = word.partition("=")[0]
        if name in takes_value:
            options.append(word)
            if takes_value[name] and "=" not in word and rest:
                options.append(rest.pop(0))
        elif word.startswith("-") and len(word) > 1 and not NEGATIVE_NUMBER.match(word):
            options.append(word)
        else:
            positionals.append(word)
    return [*path, *options, "--", *positionals]


if __name__ == "__main__":
    main()
