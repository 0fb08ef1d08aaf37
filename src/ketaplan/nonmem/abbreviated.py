"""NONMEM abbreviated code ($PK, $ERROR) run symbolically: every variable becomes one sympy expression.

Statements are assignments ``V = expr``, one-line ``IF (cond) V = expr`` and ``IF (cond) THEN`` /
``ELSE IF (cond) THEN`` / ``ELSE`` / ``ENDIF`` blocks; comments start with ``;`` and a line ending in
``&`` continues on the next. A conditional assignment becomes ``if(cond, new, old)`` (a sympy
Piecewise), so the result is the value NONMEM would compute on every record. Expressions are read by
:func:`ketaplan.nonmem.expressions.parse_expression` (Fortran operators, EXP, LOG, SQRT...). Anything
else - CALL, EXIT, DO WHILE, verbatim code, DADT, A_0, amounts A(n) other than those the caller defines
(``$ERROR`` gets the central compartment's) - is refused naming the record and the statement.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import sympy

from ketaplan.errors import InputError
from ketaplan.nonmem.expressions import parse_expression

_ASSIGN = re.compile(r"^([A-Z_][A-Z0-9_]*)\s*=(?!=)\s*(.+)$")
_IF = re.compile(r"^IF\s*\(")
_ELSE_IF = re.compile(r"^ELSE\s*IF\s*\(")
_RANDOM = re.compile(r"\b(EPS|ERR)\s*\(\s*(\d+)\s*\)")
_AMOUNT = re.compile(r"\bA\s*\(\s*(\d+)\s*\)")
_THEN = re.compile(r"^\s*THEN\s*$")
_END_IF = re.compile(r"^END\s*IF$")


def eps_symbol(n: int) -> sympy.Symbol:
    """EPS(n) (or ERR(n)) of $ERROR."""
    return sympy.Symbol(f"EPS{n}", real=True)


@dataclass(frozen=True)
class Statement:
    """One statement: an assignment, or an IF block whose branches are (condition or None, statements)."""

    text: str
    target: str = ""
    value: str = ""
    branches: tuple[tuple[str | None, tuple[Statement, ...]], ...] = ()


def code_lines(text: str) -> list[str]:
    """The statements' lines: comments dropped, ``&`` continuations joined, upper case, blanks gone."""
    out: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.split(";", 1)[0].strip()
        if line.endswith("&"):
            pending += line[:-1] + " "
            continue
        line = (pending + line).strip()
        pending = ""
        if line:
            out.append(line.upper())
    if pending.strip():
        out.append(pending.strip().upper())
    return out


def parse_statements(text: str, record: str) -> tuple[Statement, ...]:
    """The statements of one record (``$PK`` or ``$ERROR``) as a tree; refuses what is not abbreviated code."""
    lines = code_lines(text)
    body, end = _block(lines, 0, record, top=True)
    if end != len(lines):
        raise InputError(record, lines[end], "ELSE, ELSE IF or ENDIF without an IF (cond) THEN before it")
    return body


def _block(lines: list[str], i: int, record: str, top: bool) -> tuple[tuple[Statement, ...], int]:
    body: list[Statement] = []
    while i < len(lines):
        line = lines[i]
        if line == "ELSE" or _ELSE_IF.match(line) or _END_IF.match(line):
            if top:
                raise InputError(record, line, "ELSE, ELSE IF or ENDIF without an IF (cond) THEN before it")
            return tuple(body), i
        if _IF.match(line):
            cond, rest = _condition(line, record)
            if _THEN.match(rest):
                statement, i = _if_block(lines, i, cond, record)
                body.append(statement)
                continue
            inner = _assignment(rest.strip(), record, line)
            body.append(Statement(line, branches=((cond, (inner,)),)))
        else:
            body.append(_assignment(line, record, line))
        i += 1
    if not top:
        raise InputError(record, lines[-1] if lines else "", "an IF (cond) THEN block needs its ENDIF")
    return tuple(body), i


def _if_block(lines: list[str], i: int, cond: str, record: str) -> tuple[Statement, int]:
    head = lines[i]
    branches: list[tuple[str | None, tuple[Statement, ...]]] = []
    current: str | None = cond
    i += 1
    while True:
        body, i = _block(lines, i, record, top=False)
        branches.append((current, body))
        line = lines[i]
        if _END_IF.match(line):
            return Statement(head, branches=tuple(branches)), i + 1
        if current is None:
            raise InputError(record, line, "nothing may follow the ELSE branch of an IF block but ENDIF")
        if line == "ELSE":
            current = None
        else:
            current, rest = _condition(line, record)
            if not _THEN.match(rest):
                raise InputError(record, line, "ELSE IF (cond) must end with THEN")
        i += 1


