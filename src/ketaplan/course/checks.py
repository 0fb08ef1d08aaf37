"""Checks every value typed into the clinic record passes: text, identifiers, dates.

Text may not hold invisible or direction-changing characters: control characters (C0 and C1), format
characters (bidi overrides such as U+202E, zero-width spaces and joiners, the byte-order mark), private-use,
unassigned and surrogate code points, and line or paragraph separators. Patient codes and user names are
NFKC-normalised (full-width letters and digits become ASCII) and then limited to ASCII letters, digits and a
few punctuation marks, so no two of them can look alike ("КР-0001" in Cyrillic, "KP-٠٠٠١" with Arabic-Indic
digits are refused); they are unique without regard to case.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime, timedelta

from ketaplan.errors import InputError

EARLIEST = datetime(1950, 1, 1)
CLOCK_SKEW = timedelta(minutes=5)
"""Entries of things given or measured may lie this far after the server's clock (a workstation's clock)."""
_REFUSED_CATEGORIES = {"Cc", "Cf", "Co", "Cn", "Cs", "Zl", "Zp"}


def now() -> datetime:
    """The clinic's local time, to the second."""
    return datetime.now().replace(microsecond=0)


def check(ok: bool, field: str, value, allowed: str) -> None:
    """Raise :class:`InputError` (field, value, what is allowed) unless ``ok``."""
    if not ok:
        raise InputError(field, value, allowed)


def check_time(t: datetime | date, field: str, future_years: int = 2) -> None:
    """Refuse dates outside 1950 .. now + ``future_years`` (typos such as 0026 for 2026); for plans."""
    value = t if isinstance(t, datetime) else datetime(t.year, t.month, t.day)
    latest = now().replace(month=1, day=1, hour=0, minute=0, second=0) + timedelta(days=366 * (future_years + 1))
    check(EARLIEST <= value <= latest, field, value.isoformat(sep=" "),
          f"a date between {EARLIEST:%Y-%m-%d} and {latest:%Y-%m-%d}")


def check_past(t: datetime | date, field: str) -> None:
    """Refuse a moment after now (what was given or measured has happened) or before 1950."""
    value = t if isinstance(t, datetime) else datetime(t.year, t.month, t.day)
    latest = now() + CLOCK_SKEW
    check(value >= EARLIEST, field, value.isoformat(sep=" "), f"a date from {EARLIEST:%Y-%m-%d} on")
    check(value <= latest, field, value.isoformat(sep=" "),
          "a moment that has already happened (only plans can lie in the future)")


def clean_text(value: str, field: str, max_length: int, multiline: bool = False) -> str:
    """Stripped text without invisible or direction-changing characters, 1 to ``max_length`` characters.

    Multi-line text keeps its line breaks (and tabs); Windows line ends become plain ones.
    """
    text = (value or "").replace("\r\n", "\n").replace("\r", "\n").strip()
    allowed = "\n\t" if multiline else ""
    bad = next((c for c in text if c not in allowed and unicodedata.category(c) in _REFUSED_CATEGORIES), None)
    check(bad is None, field, f"U+{ord(bad):04X}" if bad else "",
          "text without control, invisible or direction-changing characters")
    check(len(text) > 0, field, "empty", "some text")
    check(len(text) <= max_length, field, f"{len(text)} characters", f"at most {max_length} characters")
    return text


_CODE = re.compile(r"^[A-Z0-9][A-Z0-9_-]{0,31}$")
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def patient_code(value: str) -> str:
    """A pseudonymous patient code: NFKC, upper case, ASCII letters, digits, '-' and '_' (1-32 characters)."""
    code = unicodedata.normalize("NFKC", (value or "").strip()).upper()
    check(bool(_CODE.match(code)), "code", (value or "").strip()[:40],
          "1-32 characters: letters A-Z, digits 0-9, '-' or '_', starting with a letter or digit (a pseudonym, "
          "not a name)")
    return code


def username(value: str) -> str:
    """A user name: NFKC, lower case, ASCII letters, digits, '.', '-' and '_' (1-64 characters)."""
    name = unicodedata.normalize("NFKC", (value or "").strip()).lower()
    check(bool(_USERNAME.match(name)), "username", (value or "").strip()[:70],
          "1-64 characters: letters a-z, digits 0-9, '.', '-' or '_', starting with a letter or digit")
    return name
