"""NONMEM-style datasets: reading, checking and splitting into individuals.

Standard data items are matched case-insensitively: ID, TIME, AMT, RATE, DUR, EVID, CMT, II,
ADDL, SS, MDV, DV (and DVID, BLQ/LLOQ for later layers). "." and empty cells are missing. Other
columns are carried through untouched. Every problem is reported as one sentence naming the row
(1-based, as in a spreadsheet without its header) and the column.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ketaplan.errors import InputError

STANDARD_ITEMS = ("ID", "TIME", "AMT", "RATE", "DUR", "EVID", "CMT", "II", "ADDL", "SS", "MDV", "DV")
_INTEGER_ITEMS = ("EVID", "ADDL", "SS", "CMT", "MDV")
_NONNEGATIVE = ("AMT", "II", "ADDL", "DUR")


@dataclass(frozen=True)
class Individual:
    """The records of one individual (a run of consecutive rows with the same ID)."""

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


def read_dataset(path: str | Path) -> pd.DataFrame:
    """Read a CSV dataset with every cell as text, so that checks can name bad cells."""
    p = Path(path)
    if not p.is_file():
        raise InputError("DATA", str(path), "the dataset file does not exist")
    try:
        return pd.read_csv(p, dtype=str, keep_default_na=False, skipinitialspace=True)
    except Exception as exc:  # pandas raises several parser errors
        raise InputError("DATA", str(path), f"could not be read as CSV ({exc})") from None


def column_map(data: pd.DataFrame) -> dict[str, str]:
    """Standard item name -> actual column name, matched case-insensitively."""
    found: dict[str, str] = {}
    for col in data.columns:
        key = str(col).strip().upper()
        if key in STANDARD_ITEMS or key in ("DVID", "BLQ", "LLOQ"):
            if key in found:
                raise InputError(f"column {col}", col, f"the dataset has two columns for {key}")
            found[key] = col
    return found


def numeric_column(data: pd.DataFrame, column: str, item: str | None = None) -> np.ndarray:
    """A column as floats; "." and empty are NaN; anything else non-numeric is refused."""
    raw = data[column]
    if pd.api.types.is_numeric_dtype(raw):
        return raw.to_numpy(dtype=float)
    text = raw.astype(str).str.strip()
    missing = text.isin(["", ".", "nan", "NaN", "NA"])
    values = pd.to_numeric(text.where(~missing, "nan"), errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(np.isnan(values) & ~missing.to_numpy())
    if len(bad):
        i = int(bad[0])
        raise InputError(f"row {i + 1}, column {item or column}", raw.iloc[i], "a number is required")
    return values


def split_individuals(data: pd.DataFrame) -> list[Individual]:
    """Check the standard items of a dataset and split it into individuals.

    Raises :class:`InputError` naming the first bad row and column.
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
        if item in cols and item != "ID":
            values[item] = numeric_column(data, cols[item], item)
    ids = data[cols["ID"]].astype(str).str.strip().to_numpy()
    for i, v in enumerate(ids):
        if v in ("", "."):
            raise InputError(f"row {i + 1}, column ID", v, "every row needs an ID")

    time = values["TIME"]
    _require_finite(time, "TIME")
    amt = _filled(values, "AMT", n)
    rate = _filled(values, "RATE", n)
    dur = _filled(values, "DUR", n)
    ii = _filled(values, "II", n)
    addl = _filled(values, "ADDL", n)
    ss = _filled(values, "SS", n)
    cmt = _filled(values, "CMT", n)
    evid = values["EVID"].copy() if "EVID" in values else np.where(amt > 0, 1.0, 0.0)
    if "EVID" in values:
        missing = np.isnan(evid)
        evid[missing] = np.where(amt[missing] > 0, 1.0, 0.0)
    for item, arr in (("EVID", evid), ("ADDL", addl), ("SS", ss), ("CMT", cmt)):
        _require_integer(arr, item)
    _check_items(time, amt, rate, dur, ii, addl, ss, evid, cmt)

    individuals: list[Individual] = []
    start = 0
    for i in range(1, n + 1):
        if i == n or ids[i] != ids[start]:
            rows = np.arange(start, i)
            _check_sorted(time[rows], rows)
            individuals.append(Individual(
                id=ids[start], rows=rows, time=time[rows], evid=evid[rows].astype(np.int64),
                amt=amt[rows], rate=rate[rows], dur=dur[rows], cmt=cmt[rows].astype(np.int64),
                ii=ii[rows], addl=addl[rows].astype(np.int64), ss=ss[rows].astype(np.int64)))
            start = i
    return individuals


