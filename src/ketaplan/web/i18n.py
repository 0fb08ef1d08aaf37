"""Dutch and English: message catalogs (Babel/gettext), the reader's language, dates and numbers in its format.

The catalogs are the ``.po`` files in ``web/locale``, shipped with the package and compiled in memory when
first used (no compiled ``.mo`` files are needed). English is the source language. Messages built from
values elsewhere (the record's refusals, the dose checks) are looked up as templates: every quoted word,
date, number and list of numbers becomes ``{0}``, ``{1}``, ... and is put back after translation, numbers in the
reader's format. With ``strict`` a message without a translation raises :class:`MissingTranslation` (the tests
run so); otherwise it is logged and shown in English.
"""

from __future__ import annotations

import io
import logging
import math
import re
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from importlib import resources

from babel.dates import format_date, format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from babel.support import NullTranslations, Translations

from ketaplan.errors import InputError

LANGUAGES = ("nl", "en")
"""Languages of the dashboard; the first is the default when the clinic names none."""
LANGUAGE_NAMES = {"nl": "Nederlands", "en": "English"}
log = logging.getLogger("ketaplan.web")
_VALUE = re.compile(r"'[^']*'|\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2})?)?"
                    r"|(?<![\w.])\d+(?:\.\d+)?(?:, \d+(?:\.\d+)?)*(?!\w)")


def N_(message: str) -> str:
    """Mark a message for the catalog where it is defined (it is translated where it is shown)."""
    return message


STATE_VALUES = frozenset({"empty", "not given", "not recorded", "not ticked", "incomplete", "none chosen",
                          "too short", "wrong", "no rows"})
"""Values of refusals that say what is missing rather than what was typed."""
_LENGTH = re.compile(r"\d+ characters")


class MissingTranslation(LookupError):
    """A message has no translation in the reader's language (raised only in strict mode)."""


def _template_key(text: str) -> tuple[str, list[str]]:
    """The catalog key of a message built from values ({0}, {1}, ... in their places) and the values."""
    found = _VALUE.findall(text)
    counter = iter(range(len(found)))
    return _VALUE.sub(lambda _: f"{{{next(counter)}}}", text), found


@lru_cache(maxsize=len(LANGUAGES))
def catalog(language: str) -> NullTranslations:
    """The compiled catalog of a language (English: the messages themselves)."""
    if language == "en":
        return NullTranslations()
    path = resources.files("ketaplan.web") / "locale" / language / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as fh:
        po = read_po(fh, locale=language)
    buf = io.BytesIO()
    write_mo(buf, po)
    buf.seek(0)
    return Translations(buf)


@lru_cache(maxsize=len(LANGUAGES))
def known_messages(language: str) -> frozenset[str]:
    """The message ids that have a translation (for strict lookups)."""
    if language == "en":
        return frozenset()
    path = resources.files("ketaplan.web") / "locale" / language / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as fh:
        po = read_po(fh, locale=language)
    return frozenset((m.context, m.id if isinstance(m.id, str) else m.id[0]) for m in po if m.id and m.string
                     and (m.string if isinstance(m.string, str) else m.string[0]))


def negotiate(accept_language: str | None) -> str | None:
    """The best of :data:`LANGUAGES` for an Accept-Language header, or None."""
    prefs = []
    for i, part in enumerate((accept_language or "").split(",")):
        tag, _, q = part.strip().partition(";q=")
        try:
            weight = float(q) if q else 1.0
        except ValueError:
            continue
        if tag and weight > 0:
            prefs.append((-weight, i, tag.strip().lower()))
    for _, _, tag in sorted(prefs):
        base = tag.split("-")[0]
        if base in LANGUAGES:
            return base
    return None


@dataclass(frozen=True)
class Translator:
    """Messages, dates and numbers in one language."""

    language: str
    strict: bool = False

    def _lookup(self, message: str, context: str | None = None) -> str:
        if self.language != "en" and (context, message) not in known_messages(self.language):
            if self.strict:
                raise MissingTranslation(f"{self.language}: {context + ' | ' if context else ''}{message!r}")
            log.warning("no %s translation for a message", self.language)
            return message
        cat = catalog(self.language)
        return cat.pgettext(context, message) if context else cat.gettext(message)

    def gettext(self, message: str, **values) -> str:
        """The message in this language, with ``%(name)s`` values filled in."""
        text = self._lookup(message)
        return text % values if values else text

    def ngettext(self, singular: str, plural: str, n: int, **values) -> str:
        """Singular or plural by ``n`` (``%(num)s`` is n)."""
        if self.language != "en" and self.strict and (None, singular) not in known_messages(self.language):
            raise MissingTranslation(f"{self.language}: {singular!r}")
        text = catalog(self.language).ngettext(singular, plural, n)
        return text % {"num": self.number(n), **values}

    def pgettext(self, context: str, message: str) -> str:
        return self._lookup(message, context)

    def template(self, text: str, context: str = "message") -> str:
        """A message built from values (a refusal, a dose check): translated with its values put back."""
        key, found = _template_key(text)
        translated = self._lookup(key, context) if self.language != "en" else key
        shown = [self.number(float(v)) if re.fullmatch(r"\d+(?:\.\d+)?", v) else v for v in found]
        return translated.format(*shown)

    def optional(self, text: str, context: str = "message") -> tuple[str, str]:
        """A technical message (a fit's warning) and its language: translated where the catalog has it, else
        as written, in English (even in strict mode: such messages are many and come from the numerics)."""
        if self.language != "en" and (context, _template_key(text)[0]) in known_messages(self.language):
            return self.template(text, context), self.language
        return text, "en"

    def error(self, exc: InputError) -> str:
        """A refusal in one sentence: field, value, what is allowed. Where the value only says what is missing
        ('empty', 'not ticked'), the sentence names the field and what is needed."""
        field, allowed = self.template(exc.field, "field"), self.template(exc.allowed)
        field = field[:1].upper() + field[1:]  # the sentence's first word
        value = exc.value
        if isinstance(value, str) and value in STATE_VALUES:
            return self.gettext("%(field)s: %(allowed)s.", field=field, allowed=allowed)
        if isinstance(value, float):
            value = self.number(value)
        elif isinstance(value, str):
            value = f"'{self.template(value, 'value') if _LENGTH.fullmatch(value) else value}'"
        return self.gettext("%(field)s: got %(value)s; %(allowed)s.", field=field, value=value, allowed=allowed)

    def number(self, value: float, digits: int = 3) -> str:
        """A number in this language's format (no thousands separator: years stay 2026), up to ``digits``
        decimals and without trailing zeros; "-" for a missing one (NaN)."""
        if value is None or not math.isfinite(float(value)):
            return "-"
        return format_decimal(round(float(value), digits), format="0." + "#" * digits if digits else "0",
                              locale=self.language)

    def percent(self, fraction: float | None, digits: int = 0) -> str:
        """A fraction as a percentage ("66 %"), "-" for a missing one."""
        if fraction is None or not math.isfinite(float(fraction)):
            return "-"
        return f"{self.number(100 * float(fraction), digits)} %"

    def date(self, value: date | datetime | str | None, style: str = "d MMM yyyy") -> str:
        if value is None:
            return "-"
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return format_date(value, style, locale=self.language)

    def datetime(self, value: datetime | str | None) -> str:
        if value is None:
            return "-"
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return format_datetime(value, "d MMM yyyy HH:mm", locale=self.language)

    def month(self, value: date) -> str:
        return format_date(value, "MMM yyyy", locale=self.language)
