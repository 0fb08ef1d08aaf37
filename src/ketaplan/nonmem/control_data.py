"""$INPUT and $DATA of a control stream: the dataset NONMEM would read, as a table of text cells.

``$INPUT ID TIME AMT WT=DROP CP=DV`` names the data items by position: ``DROP``/``SKIP`` (alone or as
``NAME=DROP``) leaves an item out, and ``A=B`` gives one item two names; the column takes the NONMEM data
item's name (``DV`` above) and abbreviated code may use either. ``$DATA file IGNORE=@ IGNORE=(ID.EQ.3)
ACCEPT=(DOSE.GT.0)`` skips header lines (``IGNORE=@``: a line starting with a letter or @; ``IGNORE=#``,
the default, or ``IGNORE=c``), then records where any IGNORE condition holds, or keeps those where any
ACCEPT condition holds. Items are separated by commas, or by blanks when a line has no comma. The file
name is relative to the control stream.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ketaplan.errors import InputError

DATA_ITEMS = frozenset({"ID", "L1", "L2", "DV", "MDV", "TIME", "DATE", "DAT1", "DAT2", "DAT3", "EVID", "AMT",
                        "RATE", "SS", "II", "ADDL", "CMT", "PCMT", "CALL", "CONT", "DVID"})
"""NONMEM's reserved data item names: in ``A=B`` the reserved one names the column."""
_DROP = ("DROP", "SKIP")
_FILTER = re.compile(r"^\s*([A-Z_][A-Z0-9_]*)\s*(\.EQN\.|\.NEN\.|\.EQ\.|\.NE\.|\.GT\.|\.GE\.|\.LT\.|\.LE\.|==|/=|"
                     r"!=|>=|<=|>|<|=)\s*(\S+?)\s*$")
_OPS = {".EQN.": "==", ".NEN.": "!=", ".EQ.": "==", ".NE.": "!=", ".GT.": ">", ".GE.": ">=", ".LT.": "<",
        ".LE.": "<=", "==": "==", "/=": "!=", "!=": "!=", ">": ">", ">=": ">=", "<": "<", "<=": "<=", "=": "=="}
_COMPARE = {"==": np.equal, "!=": np.not_equal, ">": np.greater, ">=": np.greater_equal, "<": np.less,
            "<=": np.less_equal}


@dataclass(frozen=True)
class InputItems:
    """$INPUT: one name per item position ("" for a dropped item), and synonyms -> column name."""

    labels: tuple[str, ...]  # every item's label, dropped ones included (IGNORE/ACCEPT may use them)
    dropped: frozenset[int]
    synonyms: dict[str, str]

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(n for i, n in enumerate(self.labels) if i not in self.dropped)


def parse_input(text: str) -> InputItems:
    """The $INPUT record."""
    labels: list[str] = []
    dropped: set[int] = set()
    synonyms: dict[str, str] = {}
    for token in re.split(r"[\s,]+", " ".join(line.split(";", 1)[0] for line in text.splitlines()).upper()):
        if not token:
            continue
        left, _eq, right = token.partition("=")
        if not re.fullmatch(r"[A-Z_][A-Z0-9_]*", left) or (right and not re.fullmatch(r"[A-Z_][A-Z0-9_]*", right)):
            raise InputError("$INPUT", token, "item names like ID, TIME, WT=DROP or CP=DV")
        if left in _DROP or right in _DROP:
            dropped.add(len(labels))
            labels.append(right if left in _DROP and right else left)
            continue
        name, other = (right, left) if right in DATA_ITEMS and left not in DATA_ITEMS else (left, right)
        if other:
            synonyms[other] = name
        if name in labels:
            raise InputError("$INPUT", name, "each item name once")
        labels.append(name)
    if not labels:
        raise InputError("$INPUT", text.strip(), "the names of the data items, in order")
    return InputItems(tuple(labels), frozenset(dropped), synonyms)


