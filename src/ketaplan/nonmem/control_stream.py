"""NONMEM control streams (``*.ctl``, ``*.mod``) for ADVAN 1-4, 11 and 12, read into a ketaplan model file.

    stream = read_control_stream("run1.mod")
    stream.model     # the mapping load_model accepts: advan, theta, omega, sigma, parameters, scale
    stream.method    # from $ESTIMATION: "fo", "foce", "foce-i", "laplace" or "saem"
    stream.read_data()   # $DATA as NONMEM reads it, with $INPUT names

Records read: $PROBLEM, $INPUT and $DATA (:mod:`~ketaplan.nonmem.control_data`), $SUBROUTINES ADVANn
TRANSn (TRANS1, micro-constants; TRANS2 for ADVAN1/2 and TRANS4 for the others, clearances), $PK and
$ERROR (:mod:`~ketaplan.nonmem.abbreviated`, :mod:`~ketaplan.nonmem.control_error`), $THETA, $OMEGA,
$SIGMA (:mod:`~ketaplan.nonmem.control_values`), $ESTIMATION (METHOD=0/ZERO, 1/COND, INTER, LAPLACE,
SAEM; MAXEVAL=0 evaluates) and $ABBREVIATED REPLACE name=ETA(n). $COVARIANCE, $TABLE, $SCATTER and $SIZES
are accepted and ignored (ketaplan always reports standard errors). The $PK variables PREDPP reads (CL,
V, KA... or K, K12...; F1, ALAG1, R1, D1; S1 or S2) become expressions of THETA, ETA and the data items;
IPRED is A(central) x V/S, so ``scale`` is V/S. Everything else is refused in one sentence naming the
record.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import sympy

from ketaplan.errors import InputError
from ketaplan.nonmem.abbreviated import run_record
from ketaplan.nonmem.control_data import DataRecord, InputItems, parse_data, parse_input, read_control_data
from ketaplan.nonmem.control_error import F, renumber_thetas, residual_error
from ketaplan.nonmem.control_values import parse_theta_records, parse_variance_records, sigma_variances
from ketaplan.nonmem.expressions import Expression, column_symbol

SUFFIXES = (".ctl", ".mod")
"""File name endings read as control streams."""

_RECORDS = ("PROBLEM", "INPUT", "DATA", "SUBROUTINES", "PK", "ERROR", "THETA", "OMEGA", "SIGMA", "ESTIMATION",
            "ESTIMATE", "ABBREVIATED", "COVARIANCE", "TABLE", "SCATTERPLOT", "SIZES")
_IGNORED = ("COVARIANCE", "TABLE", "SCATTERPLOT", "SIZES")
_PREDPP = {  # (ADVAN, TRANS) -> the names PREDPP reads from $PK
    (1, 1): ("K",), (2, 1): ("K", "KA"), (3, 1): ("K", "K12", "K21"), (4, 1): ("K", "K23", "K32", "KA"),
    (11, 1): ("K", "K12", "K21", "K13", "K31"), (12, 1): ("K", "K23", "K32", "K24", "K42", "KA"),
    (1, 2): ("CL", "V"), (2, 2): ("CL", "V", "KA"), (3, 4): ("CL", "V1", "Q", "V2"),
    (4, 4): ("CL", "V2", "Q", "V3", "KA"),
    (11, 4): ("CL", "V1", "Q2", "V2", "Q3", "V3"), (12, 4): ("CL", "V2", "Q3", "V3", "Q4", "V4", "KA"),
}
_CENTRAL = {1: 1, 2: 2, 3: 1, 4: 2, 11: 1, 12: 2}
ICALL = sympy.Integer(2)
"""NONMEM's ICALL during estimation: ``IF (ICALL.EQ.4)`` (simulation) blocks never apply."""
_MODIFIER = re.compile(r"^(F|ALAG|R|D)(\d+)$")
_SCALE = re.compile(r"^S(\d+)$")


@dataclass(frozen=True)
class ControlStream:
    """A control stream read for ketaplan: the model file mapping, the dataset and the estimation step."""

    path: Path | None
    problem: str
    model: dict
    input: InputItems
    data: DataRecord | None
    method: str
    evaluate: bool

    def read_data(self) -> pd.DataFrame:
        """The records of $DATA as NONMEM reads them (IGNORE/ACCEPT applied), named by $INPUT."""
        if self.data is None:
            raise InputError("$DATA", None, "the control stream names no data file")
        return read_control_data(self.data, self.input)


