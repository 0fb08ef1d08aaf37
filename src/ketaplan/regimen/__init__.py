"""The regimen layer: quantities with units, dose events, the regimen language, courses and dose checks.

Modules: :mod:`~ketaplan.regimen.units` (one pint registry), :mod:`~ketaplan.regimen.events`
(:class:`Regimen`, :class:`DoseEvent`), :mod:`~ketaplan.regimen.text` (the regimen language),
:mod:`~ketaplan.regimen.courses` (doses given, grouped into courses) and :mod:`~ketaplan.regimen.safety`
(dose checks with their sources). Imports only :mod:`ketaplan.errors`.
"""

from ketaplan._lazy import lazy_exports

_EXPORTS = {
    "DoseEvent": "ketaplan.regimen.events",
    "Regimen": "ketaplan.regimen.events",
    "ROUTES": "ketaplan.regimen.events",
    "DRUG_FORMS": "ketaplan.regimen.events",
    "normalise_route": "ketaplan.regimen.events",
    "parse_regimen": "ketaplan.regimen.text",
    "load_regimen": "ketaplan.regimen.text",
    "Administration": "ketaplan.regimen.courses",
    "Course": "ketaplan.regimen.courses",
    "administrations": "ketaplan.regimen.courses",
    "group_courses": "ketaplan.regimen.courses",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
