"""Shared pieces of the command line: errors, atomic writes, quantities, patients, progress."""

from __future__ import annotations

import json
import math
import numbers
import os
import re
import shutil
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import wraps
from pathlib import Path

import typer
from rich.console import Console

from ketaplan.errors import InputError

console = Console()
err_console = Console(stderr=True, soft_wrap=True)

DISCLAIMER = ("Decision support for clinicians and researchers, not a prescription: every number comes from the "
              "named model and publication.")

QUANTITY_OPTIONS = ("--concentration", "--syringe", "--bag", "--pump-increment", "--until", "--max-hang", "--dose",
                    "--iv-over", "--hours", "--target-level", "--target-relief")
NEGATIVE_NUMBER = re.compile(r"^-(\d|\.\d)")
"""A word that starts with a negative number, such as '-20 mg/h IV for 5 d' or '-80'."""
_BARE_NUMBER = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)$")
_UNIT_WORD = re.compile(r"^[a-zA-Zµμ%][\w/µμ%.*()^-]*$")


def join_quantity_arguments(args: list[str]) -> list[str]:
    """Let users type ``--concentration 1 mg/mL`` unquoted: join a bare number with the unit after it."""
    out: list[str] = []
    i = 0
    while i < len(args):
        out.append(args[i])
        if args[i] in QUANTITY_OPTIONS and i + 2 < len(args) + 1 and i + 1 < len(args):
            value = args[i + 1]
            if _BARE_NUMBER.match(value) and i + 2 < len(args) and _UNIT_WORD.match(args[i + 2]):
                out.append(f"{value} {args[i + 2]}")
                i += 3
                continue
        i += 1
    return out


def guarded(func: Callable) -> Callable:
    """Turn InputError into one sentence on stderr and exit code 2; refuse 'nan' and 'inf' in number options;
    keep library warnings off the terminal (:func:`quiet_warnings`)."""
    names = _option_names(func)

    @wraps(func)
    def wrapper(*args, **kwargs):
        try:
            with quiet_warnings():
                for name, value in kwargs.items():
                    if isinstance(value, float) and not math.isfinite(value):
                        raise InputError(names.get(name, name), value, "a finite number is required")
                return func(*args, **kwargs)
        except InputError as exc:
            err_console.print(f"error: {exc}", markup=False, highlight=False)
            raise typer.Exit(code=2) from None
        except _database_errors() as exc:  # no statement or values: they may hold personal data
            err_console.print(f"error: database: the database could not be used ({type(exc).__name__}); check "
                              "--db, that the server runs and that `ketaplan clinic init` was run.", markup=False,
                              highlight=False)
            raise typer.Exit(code=2) from None

    return wrapper


def _option_names(func: Callable) -> dict[str, str]:
    """Parameter name -> the option a user types ('set_' -> '--set', 'relief_threshold' -> '--relief-threshold')."""
    import inspect

    out = {}
    for name, param in inspect.signature(func).parameters.items():
        decls = [d for d in getattr(param.default, "param_decls", None) or () if d.startswith("--")]
        out[name] = decls[0] if decls else f"--{name.strip('_').replace('_', '-')}"
    return out


@contextmanager
def quiet_warnings() -> Iterator[None]:
    """No NumPy or library warnings on the terminal: the conditions that matter are checked and said in words
    (results that are not finite, fits that did not converge, ...). ``KETAPLAN_WARNINGS=show`` shows them."""
    if os.environ.get("KETAPLAN_WARNINGS", "").lower() == "show":
        yield
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


JSON_DIGITS = 12
"""Significant digits of every number in ``--json`` output: no float noise (0.9999999999999999 is 1), and
far more than any measurement or model parameter has, so a document read back gives the same plan."""


def echo_json(document: object) -> None:
    """Print a ``--json`` document: numbers through :func:`json_number`, dates and other objects as text."""
    typer.echo(json.dumps(json_ready(document), indent=2, default=str))


def json_ready(value: object) -> object:
    """``value`` with every number (NumPy's too) made plain JSON by :func:`json_number`, at any depth."""
    if hasattr(value, "dtype") and hasattr(value, "tolist"):  # a NumPy scalar or array
        value = value.tolist()
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral):
        return json_number(float(value))
    return value


