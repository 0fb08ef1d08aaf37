"""The residual error of a $ERROR record, read from Y as a function of F and the EPS.

Y at EPS = 0 must be F (natural scale) or LOG(F) (the data are natural logs: ``transform: log``). Each
EPS(i) enters through h = dY/dEPS(i) at EPS = 0, the first-order term NONMEM's methods use:

* h = F: proportional (``Y = F + F*EPS(1)``, ``Y = F*(1 + EPS(1))``, ``Y = F*EXP(EPS(1))``), variance SIGMA(i);
* h = 1: additive (``Y = F + EPS(1)``; on the log scale ``Y = LOG(F) + EPS(1)``);
* h = W with SIGMA(i) fixed to 1 and W^2 = THETA(a)^2 + THETA(b)^2 F^2 (``W = SQRT(THETA(3)**2 +
  (THETA(4)*F)**2)``, ``W = THETA(3)*F``): additive variance THETA(a)^2 and proportional THETA(b)^2. Those
  THETAs become SIGMA variances (their squares) and leave the THETA list.

Guards such as ``IF (W.EQ.0) W = 1`` or ``IF (F.EQ.0) DEL = 1`` are read as if the guarded value were not
0. Anything else is refused in one sentence.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy

from ketaplan.errors import InputError
from ketaplan.nonmem.abbreviated import eps_symbol
from ketaplan.nonmem.expressions import theta_symbol

F = sympy.Symbol("F", real=True)
"""The prediction F that PREDPP hands to $ERROR."""


@dataclass(frozen=True)
class ResidualError:
    """The sigma mapping of a model file, whether DV is on the log scale, and THETAs used as error SDs."""

    sigma: dict
    log_dv: bool
    error_thetas: tuple[int, ...]  # 1-based, removed from the THETA list


def _unguard(expr: sympy.Expr) -> sympy.Expr:
    """``if(W == 0, c, W)`` -> W and ``if(F == 0, c, x)`` -> x: guards against a zero SD or prediction change
    nothing where the model is defined."""

    def is_guard(e: sympy.Basic) -> bool:
        if not isinstance(e, sympy.Piecewise) or len(e.args) != 2 or e.args[1].cond is not sympy.true:
            return False
        cond, other = e.args[0].cond, e.args[1].expr
        return isinstance(cond, sympy.Eq) and (F in cond.free_symbols or any(
            sympy.simplify(d - other) == 0 for d in (cond.lhs - cond.rhs, cond.rhs - cond.lhs)))

    return expr.replace(is_guard, lambda e: e.args[1].expr)


def _square_of_theta(term: sympy.Expr) -> int | None:
    """n when ``term`` is THETA(n)**2, else None."""
    base, exp = term.as_base_exp()
    if exp == 2 and isinstance(base, sympy.Symbol) and base.name.startswith("THETA"):
        return int(base.name[5:])
    return None


def residual_error(y: sympy.Expr, sigmas: list[tuple[float, bool]], thetas: list[dict]) -> ResidualError:
    """Classify Y (see the module docstring); ``sigmas`` are (variance, fixed) per EPS, ``thetas`` the $THETAs."""
    y = _unguard(y)
    used = sorted(int(s.name[3:]) for s in y.free_symbols if s.name.startswith("EPS"))
    if not used:
        raise InputError("$ERROR", str(y), "Y needs a residual error EPS(1)")
    if used != list(range(1, len(sigmas) + 1)):
        raise InputError("$SIGMA", f"{len(sigmas)} variances", f"Y uses EPS({', '.join(map(str, used))}); give one "
                         "$SIGMA variance per EPS, in order")
    at_zero = y.subs({eps_symbol(n): 0 for n in used})
    log_dv = sympy.simplify(at_zero - sympy.log(F)) == 0
    if not log_dv and sympy.simplify(at_zero - F) != 0:
        raise InputError("$ERROR", str(at_zero), "Y must be F (or LOG(F) for log data) plus the residual error")
    variances: dict[str, float] = {}
    fixed: list[str] = []
    error_thetas: list[int] = []

    def put(kind: str, value: float, is_fixed: bool) -> None:
        if kind in variances:
            raise InputError("$ERROR", str(y), f"Y has two {kind} error terms; give one")
        variances[kind] = value
        if is_fixed:
            fixed.append(kind)

    for n in used:
        h = sympy.simplify(sympy.diff(y, eps_symbol(n)).subs({eps_symbol(k): 0 for k in used}))
        variance, is_fixed = sigmas[n - 1]
        others = {s.name for s in h.free_symbols} - {"F"}
        if any(not name.startswith("THETA") for name in others):
            raise InputError("$ERROR", str(h), f"the size of EPS({n}) may depend on F and THETAs only")
        if log_dv and h != 1:
            raise InputError("$ERROR", str(y), "with Y = LOG(F) + ... give one additive EPS (on the log scale)")
        if h == 1:
            put("additive", variance, is_fixed)
        elif sympy.simplify(h - F) == 0:
            put("proportional", variance, is_fixed)
        else:
            _theta_error(h, n, variance, is_fixed, thetas, put, error_thetas)
    sigma = {**variances, **({"fix": fixed} if fixed else {})}
    return ResidualError(sigma, log_dv, tuple(sorted(error_thetas)))


def _theta_error(h: sympy.Expr, n: int, variance: float, is_fixed: bool, thetas: list[dict], put,
                 error_thetas: list[int]) -> None:
    """h^2 = THETA(a)^2 + THETA(b)^2 F^2 with SIGMA(n) fixed to 1: the THETAs are the error SDs."""
    if not (is_fixed and variance == 1):
        raise InputError("$ERROR", str(h), f"EPS({n}) must enter as F*EPS or EPS, or as W*EPS with W built from "
                         f"THETAs and $SIGMA {n} fixed to 1")
    poly = sympy.Poly(sympy.expand(h**2), F)
    terms = dict(zip((m[0] for m in poly.monoms()), poly.coeffs(), strict=True))
    if set(terms) - {0, 2} or not terms:
        raise InputError("$ERROR", str(h), f"the SD of EPS({n}) must be SQRT(THETA(a)**2 + (THETA(b)*F)**2) or a part "
                         "of it")
    for power, kind in ((0, "additive"), (2, "proportional")):
        if power not in terms:
            continue
        k = _square_of_theta(terms[power])
        if k is None or k > len(thetas):
            raise InputError("$ERROR", str(terms[power]), f"the {kind} part of the SD of EPS({n}) must be one THETA")
        spec = thetas[k - 1]
        put(kind, float(spec["init"]) ** 2, bool(spec["fix"]))
        error_thetas.append(k)


def renumber_thetas(expr: sympy.Expr, removed: tuple[int, ...], n_theta: int) -> sympy.Expr:
    """THETA(n) renumbered after the THETAs in ``removed`` left the list."""
    keep = [k for k in range(1, n_theta + 1) if k not in removed]
    return expr.xreplace({theta_symbol(old): theta_symbol(new) for new, old in enumerate(keep, start=1) if old != new})
