"""Inter-individual variability (log-normal etas with the model's covariances) and residual error."""

from __future__ import annotations

import numpy as np

from ketaplan.models.spec import ModelSpec
from ketaplan.population.covariates import STREAM_ETAS, STREAM_OCCASIONS, STREAM_RESIDUAL, block_normals


def eta_parameters(spec: ModelSpec, occasion: bool = False) -> list[str]:
    """Parameters with between-patient variability (or, with ``occasion``, between-course), in block order."""
    return [p for block in spec.variability if block.occasion == occasion for p in block.parameters]


def omega_matrix(spec: ModelSpec, occasion: bool = False) -> np.ndarray:
    """The block-diagonal omega of the between-patient (or between-course) variability blocks."""
    blocks = [b for b in spec.variability if b.occasion == occasion]
    names = [p for b in blocks for p in b.parameters]
    omega = np.zeros((len(names), len(names)))
    i = 0
    for block in blocks:
        k = len(block.parameters)
        omega[i:i + k, i:i + k] = np.asarray(block.omega, dtype=float)
        i += k
    return omega


def matrix_root(omega: np.ndarray) -> np.ndarray:
    """L with L L^T = omega (via eigen-decomposition, so semi-definite blocks work)."""
    w, v = np.linalg.eigh(omega)
    return v * np.sqrt(np.clip(w, 0.0, None))


def sample_etas(spec: ModelSpec, seed: int, start: int, stop: int) -> dict[str, np.ndarray]:
    """Random effects of subjects start..stop-1 (same per subject whatever the chunking)."""
    names = eta_parameters(spec)
    if not names:
        return {}
    z = block_normals(seed, STREAM_ETAS, start, stop, len(names))
    eta = z @ matrix_root(omega_matrix(spec)).T
    return {name: eta[:, i] for i, name in enumerate(names)}


def sample_course_etas(spec: ModelSpec, seed: int, start: int, stop: int, course: int) -> dict[str, np.ndarray]:
    """Between-course random effects of subjects start..stop-1 in ``course`` (0-based), independent of chunking."""
    names = eta_parameters(spec, occasion=True)
    if not names:
        return {}
    z = block_normals(seed, STREAM_OCCASIONS + course, start, stop, len(names))
    eta = z @ matrix_root(omega_matrix(spec, occasion=True)).T
    return {name: eta[:, i] for i, name in enumerate(names)}


def add_residual_error(spec: ModelSpec, observable: str, values: np.ndarray, seed: int, start: int,
                       index: int = 0) -> np.ndarray:
    """Observations: predictions (S, T) of subjects start.. with the model's proportional and additive error.

    ``index`` numbers the observables so that each gets its own independent random stream. As in a
    NONMEM simulation, an additive error can give values below 0; they are kept.
    """
    err = spec.residual_error.get(observable)
    if err is None:
        return values.copy()
    s, t = values.shape
    z = block_normals(seed, STREAM_RESIDUAL + index, start, start + s, 2 * t)
    return values * (1 + err.proportional * z[:, :t]) + err.additive * z[:, t:]
