"""Routes and drug forms side by side, at equal dose or at equal exposure.

Each scenario is one dose of a form (racemic or S-ketamine) by a route (IV as a short infusion).
*Equal dose* gives every scenario the same mg. *Equal exposure* scales each dose (PK is linear) so that
its potency-equivalent AUC matches racemic IV: S-ketamine AUC counts x 2 (S is about twice as potent as
the racemate, Peltoniemi 2016) - an extrapolation, and labelled so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ketaplan.errors import InputError
from ketaplan.models.library import thresholds
from ketaplan.models.thresholds import thresholds_for
from ketaplan.regimen.events import DoseEvent, Regimen, normalise_route
from ketaplan.regimen.safety import check_regimen
from ketaplan.simulation.course_levels import time_above
from ketaplan.simulation.patient import Patient
from ketaplan.simulation.predict import predict
from ketaplan.simulation.run import analyte_outputs, model_for


@dataclass(frozen=True)
class Scenario:
    form: str
    route: str


MAX_WINDOW_H = 168.0
"""Longest comparison window (h): one week at 30-second resolution."""


def scenario_regimen(s: Scenario, dose_mg: float, iv_over_h: float) -> Regimen:
    if s.route == "iv":
        event = DoseEvent(0.0, float(dose_mg), "iv", duration=float(iv_over_h))
    else:
        event = DoseEvent(0.0, float(dose_mg), s.route)
    return Regimen((event,), drug=s.form)


def compare(routes: list[str], forms: list[str], dose_mg: float, basis: str, patient: Patient, hours: float = 12.0,
            iv_over_h: float = 40 / 60) -> tuple[pd.DataFrame, dict[str, pd.DataFrame], list[str]]:
    """Table (one row per scenario), time courses, and notes."""
    if basis not in ("dose", "exposure"):
        raise InputError("--basis", basis, "allowed values are dose and exposure")
    if not (np.isfinite(dose_mg) and dose_mg > 0):
        raise InputError("--dose", dose_mg, "a dose > 0 mg is required")
    if not 0 < hours <= MAX_WINDOW_H:
        raise InputError("--hours", f"{hours:g} h", f"a window of more than 0 h and at most {MAX_WINDOW_H:g} h")
    if not 0 < iv_over_h < hours:
        raise InputError("--iv-over", f"{iv_over_h:g} h", f"an IV infusion shorter than the window (--hours "
                         f"{hours:g} h), so that exposures and bioavailability compare whole doses")
    if not routes:
        raise InputError("--routes", "", "give at least one route, for example iv,oral")
    if not forms:
        raise InputError("--forms", "", "give at least one form: racemic, s-ketamine or both")
    routes = [normalise_route(r) for r in routes]
    for f in forms:
        if f not in ("racemic", "s-ketamine"):
            raise InputError("--forms", f, "allowed forms are racemic and s-ketamine")
    potency = thresholds().potency_s_vs_racemic.value
    times = np.linspace(0.0, hours, int(hours * 120) + 1)  # every 30 s: the fastest distribution phase is ~0.4 min
    specs = {form: model_for(Regimen(tuple(_probe(r) for r in routes), drug=form), pd=()) for form in forms}
    if basis == "exposure" and "racemic" not in specs:
        specs["racemic-reference"] = model_for(Regimen((_probe("iv"),)), pd=())
    for form, spec in specs.items():
        missing = [r for r in routes if r not in spec.routes and form in forms]
        if missing:
            raise InputError("--routes", missing[0], f"the {form} model has {', '.join(sorted(spec.routes))}")

    def curve(s: Scenario, dose: float, spec) -> tuple[np.ndarray, np.ndarray | None]:
        frame = predict(spec, scenario_regimen(s, dose, iv_over_h), patient, times)
        parent, metabolite, _ = analyte_outputs(spec)
        return frame[parent].to_numpy(), (frame[metabolite].to_numpy() if metabolite else None)

    unit = {Scenario(f, r): np.trapezoid(curve(Scenario(f, r), 1.0, specs[f])[0], times) for f in forms for r in routes}
    if basis == "exposure":
        ref_spec = specs.get("racemic", specs.get("racemic-reference"))
        target = dose_mg * np.trapezoid(curve(Scenario("racemic", "iv"), 1.0, ref_spec)[0], times)
    rows, curves, notes = [], {}, []
    for s, auc1 in unit.items():
        form, route = s.form, s.route
        equivalent = auc1 * (potency if form == "s-ketamine" else 1.0)
        if basis == "dose":
            dose = dose_mg
        elif equivalent <= 0:
            rows.append({"form": form, "route": route, "dose_mg": np.nan, "note": "no systemic exposure"})
            notes.append(f"{form} {route}: no systemic absorption in the model, so no dose reaches equal exposure")
            continue
        else:
            dose = target / equivalent
        for f in check_regimen(scenario_regimen(s, dose, iv_over_h), patient.weight):  # refuses unit slips
            if f.severity == "warning":
                notes.append(f"{form} {route} {dose:.3g} mg: {f.message} ({f.source})")
        c, m = curve(s, dose, specs[form])
        iv_auc = unit.get(Scenario(form, "iv"))
        th = thresholds_for(form)
        row = {"form": form, "route": route, "dose_mg": dose, "systemic_F": auc1 / iv_auc if iv_auc else np.nan,
               "cmax_ng_ml": float(c.max()), "tmax_h": float(times[np.argmax(c)]),
               "auc_ng_h_ml": float(np.trapezoid(c, times)),
               "potency_equivalent_auc": float(np.trapezoid(c, times)) * (potency if form == "s-ketamine" else 1),
               "hours_above_analgesia": time_above(times, c, th["analgesia"].value),
               "hours_above_psychotomimetic": time_above(times, c, th["psychotomimetic"].value)}
        if m is not None:
            row["norketamine_auc_ng_h_ml"] = float(np.trapezoid(m, times))
        rows.append(row)
        curves[f"{form} {route} {dose:.3g} mg"] = pd.DataFrame({"time": times, "concentration": c})
    if "s-ketamine" in forms:
        notes.append(f"S-ketamine exposure counts x {potency:g} against racemic (potency ratio, Peltoniemi 2016): an "
                     "extrapolation; thresholds for S-ketamine are translated the same way.")
    notes.append(f"IV is given as an infusion over {iv_over_h * 60:.0f} min; other routes as one dose. Route data come "
                 "from each model's study or from the route tables (see `ketaplan models show`).")
    return pd.DataFrame(rows), curves, notes


def _probe(route: str) -> DoseEvent:
    """A placeholder dose by ``route``, so that the model gets that route's data."""
    return DoseEvent(0.0, 1.0, route)


