"""NONMEM-style datasets: reading, checking and splitting into individuals.

Standard data items are matched case-insensitively: ID, TIME, AMT, RATE, DUR, EVID, CMT, II,
ADDL, SS, MDV, DV (and DVID, BLQ/LLOQ for later layers). "." and empty cells are missing. Other
columns are carried through untouched. Every problem is reported as one sentence naming the row
(1-based, as in a spreadsheet without its header) and the column.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from ketaplan.errors import InputError, Verbatim
from ketaplan.finite import all_finite
from ketaplan.limits import DOSE_EVENTS_PER_INDIVIDUAL, RECORDS_PER_INDIVIDUAL

STANDARD_ITEMS = ("ID", "TIME", "AMT", "RATE", "DUR", "EVID", "CMT", "II", "ADDL", "SS", "MDV", "DV")


@dataclass(frozen=True)
class Individual:
    """The records of one individual (a run of consecutive rows with the same ID); arrays are views."""

    id: object
    rows: np.ndarray  # positions in the input frame
    time: np.ndarray
    evid: np.ndarray
    amt: np.ndarray
    rate: np.ndarray
    dur: np.ndarray
    cmt: np.ndarray  # 1-based NONMEM numbering; 0 = default compartment
    ii: np.ndarray
    addl: np.ndarray
    ss: np.ndarray

    @property
    def n_records(self) -> int:
        return len(self.rows)


DOSE_ITEMS = ("evid", "amt", "rate", "dur", "ii", "addl", "ss")
"""The items that are 0 on a plain observation record; :class:`DatasetRecords` keeps them only where not."""


@dataclass(frozen=True)
class DatasetRecords:
    """The checked standard items of a whole dataset, individuals as contiguous runs of rows.

    ``starts`` holds the first row of each individual (and the row count at the end) and ``ids`` the ID
    of each; ``time`` and ``cmt`` have one entry per row. ``active`` lists the rows where a dose item or
    EVID is not 0 (every dose, reset and EVID 2 record), and ``items`` holds the dose items
    (:data:`DOSE_ITEMS`) at those rows only: a million observation records cost nothing here.
    ``subject`` (the individual of each row) and ``local`` (each row's position within its individual)
    are computed when first asked for.
    """

    ids: np.ndarray
    starts: np.ndarray
    time: np.ndarray
    cmt: np.ndarray
    active: np.ndarray
    items: dict[str, np.ndarray]

    @property
    def n_individuals(self) -> int:
        return len(self.ids)

    @property
    def n_rows(self) -> int:
        return len(self.time)

    @cached_property
    def subject(self) -> np.ndarray:
        return np.repeat(np.arange(self.n_individuals), np.diff(self.starts))

    @cached_property
    def local(self) -> np.ndarray:
        return np.arange(self.n_rows) - self.starts[self.subject]

    def subject_of(self, rows: np.ndarray) -> np.ndarray:
        """The individual of each of ``rows`` (without building the whole ``subject`` column)."""
        return np.searchsorted(self.starts, rows, side="right") - 1

    def column(self, name: str, lo: int = 0, hi: int | None = None) -> np.ndarray:
        """Dose item ``name`` on rows lo..hi (default all), 0 where the row is not active."""
        hi = self.n_rows if hi is None else hi
        a, b = np.searchsorted(self.active, [lo, hi])
        values = self.items[name]
        out = np.zeros(hi - lo, dtype=values.dtype)
        out[self.active[a:b] - lo] = values[a:b]
        return out

    def select(self, who: np.ndarray) -> DatasetRecords:
        """The records of individuals ``who`` (in that order, repeats allowed) as a dataset of their own."""
        who = np.asarray(who, dtype=np.int64)
        lengths = np.diff(self.starts)[who]
        starts = np.concatenate([[0], np.cumsum(lengths)])
        rows = np.arange(starts[-1]) - np.repeat(starts[:-1] - self.starts[who], lengths)
        position = np.full(self.n_rows, -1)
        position[self.active] = np.arange(len(self.active))
        picked = position[rows]
        active = np.flatnonzero(picked >= 0)
        items = {name: values[picked[active]] for name, values in self.items.items()}
        return DatasetRecords(self.ids[who], starts, self.time[rows], self.cmt[rows], active, items)

    def individual(self, i: int) -> Individual:
        """The records of individual ``i``."""
        lo, hi = int(self.starts[i]), int(self.starts[i + 1])
        item = {name: self.column(name, lo, hi) for name in DOSE_ITEMS}
        return Individual(self.ids[i], np.arange(lo, hi), self.time[lo:hi], item["evid"], item["amt"], item["rate"],
                          item["dur"], self.cmt[lo:hi], item["ii"], item["addl"], item["ss"])


def read_dataset(path: str | Path) -> pd.DataFrame:
    """Read a CSV dataset with every cell as text, so that checks can name bad cells.

    The header must name every column once (:func:`check_header`) and every row must have as many fields as
    the header (the row that does not is named).
    """
    p = Path(path)
    if not p.is_file():
        raise InputError("DATA", str(path), "the dataset file does not exist")
    header = csv_header(p)
    try:
        table = pa_csv.read_csv(p, convert_options=pa_csv.ConvertOptions(
            column_types=dict.fromkeys(header, pa.string()), strings_can_be_null=False,
            quoted_strings_can_be_null=False))
    except pa.ArrowInvalid as exc:
        raise csv_error(p, exc) from None
    return table.to_pandas()


def csv_header(path: Path) -> list[str]:
    """The column names of a CSV file's first line, checked by :func:`check_header`."""
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            header = next(csv.reader(fh), None)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError("DATA", str(path), f"could not be read as CSV text ({type(exc).__name__})") from None
    if not header:
        raise InputError("DATA", str(path), "the file is empty; a header row with the column names is required")
    check_header(header)
    return header


def csv_error(path: Path, exc: Exception) -> InputError:
    """The sentence for a CSV file that pyarrow could not read: the first row whose number of fields differs
    from the header's, when that is the reason."""
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            width = len(next(reader))
            for number, row in enumerate(reader, start=1):
                if row and len(row) != width:
                    return InputError(f"DATA row {number}", Verbatim(f"{len(row)} fields"),
                                      f"the header names {width} columns; every row needs one field per column")
    except (OSError, UnicodeDecodeError, csv.Error):
        pass
    return InputError("DATA", str(path), f"could not be read as CSV ({str(exc).strip().splitlines()[0]})")


def check_header(columns: list[object]) -> None:
    """Refuse a column given twice, in any case or spacing ('AMT' and ' amt'): which one would count is a guess."""
    seen: dict[str, object] = {}
    for col in columns:
        key = " ".join(str(col).split()).upper()
        if key in seen:
            raise InputError("DATA columns", Verbatim(f"{seen[key]!r} and {str(col)!r}"),
                             f"the dataset has two columns for {key}; give each column once")
        seen[key] = str(col)


def column_map(data: pd.DataFrame) -> dict[str, str]:
    """Standard item name -> actual column name, matched case-insensitively (a column given twice is refused)."""
    check_header(list(data.columns))
    found: dict[str, str] = {}
    for col in data.columns:
        key = str(col).strip().upper()
        if key in STANDARD_ITEMS or key in ("DVID", "BLQ", "LLOQ"):
            found[key] = col
    return found


MAX_COMPARTMENT = 1000
"""Larger CMT values are refused before they are made integers (no PREDPP model has more compartments)."""

_MISSING = ("", ".", "NA")
"""Cells that mean 'missing' (NONMEM's '.', an empty cell, R's NA); text such as 'nan' or 'inf' is refused."""


def numeric_column(data: pd.DataFrame, column: str, item: str | None = None) -> np.ndarray:
    """A column as finite floats; "." and empty are NaN (missing); 'nan', 'inf' and other text are refused."""
    raw = data[column]
    if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
        values = raw.to_numpy(dtype=float)
        if raw.dtype.kind in "iu" or all_finite(values):  # whole numbers are always finite
            return values
        infinite = np.isinf(values)
        if infinite.any():
            i = int(np.argmax(infinite))
            raise InputError(f"row {i + 1}, column {item or column}", float(values[i]), "a finite number is required")
        return values
    text = raw.astype(str).str.strip()
    missing = (text.isin(_MISSING) | raw.isna()).to_numpy()
    cleaned = text.mask(missing, "")
    try:
        values = pc.cast(pa.array(cleaned.mask(missing, None), type=pa.string()), pa.float64()) \
            .to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # some cell is not a number: find the first one to name it
        values = pd.to_numeric(cleaned.mask(missing, "nan"), errors="coerce").to_numpy(dtype=float)
        text_cells = ~missing & np.isnan(values)
        if text_cells.any():
            i = int(np.argmax(text_cells))
            raise InputError(f"row {i + 1}, column {item or column}", raw.iloc[i], "a number is required") from None
    bad = ~missing & ~np.isfinite(values)
    if bad.any():
        i = int(np.argmax(bad))
        raise InputError(f"row {i + 1}, column {item or column}", raw.iloc[i],
                         "a finite number is required (a missing value is '.' or an empty cell)")
    return values


def check_records(data: pd.DataFrame) -> DatasetRecords:
    """Check the standard items of a whole dataset at once and find its individuals.

    Only TIME, ID and CMT are checked on every row; the dose items (AMT, RATE, DUR, II, ADDL, SS, EVID)
    on the *active* rows, those where any of them is given and not 0 (on the others every check holds).
    Raises :class:`InputError` naming the first bad row and column, in the same order of checks as ever.
    """
    if len(data) == 0:
        raise InputError("DATA", "an empty table", "the dataset needs at least one row")
    cols = column_map(data)
    for required in ("ID", "TIME"):
        if required not in cols:
            raise InputError("DATA columns", list(map(str, data.columns)), f"a {required} column is required")
    n = len(data)
    values: dict[str, np.ndarray] = {}
    for item in STANDARD_ITEMS:
        if item in cols and item not in ("ID", "CMT"):
            values[item] = _item_values(data, cols[item], item)
    first_rows = _id_runs(data[cols["ID"]])
    check_individual_lengths(first_rows, n, data[cols["ID"]])

    time = values["TIME"]
    earliest = float(time.min())  # NaN if a TIME is missing (numeric_column has refused infinities)
    if np.isnan(earliest):
        _require_finite(time, "TIME")
    active = _active_rows(values, n)
    item = {name: _filled(values, name, active) for name in ("AMT", "RATE", "DUR", "II", "ADDL", "SS")}
    evid = values["EVID"][active].astype(float) if "EVID" in values else np.where(item["AMT"] > 0, 1.0, 0.0)
    missing = np.isnan(evid)
    evid[missing] = np.where(item["AMT"][missing] > 0, 1.0, 0.0)
    cmt = _whole_cmt(data, cols.get("CMT"))
    for name, arr in (("EVID", evid), ("ADDL", item["ADDL"]), ("SS", item["SS"])):
        _require_integer(arr, name, active)
    _check_items(time, earliest, cmt, active, item["AMT"], item["RATE"], item["DUR"], item["II"], item["ADDL"],
                 item["SS"], evid)

    drops = np.flatnonzero(time[1:] < time[:-1]) + 1
    drops = drops[~np.isin(drops, first_rows)]
    if len(drops):
        i = int(drops[0])
        raise InputError(f"row {i + 1}, column TIME", float(time[i]),
                         f"times must not decrease within an individual (previous row has {time[i - 1]:g})")
    ids = _id_texts(data[cols["ID"]].take(first_rows))
    sparse = {"evid": evid.astype(np.int64), "amt": item["AMT"], "rate": item["RATE"], "dur": item["DUR"],
              "ii": item["II"], "addl": item["ADDL"].astype(np.int64), "ss": item["SS"].astype(np.int64)}
    return DatasetRecords(ids, np.append(first_rows, n), time, cmt, active, sparse)


def check_individual_lengths(first_rows: np.ndarray, n_rows: int, ids: pd.Series, offset: int = 0) -> None:
    """Refuse an individual with more records than :data:`ketaplan.limits.RECORDS_PER_INDIVIDUAL`."""
    counts = np.diff(np.append(first_rows, n_rows))
    if len(counts) and counts.max() > RECORDS_PER_INDIVIDUAL.value:
        i = int(np.argmax(counts))
        RECORDS_PER_INDIVIDUAL.check(f"rows {offset + first_rows[i] + 1} on, ID {str(ids.iloc[first_rows[i]]).strip()}",
                                     float(counts[i]), "split the individual's records or give them fewer rows")


def _id_runs(raw: pd.Series) -> np.ndarray:
    """The first row of every run of consecutive equal IDs; refuses missing IDs."""
    if pd.api.types.is_integer_dtype(raw) and not pd.api.types.is_extension_array_dtype(raw):
        key = raw.to_numpy()
    elif pd.api.types.is_float_dtype(raw) and not pd.api.types.is_extension_array_dtype(raw):
        key = raw.to_numpy()
        if np.isnan(key.min()) or np.isnan(key.max()):
            bad = np.flatnonzero(np.isnan(key))
            raise InputError(f"row {bad[0] + 1}, column ID", "", "every row needs an ID")
    else:
        text = raw.astype(str).str.strip()
        bad = np.flatnonzero(text.isin(["", "."]).to_numpy())
        if len(bad):
            raise InputError(f"row {bad[0] + 1}, column ID", text.iloc[bad[0]], "every row needs an ID")
        key, _ = pd.factorize(text)
    change = np.flatnonzero(key[1:] != key[:-1]) + 1
    return np.concatenate([[0], change]).astype(np.int64)


def split_individuals(data: pd.DataFrame) -> list[Individual]:
    """Check the standard items of a dataset and split it into individuals.

    Raises :class:`InputError` naming the first bad row and column.
    """
    records = check_records(data)
    return [records.individual(i) for i in range(records.n_individuals)]


def _id_texts(firsts: pd.Series) -> np.ndarray:
    """Each individual's ID as text, as pandas writes it (``astype(str)``); 64-bit numbers, the usual case, by
    Python's own str(), which gives the same text several times faster for a few hundred individuals."""
    if firsts.dtype in (np.dtype(np.int64), np.dtype(np.float64)):
        return np.array([str(v) for v in firsts.tolist()], dtype=object)
    return firsts.astype(str).str.strip().to_numpy()


def _item_values(data: pd.DataFrame, column: str, item: str) -> np.ndarray:
    """A standard item's values; a column of whole numbers (EVID, ADDL, ...) as it is, without a float copy of
    every row (only the few active rows are converted)."""
    raw = data[column]
    if item != "TIME" and raw.dtype.kind in "iu":
        return raw.to_numpy()
    return numeric_column(data, column, item)


def _active_rows(values: dict[str, np.ndarray], n: int) -> np.ndarray:
    """Rows where any dose item or EVID is given and not 0 (a missing cell counts: it is checked there)."""
    present = [values[name] for name in ("AMT", "RATE", "DUR", "II", "ADDL", "SS", "EVID") if name in values]
    if not present:
        return np.empty(0, dtype=np.int64)
    active = np.not_equal(present[0], 0)
    given = np.empty(n, dtype=bool)
    for column in present[1:]:
        np.logical_or(active, np.not_equal(column, 0, out=given), out=active)
    return np.flatnonzero(active)


def _filled(values: dict[str, np.ndarray], item: str, rows: np.ndarray) -> np.ndarray:
    """An item at ``rows``, missing as 0 (and 0 where the dataset has no such column)."""
    if item not in values:
        return np.zeros(len(rows))
    return np.nan_to_num(values[item][rows].astype(float), nan=0.0)


def _whole_cmt(data: pd.DataFrame, column: str | None) -> np.ndarray:
    """CMT on every row as integers (missing as 0), refusing fractions; an integer column is used as it is."""
    if column is None:
        return np.zeros(len(data), dtype=np.int64)
    raw = data[column]
    if pd.api.types.is_integer_dtype(raw) and not pd.api.types.is_extension_array_dtype(raw):
        return raw.to_numpy(dtype=np.int64)
    cmt = numeric_column(data, column, "CMT")
    if np.isnan(cmt.min()) or np.isnan(cmt.max()):
        cmt = np.nan_to_num(cmt, nan=0.0)
    if len(cmt) and np.abs(cmt).max() > MAX_COMPARTMENT:
        i = int(np.argmax(np.abs(cmt) > MAX_COMPARTMENT))
        raise InputError(f"row {i + 1}, column CMT", float(cmt[i]), "a compartment number: a whole number from 1 to "
                         "the model's compartments (0 or '.' for the default one)")
    whole = cmt.astype(np.int64)
    if not np.array_equal(whole, cmt):
        _require_integer(cmt, "CMT", None)
    return whole


def _require_finite(arr: np.ndarray, item: str) -> None:
    bad = np.flatnonzero(~np.isfinite(arr))
    if len(bad):
        raise InputError(f"row {bad[0] + 1}, column {item}", None, "a number is required")


def _require_integer(arr: np.ndarray, item: str, rows: np.ndarray | None) -> None:
    """Refuse fractions; ``rows`` are the dataset rows of ``arr`` (None: every row)."""
    bad = np.flatnonzero(arr != np.round(arr))
    if len(bad):
        row = bad[0] if rows is None else rows[bad[0]]
        raise InputError(f"row {row + 1}, column {item}", float(arr[bad[0]]), "a whole number is required")


def _first(mask: np.ndarray) -> int | None:
    """The first True position, or None (argmax stops at the first True)."""
    i = int(np.argmax(mask)) if len(mask) else 0
    return i if len(mask) and mask[i] else None


def _check_items(time, earliest, cmt, rows, amt, rate, dur, ii, addl, ss, evid) -> None:
    """The item rules, in a fixed order; TIME (``earliest`` its minimum) and CMT cover every row, the others the
    active ``rows``."""
    def negative(arr):
        return arr < 0 if len(arr) and arr.min() < 0 else None

    checks = [
        ("TIME", time, time < 0 if earliest < 0 else None, None, "times must be >= 0"),
        ("EVID", evid, (evid < 0) | (evid > 4), rows, "allowed values are 0 (observation), 1 (dose), "
         "2 (other), 3 (reset) and 4 (reset and dose)"),
        ("SS", ss, (ss < 0) | (ss > 2), rows, "allowed values are 0, 1 and 2"),
        ("CMT", cmt, negative(cmt), None, "compartment numbers must be >= 1 (turning compartments off is not "
         "supported)"),
    ]
    for item, arr in (("AMT", amt), ("II", ii), ("ADDL", addl), ("DUR", dur)):
        checks.append((item, arr, arr < 0, rows, f"{item} must be >= 0"))
    checks.append(("ADDL", addl, addl >= DOSE_EVENTS_PER_INDIVIDUAL.value, rows,
                   f"additional doses are limited to {DOSE_EVENTS_PER_INDIVIDUAL.text()}; use a steady-state dose "
                   "(SS=1) or fewer additional doses"))
    checks.append(("RATE", rate, (rate < 0) & (rate != -1) & (rate != -2), rows,
                   "allowed values are 0 (bolus), a positive rate, -1 (modelled rate) or -2 (modelled duration)"))
    for item, arr, bad, where, allowed in checks:
        i = None if bad is None else _first(bad)
        if i is not None:
            row = i if where is None else where[i]
            raise InputError(f"row {row + 1}, column {item}", float(arr[i]), allowed)
    dosing = (evid == 1) | (evid == 4)
    given = (amt != 0) | (rate != 0) | (addl != 0) | (ss != 0)
    rules = [
        (given & ~dosing, "column EVID", lambda i: float(evid[i]),
         lambda i: "AMT, RATE, ADDL and SS must be 0 on observation, other and reset records"),
        (dosing & (addl > 0) & (ii <= 0), "column II", lambda i: float(ii[i]), lambda i: "ADDL > 0 needs II > 0"),
        (dosing & (amt == 0) & ~((ss > 0) & (rate > 0)), "column AMT", lambda i: 0.0,
         lambda i: "a dose needs AMT > 0 (AMT = 0 only for a steady-state constant infusion with RATE > 0 and "
                   "II = 0)"),
        (dosing & (rate > 0) & (dur > 0) & (np.abs(amt / np.where(rate > 0, rate, 1) - dur) >
                                            1e-6 * np.maximum(dur, 1)),
         "columns RATE and DUR", lambda i: f"RATE {rate[i]:g}, DUR {dur[i]:g}",
         lambda i: f"with AMT {amt[i]:g} they must agree (AMT/RATE = DUR); give one of them"),
        (dosing & (dur > 0) & (rate < 0), "columns RATE and DUR", lambda i: f"RATE {rate[i]:g}, DUR {dur[i]:g}",
         lambda i: "a modelled rate or duration (RATE -1/-2) cannot be combined with DUR"),
    ]
    for bad, column, value, allowed in rules:
        i = _first(bad)
        if i is not None:
            raise InputError(f"row {rows[i] + 1}, {column}", value(i), allowed(i))
