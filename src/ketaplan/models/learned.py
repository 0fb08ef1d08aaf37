"""A model with population values learned from a clinic (typical values and between-patient variances)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ketaplan.errors import InputError
from ketaplan.models.spec import ModelSpec, TypicalUncertainty


def with_values(spec: ModelSpec, values: Mapping[str, float], label: str) -> ModelSpec:
    """``spec`` with parameter values (own units, finite and >= 0) replaced, their source named ``label``."""
    parameters = dict(spec.parameters)
    for name, value in values.items():
        if name not in parameters:
            raise InputError("parameter", name, f"model {spec.id} has no such parameter")
        if not (np.isfinite(value) and value >= 0):
            raise InputError(f"parameter {name}", value, "a finite number >= 0")
        parameters[name] = parameters[name].model_copy(update={"value": float(value), "source": label,
                                                               "derived": True})
    return spec.model_copy(update={"parameters": parameters})


def with_learned_values(spec: ModelSpec, typical: Mapping[str, float], variances: Mapping[str, float],
                        label: str, uncertainty: TypicalUncertainty | None = None) -> ModelSpec:
    """``spec`` with the typical values (in the parameter's own unit) and the between-patient variances (of the
    log parameter) replaced; a variance that changes rescales its block's covariances so that correlations
    stay. ``label`` names the source (for example "learned: clinic version 3") in each replaced parameter;
    ``uncertainty`` is the covariance of the learned typical values, carried into forecasts."""
    for name, value in typical.items():
        if not (np.isfinite(value) and value > 0):
            raise InputError(f"learned value {name}", value, "a finite number above 0")
    spec = with_values(spec, typical, label)
    blocks = []
    for block in spec.variability:
        omega = np.asarray(block.omega, dtype=float)
        scale = np.ones(len(block.parameters))
        for i, name in enumerate(block.parameters):
            if name in variances and not block.occasion:
                v = float(variances[name])
                if not (np.isfinite(v) and v >= 0):
                    raise InputError(f"learned variance {name}", v, "a finite number >= 0")
                scale[i] = np.sqrt(v / omega[i, i]) if omega[i, i] > 0 else 0.0
                if omega[i, i] == 0 and v > 0:
                    raise InputError(f"learned variance {name}", v, "0 (the model has no variability on it)")
        new = omega * np.outer(scale, scale)
        blocks.append(block.model_copy(update={"omega": tuple(tuple(float(x) for x in row) for row in new)}))
    return spec.model_copy(update={"variability": tuple(blocks), "uncertainty": uncertainty})


def learned_uncertainty(names: list[str], covariance: list[list[float]], transforms: Mapping[str, str],
                        label: str) -> TypicalUncertainty | None:
    """The covariance of the learned typical values (those with a transform in ``transforms``), cut from a
    learning run's covariance over ``names`` (which also holds its variances); None without a covariance."""
    if covariance is None:
        return None
    keep = [i for i, name in enumerate(names) if name in transforms]
    m = np.asarray(covariance, dtype=float)[np.ix_(keep, keep)]
    return TypicalUncertainty(parameters=tuple(names[i] for i in keep),
                              transforms=tuple(transforms[names[i]] for i in keep),
                              covariance=tuple(tuple(float(x) for x in row) for row in m), source=label)