def is_control_stream(source: object) -> bool:
    """True for a path (str or Path) ending in .ctl or .mod."""
    return isinstance(source, (str, Path)) and Path(source).suffix.lower() in SUFFIXES


def read_control_stream(path: str | Path) -> ControlStream:
    """Read a control stream file; $DATA is relative to its folder."""
    p = Path(path)
    if not p.is_file():
        raise InputError("MODEL", str(path), "the control stream file does not exist")
    return parse_control_stream(p.read_text(), p.parent, p)


def split_records(text: str) -> list[tuple[str, str]]:
    """(record name, its text) in order; names are spelled out (``$EST`` -> ESTIMATION, ``$SUBR`` -> SUBROUTINES)."""
    records: list[tuple[str, str]] = []
    for m in re.finditer(r"^\s*\$([A-Za-z]+)([^$]*)", text, re.MULTILINE):
        records.append((_record_name(m.group(1).upper()), m.group(2)))
    if not records:
        raise InputError("MODEL", text[:60], "a control stream starts with $PROBLEM and has $INPUT, $DATA, "
                         "$SUBROUTINES, $PK, $ERROR, $THETA, $OMEGA and $SIGMA records")
    return records


def _record_name(given: str) -> str:
    if given in _RECORDS or given == "SUBROUTINE":
        return "SUBROUTINES" if given == "SUBROUTINE" else "ESTIMATION" if given == "ESTIMATE" else given
    matches = sorted({r for r in _RECORDS if r.startswith(given) and len(given) >= 3})
    matches = ["ESTIMATION"] if matches == ["ESTIMATE", "ESTIMATION"] else matches
    if len(matches) != 1:
        raise InputError(f"${given}", given, "ketaplan reads $PROBLEM, $INPUT, $DATA, $SUBROUTINES, $PK, $ERROR, "
                         "$THETA, $OMEGA, $SIGMA, $ESTIMATION, $ABBREVIATED REPLACE (and ignores $COVARIANCE, "
                         "$TABLE, $SCATTERPLOT, $SIZES)")
    return matches[0]


def parse_control_stream(text: str, directory: Path, path: Path | None = None) -> ControlStream:
    """Translate a control stream's text (see the module docstring); refuses what it cannot translate."""
    records: dict[str, list[str]] = {}
    for name, body in split_records(text):
        records.setdefault(name, []).append(body)
    for needed in ("INPUT", "SUBROUTINES", "PK", "ERROR", "THETA"):
        if needed not in records:
            raise InputError(f"${needed}", None, f"the control stream needs a ${needed} record")
    if len(records.get("PROBLEM", [])) > 1:
        raise InputError("$PROBLEM", len(records["PROBLEM"]), "one problem per control stream")
    items = parse_input("\n".join(records["INPUT"]))
    data = parse_data(records["DATA"][0], directory) if "DATA" in records else None
    advan, trans = _subroutines(" ".join(records["SUBROUTINES"]))
    replace = _replacements(records.get("ABBREVIATED", []))
    thetas = parse_theta_records(records["THETA"])
    sigmas = sigma_variances(records.get("SIGMA", []))
    columns = frozenset(items.columns)
    env = {**{other: column_symbol(name) for other, name in items.synonyms.items()}, "ICALL": ICALL}
    pk = run_record(_replaced("\n".join(records["PK"]), replace), "$PK", env, columns)
    amount = {f"A_{_CENTRAL[advan]}": F * _central_scale(pk.env, advan)}  # A(central) = F x S
    error = run_record(_replaced("\n".join(records["ERROR"]), replace), "$ERROR",
                       {**pk.env, "F": F, "ICALL": ICALL, **amount}, columns)
    if "Y" not in error.env:
        raise InputError("$ERROR", None, "$ERROR must set Y, e.g. Y = F + F*EPS(1)")
    residual = residual_error(error.env["Y"], sigmas, thetas)
    parameters, scale = _predpp_items(pk.env, pk.assigned, advan, trans)
    parameters, scale = _without_error_thetas(parameters, scale, residual.error_thetas, len(thetas))
    model: dict = {
        "advan": advan,
        "theta": [t for k, t in enumerate(thetas, start=1) if k not in residual.error_thetas],
        "sigma": residual.sigma,
        "parameters": parameters,
        "scale": scale,
    }
    if "OMEGA" in records:
        model["omega"] = parse_variance_records(records["OMEGA"], "$OMEGA")
    if residual.log_dv:
        model["transform"] = "log"
    method, evaluate = _estimation(records.get("ESTIMATION", []), residual.sigma)
    problem = next(iter(records.get("PROBLEM", [""])[0].strip().splitlines()), "")
    return ControlStream(path, problem, model, items, data, method, evaluate)


