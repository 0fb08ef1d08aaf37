"""The message catalog's upkeep: collect every message of the dashboard and add the new ones to the catalogs.

``python -m ketaplan.web.catalog`` adds messages that are new in the code or the templates to each language's
``messages.po`` (with an empty translation, for a translator to fill in), drops those the code no longer has,
and lists the ones still untranslated. Messages built from values elsewhere (refusals, dose checks; see
:mod:`ketaplan.web.i18n`) are added by hand and kept. The tests fail while any message lacks a translation.
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

KEYWORDS = {"_": None, "gettext": None, "N_": None, "ngettext": (1, 2), "pgettext": ((1, "c"), 2)}
METHODS = [("templates/**.html", "jinja2.ext:babel_extract"), ("**.py", "python")]


def web_dir() -> Path:
    return Path(str(resources.files("ketaplan.web")))


def po_path(language: str) -> Path:
    return web_dir() / "locale" / language / "LC_MESSAGES" / "messages.po"


def extract() -> dict[tuple[str | None, str], str | tuple[str, str]]:
    """Every message in the dashboard's code and templates: {(context, singular): id (a pair for plurals)}."""
    found: dict[tuple[str | None, str], str | tuple[str, str]] = {}
    for _file, _line, message, _comments, context in extract_from_dir(
            str(web_dir()), METHODS, keywords=KEYWORDS, options_map={"templates/**.html": {}}):
        key = message[0] if isinstance(message, tuple) else message
        found[(context, key)] = message
    return found


def update(language: str) -> list[str]:
    """Add the new messages to a language's catalog; returns the messages still without a translation."""
    path = po_path(language)
    if path.exists():
        with path.open("rb") as fh:
            catalog = read_po(fh, locale=language)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        catalog = Catalog(locale=language, project="ketaplan", fuzzy=False)
    found = extract()
    for m in list(catalog):  # messages of the code that are gone (messages with a context are kept)
        if m.id and m.context is None and (None, m.id if isinstance(m.id, str) else m.id[0]) not in found:
            catalog.delete(m.id)
    for (context, key), message in found.items():
        if catalog.get(key, context=context) is None:
            catalog.add(message, "" if isinstance(message, str) else ("", ""), context=context)
    with path.open("wb") as fh:
        write_po(fh, catalog, width=120, sort_output=False, omit_header=False)
    return [m.id if isinstance(m.id, str) else m.id[0] for m in catalog if m.id and not _translated(m)]


def _translated(message) -> bool:
    return all(message.string) if isinstance(message.string, (tuple, list)) else bool(message.string)


if __name__ == "__main__":
    missing = update(sys.argv[1] if len(sys.argv) > 1 else "nl")
    print("\n".join(missing) or "every message is translated")
