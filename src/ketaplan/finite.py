"""Results checked to be finite before anything is written or printed.

Inputs are checked where they are read; this is the last net, for results that overflow from legal but
extreme input (an amount of 1e308 mg, a volume of 1e-300 L): a number that is not finite is refused in
one sentence naming where it appeared, rather than written as 'inf' or 'nan'.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from ketaplan.errors import InputError

REASON = ("the result is not a finite number: the doses, levels or parameters are beyond what double precision "
          "can compute; check them for a unit or typing slip")


def all_finite(values: np.ndarray) -> bool:
    """True when every value is finite, in one pass over memory: a NaN or an infinity makes the sum of squares
    NaN or infinite, and finite values keep it finite unless it overflows (values above about 1e154; then
    they are checked one by one). The sum of squares of a contiguous float vector is one BLAS dot product,
    twice as fast as numpy's sum."""
    if values.dtype.kind in "iub" or values.size == 0:
        return True
    with np.errstate(over="ignore", invalid="ignore"):
        if values.dtype == np.float64 and values.flags.c_contiguous:
            flat = values.reshape(-1)
            total = np.dot(flat, flat)
        else:
            total = np.add.reduce(values, axis=None)
    return bool(np.isfinite(total)) or bool(np.isfinite(values).all())


def require_finite(columns: Mapping[str, object], where: Callable[[int], str] = lambda i: f"row {i + 1}") -> None:
    """Refuse the first value of any of ``columns`` (name -> array) that is infinite or NaN.

    ``where`` names a position in the arrays ('row 12', 'time 24 h') for the message.
    """
    for name, values in columns.items():
        arr = np.asarray(values)
        if arr.dtype.kind not in "fc" or arr.size == 0 or all_finite(arr):
            continue
        flat = np.isfinite(arr).reshape(len(arr), -1).all(axis=1) if arr.ndim > 1 else np.isfinite(arr)
        i = int(np.argmin(flat))
        value = np.ravel(arr[i])[~np.isfinite(np.ravel(arr[i]))][0]
        raise InputError(f"{where(i)}, {name}", float(value.real), REASON)


def require_finite_frame(frame, where: Callable[[int], str] = lambda i: f"row {i + 1}",
                         allow_missing: tuple[str, ...] = ()) -> None:
    """:func:`require_finite` over a DataFrame's float columns; columns in ``allow_missing`` may hold NaN
    (a value that does not exist, written as an empty cell) but never an infinity."""
    columns = {}
    for name in frame.columns:
        values = frame[name].to_numpy()
        if values.dtype.kind != "f":
            continue
        columns[str(name)] = np.where(np.isnan(values), 0.0, values) if name in allow_missing else values
    require_finite(columns, where)