@dataclass(frozen=True)
class DataRecord:
    """$DATA: the file, how header lines are recognised and the record filters."""

    path: Path
    ignore_char: str  # "@", "#" or one character
    filters: tuple[tuple[str, str, str], ...]  # (item, operator, value)
    accept: bool  # the filters are ACCEPT conditions (else IGNORE)


def parse_data(text: str, directory: Path) -> DataRecord:
    """The $DATA record; options other than IGNORE/ACCEPT that change what is read are refused."""
    code = " ".join(line.split(";", 1)[0] for line in text.splitlines()).strip()
    m = re.match(r'^(?:"([^"]+)"|\'([^\']+)\'|(\S+))\s*(.*)$', code)
    if not m:
        raise InputError("$DATA", text.strip(), "the name of the data file")
    name = m.group(1) or m.group(2) or m.group(3)
    rest = m.group(4)
    ignore_char, filters, kinds = "#", [], set()
    pattern = re.compile(r"(IGNORE|ACCEPT)\s*=?\s*\(([^)]*)\)|IGNORE\s*=\s*(?:\"(.)\"|'(.)'|(\S))|(\S+)",
                         re.IGNORECASE)
    for opt in pattern.finditer(rest):
        if opt.group(1):
            kinds.add(opt.group(1).upper())
            filters += [_filter(c) for c in opt.group(2).split(",") if c.strip()]
        elif opt.group(6):
            word = opt.group(6).upper()
            if word not in ("REWIND", "NOREWIND", "NOWIDE", "WIDE", "NOOPEN"):
                raise InputError("$DATA", opt.group(6), "ketaplan reads the file with IGNORE= and ACCEPT= options only")
        else:
            ignore_char = next(g for g in opt.groups()[2:5] if g)
    if len(kinds) > 1:
        raise InputError("$DATA", rest, "IGNORE=(list) and ACCEPT=(list) cannot be combined")
    return DataRecord(directory / name, ignore_char, tuple(filters), kinds == {"ACCEPT"})


def _filter(text: str) -> tuple[str, str, str]:
    m = _FILTER.match(text.upper())
    if not m:
        raise InputError("$DATA", text.strip(), "a condition such as (ID.EQ.3) or (DV.GT.0)")
    return m.group(1), _OPS[m.group(2)], m.group(3).strip("'\"")


def read_control_data(record: DataRecord, items: InputItems) -> pd.DataFrame:
    """The records NONMEM would read, named by $INPUT, every cell as text (as ``read_dataset`` gives)."""
    if not record.path.is_file():
        raise InputError("$DATA", str(record.path), "the data file does not exist")
    rows: list[list[str]] = []
    for number, line in enumerate(record.path.read_text().splitlines(), start=1):
        first = line.lstrip()[:1]
        if not first or _skipped(first, record.ignore_char):
            continue
        cells = [c.strip() for c in line.split(",")] if "," in line else line.split()
        if len(cells) < len(items.labels):
            raise InputError(f"$DATA line {number}", line.strip(), f"$INPUT names {len(items.labels)} items "
                             f"but the line has {len(cells)}")
        rows.append(cells[: len(items.labels)])
    frame = pd.DataFrame(rows, columns=list(items.labels), dtype=str)
    if record.filters:
        frame = frame[_kept(frame, record)].reset_index(drop=True)
    return frame[list(items.columns)]


def _skipped(first: str, ignore: str) -> bool:
    if ignore == "@":
        return first.isalpha() or first == "@"
    return first == ignore


def _kept(frame: pd.DataFrame, record: DataRecord) -> np.ndarray:
    hits = np.zeros(len(frame), dtype=bool)
    for item, op, value in record.filters:
        if item not in frame.columns:
            raise InputError("$DATA", item, f"conditions use items named in $INPUT ({', '.join(frame.columns)})")
        cells = frame[item].str.strip()
        try:
            number = float(value)
        except ValueError:
            hits |= _COMPARE[op](cells.to_numpy(dtype=str), value)
            continue
        numbers = pd.to_numeric(cells.replace(".", "0"), errors="coerce").to_numpy(dtype=float)
        hits |= _COMPARE[op](numbers, number)
    return hits if record.accept else ~hits
