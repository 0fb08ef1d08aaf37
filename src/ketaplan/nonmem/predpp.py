"""PREDPP model files (ADVAN1-4, 11, 12) for simulating NONMEM datasets unchanged.

A model file names the structure and gives each parameter, with NONMEM's names and compartment
numbering, as a number or as the name of a dataset column (read per record)::

    advan: 4          # depot 1, central 2, peripheral 3
    CL: 1.1           # or K with the central volume
    V2: CLCOL         # a column of the dataset: per-record, per-subject values
    Q: 2.5
    V3: 40
    KA: 1.5
    F1: BIOAV         # dose modifiers Fn, ALAGn, Rn, Dn for compartment n
    ALAG1: 0.25
    scale: 1000       # IPRED = scale * A(central) / V(central)

Parameters may also sit under a ``parameters:`` key. Time units are the dataset's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from ketaplan.engine.system import LinearStructure, Transfer
from ketaplan.errors import InputError
from ketaplan.nonmem.dataset import numeric_column


@dataclass(frozen=True)
class Advan:
    """One PREDPP structure: compartments (NONMEM numbering), parameter names and their roles."""

    number: int
    states: tuple[str, ...]
    central: int  # 0-based
    depot: bool
    clearance_sets: tuple[tuple[str, ...], ...]  # accepted spellings, first is NONMEM's TRANS4 name
    micro: tuple[str, ...]


def _advans() -> dict[int, Advan]:
    return {
        1: Advan(1, ("central",), 0, False, (("CL",), ("V", "V1")), ("K",)),
        2: Advan(2, ("depot", "central"), 1, True, (("CL",), ("V", "V2"), ("KA",)), ("K", "KA")),
        3: Advan(3, ("central", "peripheral"), 0, False,
                 (("CL",), ("V1", "V"), ("Q", "Q2"), ("V2",)), ("K", "K12", "K21")),
        4: Advan(4, ("depot", "central", "peripheral"), 1, True,
                 (("CL",), ("V2", "V"), ("Q", "Q3"), ("V3",), ("KA",)), ("K", "K23", "K32", "KA")),
        11: Advan(11, ("central", "peripheral1", "peripheral2"), 0, False,
                  (("CL",), ("V1", "V"), ("Q2", "Q"), ("V2",), ("Q3",), ("V3",)),
                  ("K", "K12", "K21", "K13", "K31")),
        12: Advan(12, ("depot", "central", "peripheral1", "peripheral2"), 1, True,
                  (("CL",), ("V2", "V"), ("Q3", "Q"), ("V3",), ("Q4",), ("V4",), ("KA",)),
                  ("K", "K23", "K32", "K24", "K42", "KA")),
    }


ADVANS = _advans()
_MODIFIER = re.compile(r"^(F|ALAG|R|D)(\d+)$")
_RESERVED = {"advan", "trans", "scale", "parameters", "omega", "sigma", "transform", "name", "description"}


@dataclass(frozen=True)
class PredppModel:
    """A parsed model file: structure plus parameter sources (numbers or column names)."""

    advan: Advan
    parameters: dict[str, float | str]  # canonical names (TRANS4 or micro)
    micro: bool
    modifiers: dict[tuple[str, int], float | str]  # (kind, cmt 1-based) -> value
    scale: float | str
    extra: dict[str, object]  # omega, sigma and other keys for later layers

    @property
    def n_states(self) -> int:
        return len(self.advan.states)

    @property
    def central_volume_name(self) -> str:
        return self.advan.clearance_sets[1][0]

    def structure(self) -> LinearStructure:
        """Linear structure in NONMEM numbering with micro-constant parameter names."""
        a = self.advan
        names = a.states
        c = names[a.central]
        transfers = []
        if a.depot:
            transfers.append(Transfer(names[0], c, "KA"))
        transfers.append(Transfer(c, None, "K"))
        periph = [s for s in names if s.startswith("peripheral")]
        for p in periph:
            i, j = a.central + 1, names.index(p) + 1
            transfers.append(Transfer(c, p, f"K{i}{j}"))
            transfers.append(Transfer(p, c, f"K{j}{i}"))
        return LinearStructure(names, tuple(transfers))


def load_model(source: Mapping | str | Path) -> PredppModel:
    """Parse a PREDPP model from a mapping or a YAML file path; raises :class:`InputError`."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise InputError("MODEL", str(source), "the model file does not exist")
        try:
            raw = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise InputError("MODEL", str(source), f"is not valid YAML ({exc})") from None
    else:
        raw = dict(source)
    if not isinstance(raw, Mapping):
        raise InputError("MODEL", type(raw).__name__, "a mapping of model items is required")
    items: dict[str, object] = {}
    params: dict[str, object] = {}
    for k, v in raw.items():
        key = str(k)
        if key.lower() not in _RESERVED:
            params[key] = v
            continue
        if key.lower() in items:  # e.g. scale and SCALE
            raise InputError(f"MODEL {key}", v, f"{key.lower()} is given twice")
        items[key.lower()] = v  # the reserved items are read whatever their case (SCALE, Advan, ...)
    for key, v in dict(items.pop("parameters", {}) or {}).items():
        if str(key) in params:
            raise InputError(f"MODEL {key}", v, f"{key} is given both at the top and under parameters")
        params[str(key)] = v
    advan_value = items.get("advan")
    if advan_value not in ADVANS:
        raise InputError("MODEL advan", advan_value, "allowed structures are advan 1, 2, 3, 4, 11 and 12")
    advan = ADVANS[int(advan_value)]
    return _build(advan, params, items)


