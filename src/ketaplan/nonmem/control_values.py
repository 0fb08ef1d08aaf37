"""$THETA, $OMEGA and $SIGMA records of a control stream as the lists a model file holds.

``$THETA (0, 0.0105) (0, 1.05, 10) 0.5 FIX (0.1 FIXED)X2`` gives one ``{init, lower, upper, fix, name}``
per THETA (``INF``/``-INF`` bounds; the comment on a line with one THETA becomes its name).
``$OMEGA 0.4 0.25``, ``$OMEGA DIAGONAL(2) 0.4 0.25 FIX`` and ``$OMEGA BLOCK(2) 0.1 0.01 0.2 FIX`` (the lower
triangle by rows) give the omega list of :mod:`ketaplan.nonmem.random_effects`; $SIGMA is read the same
way into variances. ``$OMEGA BLOCK(1) SAME`` (or ``SAME(n)``) repeats the block before it; variances given as SD,
CORRELATION or CHOLESKY are refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ketaplan.errors import InputError

_TOKEN = re.compile(r"\(|\)|,|FIXED|FIX|X\d+|[-+]?INF(?:INITY)?|[-+]?(?:\d+\.?\d*|\.\d+)(?:[EDed][-+]?\d+)?|\S")
_OPTION = re.compile(r"^(DIAGONAL|DIAG|BLOCK)\s*\(\s*(\d+)\s*\)|^(SAME)\s*(?:\(\s*(\d+)\s*\))?|"
                     r"^(VARIANCE|COVARIANCE|SD|STANDARD|CORRELATION|CHOLESKY|FIXED|FIX|BLOCK)\b")


@dataclass(frozen=True)
class Value:
    """One number of a record (or a parenthesised group), with FIX and the line's comment."""

    numbers: tuple[float, ...]
    fixed: bool
    label: str


def _number(token: str, record: str) -> float:
    if token.lstrip("+-").startswith("INF"):
        return -np.inf if token.startswith("-") else np.inf
    try:
        return float(token.replace("D", "E").replace("d", "e"))
    except ValueError:
        raise InputError(record, token, "a number, INF, a parenthesised (low, init, up) or FIX") from None


def _values(text: str, record: str) -> list[Value]:
    """The numbers of a value record, grouped by parentheses, with FIX and per-line labels."""
    out: list[Value] = []
    for raw in text.splitlines():
        code, _sep, comment = raw.partition(";")
        tokens = _TOKEN.findall(code.upper())
        line: list[Value] = []
        i = 0
        while i < len(tokens):
            tok = tokens[i]
            if tok == "(":
                end = tokens.index(")", i) if ")" in tokens[i:] else -1
                if end < 0:
                    raise InputError(record, raw.strip(), "a parenthesis is not closed")
                if any(not place.strip() for place in " ".join(tokens[i + 1:end]).split(",")):
                    raise InputError(record, raw.strip(), "every place in (low, init, up) needs a number")
                inner = [t for t in tokens[i + 1:end] if t != ","]
                fixed = any(t.startswith("FIX") for t in inner)
                numbers = tuple(_number(t, record) for t in inner if not t.startswith("FIX"))
                i = end + 1
                repeat = 1
                if i < len(tokens) and re.fullmatch(r"X\d+", tokens[i]):
                    repeat, i = int(tokens[i][1:]), i + 1
                line += [Value(numbers, fixed, "")] * repeat
            elif tok.startswith("FIX"):
                if not line and not out:
                    raise InputError(record, raw.strip(), "FIX follows the value it fixes")
                target = line if line else out
                target[-1] = Value(target[-1].numbers, True, target[-1].label)
                i += 1
            elif tok == ",":
                i += 1
            else:
                line.append(Value((_number(tok, record),), False, ""))
                i += 1
        label = comment.strip() if len(line) == 1 else ""
        out += [Value(v.numbers, v.fixed, label) for v in line]
    return out


