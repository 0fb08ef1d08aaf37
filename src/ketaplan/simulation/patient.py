"""A patient's covariates, checked once: weight, age, sex, height."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ketaplan.engine.build import Covariates
from ketaplan.errors import InputError

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
