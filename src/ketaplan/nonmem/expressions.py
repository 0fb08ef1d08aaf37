"""$PK-style expressions of a model file: parsed safely into sympy, compiled to vectorised numpy.

``THETA(1) * WGT * (1 + THETA(3) * (APGR < 5)) * exp(ETA(2))`` is read with Python's own parser into a
syntax tree and rebuilt node by node from a whitelist (numbers, names, + - * / ** ^, comparisons, and/or,
and the functions below); nothing is ever evaluated as code. Names are dataset columns or parameters
defined earlier in the file (NONMEM's intermediate variables such as TVCL). A comparison counts as 1 when
true and 0 otherwise, as in ``(APGR < 5)``; ``if(condition, a, b)`` chooses; NONMEM's Fortran spellings
(``.LT.``, ``.AND.``, ``**``) are accepted too.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import sympy

from ketaplan.errors import InputError

FUNCTIONS: dict[str, Callable[..., sympy.Expr]] = {
    "exp": sympy.exp, "log": sympy.log, "ln": sympy.log, "log10": lambda x: sympy.log(x, 10),
    "sqrt": sympy.sqrt, "abs": sympy.Abs, "min": sympy.Min, "max": sympy.Max,
    "sin": sympy.sin, "cos": sympy.cos, "tan": sympy.tan, "atan": sympy.atan,
}
"""Functions an expression may call (case-insensitive), besides THETA(n), ETA(n) and if(c, a, b)."""

_FORTRAN = [(re.compile(rf"\.{word}\.", re.IGNORECASE), repl) for word, repl in (
    ("LT", " < "), ("LE", " <= "), ("GT", " > "), ("GE", " >= "), ("EQ", " == "), ("NE", " != "),
    ("AND", " and "), ("OR", " or "), ("NOT", " not "))]
_IF_CALL = re.compile(r"(?<![\w.])if\s*\(")
_COMPARE = {ast.Lt: sympy.Lt, ast.LtE: sympy.Le, ast.Gt: sympy.Gt, ast.GtE: sympy.Ge, ast.Eq: sympy.Eq,
            ast.NotEq: sympy.Ne}
_BINARY = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
           ast.Div: lambda a, b: a / b, ast.Pow: lambda a, b: a**b, ast.BitXor: lambda a, b: a**b}
MAX_LENGTH = 2000
"""Longest expression accepted (characters)."""


def theta_symbol(n: int) -> sympy.Symbol:
    return sympy.Symbol(f"THETA{n}", real=True)


def eta_symbol(n: int) -> sympy.Symbol:
    return sympy.Symbol(f"ETA{n}", real=True)


def column_symbol(name: str) -> sympy.Symbol:
    return sympy.Symbol(f"col_{name.upper()}", real=True)


@dataclass(frozen=True)
class Expression:
    """One parsed expression: the sympy form and what it refers to."""

    text: str
    expr: sympy.Expr

    @cached_property
    def thetas(self) -> tuple[int, ...]:
        return _numbers(self.expr, "THETA")

    @cached_property
    def etas(self) -> tuple[int, ...]:
        return _numbers(self.expr, "ETA")

    @cached_property
    def columns(self) -> tuple[str, ...]:
        return tuple(sorted(s.name[4:] for s in self.expr.free_symbols if s.name.startswith("col_")))

    @property
    def is_constant(self) -> bool:
        return not self.expr.free_symbols


def _numbers(expr: sympy.Expr, prefix: str) -> tuple[int, ...]:
    found = (s.name[len(prefix):] for s in expr.free_symbols if s.name.startswith(prefix))
    return tuple(sorted(int(n) for n in found if n.isdigit()))


def parse_expression(text: object, field: str, defined: Mapping[str, sympy.Expr] | None = None,
                     used: set[str] | None = None) -> Expression:
    """Parse one expression; names defined earlier (``defined``) are substituted (and added to ``used``),
    other names are dataset columns.

    Raises :class:`InputError` (one sentence naming ``field``) for anything outside the whitelist.
    """
    if isinstance(text, bool) or not isinstance(text, (int, float, str)):
        raise InputError(field, text, "a number, a dataset column or an expression such as THETA(1) * exp(ETA(1))")
    if isinstance(text, (int, float)):
        if not np.isfinite(text):
            raise InputError(field, text, "a finite number")
        return Expression(str(text), sympy.Float(text) if isinstance(text, float) else sympy.Integer(text))
    source = text.strip()
    if not source:
        raise InputError(field, text, "an expression is required")
    if len(source) > MAX_LENGTH:
        raise InputError(field, f"{len(source)} characters", f"an expression of at most {MAX_LENGTH} characters")
    python = _IF_CALL.sub("IF(", source)  # 'if' is a Python keyword; IF(...) is an ordinary call
    for pattern, repl in _FORTRAN:
        python = pattern.sub(repl, python)
    try:
        tree = ast.parse(python, mode="eval")
    except SyntaxError as exc:
        raise InputError(field, source, f"is not a valid expression (near character {exc.offset or 0})") from None
    builder = _Builder(field, source, {k.upper(): v for k, v in (defined or {}).items()},
                       used if used is not None else set())
    return Expression(source, builder.build(tree.body))


class _Builder:
    """Rebuilds a Python syntax tree as a sympy expression, refusing every node not on the whitelist."""

    def __init__(self, field: str, source: str, defined: Mapping[str, sympy.Expr], used: set[str]) -> None:
        self.field, self.source, self.defined, self.used = field, source, defined, used

    def fail(self, what: str) -> InputError:
        return InputError(self.field, self.source, f"{what}; expressions use numbers, dataset columns, THETA(n), "
                          f"ETA(n), + - * / ** and comparisons, and the functions {', '.join(FUNCTIONS)} and "
                          "if(condition, a, b)")

    def build(self, node: ast.AST) -> sympy.Expr:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) \
                and not isinstance(node.value, bool):
            return sympy.Float(node.value) if isinstance(node.value, float) else sympy.Integer(node.value)
        if isinstance(node, ast.Name):
            name = node.id.upper()
            if name in self.defined:
                self.used.add(name)
                return self.defined[name]
            if name in ("THETA", "ETA", "EPS", "ERR"):
                raise self.fail(f"{node.id} needs a number, as in {node.id}(1)")
            return column_symbol(node.id)
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            return _BINARY[type(node.op)](self.value(node.left), self.value(node.right))
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.BitAnd, ast.BitOr)):
            join = sympy.And if isinstance(node.op, ast.BitAnd) else sympy.Or
            return join(self.strict_condition(node.left), self.strict_condition(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            inner = self.value(node.operand)
            return -inner if isinstance(node.op, ast.USub) else inner
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.Invert)):
            return sympy.Not(self.condition(node.operand))
        if isinstance(node, ast.BoolOp):
            join = sympy.And if isinstance(node.op, ast.And) else sympy.Or
            return join(*(self.condition(v) for v in node.values))
        if isinstance(node, ast.Compare):
            parts, left = [], self.value(node.left)
            for op, right_node in zip(node.ops, node.comparators, strict=True):
                if type(op) not in _COMPARE:
                    raise self.fail(f"the comparison {type(op).__name__} is not allowed")
                right = self.value(right_node)
                parts.append(_COMPARE[type(op)](left, right))
                left = right
            return sympy.And(*parts) if len(parts) > 1 else parts[0]
        if isinstance(node, ast.IfExp):
            return sympy.Piecewise((self.value(node.body), self.condition(node.test)), (self.value(node.orelse), True))
        if isinstance(node, ast.Call):
            return self.call(node)
        raise self.fail(f"'{ast.unparse(node)}' is not allowed")

    def call(self, node: ast.Call) -> sympy.Expr:
        if not isinstance(node.func, ast.Name) or node.keywords:
            raise self.fail(f"'{ast.unparse(node)}' is not a known function call")
        name = node.func.id.lower()
        if name in ("theta", "eta"):
            if len(node.args) != 1 or not (isinstance(node.args[0], ast.Constant) and type(node.args[0].value) is int
                                           and node.args[0].value >= 1):
                raise self.fail(f"{node.func.id} takes one whole number >= 1, as in {node.func.id.upper()}(1)")
            n = node.args[0].value
            return theta_symbol(n) if name == "theta" else eta_symbol(n)
        if name == "if":
            if len(node.args) != 3:
                raise self.fail("if takes three arguments: if(condition, value when true, value otherwise)")
            cond, yes, no = node.args
            return sympy.Piecewise((self.value(yes), self.condition(cond)), (self.value(no), True))
        if name not in FUNCTIONS:
            raise self.fail(f"the function {node.func.id} is not known")
        return FUNCTIONS[name](*(self.value(a) for a in node.args))

    def value(self, node: ast.AST) -> sympy.Expr:
        """A number-valued operand: a condition inside arithmetic counts as 1 or 0."""
        built = self.build(node)
        if isinstance(built, sympy.logic.boolalg.Boolean) and not isinstance(built, sympy.Expr):
            return sympy.Piecewise((1, built), (0, True))
        return built

    def strict_condition(self, node: ast.AST) -> sympy.Basic:
        """An operand of & or |: a comparison or another condition, never a bare number (A < 5 & B > 2 would
        bind as A < (5 & B) > 2 in Python's grammar)."""
        built = self.build(node)
        if isinstance(built, sympy.logic.boolalg.Boolean) and not isinstance(built, sympy.Expr):
            return built
        raise self.fail(f"'{ast.unparse(node)}' is not a condition; write (A < 5) & (B > 2), or use and / or")

    def condition(self, node: ast.AST) -> sympy.Basic:
        built = self.build(node)
        if isinstance(built, sympy.logic.boolalg.Boolean) and not isinstance(built, sympy.Expr):
            return built
        return sympy.Ne(built, 0)


def compile_expressions(expressions: Mapping[str, sympy.Expr], n_theta: int, n_eta: int,
                        columns: tuple[str, ...]) -> Callable[..., dict[str, np.ndarray]]:
    """A vectorised evaluator ``f(theta, eta, cols) -> {name: values}``.

    ``theta`` is (n_theta,), ``eta`` (..., n_eta) and ``cols`` maps each column name to values that
    broadcast with eta's leading shape; the results broadcast the same way.
    """
    thetas = [theta_symbol(i + 1) for i in range(n_theta)]
    etas = [eta_symbol(i + 1) for i in range(n_eta)]
    cols = [column_symbol(c) for c in columns]
    names = list(expressions)
    exprs = [sympy.sympify(expressions[n]) for n in names]
    fn = sympy.lambdify([thetas, etas, cols], exprs, modules="numpy", cse=True)

    def evaluate(theta: np.ndarray, eta: np.ndarray, column_values: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        eta = np.asarray(eta, dtype=float)
        eta_parts = [eta[..., i] for i in range(n_eta)]
        col_parts = [np.asarray(column_values[c], dtype=float) for c in columns]
        with np.errstate(all="ignore"):
            values = fn(list(np.asarray(theta, dtype=float)), eta_parts, col_parts)
        shape = np.broadcast_shapes(eta.shape[:-1] if n_eta else (), *(np.shape(c) for c in col_parts))
        return {n: np.broadcast_to(np.asarray(v, dtype=float), shape) for n, v in zip(names, values, strict=True)}

    return evaluate