def parse_theta_records(texts: list[str]) -> list[dict]:
    """Every $THETA record, in order, as ``{init, lower, upper, fix, name}`` mappings."""
    thetas: list[dict] = []
    for text in texts:
        for v in _values(text, "$THETA"):
            n = len(v.numbers)
            if n == 1:
                lower, init, upper = -np.inf, v.numbers[0], np.inf
            elif n == 2:
                (lower, init), upper = v.numbers, np.inf
            elif n == 3:
                lower, init, upper = v.numbers
            else:
                raise InputError("$THETA", v.numbers, "(init), (low, init) or (low, init, up)")
            spec: dict = {"init": init, "lower": float(lower), "upper": float(upper), "fix": v.fixed}
            if v.label:
                spec["name"] = v.label
            thetas.append(spec)
    return thetas


def _options(text: str, record: str) -> tuple[str, int | None, bool, str]:
    """The leading options of an $OMEGA/$SIGMA record: (kind, size, FIX, the values' text); for SAME(n) the size
    is n, the number of repeats."""
    kind, size, fixed = "DIAGONAL", None, False
    rest = text.strip()
    while True:
        head = rest.split(";", 1)[0].upper()
        m = _OPTION.match(head)
        if not m:
            return kind, size, fixed, rest
        word = m.group(1) or m.group(3) or m.group(5)
        if word in ("SD", "STANDARD", "CORRELATION", "CHOLESKY"):
            raise InputError(record, word, "ketaplan reads variances and covariances (SD, CORRELATION and CHOLESKY "
                             "are not supported)")
        if m.group(1):
            kind = "BLOCK" if word == "BLOCK" else "DIAGONAL"
            size = int(m.group(2))
        elif word == "SAME":
            kind, size = "SAME", int(m.group(4) or 1)
        elif word.startswith("FIX"):
            fixed = True
        rest = rest[m.end():].lstrip()


def parse_variance_records(texts: list[str], record: str) -> list[object]:
    """Every $OMEGA (or $SIGMA) record as omega-list items: numbers, ``{value, fix}`` or ``{block, fix}``."""
    items: list[object] = []
    for text in texts:
        kind, size, fixed, rest = _options(text, record)
        values = _values(rest, record)
        if kind == "SAME":
            if values or record != "$OMEGA":
                raise InputError(record, text.strip(), "SAME repeats the $OMEGA block before it and takes no values")
            items += [{"same": True}] * (size or 1)
            continue
        if any(len(v.numbers) != 1 for v in values):
            raise InputError(record, text.strip(), "one number per variance or covariance")
        numbers = [v.numbers[0] for v in values]
        if kind == "BLOCK":
            size = size or 0
            if len(numbers) != size * (size + 1) // 2:
                raise InputError(record, text.strip(), f"BLOCK({size}) needs {size * (size + 1) // 2} numbers, the "
                                 "lower triangle by rows")
            rows = [numbers[i * (i + 1) // 2:(i + 1) * (i + 2) // 2] for i in range(size)]
            items.append({"block": rows, "fix": fixed or any(v.fixed for v in values)})
            continue
        if size is not None and len(numbers) != size:
            raise InputError(record, text.strip(), f"DIAGONAL({size}) needs {size} variances")
        items += [{"value": n, "fix": True} if fixed or v.fixed else n for n, v in zip(numbers, values, strict=True)]
    return items


def sigma_variances(texts: list[str]) -> list[tuple[float, bool]]:
    """$SIGMA as (variance, fixed) per EPS; a BLOCK must have zero covariances."""
    out: list[tuple[float, bool]] = []
    for item in parse_variance_records(texts, "$SIGMA"):
        if isinstance(item, dict) and "block" in item:
            rows = item["block"]
            if any(v != 0 for i, row in enumerate(rows) for v in row[:i]):
                raise InputError("$SIGMA", rows, "correlated EPS are not supported; give independent variances")
            out += [(float(row[-1]), bool(item["fix"])) for row in rows]
        elif isinstance(item, dict):
            out.append((float(item["value"]), True))
        else:
            out.append((float(item), False))
    return out
