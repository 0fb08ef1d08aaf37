"""Quantities that people type, parsed and converted with one :mod:`pint` registry.

Internal units are fixed: hours, mg, L, mg/h and ng/mL. Everything a person types carries a
unit and is converted here; bare numbers are refused where a unit is needed. Per-body-weight
quantities ("0.35 mg/kg/h") are kept apart from plain ones by treating the ``/kg`` of a dose as
its own dimension, so "20 mg/kg/h" can never pass for a rate in mg/h and is never converted
without a body weight.

Doses are ketamine base unless marked as the hydrochloride salt; molar masses:
ketamine base 237.73 g/mol, ketamine HCl 274.19 g/mol, norketamine 223.70 g/mol
(computed from IUPAC atomic weights; see ``shared/reference/ketamine_literature.md`` §7.6).
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass
from enum import Enum

from ketaplan.errors import UnitError


def _import_pint():
    """pint, imported without its optional dask support.

    pint imports dask whenever dask is installed (about 0.15 s of every command's start-up), only to
    handle dask arrays of quantities, which ketaplan never makes; dask is hidden while pint is
    imported, and importable again right after.
    """
    if "dask" in sys.modules:
        import pint

        return pint
    sys.modules["dask"] = None  # importlib then reports dask as absent
    try:
        import pint
    finally:
        del sys.modules["dask"]
    return pint


pint = _import_pint()

MOLAR_MASS_G_PER_MOL: dict[str, float] = {
    "ketamine": 237.73,
    "ketamine_hcl": 274.19,
    "norketamine": 223.70,
}
"""Molar masses (g/mol) used for HCl <-> base and molar <-> mass concentration conversions."""

HCL_TO_BASE = MOLAR_MASS_G_PER_MOL["ketamine"] / MOLAR_MASS_G_PER_MOL["ketamine_hcl"]


def _registry() -> pint.UnitRegistry:
    """pint's registry, with its parsed definition files cached in the user's cache folder (pint's own).

    Parsing pint's definition files takes about 0.15 s of every command's start-up; pint's disk cache
    (keyed by the files' content, pint's and Python's version) makes it a few ms. A cache folder that
    cannot be created, read or written is skipped: the registry is then built from the files as before.
    """
    try:
        return pint.UnitRegistry(autoconvert_offset_to_baseunit=True, cache_folder=":auto:")
    except Exception:  # any failure of the optional cache falls back to parsing the files
        return pint.UnitRegistry(autoconvert_offset_to_baseunit=True)


ureg = _registry()
ureg.define("body_kg = [body_weight] = kgbw")
ureg.define("microgram_alt = microgram = mcg_")  # keep pint's own "mcg"/"ug"/"µg" spellings
Q_ = ureg.Quantity

_PER_KG = re.compile(r"/\s*kg\b")
_YEARS = re.compile(r"(?<=[\d.\s])(y|yr|yrs)\b")
_MONTHS = re.compile(r"(?<=[\d.\s])(mo|mos)\b")
_PER_KG_PAREN = re.compile(r"/\s*\(\s*kg\s*(\*|·|\.)\s*")
_STARTS_WITH_NUMBER = re.compile(r"^\s*[-+]?(\d|\.\d|nan|inf)", re.IGNORECASE)
_NUMBER_ONLY = re.compile(r"^\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*$")


class Kind(Enum):
    """What a quantity is for; fixes the allowed dimension and the internal unit."""

    AMOUNT = ("an amount such as '50 mg' or '500 ug'", "[mass]", "mg")
    AMOUNT_PER_KG = ("an amount per body weight such as '0.5 mg/kg'", "[mass]/[body_weight]", "mg/kgbw")
    RATE = ("an infusion rate such as '20 mg/h' or '0.5 mg/min'", "[mass]/[time]", "mg/h")
    RATE_PER_KG = (
        "a weight-based rate such as '0.35 mg/kg/h' or '5 ug/kg/min'",
        "[mass]/[body_weight]/[time]",
        "mg/kgbw/h",
    )
    DURATION = ("a duration such as '5 d', '4 h', '30 min' or '11 weeks'", "[time]", "h")
    VOLUME = ("a volume such as '50 mL' or '0.5 L'", "[length]**3", "mL")
    MASS_CONCENTRATION = ("a concentration such as '1 mg/mL' or '100 ng/mL'", "[mass]/[length]**3", "ng/mL")
    VOLUME_RATE = ("a pump rate such as '20 mL/h'", "[length]**3/[time]", "mL/h")
    BODY_WEIGHT = ("a body weight such as '80 kg'", "[mass]", "kg")

    def __init__(self, description: str, dimension: str, internal: str) -> None:
        self.description = description
        self.dimension = dimension
        self.internal = internal


_WEIGHT_BASED = {Kind.AMOUNT: Kind.AMOUNT_PER_KG, Kind.RATE: Kind.RATE_PER_KG}


@dataclass(frozen=True)
class Dose:
    """A dose amount or rate in internal units, remembering whether it was per kg body weight.

    ``value`` is mg (amount) or mg/h (rate), or mg/kg and mg/kg/h when ``per_kg`` is true.
    """

    value: float
    per_kg: bool
    text: str

    def absolute(self, weight_kg: float | None, field: str) -> float:
        """Value in mg or mg/h, multiplying by body weight for per-kg doses."""
        if not self.per_kg:
            return self.value
        if weight_kg is None:
            raise UnitError(field, self.text, "a per-kg dose needs the patient's body weight (for example --weight 80)")
        return self.value * weight_kg


def _prepare(text: str) -> str:
    s = text.strip().replace("µ", "u").replace("μ", "u")
    s = _YEARS.sub("year", s)
    s = _MONTHS.sub("month", s)
    s = _PER_KG_PAREN.sub("/kgbw/(", s)
    s = _PER_KG.sub("/kgbw", s)
    return s


def _parse(text: str | float | int, field: str, expected: str) -> pint.Quantity:
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise UnitError(field, text, f"expected {expected}")
    if isinstance(text, (int, float)) or _NUMBER_ONLY.match(text):
        raise UnitError(field, text, f"a unit is required: expected {expected}")
    if not _STARTS_WITH_NUMBER.match(text):
        raise UnitError(field, text, f"a number is required first: expected {expected}")
    try:
        q = Q_(_prepare(text))
    except (pint.errors.UndefinedUnitError, pint.errors.DefinitionSyntaxError) as exc:
        raise UnitError(field, text, f"unknown unit ({exc}); expected {expected}") from None
    except Exception:  # pint raises assorted parser errors for garbage text
        raise UnitError(field, text, f"could not read this quantity; expected {expected}") from None
    if not isinstance(q, pint.Quantity):
        raise UnitError(field, text, f"a unit is required: expected {expected}")
    magnitude = float(q.magnitude)
    if not math.isfinite(magnitude):
        raise UnitError(field, text, "the number must be finite")
    return q


def parse(text: str, kind: Kind, field: str = "quantity") -> float:
    """Parse ``text`` as a quantity of ``kind`` and return it in the kind's internal unit.

    Raises :class:`UnitError` for a bare number, an unknown unit or a wrong dimension (for
    example a rate where an amount is expected, or a per-kg dose where an absolute one is).
    """
    q = _parse(text, field, kind.description)
    if not q.check(kind.dimension):
        raise UnitError(field, text, _dimension_hint(q, kind))
    return _finite(float(q.to(kind.internal).magnitude), text, field)


def _finite(value: float, text: str, field: str) -> float:
    """A converted value; one that overflowed in the conversion (1e308 mg/mL in ng/mL) is refused."""
    if not math.isfinite(value):
        raise UnitError(field, text, "the number is too large to compute with")
    return value


MAX_LEVEL_NG_ML = 100_000.0
"""Drug levels at or above this are refused as unit slips: anaesthesia gives a few thousand ng/mL."""


def parse_level(text: str, field: str = "level") -> float:
    """A measured drug level in ng/mL; a value no patient can have is refused with the likely reason, the unit."""
    value = parse(text, Kind.MASS_CONCENTRATION, field)
    if value >= MAX_LEVEL_NG_ML:
        raise UnitError(field, text, f"that is more than {MAX_LEVEL_NG_ML:.0f} ng/mL, far above any ketamine level "
                        "(anaesthesia gives a few thousand ng/mL), so the unit is likely wrong; give the level in "
                        "ng/mL, e.g. '160 ng/mL'")
    if value <= 0:
        raise UnitError(field, text, "a measured level is above 0 ng/mL (mark a level below the limit of "
                        "quantification as BLQ with its limit)")
    return value


def parse_dose(text: str, kind: Kind, field: str = "dose") -> Dose:
    """Parse an amount or rate that may be absolute or per kg body weight.

    ``kind`` is :attr:`Kind.AMOUNT` or :attr:`Kind.RATE`; "0.5 mg/kg" and "0.35 mg/kg/h" are
    accepted as their per-kg forms and kept per kg until a weight is known.
    """
    if kind not in _WEIGHT_BASED:
        raise ValueError(f"parse_dose takes AMOUNT or RATE, not {kind}")
    q = _parse(text, field, f"{kind.description} or {_WEIGHT_BASED[kind].description}")
    if q.check(kind.dimension):
        return Dose(_finite(float(q.to(kind.internal).magnitude), text, field), per_kg=False, text=str(text))
    per_kg_kind = _WEIGHT_BASED[kind]
    if q.check(per_kg_kind.dimension):
        return Dose(_finite(float(q.to(per_kg_kind.internal).magnitude), text, field), per_kg=True, text=str(text))
    raise UnitError(field, text, _dimension_hint(q, kind, also=per_kg_kind))


def _dimension_hint(q: pint.Quantity, kind: Kind, also: Kind | None = None) -> str:
    given = _describe(q)
    expected = kind.description if also is None else f"{kind.description} or {also.description}"
    return f"this is {given}, but {expected} is expected"


def _describe(q: pint.Quantity) -> str:
    for k in Kind:
        if q.check(k.dimension):
            noun = k.description.split(" such as")[0]
            return noun
    if q.check("[substance]/[length]**3"):
        return "a molar concentration"
    if q.dimensionless:
        return "a plain number"
    return f"a quantity of dimension {q.dimensionality}"


def convert(value: float, from_unit: str, to_unit: str, analyte: str = "ketamine") -> float:
    """Convert ``value`` between units, including molar <-> mass concentrations of ``analyte``.

    ``analyte`` is 'ketamine' or 'norketamine' (molar masses 237.73 and 223.70 g/mol).
    """
    try:
        q = Q_(value, _prepare(from_unit))
        target = ureg.Unit(_prepare(to_unit))
    except Exception:
        raise UnitError("unit", f"{from_unit} -> {to_unit}", "unknown unit") from None
    if q.check(target.dimensionality):
        return float(q.to(target).magnitude)
    if analyte not in ("ketamine", "norketamine"):
        raise UnitError("analyte", analyte, "allowed analytes are 'ketamine' and 'norketamine'")
    molar_mass = Q_(MOLAR_MASS_G_PER_MOL[analyte], "g/mol")
    if q.check("[substance]/[length]**3") and Q_(1, target).check("[mass]/[length]**3"):
        return float((q * molar_mass).to(target).magnitude)
    if q.check("[mass]/[length]**3") and Q_(1, target).check("[substance]/[length]**3"):
        return float((q / molar_mass).to(target).magnitude)
    raise UnitError("unit", f"{from_unit} -> {to_unit}", "these units measure different things and cannot be converted")


def hcl_to_base(mg_hcl: float) -> float:
    """Ketamine hydrochloride mass (mg) to the equivalent ketamine base mass (mg)."""
    return mg_hcl * HCL_TO_BASE


def base_to_hcl(mg_base: float) -> float:
    """Ketamine base mass (mg) to the equivalent ketamine hydrochloride mass (mg)."""
    return mg_base / HCL_TO_BASE
