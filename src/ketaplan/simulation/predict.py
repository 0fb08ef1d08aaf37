"""Concentrations of a patient under a regimen at chosen times: the pipeline a user can say aloud.

``predict(load_model("domino_racemic_3cmt"), Regimen.parse("20 mg/h IV for 5 d"), Patient(80))``
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ketaplan.engine.build import build
from ketaplan.errors import InputError
from ketaplan.limits import OUTPUT_POINTS_PER_PATIENT
from ketaplan.models.library import load_model
from ketaplan.models.spec import ModelSpec
from ketaplan.regimen.events import Regimen
from ketaplan.simulation.patient import Patient
from ketaplan.simulation.run import check_horizon, solve_patient


def predict(
    model: ModelSpec | str,
    regimen: Regimen,
    patient: Patient,
    times: Sequence[float] | np.ndarray,
    outputs: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Predicted concentrations (ng/mL) at ``times`` (h from the first dose), one column per output.

    Columns: ``id``, ``time`` and each output (default: every observable of the model).
    """
    spec = load_model(model)
    if regimen.drug != spec.drug:
        raise InputError("model", spec.id, f"describes {spec.drug}, but the regimen gives {regimen.drug}; "
                         "choose a model for that drug form")
    times = np.asarray(times, dtype=float)
    if times.ndim != 1 or len(times) == 0 or np.any(~np.isfinite(times)):
        raise InputError("times", "these times", "give a non-empty list of finite times in hours")
    OUTPUT_POINTS_PER_PATIENT.check("times", len(times), "ask for fewer time points")
    check_horizon(max(float(times.max()), 0.0))
    names = tuple(outputs) if outputs is not None else tuple(spec.observables)
    values = solve_patient(build(spec, patient.covariates()), regimen.resolve(patient.weight), times, list(names))
    frame = pd.DataFrame({"id": 1, "time": times})
    for i, name in enumerate(names):
        frame[name] = values[:, i]
    return frame
