"""Tables that read at any width, on a terminal and in a pipe: whole when they fit, never cut.

Every command prints its tables through :func:`print_table`. A table that fits the console is printed
as one; a wider one is split into stacked tables that each repeat the key columns (the numbers of a row
stay together under their headers), or printed as one block per row (``blocks=True``, for rows of long
text). Numbers and dates never wrap, free text wraps between words, and no cell is cut short with "…".
Headers may hold a line break ("pump\\nmL/h") to keep number columns narrow.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ketaplan.cli.common import console as default_console

GAP = 3
"""Characters between two columns: padding, the (blank) rule, padding."""
TEXT_MIN = 24
"""Narrowest a free-text column is made before the table is split instead."""


@dataclass(frozen=True)
class Column:
    """A column: its header, alignment, and whether it holds free text that may wrap between words."""

    title: str
    justify: Literal["left", "right"] = "right"
    text: bool = False


def print_table(title: str | None, columns: Sequence[Column], rows: Sequence[Sequence[str]], *, key: int = 1,
                caption: str | None = None, blocks: bool = False, show_header: bool = True,
                console: Console | None = None) -> None:
    """Print ``rows`` (already formatted text) under ``columns`` so that it fits the console's width.

    ``key`` is the number of leading columns that name a row: repeated in every part of a split table,
    or heading each block. ``caption`` (a legend) follows the table.
    """
    out = console or default_console
    widths = _widths(columns, rows, show_header)
    everything = list(range(len(columns)))
    if title:
        out.print(title, style="bold", markup=False, highlight=False)
    if _needed(columns, widths, everything, natural=True) <= out.width:
        out.print(_table(columns, rows, everything, show_header))
    elif blocks:
        _print_blocks(out, columns, rows, key)
    else:
        for n, part in enumerate(_split(columns, widths, key, out.width)):
            if n:
                out.print(f"{title} (continued)" if title else "(continued)", style="bold", markup=False,
                          highlight=False)
            out.print(_table(columns, rows, part, show_header))
    if caption:
        out.print(caption, style="dim", markup=False, highlight=False)


def _widths(columns: Sequence[Column], rows: Sequence[Sequence[str]], show_header: bool) -> list[int]:
    """Width of each column when nothing wraps: its longest header line or cell line."""
    widths = []
    for i, c in enumerate(columns):
        lines = [line for row in rows for line in str(row[i]).split("\n")]
        if show_header:
            lines += c.title.split("\n")
        widths.append(max((cell_len(line) for line in lines), default=0))
    return widths


def _needed(columns: Sequence[Column], widths: Sequence[int], which: Sequence[int], natural: bool = False) -> int:
    """Width of a table of the columns ``which``; free text counted at its narrowest unless ``natural``."""
    cells = [widths[i] if natural or not columns[i].text else min(widths[i], TEXT_MIN) for i in which]
    return sum(cells) + GAP * (len(cells) - 1)


def _split(columns: Sequence[Column], widths: Sequence[int], key: int, width: int) -> list[list[int]]:
    """Column indices of each part: the key columns, then as many of the others, in order, as fit."""
    keys = list(range(key))
    parts: list[list[int]] = []
    current: list[int] = []
    for i in range(key, len(columns)):
        if current and _needed(columns, widths, keys + current + [i]) > width:
            parts.append(keys + current)
            current = []
        current.append(i)
    parts.append(keys + current)
    return parts


def _table(columns: Sequence[Column], rows: Sequence[Sequence[str]], which: Sequence[int], show_header: bool) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, show_header=show_header)
    for i in which:
        c = columns[i]
        table.add_column(Text(c.title), justify=c.justify, no_wrap=not c.text, overflow="fold")
    for row in rows:
        table.add_row(*(Text(str(row[i])) for i in which))
    return table


def _print_blocks(out: Console, columns: Sequence[Column], rows: Sequence[Sequence[str]], key: int) -> None:
    """One block per row: its key cells in bold, then one 'header  value' line per other column."""
    for row in rows:
        out.print(" ".join(row[:key]), style="bold", markup=False, highlight=False)
        grid = Table.grid(padding=(0, 2))
        grid.add_column(no_wrap=True, style="dim")
        grid.add_column(overflow="fold")
        for c, cell in zip(columns[key:], row[key:], strict=True):
            grid.add_row(Text("  " + c.title.replace("\n", " ")), Text(str(cell)))
        out.print(grid)