def _subroutines(text: str) -> tuple[int, int]:
    code = text.split(";", 1)[0].upper()
    advan = re.search(r"\bADVAN(\d+)\b", code)
    trans = re.search(r"\bTRANS(\d+)\b", code)
    if not advan or int(advan.group(1)) not in _CENTRAL:
        raise InputError("$SUBROUTINES", code.strip(), "ketaplan solves ADVAN1, 2, 3, 4, 11 and 12 (ODE models with "
                         "$DES are not supported)")
    n, t = int(advan.group(1)), int(trans.group(1)) if trans else 1
    if (n, t) not in _PREDPP:
        raise InputError("$SUBROUTINES", code.strip(), f"ADVAN{n} is read with TRANS1 (micro-constants) or "
                         f"TRANS{2 if n <= 2 else 4} (clearances and volumes)")
    return n, t


def _replacements(texts: list[str]) -> dict[str, str]:
    """$ABBREVIATED REPLACE name=ETA(n) (or THETA(n), EPS(n)): names that stand for a random effect or THETA."""
    out: dict[str, str] = {}
    for text in texts:
        code = text.split(";", 1)[0].strip().upper()
        m = re.fullmatch(r"REPLACE\s+([A-Z_][A-Z0-9_]*)\s*=\s*((?:THETA|ETA|EPS|ERR)\(\d+\))", code)
        if m:
            out[m.group(1)] = m.group(2)
        elif not re.fullmatch(r"(DERIV2|DERIV1|FASTDER|PROTECT|COMRES)\s*=?\s*\S*", code):
            raise InputError("$ABBREVIATED", code, "ketaplan reads REPLACE name=ETA(n) (or THETA(n), EPS(n))")
    return out


def _replaced(code: str, replace: dict[str, str]) -> str:
    if not replace:
        return code
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, replace)) + r")\b", re.IGNORECASE)
    return pattern.sub(lambda m: replace[m.group(1).upper()], code)


def _predpp_items(env: dict[str, sympy.Expr], assigned: list[str], advan: int, trans: int
                  ) -> tuple[dict[str, Expression], Expression]:
    """The parameters PREDPP reads from $PK, the dose modifiers, and the scale V/S of the central compartment."""
    central = _CENTRAL[advan]
    out: dict[str, Expression] = {}
    for name in _PREDPP[(advan, trans)]:
        if name not in env:
            raise InputError("$PK", name, f"ADVAN{advan} TRANS{trans} needs {', '.join(_PREDPP[(advan, trans)])}; "
                             f"$PK does not set {name}")
        out[name] = _expression(name, env[name])
    for name in assigned:
        m = _SCALE.match(name)
        if _MODIFIER.match(name):
            out[name] = _expression(name, env[name])
        elif m and int(m.group(1)) != central:
            raise InputError("$PK", name, f"ketaplan observes the central compartment: set S{central} (or SC)")
    s = _central_scale(env, advan)
    if trans == 1:
        out["V"] = _expression(f"S{central}", s)
        return out, Expression("1", sympy.Integer(1))
    volume = _PREDPP[(advan, trans)][1]
    return out, _expression("scale", _collapsed(sympy.simplify(env[volume] / s)))


def _collapsed(expr: sympy.Expr) -> sympy.Expr:
    """A Piecewise whose branches are all equal (``if(c, V, 1.2*V) / if(c, V, 1.2*V)``) is its one value."""
    def same(e: sympy.Basic) -> bool:
        return isinstance(e, sympy.Piecewise) and all(sympy.simplify(a.expr - e.args[0].expr) == 0 for a in e.args)

    return expr.replace(same, lambda e: e.args[0].expr)


