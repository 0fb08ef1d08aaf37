"""OMEGA and SIGMA of a model file: between-subject variability and residual error.

``omega`` lists the variances of ETA(1..m) in order, as numbers, ``{value: v, fix: true}`` or blocks
``{block: [[v11], [c21, v22]], fix: false}`` (lower triangle, as NONMEM's $OMEGA BLOCK); ``{same: true}``
repeats the block before it for new ETAs with the same, jointly estimated values (NONMEM's $OMEGA BLOCK
SAME, e.g. between-occasion variability). The older form, a
mapping of variances keyed by parameter names (``{CL: 0.09, V1: 0.04, CL~V1: 0.01}``), puts a log-normal
effect on each named parameter (P = TV x exp(ETA)), numbered in the order given.

``sigma`` gives residual variances: ``proportional`` (Y = IPRED (1 + EPS(1))), ``additive`` (Y = IPRED +
EPS(1)), both (combined: Y = IPRED (1 + EPS(1)) + EPS(2)), or ``exponential`` (log-transform-both-sides:
log Y = log IPRED + EPS(1), with DV in natural units); ``fix`` names the ones held fixed (or ``true`` for
all). ``transform: log`` says the DV are already natural logs (then give only ``additive``, on the log scale).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import sympy

from ketaplan.errors import InputError
from ketaplan.nonmem.expressions import Expression, eta_symbol


@dataclass(frozen=True)
class OmegaBlock:
    """ETAs start..start+size-1: one full block (``diagonal`` False) or independent ones, fixed or estimated;
    ``same_as`` is the index of the block whose values it repeats (NONMEM's SAME), None for its own."""

    start: int
    size: int
    fixed: bool
    diagonal: bool
    same_as: int | None = None

    def elements(self) -> list[tuple[int, int]]:
        """The (row, column) elements of the lower triangle this block estimates (0-based)."""
        rng = range(self.start, self.start + self.size)
        if self.diagonal:
            return [(i, i) for i in rng]
        return [(i, j) for i in rng for j in rng if j <= i]


@dataclass(frozen=True)
class OmegaSpec:
    """The covariance matrix of the ETAs (initial values), its blocks, and a label for each ETA."""

    matrix: np.ndarray
    blocks: tuple[OmegaBlock, ...]
    labels: tuple[str, ...]

    @property
    def size(self) -> int:
        return len(self.matrix)

    def free_elements(self) -> list[tuple[int, int]]:
        """Lower-triangle elements that are estimated (not in a fixed block nor repeating another)."""
        return [e for b in self.blocks if not b.fixed and b.same_as is None for e in b.elements()]

    def tied(self, matrix: np.ndarray) -> np.ndarray:
        """``matrix`` with every SAME block set to the values of the block it repeats."""
        out = matrix.copy()
        for b in self.blocks:
            if b.same_as is not None:
                src = self.blocks[b.same_as]
                out[b.start:b.start + b.size, b.start:b.start + b.size] = \
                    matrix[src.start:src.start + src.size, src.start:src.start + src.size]
        return out

    def all_elements(self) -> list[tuple[int, int]]:
        return [e for b in self.blocks for e in b.elements()]


RESIDUAL_KINDS = ("proportional", "additive", "exponential")


@dataclass(frozen=True)
class SigmaSpec:
    """Residual error: variances by kind (proportional and additive together make a combined model)."""

    variances: dict[str, float]
    fixed: frozenset[str]
    log_dv: bool = False

    @property
    def kind(self) -> str:
        if "exponential" in self.variances or self.log_dv:
            return "exponential"
        if len(self.variances) == 2:
            return "combined"
        return next(iter(self.variances))

    @property
    def order(self) -> tuple[str, ...]:
        """EPS numbering: proportional before additive (as Y = IPRED (1 + EPS(1)) + EPS(2))."""
        return tuple(k for k in RESIDUAL_KINDS if k in self.variances)


def parse_omega(raw: object, parameter_names: tuple[str, ...] = ()) -> tuple[OmegaSpec, dict[str, int]]:
    """The OMEGA of a model file, and for the older named form which ETA (1-based) each parameter carries."""
    if raw is None:
        return OmegaSpec(np.zeros((0, 0)), (), ()), {}
    if isinstance(raw, Mapping) and "block" not in {str(k).lower() for k in raw}:
        return _named_omega(raw, parameter_names)
    items = [raw] if isinstance(raw, Mapping) else raw
    if not isinstance(items, list) or not items:
        raise InputError("MODEL omega", raw, "a list of variances of ETA(1..m) (numbers, {value, fix} or "
                         "{block: [[v11], [c21, v22]]})")
    blocks: list[OmegaBlock] = []
    values: list[np.ndarray] = []
    start = 0
    for i, item in enumerate(items, start=1):
        block, matrix = _same_item(item, blocks, values, start) if _is_same(item, f"MODEL omega item {i}", blocks) \
            else _omega_item(item, f"MODEL omega item {i}", start)
        blocks.append(block)
        values.append(matrix)
        start += block.size
    matrix = np.zeros((start, start))
    for block, m in zip(blocks, values, strict=True):
        sl = slice(block.start, block.start + block.size)
        matrix[sl, sl] = m
    return OmegaSpec(matrix, tuple(blocks), tuple(f"ETA({i + 1})" for i in range(start))), {}


def _is_same(item: object, field: str, blocks: list[OmegaBlock]) -> bool:
    if not (isinstance(item, Mapping) and "same" in {str(k).lower() for k in item}):
        return False
    if dict(item) not in ({"same": True}, {"SAME": True}):
        raise InputError(field, dict(item), "{same: true} repeats the block before it and takes nothing else")
    if not blocks:
        raise InputError(field, dict(item), "SAME repeats the block before it; give that block first")
    return True


def _same_item(item: object, blocks: list[OmegaBlock], values: list[np.ndarray], start: int
               ) -> tuple[OmegaBlock, np.ndarray]:
    """A block repeating the one before it (or what that one repeats)."""
    prev = blocks[-1]
    source = prev.same_as if prev.same_as is not None else len(blocks) - 1
    return OmegaBlock(start, prev.size, prev.fixed, prev.diagonal, source), values[source].copy()


def _omega_item(item: object, field: str, start: int) -> tuple[OmegaBlock, np.ndarray]:
    if isinstance(item, (int, float)) and not isinstance(item, bool):
        return OmegaBlock(start, 1, False, True), _variance_block([[item]], field, fixed=False)
    if not isinstance(item, Mapping):
        raise InputError(field, item, "a variance, {value: v, fix: true} or {block: [[v11], [c21, v22]]}")
    spec = {str(k).lower(): v for k, v in item.items()}
    unknown = set(spec) - {"value", "block", "fix"}
    if unknown or ("value" in spec) == ("block" in spec):
        raise InputError(field, dict(item), "give value (one variance) or block (a lower triangle), and "
                         "optionally fix")
    fixed = spec.get("fix", False)
    if not isinstance(fixed, bool):
        raise InputError(f"{field} fix", fixed, "true or false")
    rows = [[spec["value"]]] if "value" in spec else spec["block"]
    matrix = _variance_block(rows, field, fixed)
    return OmegaBlock(start, len(matrix), fixed, "value" in spec), matrix


def _variance_block(rows: object, field: str, fixed: bool) -> np.ndarray:
    """A symmetric matrix from the rows of its lower triangle; positive definite (semi-definite if fixed)."""
    if not isinstance(rows, list) or not all(isinstance(r, list) and len(r) == i + 1 for i, r in enumerate(rows)):
        raise InputError(field, rows, "a lower triangle: row i holds i numbers, e.g. [[0.1], [0.01, 0.2]]")
    n = len(rows)
    m = np.zeros((n, n))
    for i, row in enumerate(rows):
        for j, v in enumerate(row):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
                raise InputError(field, v, "every element must be a finite number")
            m[i, j] = m[j, i] = float(v)
    eigen = np.linalg.eigvalsh(m)
    if np.any(np.diag(m) < 0) or eigen.min() < -1e-12 * max(1.0, eigen.max()) or (not fixed and eigen.min() <= 0):
        raise InputError(field, rows, "variances must be > 0 and the block positive definite (a zero variance "
                         "only with fix: true)")
    return m


def _named_omega(raw: Mapping, parameter_names: tuple[str, ...]) -> tuple[OmegaSpec, dict[str, int]]:
    """The older form: variances keyed by parameter names, covariances as A~B."""
    known = {k.upper(): k for k in parameter_names}
    names: list[str] = []
    pairs: dict[tuple[str, str], float] = {}
    for key, value in raw.items():
        key = str(key).replace(" ", "")
        parts = key.replace(",", "~").split("~")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
            raise InputError(f"MODEL omega {key}", value, "a number (a variance or covariance)")
        for p in parts:
            if p.upper() not in known:
                raise InputError(f"MODEL omega {key}", p, f"random effects go on the model's parameters: "
                                 f"{', '.join(parameter_names)}")
        if len(parts) == 1:
            name = known[parts[0].upper()]
            if value <= 0:
                raise InputError(f"MODEL omega {key}", value, "a variance must be > 0")
            names.append(name)
            pairs[(name, name)] = float(value)
        elif len(parts) == 2:
            a, b = known[parts[0].upper()], known[parts[1].upper()]
            pairs[(a, b)] = pairs[(b, a)] = float(value)
        else:
            raise InputError(f"MODEL omega {key}", value, "a covariance names two parameters, e.g. CL~V1")
    matrix = np.zeros((len(names), len(names)))
    for (a, b), v in pairs.items():
        if a not in names or b not in names:
            raise InputError("MODEL omega", f"{a}~{b}", "a covariance needs the variances of both parameters")
        matrix[names.index(a), names.index(b)] = v
    if np.any(np.linalg.eigvalsh(matrix) <= 0):
        raise InputError("MODEL omega", dict(raw), "the covariance matrix must be positive definite")
    full = bool(np.any(matrix[~np.eye(len(names), dtype=bool)] != 0))
    blocks = (OmegaBlock(0, len(names), False, not full),) if full else tuple(
        OmegaBlock(i, 1, False, True) for i in range(len(names)))
    return OmegaSpec(matrix, blocks, tuple(names)), {n: i + 1 for i, n in enumerate(names)}


def with_named_etas(parameters: dict[str, Expression], etas: Mapping[str, int]) -> dict[str, Expression]:
    """Parameters of the older named-omega form with their log-normal effects: P = TV x exp(ETA(k))."""
    out = dict(parameters)
    for name, k in etas.items():
        e = out[name]
        out[name] = Expression(f"({e.text}) * exp(ETA({k}))", e.expr * sympy.exp(eta_symbol(k)))
    return out


def parse_sigma(raw: object, transform: object = None) -> SigmaSpec:
    """The SIGMA of a model file (see the module docstring)."""
    if not isinstance(raw, Mapping) or not raw:
        raise InputError("MODEL sigma", raw, "give residual variances, e.g. sigma: {proportional: 0.01} "
                         "(or additive, both, or exponential)")
    spec = {str(k).lower(): v for k, v in raw.items()}
    fix = spec.pop("fix", False)
    unknown = set(spec) - set(RESIDUAL_KINDS)
    if unknown:
        raise InputError("MODEL sigma", sorted(unknown)[0], "allowed items are proportional, additive, exponential "
                         "and fix")
    variances = {}
    for kind in RESIDUAL_KINDS:
        if kind in spec:
            v = spec[kind]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or v < 0:
                raise InputError(f"MODEL sigma {kind}", v, "a variance: a number >= 0")
            variances[kind] = float(v)
    if not variances or all(v == 0 for v in variances.values()):
        raise InputError("MODEL sigma", dict(raw), "variances must be >= 0 and not all 0")
    if "exponential" in variances and len(variances) > 1:
        raise InputError("MODEL sigma", dict(raw), "exponential error stands alone (it is additive on the log scale)")
    fixed = frozenset(variances) if fix is True else frozenset(
        str(f).lower() for f in (fix if isinstance(fix, list) else [] if fix is False else [fix]))
    if not fixed <= set(variances) or (fix is not True and fix is not False and not isinstance(fix, (list, str))):
        raise InputError("MODEL sigma fix", fix, "true, or the names of the fixed variances")
    log_dv = log_transform(transform)
    if log_dv and set(variances) != {"additive"}:
        raise InputError("MODEL sigma", dict(raw), "with transform: log give only an additive variance (on the log "
                         "scale)")
    return SigmaSpec(variances, fixed, log_dv)


def log_transform(value: object) -> bool:
    """True for ``transform: log`` (DV are natural logs), False when absent; anything else is refused."""
    if value is None:
        return False
    if str(value).lower() not in ("log", "ltbs"):
        raise InputError("MODEL transform", value, "the only transform is log (DV = log of the level)")
    return True
