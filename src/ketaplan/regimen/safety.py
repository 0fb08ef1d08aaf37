"""Safety checks of a regimen and of its predicted levels, each finding naming its source.

Findings have a severity: ``refused`` (a dose that is almost certainly a unit slip or an anaesthetic
dose; the plan is refused unless forced, and the reason is kept as a warning), ``warning`` (outside the
usual range; never blocks, never passes unnoticed) and ``info`` (monitoring advice, context).
The ranges and their citations are data (``safety_rules.yaml``).
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from functools import lru_cache
from importlib import resources

from ketaplan._data import read_yaml
from ketaplan.errors import InputError
from ketaplan.regimen.courses import administrations, group_courses
from ketaplan.regimen.events import Regimen

SEVERITIES = ("refused", "warning", "info")


@dataclass(frozen=True)
class Finding:
    """One safety finding."""

    severity: str
    code: str
    message: str
    source: str

    def as_dict(self) -> dict:
        return asdict(self)


@lru_cache(maxsize=1)
def rules() -> dict:
    """The safety rules with their sources."""
    return read_yaml(resources.files("ketaplan.regimen") / "safety_rules.yaml")


def _cite(key: str) -> str:
    return " ".join(rules()["sources"][key].split())


def _short(key: str) -> str:
    return {"asra2018": "ASRA/AAPM/ASA 2018 consensus guideline", "goldberg2010": "Goldberg 2010",
            "schwartzman2009": "Schwartzman 2009", "ketcrps2": "KetCRPS-2 protocol", "noppers2011": "Noppers 2011",
            "zanos2018": "Zanos 2018", "aapract2020": "A A Pract 2020"}.get(key, key)


def check_regimen(regimen: Regimen, weight_kg: float, force: bool = False, purpose: str = "plan") -> list[Finding]:
    """Rates and doses against the usual ranges; raises :class:`InputError` for refused doses unless forced.

    With ``force`` the refusal is kept as a finding of severity 'refused' (shown everywhere). ``purpose`` says
    what the doses are for in the words of a refusal: "plan" (a plan) or "fit" (doses given, to be fitted).
    """
    r = rules()[regimen.drug]
    resolved = regimen.resolve(weight_kg)
    findings: list[Finding] = []
    for original, e in zip(regimen.events, resolved.events, strict=True):
        if e.evid == 3:
            continue
        hours = e.infusion_hours
        rate = e.rate if e.rate > 0 else (e.amount / hours if hours > 0 else 0.0)
        text = original_text(original)
        if e.route == "iv" and hours > 0.25:
            per_kg = rate / weight_kg
            limit = r["refuse_above_mg_per_kg_h"]
            if per_kg > limit["value"]:
                detail = (f"{rate:g} mg/h = {per_kg:.2f} mg/kg/h for {weight_kg:g} kg is above "
                          f"{limit['value']:g} mg/kg/h ({limit['note']}, {_short(limit['source'])}); a unit slip "
                          "such as mg/kg/h for mg/h or mg/min for mg/h is likely")
                findings.append(_refuse(text, detail, limit["source"], force, purpose))
                continue
            lo, hi = r["infusion_range_mg_per_kg_h"]["value"]
            if per_kg > hi:
                findings.append(Finding("warning", "rate_above_range",
                                        f"{text}: {per_kg:.2f} mg/kg/h is above the usual {lo:g}-{hi:g} mg/kg/h "
                                        f"({r['infusion_range_mg_per_kg_h']['note']})",
                                        _cite(r["infusion_range_mg_per_kg_h"]["source"])))
            lo_l, hi_l = r["long_infusion_range_mg_h"]["value"]
            if hours >= 24 and rate > hi_l:
                findings.append(Finding("warning", "long_infusion_above_range",
                                        f"{text}: {rate:g} mg/h for {hours:g} h is above the {lo_l:g}-{hi_l:g} mg/h "
                                        f"used for multi-day infusions ({r['long_infusion_range_mg_h']['note']})",
                                        _cite(r["long_infusion_range_mg_h"]["source"])))
            floor = r["refuse_below_mg_per_kg_h"]
            if per_kg < floor["value"]:
                detail = (f"{rate:g} mg/h = {per_kg:.3g} mg/kg/h for {weight_kg:g} kg is far below any analgesic rate "
                          f"(below {floor['value']:g} mg/kg/h, {floor['note']}); a unit slip such as ug/h for mg/h "
                          "is likely")
                findings.append(_refuse(text, detail, floor["source"], force, purpose))
                continue
            if rate < 1.0:
                findings.append(Finding("warning", "rate_far_below",
                                        f"{text}: {rate:g} mg/h is far below any analgesic rate; check the unit "
                                        "(ug/h typed for mg/h?)", _cite("asra2018")))
        if e.route == "iv" and hours <= 0.25:
            per_kg = e.amount / weight_kg
            limit = r["refuse_bolus_above_mg_per_kg"]
            if per_kg > limit["value"]:
                detail = (f"a bolus of {e.amount:g} mg = {per_kg:.2f} mg/kg is above {limit['value']:g} "
                          f"mg/kg ({limit['note']}, {_short(limit['source'])}); a unit slip is likely")
                findings.append(_refuse(text, detail, limit["source"], force, purpose))
                continue
            cap = r["bolus_max_mg_per_kg"]
            if per_kg > cap["value"]:
                findings.append(Finding("warning", "bolus_above_range",
                                        f"{text}: bolus {per_kg:.2f} mg/kg is above {cap['value']:g} mg/kg "
                                        f"({cap['note']})", _cite(cap["source"])))
        floor = r["refuse_dose_below_mg_per_kg"]
        if hours <= 0.25 and e.route != "topical" and e.amount / weight_kg < floor["value"]:
            detail = (f"{e.amount:g} mg = {e.amount / weight_kg:.3g} mg/kg for {weight_kg:g} kg is far below any "
                      f"analgesic dose (below {floor['value']:g} mg/kg, {floor['note']}); a unit slip such as ug for "
                      "mg is likely")
            findings.append(_refuse(text, detail, floor["source"], force, purpose))
            continue
        if e.amount < 1.0 and e.route != "topical":
            findings.append(Finding("warning", "dose_far_below",
                                    f"{text}: {e.amount:g} mg per dose is far below any analgesic dose; check the unit "
                                    "(ug typed for mg?)", _cite("asra2018")))
    if not any(f.code == "refused_forced" for f in findings):
        findings += _check_concurrent(resolved, weight_kg, r["refuse_above_mg_per_kg_h"], force, purpose)
    return findings


def peak_iv_rate(resolved: Regimen) -> tuple[float, float]:
    """The highest total rate (mg/h) of IV infusions running at the same time, and when it starts (h)."""
    admins = [a for a in administrations(resolved) if a.route == "iv" and a.end - a.start > 0.25]
    if not admins:
        return 0.0, 0.0
    changes = sorted([(a.start, 1, a.rate) for a in admins] + [(a.end, 0, -a.rate) for a in admins])
    peak, at, running = 0.0, 0.0, 0.0
    for time, _, change in changes:  # an infusion that ends where another starts does not overlap it
        running += change
        if running > peak * (1 + 1e-12):
            peak, at = running, time
    return peak, at


def _check_concurrent(resolved: Regimen, weight_kg: float, limit: dict, force: bool, purpose: str
                      ) -> list[Finding]:
    """Overlapping IV infusions (separate parts of a plan, or records of a dataset) add up: their total rate
    gets the same unit-slip check as a single one."""
    peak, at = peak_iv_rate(resolved)
    if peak / weight_kg <= limit["value"]:
        return []
    detail = (f"overlapping IV infusions add up to {peak:g} mg/h = {peak / weight_kg:.2f} mg/kg/h for "
              f"{weight_kg:g} kg, above {limit['value']:g} mg/kg/h ({limit['note']}, {_short(limit['source'])})")
    return [_refuse(f"IV infusions running together from {at:g} h", detail, limit["source"], force, purpose)]


_FORCED_WORDS = {"plan": ("plan it", "planned"), "fit": ("fit it", "fitted")}
"""What --force does with a refused dose, by purpose: (imperative, past participle)."""


def _refuse(text: str, detail: str, source: str, force: bool, purpose: str) -> Finding:
    verb, done = _FORCED_WORDS[purpose]
    if not force:
        raise InputError("dose", text, f"refused because {detail}; use --force to {verb} anyway")
    return Finding("refused", "refused_forced", f"{text}: {detail} ({done} anyway with --force)", _cite(source))


def original_text(e) -> str:
    """A short description of a dose event as the user gave it (per kg if so)."""
    unit = "mg/kg" if e.per_kg else "mg"
    if e.rate > 0:
        return f"{e.rate:g} {unit}/h {e.route.upper()}"
    if e.duration > 0:
        return f"{e.amount:g} {unit} {e.route.upper()} over {e.duration * 60:g} min"
    return f"{e.amount:g} {unit} {e.route.upper()}"


def check_courses(drug: str, courses, route_of_course: list[set[str]]) -> list[Finding]:
    """Cumulative dose per course, repeated long infusions (liver) and minimum totals."""
    r = rules()[drug]
    liver = rules()["liver"]
    findings: list[Finding] = []
    long_h = liver["long_infusion_hours"]["value"]
    window = liver["repeat_window_days"]["value"] * 24.0
    long_courses = [c for c in courses if any(a.end - a.start >= long_h for a in c.administrations)]
    if long_courses:
        findings.append(Finding("info", "liver_monitoring", " ".join(liver["monitoring"].split()),
                                _cite("noppers2011") + " " + _cite("aapract2020")))
    # infusion by infusion: infusions less than a week apart count as one course, and must not hide here
    long_infusions = [(c.index, a) for c in courses for a in c.administrations if a.end - a.start >= long_h]
    for (ca, a), (cb, b) in itertools.pairwise(long_infusions):
        gap = b.start - a.end
        if gap < window:
            where = f"courses {ca} and {cb} are" if ca != cb else f"two infusions of course {ca} are"
            apart = f"{gap / 24:.0f} days apart" if gap >= 0 else f"overlapping by {-gap / 24:.1f} days"
            findings.append(Finding("warning", "repeated_long_infusions",
                                    f"{where} long infusions {apart}: "
                                    f"drug-induced liver injury followed a second 100-h course 16 days after the "
                                    f"first in 3 of 6 patients; {liver['repeat_window_days']['note']}",
                                    _cite("noppers2011")))
    findings.append(cumulative_dose(courses))
    minimum = r["min_total_mg"]
    for c, routes in zip(courses, route_of_course, strict=True):
        if routes == {"iv"} and c.amount < minimum["value"]:
            findings.append(Finding("info", "below_minimum_total",
                                    f"course {c.index}: {c.amount:g} mg in total is below the suggested "
                                    f"{minimum['value']:g} mg ({minimum['note']})", _cite(minimum["source"])))
    return findings


def cumulative_dose(courses) -> Finding:
    """Cumulative dose per course and per year (no published limit exists; reported for review)."""
    year_h = 365.25 * 24
    totals: dict[int, list[float]] = {}
    for c in courses:
        for a in c.administrations:
            acc = totals.setdefault(int(a.start // year_h) + 1, [0.0, set()])
            acc[0] += a.amount
            acc[1].add(c.index)
    years = "; ".join(f"year {y}: {v[0]:.0f} mg in {len(v[1])} course{'s' if len(v[1]) != 1 else ''}"
                      for y, v in sorted(totals.items()))
    per_course = ", ".join(f"{c.amount:.0f}" for c in courses[:6]) + (" ..." if len(courses) > 6 else "")
    return Finding("info", "cumulative_dose", f"cumulative dose - per course (mg): {per_course}; {years}. No "
                   "published cumulative limit exists; review with liver tests for repeated long courses.",
                   _cite("noppers2011"))


def check_levels(courses, thresholds) -> list[Finding]:
    """Predicted levels above the psychotomimetic and awakening thresholds (never pass unnoticed).

    ``courses``: one mapping per course with ``course``, ``cmax_ng_ml`` and ``hours_above_psychotomimetic``.
    """
    findings: list[Finding] = []
    psycho = thresholds["psychotomimetic"]
    awake = thresholds["awakening"]
    for row in courses:
        if row["cmax_ng_ml"] > awake.value:
            findings.append(Finding("warning", "above_awakening",
                                    f"course {int(row['course'])}: predicted peak {row['cmax_ng_ml']:.0f} ng/mL is "
                                    f"above the {awake.label} level - loss of consciousness is likely", awake.source))
        if row["hours_above_psychotomimetic"] > 0:
            findings.append(Finding("warning", "above_psychotomimetic",
                                    f"course {int(row['course'])}: {row['hours_above_psychotomimetic']:.1f} h above "
                                    f"{psycho.label} - {_psychotomimetic_effects(row['cmax_ng_ml'], psycho)}",
                                    psycho.source))
    return findings


def _psychotomimetic_effects(cmax: float, psycho) -> str:
    """What a level above the psychotomimetic threshold means: where the literature gives a range, effects are
    expected only above its top; between the central value and the top they are possible."""
    if psycho.high is None or cmax > psycho.high:
        return "expect dissociation or other psychotomimetic effects"
    return (f"dissociation or other psychotomimetic effects are possible (peak {cmax:.0f} ng/mL; expected above "
            f"{psycho.high:g} ng/mL, the top of the reported range)")


def contraindications() -> tuple[list[str], str]:
    """The guideline's relative contraindications and its citation."""
    c = rules()["contraindications"]
    return list(c["items"]), _cite(c["source"])


def monitoring_schedule() -> tuple[list[str], str]:
    """Monitoring before, during and after a course, with its citation."""
    m = rules()["monitoring_schedule"]
    return list(m["items"]), _cite(m["source"])


def check_plan(regimen: Regimen, weight_kg: float, force: bool = False, purpose: str = "plan") -> list[Finding]:
    """Dose checks of a whole plan for one body weight, without simulating levels (rates, doses, courses);
    ``purpose`` as in :func:`check_regimen`."""
    findings = check_regimen(regimen, weight_kg, force, purpose)
    courses = group_courses(administrations(regimen.resolve(weight_kg)))
    findings += check_courses(regimen.drug, courses, [{a.route for a in c.administrations} for c in courses])
    return sorted(findings, key=lambda f: ("refused", "warning", "info").index(f.severity))