def _value(name: str, v) -> float | str:
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        raise InputError(f"MODEL {name}", v, "a number or the name of a dataset column is required")
    return float(v) if isinstance(v, (int, float)) else v.strip()


def _build(advan: Advan, params: dict, items: dict) -> PredppModel:
    upper = {}
    for k, v in params.items():
        key = str(k).upper()
        if key in upper:
            raise InputError(f"MODEL {k}", v, f"{key} is given twice")
        upper[key] = _value(str(k), v)
    modifiers: dict[tuple[str, int], float | str] = {}
    for key in list(upper):
        m = _MODIFIER.match(key)
        if m and not (key in advan.micro or any(key in s for s in advan.clearance_sets)):
            cmt = int(m.group(2))
            if not 1 <= cmt <= len(advan.states):
                raise InputError(f"MODEL {key}", upper[key],
                                 f"advan {advan.number} has compartments 1 to {len(advan.states)}")
            modifiers[(m.group(1), cmt)] = upper.pop(key)
    uses_cl = "CL" in upper
    uses_k = "K" in upper
    if uses_cl and uses_k:
        raise InputError("MODEL CL and K", "both", "give either clearances (CL, V, Q...) or micro-constants (K...)")
    canonical: dict[str, float | str] = {}
    if uses_k:
        names = [*advan.micro, advan.clearance_sets[1][0]]
        accepted = {n: (n,) for n in advan.micro} | {advan.clearance_sets[1][0]: advan.clearance_sets[1]}
    else:
        names = [s[0] for s in advan.clearance_sets]
        accepted = {s[0]: s for s in advan.clearance_sets}
    for name in names:
        spellings = [s for s in accepted[name] if s in upper]
        if not spellings:
            listed = " or ".join(accepted[name])
            raise InputError("MODEL parameters", sorted(upper), f"advan {advan.number} needs {listed}")
        if len(spellings) > 1:
            raise InputError(f"MODEL {'/'.join(spellings)}", "both", f"give {name} once")
        canonical[name] = upper.pop(spellings[0])
    if upper:
        unknown = sorted(upper)[0]
        allowed = ", ".join(names)
        raise InputError(f"MODEL {unknown}", upper[unknown],
                         f"not a parameter of advan {advan.number} (expected {allowed}, Fn, ALAGn, Rn, Dn)")
    scale = _value("scale", items.get("scale", 1.0))
    extra = {k.lower(): v for k, v in items.items() if k.lower() in ("omega", "sigma", "transform")}
    return PredppModel(advan, canonical, uses_k, modifiers, scale, extra)


