"""Regimens: immutable, ordered lists of dose events.

A :class:`Regimen` holds IV boluses, zero-order infusions (by rate or by duration),
extravascular doses by route, resets, and repeats (``every`` / ``courses``, kept compactly as
NONMEM's II / ADDL). Doses are ketamine base in mg (rates in mg/h, times in hours from the first
dose); per-kg doses stay per kg until :meth:`Regimen.resolve` is given a body weight.

Regimens convert to and from NONMEM-style records in :mod:`ketaplan.nonmem.records`; the engine
compiles them into dose records (:mod:`ketaplan.engine.dosing`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime

import numpy as np

from ketaplan.errors import InputError
from ketaplan.limits import DOSES_PER_PLAN
from ketaplan.regimen.units import Kind, hcl_to_base, parse, parse_dose

ROUTES = ("iv", "im", "oral", "intranasal", "sublingual", "rectal", "topical", "inhaled")
"""Routes of administration ketaplan knows; models say which of them they support."""

_ROUTE_ALIASES = {
    "iv": "iv", "intravenous": "iv", "im": "im", "intramuscular": "im", "po": "oral", "oral": "oral",
    "in": "intranasal", "nasal": "intranasal", "intranasal": "intranasal", "sl": "sublingual",
    "sublingual": "sublingual", "pr": "rectal", "rectal": "rectal", "topical": "topical",
    "inhaled": "inhaled",
}
DRUG_FORMS = ("racemic", "s-ketamine")


def normalise_route(route: str) -> str:
    """Canonical route name ('PO' -> 'oral', 'IN' -> 'intranasal', ...)."""
    key = str(route).strip().lower()
    if key not in _ROUTE_ALIASES:
        raise InputError("route", route, f"allowed routes are {', '.join(ROUTES)} (or IV, IM, PO, IN, SL, PR)")
    return _ROUTE_ALIASES[key]


@dataclass(frozen=True)
class DoseEvent:
    """One dose record. Amounts in mg (mg/kg when ``per_kg``), rates in mg/h (mg/kg/h), times in h.

    ``rate`` > 0 makes an infusion at that rate (bioavailability then changes its duration);
    ``duration`` > 0 makes an infusion of that duration (bioavailability changes its rate). With
    ``ii`` > 0 the dose is repeated ``addl`` more times. ``evid`` 3 is a reset, 4 a reset and dose.
    ``cmt`` pins a compartment number (datasets); otherwise the model maps ``route`` to one.
    ``max_rate`` caps a weight-based rate after resolving it (mg/h).
    """

    time: float
    amount: float
    route: str = "iv"
    rate: float = 0.0
    duration: float = 0.0
    per_kg: bool = False
    ii: float = 0.0
    addl: int = 0
    ss: int = 0
    evid: int = 1
    cmt: int | None = None
    max_rate: float | None = None

    def __post_init__(self) -> None:
        _check_event(self)

    @property
    def is_infusion(self) -> bool:
        return self.rate > 0 or self.duration > 0

    @property
    def infusion_hours(self) -> float:
        """Nominal infusion duration (before bioavailability), 0 for a bolus."""
        if self.duration > 0:
            return self.duration
        return self.amount / self.rate if self.rate > 0 else 0.0

    def dose_times(self) -> np.ndarray:
        """Start times of this dose and its repeats (h)."""
        return self.time + self.ii * np.arange(self.addl + 1)


def _check_event(e: DoseEvent) -> None:
    checks = [
        (e.time >= 0 and np.isfinite(e.time), "time", e.time, "times must be finite and >= 0 h"),
        (e.evid in (1, 3, 4), "evid", e.evid, "allowed values are 1 (dose), 3 (reset) and 4 (reset and dose)"),
        (e.amount >= 0 and np.isfinite(e.amount), "amount", e.amount, "doses must be finite and >= 0"),
        (e.rate >= 0 and np.isfinite(e.rate), "rate", e.rate, "rates must be finite and >= 0"),
        (e.duration >= 0 and np.isfinite(e.duration), "duration", e.duration, "durations must be >= 0 h"),
        (not (e.rate > 0 and e.duration > 0), "rate and duration", (e.rate, e.duration),
         "give an infusion's rate or its duration, not both"),
        (e.ii >= 0 and np.isfinite(e.ii), "every", e.ii, "intervals must be finite and >= 0 h"),
        (e.addl >= 0, "courses", e.addl + 1, "at least 1 course"),
        (e.addl == 0 or e.ii > 0, "every", e.ii, "repeated doses need an interval > 0"),
        (e.ss in (0, 1, 2), "ss", e.ss, "allowed values are 0, 1 and 2"),
        (e.route in ROUTES, "route", e.route, f"allowed routes are {', '.join(ROUTES)}"),
        (e.evid == 3 or e.amount > 0 or (e.ss > 0 and e.rate > 0), "amount", e.amount, "a dose must be > 0"),
    ]
    for ok, name, value, allowed in checks:
        if not ok:
            raise InputError(name, value, allowed)


@dataclass(frozen=True)
class Regimen:
    """An immutable, time-ordered sequence of dose events, with an optional calendar start."""

    events: tuple[DoseEvent, ...] = ()
    start: datetime | None = None
    drug: str = "racemic"
    label: str = ""
    notes: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.drug not in DRUG_FORMS:
            raise InputError("drug", self.drug, f"allowed forms are {', '.join(DRUG_FORMS)}")
        ordered = tuple(sorted(self.events, key=lambda e: e.time))
        object.__setattr__(self, "events", ordered)
        DOSES_PER_PLAN.check("regimen", sum(e.addl + 1 for e in ordered if e.evid != 3),
                             "give fewer repeats ('x N'), a longer interval or a shorter treatment")

    # ----------------------------------------------------------------- constructors
    @classmethod
    def infusion(
        cls,
        rate: str | None = None,
        *,
        duration: str | None = None,
        amount: str | None = None,
        every: str | None = None,
        courses: int = 1,
        at: str = "0 h",
        route: str = "iv",
        salt: str = "base",
        max_rate: str | None = None,
        drug: str = "racemic",
    ) -> Regimen:
        """A zero-order infusion given by rate and duration, or amount and duration, or amount and rate.

        Example: ``Regimen.infusion("20 mg/h", duration="5 d", every="11 weeks", courses=4)``.
        Rates may be per kg ("0.35 mg/kg/h"), resolved later with a weight.
        """
        start = parse(at, Kind.DURATION, "at")
        dur = parse(duration, Kind.DURATION, "duration") if duration is not None else None
        if rate is not None and amount is not None and dur is not None:
            raise InputError("infusion", "rate, amount and duration", "give two of rate, amount and duration")
        if rate is not None:
            r = parse_dose(rate, Kind.RATE, "rate")
            r_value = _salt(r.value, salt)
            if dur is not None:
                total = r_value * dur
            elif amount is not None:
                a = parse_dose(amount, Kind.AMOUNT, "amount")
                if a.per_kg != r.per_kg:
                    raise InputError("amount", amount, "amount and rate must both be per kg or both absolute")
                total = _salt(a.value, salt)
            else:
                raise InputError("infusion", rate, "give a duration (for example duration='5 d') or an amount")
            if dur is not None and dur <= 0:
                raise InputError("duration", duration, "an infusion needs a duration > 0")
            event = DoseEvent(start, total, _route(route), rate=r_value, per_kg=r.per_kg,
                              max_rate=_max_rate(max_rate))
        else:
            if amount is None or dur is None:
                raise InputError("infusion", "missing", "give rate and duration, or amount and duration")
            if dur <= 0:
                raise InputError("duration", duration, "an infusion needs a duration > 0")
            a = parse_dose(amount, Kind.AMOUNT, "amount")
            event = DoseEvent(start, _salt(a.value, salt), _route(route), duration=dur, per_kg=a.per_kg,
                              max_rate=_max_rate(max_rate))
        return cls((_repeat(event, every, courses),), drug=drug)

    @classmethod
    def bolus(
        cls,
        dose: str,
        *,
        route: str = "iv",
        every: str | None = None,
        courses: int = 1,
        at: str = "0 h",
        salt: str = "base",
        drug: str = "racemic",
    ) -> Regimen:
        """An instantaneous dose by ``route`` (IV bolus or an extravascular dose), optionally repeated."""
        d = parse_dose(dose, Kind.AMOUNT, "dose")
        event = DoseEvent(parse(at, Kind.DURATION, "at"), _salt(d.value, salt), _route(route), per_kg=d.per_kg)
        return cls((_repeat(event, every, courses),), drug=drug)

    @classmethod
    def of(cls, events: Iterable[DoseEvent], **kw) -> Regimen:
        """A regimen from explicit events."""
        return cls(tuple(events), **kw)

    # ----------------------------------------------------------------- combining
    def __add__(self, other: Regimen) -> Regimen:
        if not isinstance(other, Regimen):
            return NotImplemented
        if other.drug != self.drug:
            raise InputError("drug", other.drug, f"cannot combine with a {self.drug} regimen")
        return replace(self, events=self.events + other.events)

    def shifted(self, hours: float) -> Regimen:
        """The same regimen starting ``hours`` later."""
        return replace(self, events=tuple(replace(e, time=e.time + hours) for e in self.events))

    def with_start(self, start: datetime) -> Regimen:
        """The same regimen anchored to a calendar date and clock time."""
        return replace(self, start=start)

    # ----------------------------------------------------------------- queries
    @property
    def needs_weight(self) -> bool:
        return any(e.per_kg for e in self.events)

    @property
    def routes(self) -> tuple[str, ...]:
        return tuple(sorted({e.route for e in self.events if e.evid != 3}))

    def end_time(self) -> float:
        """Time (h) when the last dose (including infusion time) ends."""
        ends = [float(e.dose_times()[-1] + e.infusion_hours) for e in self.events if e.evid != 3]
        return max(ends, default=0.0)

    def total_amount(self, weight_kg: float | None = None) -> float:
        """Total drug given (mg), all repeats included."""
        r = self.resolve(weight_kg)
        return float(sum(e.amount * (e.addl + 1) for e in r.events if e.evid != 3))

    def resolve(self, weight_kg: float | None) -> Regimen:
        """Absolute doses (mg, mg/h) for a patient of ``weight_kg``; caps applied."""
        if not self.needs_weight:
            return self
        if weight_kg is None:
            first = next(e for e in self.events if e.per_kg)
            unit = "mg/kg/h" if first.rate > 0 else "mg/kg"
            raise InputError("weight", None, f"this regimen is dosed in {unit} and needs the patient's body "
                             "weight (for example --weight 80)")
        if not (np.isfinite(weight_kg) and 1 <= weight_kg <= 400):
            raise InputError("weight", weight_kg, "body weight must be between 1 and 400 kg")
        resolved = []
        for e in self.events:
            if not e.per_kg:
                resolved.append(e)
                continue
            amount, rate = e.amount * weight_kg, e.rate * weight_kg
            if e.max_rate is not None and rate > e.max_rate:
                hours = amount / rate
                rate = e.max_rate
                amount = rate * hours
            resolved.append(replace(e, amount=amount, rate=rate, per_kg=False))
        return replace(self, events=tuple(resolved))



def _route(route: str) -> str:
    return normalise_route(route)


def _salt(value: float, salt: str) -> float:
    s = salt.strip().lower()
    if s in ("base", "free base"):
        return value
    if s in ("hcl", "hydrochloride", "ketamine hcl"):
        return hcl_to_base(value)
    raise InputError("salt", salt, "allowed values are 'base' and 'HCl'")


def _max_rate(text: str | None) -> float | None:
    return None if text is None else parse(text, Kind.RATE, "max rate")


def _repeat(event: DoseEvent, every: str | None, courses: int) -> DoseEvent:
    if isinstance(courses, bool) or not isinstance(courses, (int, np.integer)) or courses < 1:
        raise InputError("courses", courses, "a whole number >= 1 is required")
    if every is None:
        if courses > 1:
            raise InputError("every", None, "repeated courses need an interval (for example every='11 weeks')")
        return event
    ii = parse(every, Kind.DURATION, "every")
    if ii <= 0:
        raise InputError("every", every, "the interval must be > 0")
    check_no_overlap(event, ii, courses, "every", every)
    return replace(event, ii=ii, addl=courses - 1)


def check_no_overlap(event: DoseEvent, interval: float, courses: int, field: str, value: object) -> None:
    """Refuse repeats of an infusion that start before the previous one ends: the copies would run at once and
    add up (20 mg/h every 1 h x 100 is 100 infusions together, 2,000 mg/h), which no plan means."""
    hours = event.infusion_hours
    if courses > 1 and hours > interval * (1 + 1e-9):
        together = min(courses, int(np.ceil(hours / interval - 1e-9)))
        raise InputError(field, value, f"each infusion lasts {hours:g} h but starts again every {interval:g} h, so "
                         f"{together:,} would run at once; repeat at intervals of at least {hours:g} h, or give one "
                         "infusion at the total rate")