def _central_scale(env: dict[str, sympy.Expr], advan: int) -> sympy.Expr:
    """S of the central compartment (S1 or S2, or SC); 1 when $PK sets none (F is then the amount)."""
    return env.get(f"S{_CENTRAL[advan]}", env.get("SC", sympy.Integer(1)))


def _expression(name: str, expr: sympy.Expr) -> Expression:
    """An Expression whose text reads like NONMEM's: THETA(1), ETA(2) and data item names."""
    text = re.sub(r"\b(THETA|ETA)(\d+)\b", r"\1(\2)", re.sub(r"\bcol_(\w+)", r"\1", sympy.sstr(expr)))
    return Expression(f"{name} = {text}", expr)


def _without_error_thetas(parameters: dict[str, Expression], scale: Expression, removed: tuple[int, ...],
                          n_theta: int) -> tuple[dict[str, Expression], Expression]:
    """Renumber the THETAs of $PK after the residual-error THETAs became SIGMA variances."""
    if not removed:
        return parameters, scale
    for name, e in [*parameters.items(), ("scale", scale)]:
        clash = sorted(set(e.thetas) & set(removed))
        if clash:
            raise InputError("$PK", name, f"THETA({clash[0]}) is a residual error SD in $ERROR and cannot be used "
                             "in $PK too")
    out = {k: Expression(e.text, renumber_thetas(e.expr, removed, n_theta)) for k, e in parameters.items()}
    return out, Expression(scale.text, renumber_thetas(scale.expr, removed, n_theta))


def _estimation(texts: list[str], sigma: dict) -> tuple[str, bool]:
    """The method of the first $ESTIMATION and whether MAXEVAL=0; later records must only evaluate."""
    if not texts:
        return "foce-i", False
    method, evaluate = _one_estimation(texts[0], sigma)
    for text in texts[1:]:
        code = text.split(";", 1)[0].upper()
        if not re.search(r"\bEONLY\s*=\s*1\b|\bMAXEVALS?\s*=\s*0\b", code):
            raise InputError("$ESTIMATION", code.strip(), "ketaplan runs one estimation step; later $ESTIMATION "
                             "records may only evaluate (EONLY=1 or MAXEVAL=0)")
    return method, evaluate


def _one_estimation(text: str, sigma: dict) -> tuple[str, bool]:
    code = " ".join(line.split(";", 1)[0] for line in text.splitlines()).upper()
    options = dict(re.findall(r"\b([A-Z_]+)\s*=\s*(\S+)", code))
    flags = set(re.findall(r"\b([A-Z_]+)\b(?!\s*=)", re.sub(r"\b[A-Z_]+\s*=\s*\S+", " ", code)))
    method = options.get("METHOD", options.get("METH", "0"))
    interaction = bool(flags & {"INTER", "INTERACTION"})
    laplace = bool(flags & {"LAPLACE", "LAPLACIAN"})
    maxeval = next((v for k, v in options.items() if k in ("MAXEVAL", "MAXEVALS", "MAX")), None)
    evaluate = maxeval is not None and maxeval.strip().rstrip(",") == "0"
    if method in ("0", "ZERO"):
        if interaction or laplace:
            raise InputError("$ESTIMATION", code.strip(), "METHOD=0 (FO) has no INTERACTION or LAPLACE")
        return "fo", evaluate
    if method in ("1", "COND", "CONDITIONAL"):
        if laplace:
            additive = set(sigma) - {"fix"} == {"additive"}
            if not (interaction or additive):
                raise InputError("$ESTIMATION", code.strip(), "ketaplan's Laplace method includes the interaction; "
                                 "add INTER (or use an additive error)")
            return "laplace", evaluate
        return ("foce-i" if interaction else "foce"), evaluate
    if method == "SAEM":
        return "saem", evaluate
    raise InputError("$ESTIMATION", f"METHOD={method}", "ketaplan estimates with METHOD=0 (FO), 1/COND (FOCE), "
                     "COND INTER (FOCE-I), COND LAPLACE and SAEM")
