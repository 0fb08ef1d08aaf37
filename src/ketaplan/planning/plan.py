"""The main job: simulate a regimen for a patient, summarise each course, check safety.

``simulate("20 mg/h IV for 5 d every 11 weeks x 4", weight=80, age=59, sex="male")`` returns a
:class:`SimulationFrame`: the time course as a DataFrame (columns id, time, [date], concentrations,
effect sites, relief, pain score) with ``.summary`` (one row per course), ``.findings`` (safety
warnings with their sources), ``.spec`` (the model with its citations) and ``.notes``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import numpy as np
import pandas as pd

from ketaplan.errors import InputError
from ketaplan.models.learned import with_values
from ketaplan.models.spec import ModelSpec
from ketaplan.regimen.events import Regimen
from ketaplan.regimen.safety import Finding, check_courses, check_levels, check_regimen
from ketaplan.regimen.text import load_regimen
from ketaplan.simulation.patient import Patient
from ketaplan.simulation.run import PatientRun, check_overrides, model_for, relief_layer, run_patient
from ketaplan.simulation.summary import course_summary


class SimulationFrame(pd.DataFrame):
    """A time-course DataFrame that also carries the per-course summary, findings and model."""

    _metadata: ClassVar[list[str]] = ["summary", "findings", "spec", "notes", "run", "settings", "relief_spread"]

    @property
    def _constructor(self):
        return SimulationFrame

    def to_json_dict(self) -> dict:
        """Summary, findings, model and citations as plain data (for --json)."""
        summary = self.summary.copy()
        for col in summary.columns:
            if pd.api.types.is_datetime64_any_dtype(summary[col]) or summary[col].dtype == object:
                summary[col] = summary[col].astype(str)
        return {
            "regimen": self.run.regimen.label,
            "patient": {"weight_kg": self.run.patient.weight, "age": self.run.patient.age, "sex": self.run.patient.sex,
                        "height_cm": self.run.patient.height},
            "settings": self.settings,
            "model": {"id": self.spec.id, "title": self.spec.title,
                      "citations": [c.text for c in self.spec.citations], "caveats": list(self.spec.caveats)},
            "summary": summary.replace({np.nan: None, np.inf: None}).to_dict(orient="records"),
            "relief": None if getattr(self, "relief_spread", None) is None else {
                "p_response": self.relief_spread.p_response, "p_response_90": self.relief_spread.p_response_90,
                "threshold": self.relief_spread.threshold, "draws": self.relief_spread.draws,
                "parameter_uncertainty": self.relief_spread.parameter_uncertainty,
                "meaning": "relief_days_* and next_due_*_h: 5th percentile, median and 95th percentile over "
                           "patients like this one who respond; null: still relieved when the next course starts "
                           "or at the end"},
            "findings": [f.as_dict() for f in self.findings],
            "notes": list(self.notes),
            "disclaimer": "Decision support for clinicians and researchers, not a prescription.",
        }


def simulate(
    regimen: str | Regimen,
    patient: Patient | None = None,
    *,
    weight: float | None = None,
    age: float | None = None,
    sex: str | None = None,
    height: float | None = None,
    model: str | ModelSpec | None = None,
    pd_models: tuple[str, ...] | None = None,
    until: float | None = None,
    relief_threshold: float = 0.3,
    baseline_pain: float | None = None,
    overrides: Mapping[str, float] | None = None,
    force: bool = False,
    s_fraction: float = 0.5,
    spread: bool = True,
) -> SimulationFrame:
    """Simulate a regimen (text, YAML file or :class:`Regimen`) for one patient; see the module docstring.

    ``until`` is the end of the simulation in hours from the first dose (default: 12 weeks after the
    last dose). ``relief_threshold`` is the predicted relief (fraction of baseline pain, responder)
    below which the next course is due. Doses outside the usual ranges produce warnings; doses that
    are almost certainly unit slips are refused (:class:`InputError`) unless ``force``. ``spread`` adds the
    spread of relief duration over patients like this one (median and 90 % interval, :mod:`relief_spread`).
    """
    reg = load_regimen(regimen) if isinstance(regimen, str) else regimen
    pat = patient if patient is not None else Patient(weight if weight is not None else _missing_weight(),
                                                      age, sex, height)
    if not 0 < relief_threshold < 1:
        raise InputError("relief threshold", relief_threshold, "a fraction between 0 and 1 (for example 0.3)")
    if baseline_pain is not None and not 0 <= baseline_pain <= 10:
        raise InputError("baseline pain", baseline_pain, "an NRS score between 0 and 10")
    findings: list[Finding] = check_regimen(reg, pat.weight, force)
    spec = model_for(reg, model, pd_models, s_fraction)
    check_overrides(spec, overrides)
    run = run_patient(reg, pat, spec, until, dict(overrides or {}), baseline_pain)
    summary = course_summary(run, relief_threshold)
    routes = [{a.route for a in c.administrations} for c in run.courses]
    findings += check_courses(reg.drug, run.courses, routes)
    findings += check_levels(summary.to_dict(orient="records"), run.thresholds)
    horizon = float(run.frame["time"].iloc[-1])
    cut = [c for c in run.courses if c.end > horizon]
    if cut:
        findings.append(Finding("warning", "horizon_inside_course",
                                f"the simulation ends at {horizon:g} h, inside course {cut[0].index} (which ends at "
                                f"{cut[0].end:g} h): its numbers cover only part of it; extend --until",
                                "ketaplan"))
    from ketaplan.planning.relief_spread import relief_spread

    spread_spec = with_values(spec, overrides, "--set") if overrides else spec
    frame = SimulationFrame(run.frame)
    frame.relief_spread = relief_spread(spread_spec, reg, pat, relief_threshold) if spread else None
    frame.summary = with_spread(summary, frame.relief_spread)
    frame.findings = sorted(findings, key=lambda f: ("refused", "warning", "info").index(f.severity))
    frame.spec = spec
    frame.run = run
    frame.notes = list(reg.notes) + _relief_notes(spec, relief_threshold)
    frame.settings = {"relief_threshold": relief_threshold, "baseline_pain": baseline_pain,
                      "until_h": float(run.frame["time"].iloc[-1]), "s_fraction": s_fraction,
                      "overrides": dict(overrides or {})}
    return frame


def _missing_weight() -> float:
    raise InputError("weight", None, "give the patient's body weight in kg (for example weight=80 or --weight 80)")


def _relief_notes(spec: ModelSpec, threshold: float) -> list[str]:
    layer = relief_layer(spec)
    if layer is None:
        return []
    p = spec.parameters[layer.p_response].value if isinstance(layer.p_response, str) else layer.p_response
    source = "Dahan 2011" if spec.uncertainty is None else spec.uncertainty.source
    spread = ("between-patient variability" if spec.uncertainty is None else
              "between-patient variability and the uncertainty of its learned values")
    return [f"Probability of response {p:.0%} ({source}). How long relief lasts and when the next course is due "
            f"are the median and 90 % interval over patients like this one who respond, from the model's "
            f"{spread}; the next course is due when relief falls below {threshold:.0%} of "
            "baseline pain. A non-responder gets no lasting relief."]


def with_spread(summary: pd.DataFrame, spread) -> pd.DataFrame:
    """The per-course summary with the spread of relief and next-course time (median, 5th and 95th
    percentile; infinite: still relieved when the next course starts or at the end) and the probability of
    response."""
    if spread is None or len(summary) != len(spread.courses):
        return summary
    out = summary.copy()
    for key, index in (("p5", 0), ("median", 1), ("p95", 2)):
        out[f"relief_days_{key}"] = [c.days[index] for c in spread.courses]
        out[f"next_due_{key}_h"] = [c.due_h[index] for c in spread.courses]
    out["p_response"] = spread.p_response
    return out


def run_of(frame: SimulationFrame) -> PatientRun:
    """The underlying :class:`~ketaplan.simulation.PatientRun` of a simulation result."""
    return frame.run