def json_number(x: float) -> float | None:
    """``x`` rounded to :data:`JSON_DIGITS` significant digits; ``None`` (JSON null) for NaN and infinity."""
    return float(f"{x:.{JSON_DIGITS}g}") if math.isfinite(x) else None


def _database_errors() -> tuple[type[Exception], ...]:
    """SQLAlchemy's error class once SQLAlchemy is loaded; a command that never loaded it cannot raise one."""
    module = sys.modules.get("sqlalchemy.exc")
    return (module.SQLAlchemyError,) if module is not None else ()


def check_output(path: Path | None, option: str, suffixes: tuple[str, ...]) -> None:
    """Refuse an output path before any work is done: wrong suffix or missing folder."""
    if path is None:
        return
    if path.suffix.lower() not in suffixes:
        raise InputError(option, str(path), f"the file must end in {' or '.join(suffixes)}")
    if not path.parent.exists():
        raise InputError(option, str(path), "the folder does not exist")
    if path.is_dir():
        raise InputError(option, str(path), "is a folder; give a file name")


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Write through a temporary file in the same folder, so a failure leaves nothing behind."""
    path = Path(path)
    if not path.parent.exists():
        raise InputError("output", str(path), "the folder does not exist")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        write(Path(tmp))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_folder_atomically(folder: Path, files: dict[str, bytes]) -> None:
    """Write ``files`` (name -> content) into ``folder`` only once all of them are ready: a new folder is
    filled beside its place and renamed into it whole; in an existing one each file replaces its namesake
    atomically."""
    folder = Path(folder)
    if folder.is_dir():
        for name, content in files.items():
            write_atomically(folder / name, lambda p, c=content: p.write_bytes(c))
        return
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    try:
        for name, content in files.items():
            (tmp / name).write_bytes(content)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def with_start_option(regimen, text: str | None):
    """The regimen with ``--start`` applied; refused when the regimen text already says another start."""
    when = parse_start(text)
    if when is None:
        return regimen
    if regimen.start is not None and regimen.start != when:
        raise InputError("--start", text, f"the regimen already says 'starting {regimen.start:%Y-%m-%d %H:%M}'; "
                         "give the start once")
    return regimen.with_start(when)


def parse_start(text: str | None) -> datetime | None:
    """``--start``: a date and an optional clock time, or None when not given."""
    return None if text is None else parse_when(text, "--start")


def parse_when(text: str, field: str) -> datetime:
    """'2026-03-01' or '2026-03-01 08:30'; the sentence names the clock time when only the time is wrong."""
    day, _, clock = text.strip().partition(" ")
    try:
        when = datetime.strptime(day, "%Y-%m-%d")
    except ValueError:
        raise InputError(field, text, "a date as YYYY-MM-DD or YYYY-MM-DD HH:MM (for example '2026-12-01 09:00')") \
            from None
    if not clock.strip():
        return when
    try:
        time = datetime.strptime(clock.strip(), "%H:%M")
    except ValueError:
        raise InputError(field, text, f"the clock time '{clock.strip()}' is not a time from 00:00 to 23:59 (HH:MM)") \
            from None
    return when.replace(hour=time.hour, minute=time.minute)


def parse_settings(items: list[str] | None) -> dict[str, float]:
    """``--set NAME=VALUE`` pairs (model parameters in their own unit)."""
    out = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise InputError("--set", item, "use NAME=VALUE, for example --set F_TOPICAL=0.05")
    return out


@contextmanager
def progress(total: int, description: str) -> Iterator[Callable[[str], None]]:
    """A progress bar that appears only if the work takes more than a second, with the time spent and an
    estimate of the time left (from the steps done so far)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), TextColumn("left"),
                   TimeRemainingColumn(), console=err_console, transient=True)
    task = bar.add_task(description, total=total)
    timer = threading.Timer(1.0, bar.start)
    timer.start()

    def step(label: str) -> None:
        bar.update(task, advance=1, description=label)

    try:
        yield step
    finally:
        timer.cancel()
        if timer.is_alive():
            timer.join()
        if bar.live.is_started:
            bar.stop()