def resolve_parameter(source: float | str, data: pd.DataFrame, label: str) -> np.ndarray:
    """Per-row values of a parameter: a constant, or a dataset column (case-insensitive) with a number on
    every row."""
    values = _resolved(source, data, label)
    if values.ndim and not (np.isfinite(values.min()) and np.isfinite(values.max())):
        bad = np.flatnonzero(~np.isfinite(values))
        raise InputError(f"row {bad[0] + 1}, column {source}", "missing", f"{label} needs a number on every row")
    return np.broadcast_to(values, (len(data),))


def _resolved(source: float | str, data: pd.DataFrame, label: str) -> np.ndarray:
    """A parameter's values: a 0-d array for a constant (it broadcasts), per-row values for a column."""
    if isinstance(source, float):
        return np.asarray(source)
    columns = {str(c): c for c in data.columns}
    col = columns.get(source) or next((c for k, c in columns.items() if k.upper() == source.upper()), None)
    if col is None:
        raise InputError(f"MODEL {label}", source, "is neither a number nor a column of the dataset")
    return numeric_column(data, col, str(col))


def row_parameters(model: PredppModel, data: pd.DataFrame) -> dict[str, np.ndarray]:
    """The model's own parameters (CL, V2, ... or K, K12, ..., as the file names them) and ``SCALE``.

    A constant is a 0-d array (it broadcasts), a column its per-row values. Every value must be a
    number; volumes must be > 0 and everything else >= 0.
    """
    sources = {**model.parameters, "SCALE": model.scale}
    out = {name: _resolved(src, data, "scale" if name == "SCALE" else name) for name, src in sources.items()}
    for name, arr in out.items():
        low, high = arr.min(), arr.max()
        if not (np.isfinite(low) and np.isfinite(high)):
            bad = np.flatnonzero(~np.isfinite(arr))
            label = "scale" if name == "SCALE" else name
            raise InputError(f"row {bad[0] + 1}, column {sources[name]}", "missing",
                             f"{label} needs a number on every row")
        volume = name.startswith("V")
        if low <= 0 if volume else low < 0:
            bad = np.flatnonzero(np.atleast_1d(arr <= 0 if volume else arr < 0))
            raise InputError(f"row {bad[0] + 1}, parameter {name}", float(np.atleast_1d(arr)[bad[0]]),
                             "volumes must be > 0 and rate constants >= 0")
    return out


def primary_parameters(model: PredppModel, data: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per-row values of the model's own parameters (CL, V2, Q, ... or K, K12, ...), as the file names them."""
    return {name: resolve_parameter(src, data, name) for name, src in model.parameters.items()}


def micro_parameters(model: PredppModel, p: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Micro-constants and ``VC`` from primary parameters (any common shape: rows, or subjects x rows)."""
    a = model.advan
    out: dict[str, np.ndarray] = {}
    vc_name = a.clearance_sets[1][0]
    vc = p[vc_name]
    if model.micro:
        out.update({k: v for k, v in p.items() if k != vc_name})
    else:
        out["K"] = p["CL"] / vc
        if a.depot:
            out["KA"] = p["KA"]
        names = a.states
        periph = [i for i, s in enumerate(names) if s.startswith("peripheral")]
        qv = [s[0] for s in a.clearance_sets[2:] if not s[0].startswith("KA")]
        for idx, pi in enumerate(periph):
            q, v = p[qv[2 * idx]], p[qv[2 * idx + 1]]
            i, j = a.central + 1, pi + 1
            out[f"K{i}{j}"] = q / vc
            out[f"K{j}{i}"] = q / v
    out["VC"] = vc
    return out


def row_modifiers(model: PredppModel, data: pd.DataFrame) -> dict[tuple[str, int], np.ndarray]:
    """Per-row dose modifiers F, ALAG, R, D for each compartment that has them."""
    return {key: resolve_parameter(src, data, f"{key[0]}{key[1]}") for key, src in model.modifiers.items()}
