"""The regimen language: what clinicians write, parsed into a :class:`~ketaplan.regimen.Regimen`.

Grammar (words are case-insensitive; parts are joined by ";")::

    regimen  := part (";" part)* [start]
    part     := [form] dose [salt] route [bolus] [titrate] [for] [repeat] [cap] [at]
    form     := "S-ketamine" | "esketamine" | "racemic" | "ketamine"
    dose     := AMOUNT ("50 mg", "500 ug", "0.5 mg/kg")  |  RATE ("20 mg/h", "0.35 mg/kg/h")
              | PERCENT "cream" AMOUNT ("10% cream 1 g": 100 mg ketamine per application, w/w)
    salt     := "HCl" | "base"
    route    := IV | IM | PO | oral | IN | intranasal | SL | sublingual | PR | rectal | topical
    bolus    := "bolus" ["over" DURATION]          (an amount over a short time is an infusion)
    titrate  := "titrate" "+"RATE "every" DURATION "to" RATE
    for      := "for" DURATION                      (infusion length, or treatment length of repeats)
    repeat   := ("every" DURATION | "daily" | "bid" | "tid" | "qid" | "qNh") ["x" N [unit]] ["for" DURATION]
    cap      := "(" "max" RATE|AMOUNT ")"
    at       := "at" DURATION                        (offset of this part from the start)
    start    := "starting" DATE [TIME]               (e.g. "starting 2026-12-01 09:00")

Examples: "20 mg/h IV for 5 d every 11 weeks x 4"; "0.35 mg/kg/h IV for 4 h daily x 10 days
(max 25 mg/h)"; "50 mg PO q8h for 14 d"; "10 mg/h IV titrate +5 mg/h every 2 h to 40 mg/h for 5 d".
An error names the offending word, its position and what was expected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from ketaplan.errors import InputError
from ketaplan.regimen.events import _ROUTE_ALIASES, DoseEvent, Regimen, check_no_overlap
from ketaplan.regimen.units import Kind, hcl_to_base, parse, parse_dose
from ketaplan.user_yaml import read_yaml_file

_TOKEN = re.compile(r"\s*(\(|\)|;|\+|[^\s();+]+)")
_NUMBER = re.compile(r"^\d+(\.\d*)?$|^\.\d+$")
_NUMBER_UNIT = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)([a-zA-Zµμ/][\w/µμ]*)$")
_FREQUENCIES = {"daily": 24.0, "qd": 24.0, "od": 24.0, "bid": 12.0, "tid": 8.0, "qid": 6.0}
_QNH = re.compile(r"^q(\d+(?:\.\d+)?)h$")
_NEGATIVE = re.compile(r"^-(\d|\.\d)")
_FORMS = {"s-ketamine": "s-ketamine", "esketamine": "s-ketamine", "racemic": "racemic", "ketamine": None}
_COUNT_UNITS = {"x", "times", "doses", "dose", "courses", "course", "days", "day", "d", "weeks", "week", "cycles"}
EXPECTED_ROUTE = "a route (IV, IM, PO, IN, SL, PR or topical)"


@dataclass
class _Tok:
    text: str
    index: int  # 1-based word position


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = self._tokenize(text)
        self.pos = 0

    # ---------------------------------------------------------------- tokens
    @staticmethod
    def _tokenize(text: str) -> list[_Tok]:
        """Tokens, each numbered by the whitespace-separated word it came from (as the user counts)."""
        toks: list[_Tok] = []
        for number, word in enumerate(text.split(), start=1):
            for piece in _TOKEN.findall(word):
                m = _NUMBER_UNIT.match(piece)
                if m and not _QNH.match(piece.lower()):
                    toks.append(_Tok(m.group(1), number))
                    toks.append(_Tok(m.group(2), number))
                else:
                    toks.append(_Tok(piece, number))
        return toks

    def peek(self, offset: int = 0) -> str | None:
        i = self.pos + offset
        return self.toks[i].text if i < len(self.toks) else None

    def low(self, offset: int = 0) -> str | None:
        p = self.peek(offset)
        return p.lower() if p is not None else None

    def take(self) -> _Tok:
        tok = self.toks[self.pos]
        self.pos += 1
        return tok

    def fail(self, expected: str, tok: _Tok | None = None) -> InputError:
        if tok is None:
            tok = self.toks[self.pos] if self.pos < len(self.toks) else None
        if tok is None:
            return InputError("regimen", self.text, f"the text ends where {expected} was expected")
        return InputError("regimen", self.text, f"word {tok.index} '{tok.text}' is not understood: expected {expected}")

    def expect_word(self, word: str, expected: str) -> _Tok:
        if self.low() != word:
            raise self.fail(expected)
        return self.take()

    def refuse_negative(self, what: str) -> None:
        """One sentence for a number with a minus sign ('-20 mg/h'): doses and times are never negative."""
        tok = self.toks[self.pos] if self.pos < len(self.toks) else None
        if tok is not None and _NEGATIVE.match(tok.text):
            raise InputError("regimen", self.text, f"word {tok.index} '{tok.text}': {what} cannot be negative")

    def quantity(self, kind: Kind, expected: str, allow_per_kg: bool = False):
        """NUMBER UNIT -> parsed value (or Dose when allow_per_kg)."""
        self.refuse_negative(kind.description.split(" such as")[0])
        start = self.pos
        if self.peek() is None or not _NUMBER.match(self.peek()):
            raise self.fail(expected)
        number = self.take().text
        if self.peek() is None:
            raise self.fail(f"a unit after '{number}'")
        unit_tok = self.take()
        text = f"{number} {unit_tok.text}"
        try:
            if allow_per_kg:
                return parse_dose(text, kind, "regimen")
            return parse(text, kind, "regimen")
        except InputError as exc:
            raise InputError("regimen", self.text,
                             f"word {self.toks[start].index} '{text}' is not understood: {exc.allowed}") from None

    # ---------------------------------------------------------------- grammar
    def regimen(self) -> Regimen:
        if not self.toks:
            raise InputError("regimen", self.text, "the text is empty; expected a dose such as '20 mg/h IV for 5 d'")
        parts: list[tuple[list[DoseEvent], str | None, list[str]]] = []
        start: datetime | None = None
        while self.pos < len(self.toks):
            if self.low() == "starting":
                if start is not None:
                    raise self.fail("one 'starting' date only")
                start = self.starting()
                continue
            parts.append(self.part())
            if self.peek() == ";":
                self.take()
                if self.peek() is None:
                    raise self.fail("another dose after ';'")
            elif self.peek() is not None and self.low() != "starting":
                raise self.fail("';' between doses, 'starting DATE' or the end of the text")
        forms = {form for _, form, _ in parts if form}
        if len(forms) > 1:
            raise InputError("regimen", self.text, "mixes racemic ketamine and S-ketamine; simulate them separately")
        drug = forms.pop() if forms else "racemic"
        events = [e for evs, _, _ in parts for e in evs]
        notes = tuple(n for _, _, ns in parts for n in ns)
        return Regimen(tuple(events), start=start, drug=drug, label=self.text.strip(), notes=notes)

    def starting(self) -> datetime:
        self.take()
        if self.peek() is None:
            raise self.fail("a date such as 2026-12-01")
        date_tok = self.take()
        try:
            day = datetime.strptime(date_tok.text, "%Y-%m-%d")
        except ValueError:
            raise self.fail("a date YYYY-MM-DD and an optional clock time HH:MM", date_tok) from None
        if self.peek() is None or not re.match(r"^\d{1,2}:\d{2}$", self.peek()):
            return day
        clock_tok = self.take()
        try:
            clock = datetime.strptime(clock_tok.text, "%H:%M")
        except ValueError:
            raise self.fail("a clock time from 00:00 to 23:59", clock_tok) from None
        return day.replace(hour=clock.hour, minute=clock.minute)

    def part(self) -> tuple[list[DoseEvent], str | None, list[str]]:
        form = None
        if self.low() in _FORMS:
            form = _FORMS[self.take().text.lower()]
        notes: list[str] = []
        leading_route = None
        if self.low() in _ROUTE_ALIASES and self.peek(1) is not None and (
                _NUMBER.match(self.peek(1)) or self.peek(1).endswith("%")):
            leading_route = _ROUTE_ALIASES[self.take().text.lower()]
        cream = self.low() is not None and self.low().endswith("%")
        if cream:
            dose, is_rate = self.cream_dose(), False
        else:
            dose = self._dose()
            is_rate = dose[1]
            dose = dose[0]
        salt = "base"
        if self.low() in ("hcl", "base"):
            salt = self.take().text.lower()
        if self.low() == "ketamine":
            self.take()
            if self.low() in ("hcl", "base"):
                salt = self.take().text.lower()
        if leading_route is not None:
            route = leading_route
        elif self.low() not in _ROUTE_ALIASES:
            raise self.fail(EXPECTED_ROUTE)
        else:
            route = _ROUTE_ALIASES[self.take().text.lower()]
        value = hcl_to_base(dose.value) if salt == "hcl" else dose.value
        over = None
        if self.low() == "bolus":
            self.take()
            if is_rate:
                raise self.fail("an amount for a bolus (for example '0.5 mg/kg IV bolus'), not a rate")
            if self.low() == "over":
                self.take()
                over = self.quantity(Kind.DURATION, "a duration after 'over' (for example '1 min')")
        titration = self.titrate(is_rate) if self.low() == "titrate" else None
        length = None
        if self.low() == "for":
            self.take()
            length = self.quantity(Kind.DURATION, "a duration after 'for' (for example '5 d')")
        interval, count, span = self.repeat()
        if length is None and span is not None and is_rate and interval is None:
            length = span
        cap = self.cap() if self.peek() == "(" else None
        at = 0.0
        if self.low() == "at":
            self.take()
            at = self.quantity(Kind.DURATION, "a time after 'at' (for example '2 h')")
        return self.events(route, value, dose.per_kg, is_rate, over, titration, length, interval, count, span, cap,
                           at, notes), form, notes

    def _dose(self):
        self.refuse_negative("a dose")
        start = self.pos
        if self.peek() is None or not _NUMBER.match(self.peek()):
            raise self.fail("a dose such as '20 mg/h', '25 mg' or '0.5 mg/kg'")
        number = self.take().text
        if self.peek() is None:
            raise self.fail(f"a unit after '{number}'")
        text = f"{number} {self.take().text}"
        errors = []
        for kind, is_rate in ((Kind.RATE, True), (Kind.AMOUNT, False)):
            try:
                return parse_dose(text, kind, "regimen"), is_rate
            except InputError as exc:
                errors.append(exc)
        unit_error = errors[0].allowed
        if "unknown unit" in unit_error or "a number is required" in unit_error:
            reason = unit_error
        else:
            reason = "expected an amount (mg, ug, mg/kg) or a rate (mg/h, mg/min, mg/kg/h, ug/kg/min)"
        raise InputError("regimen", self.text, f"word {self.toks[start].index} '{text}' is not understood: {reason}")

    def cream_dose(self):
        tok = self.take()
        try:
            percent = float(tok.text[:-1])
        except ValueError:
            raise self.fail("a strength such as '10%'", tok) from None
        if not 0 < percent <= 100:
            raise self.fail("a strength between 0 and 100 %", tok)
        if self.low() in ("cream", "gel", "ointment"):
            self.take()
        amount = self.quantity(Kind.AMOUNT, "the amount of cream applied (for example '1 g')")
        from ketaplan.regimen.units import Dose

        return Dose(amount * percent / 100.0, per_kg=False, text=tok.text)

    def titrate(self, is_rate: bool):
        tok = self.take()
        if not is_rate:
            raise self.fail("a starting rate before 'titrate' (for example '10 mg/h IV titrate ...')", tok)
        if self.peek() != "+":
            raise self.fail("'+' and a rate step (for example '+5 mg/h')")
        self.take()
        step = self.quantity(Kind.RATE, "a rate step such as '5 mg/h'", allow_per_kg=True)
        self.expect_word("every", "'every' and the step interval (for example 'every 2 h')")
        interval = self.quantity(Kind.DURATION, "the step interval (for example '2 h')")
        self.expect_word("to", "'to' and the target rate (for example 'to 40 mg/h')")
        target = self.quantity(Kind.RATE, "the target rate (for example '40 mg/h')", allow_per_kg=True)
        return step, interval, target

    def repeat(self) -> tuple[float | None, int | None, float | None]:
        interval = None
        where: _Tok | None = None  # the interval's word, for the message on a zero interval
        word = self.low()
        if word == "every":
            self.take()
            where = self.toks[self.pos] if self.pos < len(self.toks) else None
            interval = self.quantity(Kind.DURATION, "an interval after 'every' (for example '11 weeks')")
        elif word in _FREQUENCIES:
            self.take()
            interval = _FREQUENCIES[word]
        elif word is not None and _QNH.match(word):
            where = self.take()
            interval = float(_QNH.match(where.text.lower()).group(1))
        if interval is not None and interval <= 0:
            raise self.fail("a repeat interval longer than 0 h (for example 'q8h' or 'every 8 h')", where)
        count = None
        span = None
        x_tok = None
        if self.low() == "x":
            x_tok = self.take()
            tok = self.toks[self.pos] if self.pos < len(self.toks) else None
            if self.peek() is None or not re.match(r"^\d+$", self.peek()):
                raise self.fail("a whole number of repeats after 'x' (for example 'x 4')")
            count = int(self.take().text)
            if count < 1:
                raise self.fail("at least 1 repeat", tok)
            if self.low() in _COUNT_UNITS:
                self.take()
        if self.low() == "for" and (interval is not None or count is not None):
            self.take()
            span = self.quantity(Kind.DURATION, "a treatment length after 'for' (for example '14 d')")
        if count is not None and interval is None:
            raise self.fail("'every <interval>' (or daily, bid, tid, q8h) before it", x_tok)
        return interval, count, span

    def cap(self) -> float:
        self.take()
        self.expect_word("max", "'max' and a cap, as in '(max 25 mg/h)'")
        value = self.quantity(Kind.RATE, "a rate cap such as '25 mg/h'")
        if self.peek() != ")":
            raise self.fail("')' to close the cap")
        self.take()
        return value

    # ---------------------------------------------------------------- meaning
    def events(self, route, value, per_kg, is_rate, over, titration, length, interval, count, span, cap, at, notes):
        if cap is not None and (cap <= 0 or not per_kg):
            raise InputError("regimen", self.text, "a cap '(max ...)' limits a weight-based dose (mg/kg/h or mg/kg "
                             "over a time) and must be > 0; an absolute rate such as mg/h is already the rate given")
        if titration is not None:
            return self.titration_events(route, value, per_kg, titration, length, cap, at, notes, interval, count)
        if not is_rate and over is None and interval is None and length is not None:
            raise InputError("regimen", self.text, "'for <duration>' after a single dose needs a repeat such as "
                             "'daily', 'q8h' or 'every 12 h'")
        if is_rate:
            if length is None:
                raise InputError("regimen", self.text, "an infusion rate needs its length: add 'for <duration>' "
                                 "(for example '20 mg/h IV for 5 d')")
            event = DoseEvent(at, value * length, route, rate=value, per_kg=per_kg, max_rate=cap)
        elif over is not None:
            if over <= 0:
                raise InputError("regimen", self.text, "'over' needs a duration > 0")
            event = DoseEvent(at, value, route, duration=over, per_kg=per_kg, max_rate=cap)
        else:
            event = DoseEvent(at, value, route, per_kg=per_kg)
        if interval is None:
            return [event]
        if count is None:
            if span is None and length is not None and not is_rate:
                span = length
            if span is None:
                count = max(1, round(24.0 / interval))
                notes.append(f"no treatment length given for '{self.text.strip()}': one day "
                             f"({count} dose{'s' if count > 1 else ''}) is shown; add 'for <duration>' or 'x <n>'")
            else:
                count = max(1, int(span // interval + (1 if span % interval > 1e-9 else 0)))
        check_no_overlap(event, interval, count, "regimen", self.text)
        return [replace(event, ii=interval, addl=count - 1)]

    def titration_events(self, route, start_rate, per_kg, titration, length, cap, at, notes, interval, count):
        step, every, target = titration
        if every <= 0:
            raise InputError("regimen", self.text, "the titration interval must be > 0")
        if step.per_kg != per_kg or target.per_kg != per_kg:
            raise InputError("regimen", self.text, "start, step and target rates must all be per kg or all absolute")
        if step.value <= 0:
            raise InputError("regimen", self.text, "the titration step must be > 0")
        if target.value < start_rate:
            raise InputError("regimen", self.text, "the target rate must not be below the starting rate")
        rates = []
        r = start_rate
        while r < target.value - 1e-9:
            rates.append(r)
            r = min(r + step.value, target.value)
        rates.append(target.value)
        ramp = every * (len(rates) - 1)
        if length is None:
            final = every
            notes.append(f"no total length given for the titration: the final rate is held for {every:g} h; "
                         "add 'for <duration>' to continue it")
        else:
            final = length - ramp
            if final <= 0:
                raise InputError("regimen", self.text, f"the titration takes {ramp:g} h, longer than the total "
                                 f"length {length:g} h")
        events = []
        t = at
        for i, rate in enumerate(rates):
            hours = every if i < len(rates) - 1 else final
            events.append(DoseEvent(t, rate * hours, route, rate=rate, per_kg=per_kg, max_rate=cap))
            t += hours
        if interval is not None:
            raise InputError("regimen", self.text, "repeating a titration is not supported; write each course")
        return events


def parse_regimen(text: str) -> Regimen:
    """Parse the regimen language (see the module docstring); raises :class:`InputError` naming the word."""
    if not isinstance(text, str):
        raise InputError("regimen", text, "a text such as '20 mg/h IV for 5 d' is required")
    try:
        return _Parser(text).regimen()
    except InputError:
        raise
    except Exception as exc:  # anything unforeseen in odd input still gets one sentence, never a traceback
        raise InputError("regimen", text, f"could not be read ({type(exc).__name__})") from None


def load_regimen(source: str | Path) -> Regimen:
    """A regimen from the language, or from a YAML file (``.yaml``/``.yml``) for anything longer.

    YAML: ``drug``, optional ``start`` ("2026-12-01 09:00") and ``doses``: a list of regimen texts, each
    optionally with ``at`` (an offset such as "2 h")::

        drug: racemic
        start: 2026-12-01 09:00
        doses:
          - 20 mg/h IV for 5 d every 11 weeks x 4
          - {text: 25 mg IN, at: 2 h}
    """
    text = str(source)
    if not text.lower().endswith((".yaml", ".yml")):
        return parse_regimen(text)
    path = Path(text)
    raw = read_yaml_file(path, "regimen", "the regimen file does not exist")
    if not isinstance(raw, dict) or not isinstance(raw.get("doses"), list) or not raw["doses"]:
        raise InputError(f"regimen file {path.name}", "its content", "needs a 'doses' list of regimen texts")
    regimens = []
    for i, item in enumerate(raw["doses"], start=1):
        entry = {"text": item} if isinstance(item, str) else item
        if not isinstance(entry, dict) or not isinstance(entry.get("text"), str):
            raise InputError(f"regimen file {path.name}: doses[{i}]", item, "each dose is a regimen text "
                             "or {text: ..., at: ...}")
        r = parse_regimen(entry["text"])
        if "at" in entry:
            r = r.shifted(parse(str(entry["at"]), Kind.DURATION, f"doses[{i}].at"))
        regimens.append(r)
    drug = str(raw.get("drug", regimens[0].drug))
    events = tuple(e for r in regimens for e in r.events)
    notes = tuple(n for r in regimens for n in r.notes)
    start = raw.get("start")
    if isinstance(start, str):
        try:
            start = datetime.strptime(start.strip(), "%Y-%m-%d %H:%M")
        except ValueError:
            raise InputError(f"regimen file {path.name}: start", start, "use YYYY-MM-DD HH:MM") from None
    return Regimen(events, start=start, drug=drug, label=path.name, notes=notes)