def _condition(line: str, record: str) -> tuple[str, str]:
    """The text of ``(cond)`` after IF / ELSE IF, and what follows it."""
    start = line.index("(")
    depth = 0
    for j in range(start, len(line)):
        depth += {"(": 1, ")": -1}.get(line[j], 0)
        if depth == 0:
            return line[start + 1:j].replace("/=", "!="), line[j + 1:]
    raise InputError(record, line, "the condition of IF needs its closing parenthesis")


def _assignment(line: str, record: str, statement: str) -> Statement:
    m = _ASSIGN.match(line)
    if not m:
        raise InputError(record, statement, "ketaplan reads assignments (V = expression), IF (cond) V = expression "
                         "and IF/ELSE IF/ELSE/ENDIF blocks; this statement is not supported")
    return Statement(statement, m.group(1), m.group(2))


@dataclass
class Program:
    """Runs statements on an environment of names -> sympy expressions (a $PK or $ERROR record)."""

    record: str
    env: dict[str, sympy.Expr]
    known_columns: frozenset[str]
    assigned: list[str]

    def run(self, statements: tuple[Statement, ...]) -> None:
        for s in statements:
            if s.branches:
                self._run_if(s)
            else:
                self._assign(s)

    def _assign(self, s: Statement) -> None:
        if s.target in ("THETA", "ETA", "EPS", "ERR"):
            raise InputError(self.record, s.text, f"{s.target} cannot be assigned")
        self.env[s.target] = self.expression(s.value, s.text)
        if s.target not in self.assigned:
            self.assigned.append(s.target)

    def expression(self, text: str, statement: str) -> sympy.Expr:
        """One expression on the current environment; names must be defined or $INPUT columns."""
        names = {**self.env, **{f"EPS_{n}": eps_symbol(int(n)) for _w, n in _RANDOM.findall(text)}}
        missing = [n for n in _AMOUNT.findall(text) if f"A_{n}" not in names]
        if missing:
            raise InputError(self.record, statement, f"the amount A({missing[0]}) is not available: $ERROR may use "
                             "the amount in the central compartment, and $PK none")
        source = _AMOUNT.sub(lambda m: f"A_{m.group(1)}", _RANDOM.sub(lambda m: f"EPS_{m.group(2)}", text))
        try:
            parsed = parse_expression(source, self.record, names)
        except InputError as exc:
            raise InputError(self.record, statement, exc.allowed) from None
        unknown = sorted(set(parsed.columns) - self.known_columns)
        if unknown:
            raise InputError(self.record, statement, f"{unknown[0]} is neither defined before this statement nor a "
                             "column named in $INPUT")
        return parsed.expr

    def _run_if(self, s: Statement) -> None:
        before = dict(self.env)
        outcomes: list[tuple[sympy.Basic, dict[str, sympy.Expr]]] = []
        for cond_text, body in s.branches:
            self.env = dict(before)
            self.run(body)
            cond = sympy.true if cond_text is None else self._condition(cond_text, s.text)
            outcomes.append((cond, self.env))
        self.env = dict(before)
        changed = sorted({k for _c, env in outcomes for k in env if env[k] is not before.get(k)})
        for name in changed:
            pieces = []
            for cond, env in outcomes:
                if name not in env:
                    raise InputError(self.record, s.text, f"{name} is set only under some conditions and has no "
                                     "value otherwise; give it a value before the IF")
                pieces.append((env[name], cond))
            if outcomes[-1][0] is not sympy.true:
                if name not in before:
                    raise InputError(self.record, s.text, f"{name} is set only when the condition holds and has no "
                                     "value otherwise; give it a value before the IF or add an ELSE")
                pieces.append((before[name], sympy.true))
            self.env[name] = sympy.Piecewise(*pieces)

    def _condition(self, text: str, statement: str) -> sympy.Basic:
        cond = self.expression(text, statement)
        if isinstance(cond, sympy.logic.boolalg.Boolean) and not isinstance(cond, sympy.Expr):
            return cond
        return sympy.Ne(cond, 0)


def run_record(text: str, record: str, env: Mapping[str, sympy.Expr], columns: frozenset[str]) -> Program:
    """Parse and run one record of abbreviated code; ``env`` holds what earlier records defined."""
    program = Program(record, dict(env), columns, [])
    program.run(parse_statements(text, record))
    return program
