"""Concentrations of one or more patients under a regimen: the pipeline a user can say aloud.

``predict(load_model("domino_racemic_3cmt"), Regimen.parse("20 mg/h IV for 5 d"), Patient(80))``
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ketaplan.engine.build import Covariates, build
from ketaplan.engine.dosing import regimen_records
from ketaplan.engine.exact import solve
from ketaplan.engine.schedule import compile_schedule
from ketaplan.errors import InputError
from ketaplan.models.library import load_model
from ketaplan.models.spec import ModelSpec
from ketaplan.regimen import Regimen

SEXES = ("male", "female")


@dataclass(frozen=True)
class Patient:
    """A patient's covariates: weight (kg), age (years), sex ('male'/'female'), height (cm)."""

    weight: float
    age: float | None = None
    sex: str | None = None
    height: float | None = None

    def __post_init__(self) -> None:
        checks = [
            ("weight", self.weight, 1 <= self.weight <= 400 if _num(self.weight) else False,
             "body weight must be a number between 1 and 400 kg"),
            ("age", self.age, self.age is None or (_num(self.age) and 0 <= self.age <= 120),
             "age must be between 0 and 120 years"),
            ("height", self.height, self.height is None or (_num(self.height) and 40 <= self.height <= 250),
             "height must be between 40 and 250 cm"),
            ("sex", self.sex, self.sex is None or self.sex in SEXES, "allowed values are 'male' and 'female'"),
        ]
        for name, value, ok, allowed in checks:
            if not ok:
                raise InputError(name, value, allowed)

    def covariates(self) -> Covariates:
        return Covariates.of(self.weight, self.age, self.sex, self.height)


def _num(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and np.isfinite(x)


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
    names = tuple(outputs) if outputs is not None else tuple(spec.observables)
    built = build(spec, patient.covariates())
    records, parts = regimen_records(regimen, built.route_parts, patient.weight)
    schedule = compile_schedule(records, built.modifiers(parts), built.structure.n_states)
    values = solve(built.rate_matrix(), schedule, times, built.readout(names))
    frame = pd.DataFrame({"id": 1, "time": times})
    for i, name in enumerate(names):
        frame[name] = values[0, :, i]
    return frame