def _filled(values: dict[str, np.ndarray], item: str, n: int) -> np.ndarray:
    if item not in values:
        return np.zeros(n)
    return np.nan_to_num(values[item], nan=0.0)


def _require_finite(arr: np.ndarray, item: str) -> None:
    bad = np.flatnonzero(~np.isfinite(arr))
    if len(bad):
        raise InputError(f"row {bad[0] + 1}, column {item}", "missing", "a number is required")


def _require_integer(arr: np.ndarray, item: str) -> None:
    bad = np.flatnonzero(arr != np.round(arr))
    if len(bad):
        raise InputError(f"row {bad[0] + 1}, column {item}", float(arr[bad[0]]), "a whole number is required")


def _first(mask: np.ndarray) -> int | None:
    idx = np.flatnonzero(mask)
    return int(idx[0]) if len(idx) else None


def _check_items(time, amt, rate, dur, ii, addl, ss, evid, cmt) -> None:
    checks = [
        ("TIME", time, time < 0, "times must be >= 0"),
        ("EVID", evid, ~np.isin(evid, [0, 1, 2, 3, 4]), "allowed values are 0 (observation), 1 (dose), "
         "2 (other), 3 (reset) and 4 (reset and dose)"),
        ("SS", ss, ~np.isin(ss, [0, 1, 2]), "allowed values are 0, 1 and 2"),
        ("CMT", cmt, cmt < 0, "compartment numbers must be >= 1 (turning compartments off is not supported)"),
    ]
    for item in _NONNEGATIVE:
        arr = {"AMT": amt, "II": ii, "ADDL": addl, "DUR": dur}[item]
        checks.append((item, arr, arr < 0, f"{item} must be >= 0"))
    checks.append(("RATE", rate, (rate < 0) & ~np.isin(rate, [-1, -2]),
                   "allowed values are 0 (bolus), a positive rate, -1 (modelled rate) or -2 (modelled duration)"))
    for item, arr, bad, allowed in checks:
        i = _first(bad)
        if i is not None:
            raise InputError(f"row {i + 1}, column {item}", float(arr[i]), allowed)
    dosing = np.isin(evid, [1, 4])
    i = _first(~dosing & ((amt != 0) | (rate != 0) | (addl != 0) | (ss != 0)))
    if i is not None:
        raise InputError(f"row {i + 1}, column EVID", float(evid[i]),
                         "AMT, RATE, ADDL and SS must be 0 on observation, other and reset records")
    i = _first(dosing & (addl > 0) & (ii <= 0))
    if i is not None:
        raise InputError(f"row {i + 1}, column II", float(ii[i]), "ADDL > 0 needs II > 0")
    i = _first(dosing & (amt == 0) & ~((ss > 0) & (rate > 0)))
    if i is not None:
        raise InputError(f"row {i + 1}, column AMT", 0.0, "a dose needs AMT > 0 (AMT = 0 only for a "
                         "steady-state constant infusion with RATE > 0 and II = 0)")
    both = dosing & (rate > 0) & (dur > 0)
    inconsistent = both & (np.abs(amt / np.where(rate > 0, rate, 1) - dur) > 1e-6 * np.maximum(dur, 1))
    i = _first(inconsistent)
    if i is not None:
        raise InputError(f"row {i + 1}, columns RATE and DUR", f"RATE {rate[i]:g}, DUR {dur[i]:g}",
                         f"with AMT {amt[i]:g} they must agree (AMT/RATE = DUR); give one of them")
    i = _first(dosing & (dur > 0) & (rate < 0))
    if i is not None:
        raise InputError(f"row {i + 1}, columns RATE and DUR", f"RATE {rate[i]:g}, DUR {dur[i]:g}",
                         "a modelled rate or duration (RATE -1/-2) cannot be combined with DUR")


def _check_sorted(time: np.ndarray, rows: np.ndarray) -> None:
    i = _first(np.diff(time) < 0)
    if i is not None:
        r = int(rows[i + 1])
        raise InputError(f"row {r + 1}, column TIME", float(time[i + 1]),
                         f"times must not decrease within an individual (previous row has {time[i]:g})")
