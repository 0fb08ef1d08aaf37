"""PREDPP model files (ADVAN1-4, 11, 12): the structure, its parameters as $PK-style expressions, THETAs.

A model file names the structure and gives each parameter, with NONMEM's names and compartment
numbering, as a number, the name of a dataset column (read per record) or an expression of THETA(n),
ETA(n) and columns (:mod:`ketaplan.nonmem.expressions`)::

    advan: 4          # depot 1, central 2, peripheral 3
    CL: 1.1           # or K with the central volume
    V2: CLCOL         # a column of the dataset: per-record, per-subject values
    Q: 2.5
    V3: 40
    KA: 1.5
    F1: BIOAV         # dose modifiers Fn, ALAGn, Rn, Dn for compartment n
    ALAG1: 0.25
    scale: 1000       # IPRED = scale * A(central) / V(central)

Parameters may also sit under a ``parameters:`` key, in order; a name that is not a parameter of the
structure is an intermediate (like NONMEM's TVCL) that later expressions may use. A mapping built in
Python may give parsed :class:`~ketaplan.nonmem.expressions.Expression` values (the control stream
reader does). ``theta:`` lists
THETA(1..n) as numbers or ``{init, lower, upper, fix}``; ``omega`` and ``sigma`` are read by
:mod:`ketaplan.nonmem.random_effects`. Time units are the dataset's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ketaplan.engine.system import LinearStructure, Transfer
from ketaplan.errors import InputError
from ketaplan.finite import all_finite
from ketaplan.nonmem.control_stream import is_control_stream, read_control_stream
from ketaplan.nonmem.dataset import numeric_column
from ketaplan.nonmem.expressions import Expression, column_symbol, compile_expressions, parse_expression
from ketaplan.nonmem.random_effects import log_transform, parse_omega, parse_sigma
from ketaplan.user_yaml import read_yaml_file


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
POSITIVE = frozenset({"CL", "K", "SCALE"})
"""Parameters that must be > 0 besides the volumes: without elimination or with a zero scale every output is
0 or grows for ever, which no dataset describes."""
_MODIFIER = re.compile(r"^(F|ALAG|R|D)(\d+)$")
_RESERVED = {"advan", "trans", "scale", "parameters", "omega", "sigma", "transform", "name", "description", "theta"}


@dataclass(frozen=True)
class Theta:
    """One THETA: initial value, bounds and whether it is fixed (NONMEM's $THETA (low, init, up) FIX)."""

    init: float
    lower: float = -np.inf
    upper: float = np.inf
    fixed: bool = False
    label: str = ""


@dataclass(frozen=True)
class PredppModel:
    """A parsed model file: structure, parameters as expressions, THETAs, and the items of later layers."""

    advan: Advan
    parameters: dict[str, Expression]  # canonical names (TRANS4 or micro)
    micro: bool
    modifiers: dict[tuple[str, int], Expression]  # (kind, cmt 1-based) -> value
    scale: Expression
    extra: dict[str, object]  # omega, sigma and transform, read by later layers
    thetas: tuple[Theta, ...] = ()

    @property
    def expressions(self) -> dict[str, Expression]:
        """Every evaluated item: the parameters, the dose modifiers (``F1``, ``ALAG1``...) and ``SCALE``."""
        return {**self.parameters, **{f"{k}{n}": e for (k, n), e in self.modifiers.items()}, "SCALE": self.scale}

    @property
    def n_etas(self) -> int:
        return max((max(e.etas, default=0) for e in self.expressions.values()), default=0)

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(sorted({c for e in self.expressions.values() for c in e.columns}))

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
    """Parse a PREDPP model from a mapping, a YAML file path or a NONMEM control stream (``*.ctl``, ``*.mod``,
    :mod:`ketaplan.nonmem.control_stream`); raises :class:`InputError`."""
    if is_control_stream(source):
        return load_model(read_control_stream(source).model)
    if isinstance(source, (str, Path)):
        raw = read_yaml_file(source, "MODEL", "the model file does not exist")
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
    nested = items.pop("parameters", None)
    if nested is not None and not isinstance(nested, Mapping):
        raise InputError("MODEL parameters", nested, "a mapping of parameter names to values, e.g. {CL: 1.1, V: 20}")
    for key, v in dict(nested or {}).items():
        if str(key) in params:
            raise InputError(f"MODEL {key}", v, f"{key} is given both at the top and under parameters")
        params[str(key)] = v
    advan_value = items.get("advan")
    if isinstance(advan_value, bool) or not isinstance(advan_value, int) or advan_value not in ADVANS:
        raise InputError("MODEL advan", advan_value, "allowed structures are advan 1, 2, 3, 4, 11 and 12 (a whole "
                         "number)")
    advan = ADVANS[advan_value]
    model = _build(advan, params, items)
    check_random_effects(model)
    return model


def check_random_effects(model: PredppModel) -> None:
    """Refuse a bad ``omega``, ``sigma`` or ``transform`` when the model is read, whatever later uses them:
    variances must be numbers >= 0 (OMEGA positive semi-definite), the transform a known one."""
    extra = model.extra
    if extra.get("omega") is not None:
        parse_omega(extra["omega"], tuple(model.parameters))
    if extra.get("sigma") is not None:
        parse_sigma(extra["sigma"], extra.get("transform"))
    elif extra.get("transform") is not None:
        log_transform(extra["transform"])


def parse_thetas(raw: object) -> tuple[Theta, ...]:
    """THETA(1..n) from a list of numbers or ``{init, lower, upper, fix, name}`` mappings."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise InputError("MODEL theta", raw, "a list: one initial value or {init, lower, upper, fix} per THETA")
    out = []
    for i, item in enumerate(raw, start=1):
        field = f"MODEL theta {i}"
        spec = {"init": item} if not isinstance(item, Mapping) else dict(item)
        unknown = set(map(str, spec)) - {"init", "lower", "upper", "fix", "name"}
        if unknown:
            raise InputError(field, sorted(unknown)[0], "allowed items are init, lower, upper, fix and name")
        values = {k: _number(spec.get(k), f"{field} {k}", default) for k, default in
                  (("init", None), ("lower", -np.inf), ("upper", np.inf))}
        fixed = spec.get("fix", False)
        if not isinstance(fixed, bool):
            raise InputError(f"{field} fix", fixed, "true or false")
        if not values["lower"] < values["upper"]:
            raise InputError(field, f"lower {values['lower']:g}, upper {values['upper']:g}",
                             "lower must be below upper")
        low, init, high = values["lower"], values["init"], values["upper"]
        if not low <= init <= high or (not fixed and init in (low, high)):
            raise InputError(f"{field} init", init, f"an initial value strictly between the bounds {low:g} and "
                             f"{high:g} (or on one with fix: true)")
        out.append(Theta(values["init"], values["lower"], values["upper"], fixed, str(spec.get("name", ""))))
    return tuple(out)


def _number(value: object, field: str, default: float | None) -> float:
    if value is None and default is not None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or np.isnan(value):
        raise InputError(field, value, "a number is required")
    return float(value)


def _build(advan: Advan, params: dict, items: dict) -> PredppModel:
    upper: dict[str, Expression] = {}
    defined: dict[str, object] = {}
    used: set[str] = set()
    for k, v in params.items():
        key = str(k).upper()
        if key in upper:
            raise InputError(f"MODEL {k}", v, f"{key} is given twice")
        upper[key] = v if isinstance(v, Expression) else parse_expression(v, f"MODEL {k}", defined, used)
        defined[key] = upper[key].expr
    modifiers: dict[tuple[str, int], Expression] = {}
    for key in list(upper):
        m = _MODIFIER.match(key)
        if m and not (key in advan.micro or any(key in s for s in advan.clearance_sets)):
            cmt = int(m.group(2))
            if not 1 <= cmt <= len(advan.states):
                raise InputError(f"MODEL {key}", upper[key].text,
                                 f"advan {advan.number} has compartments 1 to {len(advan.states)}")
            modifiers[(m.group(1), cmt)] = upper.pop(key)
    uses_cl = "CL" in upper
    uses_k = "K" in upper
    if uses_cl and uses_k:
        raise InputError("MODEL CL and K", "both", "give either clearances (CL, V, Q...) or micro-constants (K...)")
    canonical: dict[str, Expression] = {}
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
    scale = items.get("scale", 1.0)
    scale = scale if isinstance(scale, Expression) else parse_expression(scale, "MODEL scale", defined, used)
    unused = sorted(k for k in upper if k not in used)
    if unused:
        unknown = unused[0]
        allowed = ", ".join(names)
        raise InputError(f"MODEL {unknown}", upper[unknown].text,
                         f"not a parameter of advan {advan.number} (expected {allowed}, Fn, ALAGn, Rn, Dn) and not "
                         "used by another parameter")
    thetas = parse_thetas(items.get("theta"))
    extra = {k.lower(): v for k, v in items.items() if k.lower() in ("omega", "sigma", "transform")}
    model = PredppModel(advan, canonical, uses_k, modifiers, scale, extra, thetas)
    _check_references(model)
    return model


def _check_references(model: PredppModel) -> None:
    """Every THETA(n) an expression uses must be listed under ``theta``."""
    for name, expr in model.expressions.items():
        missing = [n for n in expr.thetas if n > len(model.thetas)]
        if missing:
            raise InputError(f"MODEL {name}", expr.text, f"uses THETA({missing[0]}) but theta lists "
                             f"{len(model.thetas)} value{'s' if len(model.thetas) != 1 else ''}")


def resolve_parameter(source: Expression, data: pd.DataFrame, label: str, model: PredppModel | None = None
                      ) -> np.ndarray:
    """Per-row values of a parameter (THETAs at their initial values, ETAs 0) with a number on every row."""
    values = _resolved(source, data, label, model)
    if values.ndim and not (np.isfinite(values.min()) and np.isfinite(values.max())):
        bad = np.flatnonzero(~np.isfinite(values))
        raise InputError(f"row {bad[0] + 1}, {_where(source)}", "missing", f"{label} needs a number on every row")
    return np.broadcast_to(values, (len(data),))


def _where(source: Expression) -> str:
    return f"column {source.columns[0]}" if _single_column(source) else f"parameter {source.text}"


def _single_column(source: Expression) -> bool:
    return len(source.columns) == 1 and source.expr == column_symbol(source.columns[0])


def dataset_columns(data: pd.DataFrame, names: tuple[str, ...], label: str) -> dict[str, np.ndarray]:
    """The named columns (case-insensitive) as numbers; a missing column is refused naming ``label``."""
    columns = {str(c).upper(): c for c in data.columns}
    out = {}
    for name in names:
        col = columns.get(name.upper())
        if col is None:
            raise InputError(f"MODEL {label}", name, "is neither a number nor a column of the dataset, nor a "
                             "parameter defined before it")
        out[name] = numeric_column(data, col, str(col))
    return out


def _resolved(source: Expression, data: pd.DataFrame, label: str, model: PredppModel | None = None) -> np.ndarray:
    """A parameter's values: a 0-d array for a constant (it broadcasts), per-row values otherwise.

    THETAs take their initial values and ETAs are 0 (the typical individual), as in simulating a dataset.
    """
    if source.is_constant:
        return np.asarray(float(source.expr))
    cols = dataset_columns(data, source.columns, label)
    if _single_column(source):
        return cols[source.columns[0]]
    thetas = model.thetas if model is not None else ()
    n_eta = max(source.etas, default=0)
    evaluate = compile_expressions({label: source.expr}, len(thetas), n_eta, source.columns)
    values = evaluate(np.array([t.init for t in thetas]), np.zeros((len(data), n_eta)), cols)[label]
    return np.array(values, dtype=float)


def row_parameters(model: PredppModel, data: pd.DataFrame) -> dict[str, np.ndarray]:
    """The model's own parameters (CL, V2, ... or K, K12, ..., as the file names them) and ``SCALE``.

    A constant is a 0-d array (it broadcasts), anything else its per-row values. Every value must be a
    number; volumes must be > 0 and everything else >= 0.
    """
    sources = {**model.parameters, "SCALE": model.scale}
    out = {name: _resolved(src, data, "scale" if name == "SCALE" else name, model) for name, src in sources.items()}
    for name, arr in out.items():
        low = arr.min()  # NaN if a cell is missing; a column itself holds no infinity (numeric_column)
        if not (np.isfinite(low) and (_single_column(sources[name]) or all_finite(arr))):
            bad = np.flatnonzero(~np.isfinite(arr))
            label = "scale" if name == "SCALE" else name
            raise InputError(f"row {bad[0] + 1}, {_where(sources[name])}", "missing",
                             f"{label} needs a number on every row")
        positive = name.startswith("V") or name in POSITIVE
        if low <= 0 if positive else low < 0:
            bad = np.flatnonzero(np.atleast_1d(arr <= 0 if positive else arr < 0))
            label = "scale" if name == "SCALE" else name
            where = f"MODEL {label}" if arr.ndim == 0 else f"row {bad[0] + 1}, parameter {label}"
            raise InputError(where, float(np.atleast_1d(arr)[bad[0]]),
                             "volumes, the clearance CL (or K) and the scale must be > 0, other rate constants "
                             ">= 0")
    return out


def primary_parameters(model: PredppModel, data: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per-row values of the model's own parameters (CL, V2, Q, ... or K, K12, ...), as the file names them."""
    return {name: resolve_parameter(src, data, name, model) for name, src in model.parameters.items()}


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
    return {key: resolve_parameter(src, data, f"{key[0]}{key[1]}", model) for key, src in model.modifiers.items()}
