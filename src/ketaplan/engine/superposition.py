"""Outputs of a linear system with constant parameters as a sum over the boundaries before each output.

With K = V diag(lambda) V^-1 constant, each mode evolves on its own, so the modal amounts at time t are

    z(t) = sum over boundaries j at or before t of  b_j e^(lambda tau_j) + rho_j (e^(lambda tau_j) - 1) / lambda

where tau_j = t - t_j and b_j, rho_j are the bolus and the change of input rate at boundary j in modal
coordinates (V^-1 times the dosed compartment's unit vector). For modes that empty (|lambda| >= SLOW_MODE)
this is evaluated as sum (b_j + rho_j / lambda) e^(lambda tau_j) - R(t) / lambda, with R(t) the input rate
running at t summed exactly (double-double), so that it is exactly zero once every infusion has ended;
slower modes keep the (e^(lambda tau) - 1) / lambda form. Everything is one vectorised pass over
(subject, output, boundary, mode), without the boundary-by-boundary loop of :mod:`ketaplan.engine.exact`:
the faster choice when each subject has few boundaries and few outputs, as in estimation, where the same
individuals are predicted again and again with new parameters (a plan is built once per dataset).

Not covered (:meth:`SuperpositionPlan.applies` says which subjects): steady-state items and resets
(EVID 3 and 4), and parameters that change over time; those go through :func:`ketaplan.engine.exact.solve`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ketaplan.engine.propagators import SLOW_MODE, ModalPropagator, phi1
from ketaplan.engine.schedule import Schedule, add_rates

CHUNK_ELEMENTS = 2_000_000
"""Target size (subjects x outputs x boundaries x modes) of the temporaries of one chunk."""

MAX_TERMS = 2_000
"""Outputs x boundaries x modes per subject up to which the sum beats the boundary loop (measured: at
6 x 15 x 1, as in phenobarbital, it is two to three times faster; near 50 x 50 x 2 they are even)."""


@dataclass(frozen=True)
class SuperpositionPlan:
    """The parameter-free part of the sum: which boundaries each output sees and how long ago."""

    tau: np.ndarray  # (S, T, B) time from boundary to output, 0 where the boundary is not seen
    seen: np.ndarray  # (S, T, B) the boundary is at or before the output (by time, then order)
    cmt: np.ndarray  # (S, B) dosed state
    bolus: np.ndarray  # (S, B)
    drate: np.ndarray  # (S, B) change of the input rate
    running: np.ndarray  # (S, T, n) input rates running at each output

    @staticmethod
    def applies(schedule: Schedule) -> np.ndarray:
        """Per subject: True when its schedule has no steady-state item and no reset."""
        live = np.isfinite(schedule.time)
        return ~np.any(live & ((schedule.ss_kind > 0) | schedule.reset), axis=1)

    @classmethod
    def suits(cls, schedule: Schedule, times: np.ndarray) -> bool:
        """True when every subject qualifies and the sum is small enough to be the faster way."""
        if not np.all(cls.applies(schedule)):
            return False
        return _width(schedule, np.atleast_2d(times)) * np.shape(times)[-1] * schedule.n_states <= MAX_TERMS

    @classmethod
    def build(cls, schedule: Schedule, times: np.ndarray, orders: np.ndarray) -> SuperpositionPlan:
        """The plan for outputs at ``times`` (S, T) with order keys ``orders`` (S, T) (ties with boundaries at
        the same time: an output sees the boundaries whose order is <= its own)."""
        if not np.all(cls.applies(schedule)):
            raise ValueError("superposition needs schedules without steady states and resets")
        s, n = schedule.n_subjects, schedule.n_states
        times = np.broadcast_to(np.asarray(times, dtype=float), (s, np.shape(times)[-1]))
        orders = np.broadcast_to(np.asarray(orders), times.shape)
        width = _width(schedule, times)  # boundaries are sorted: the first `width` suffice
        t_b = schedule.time[:, :width]
        seen = (t_b[:, None, :] < times[:, :, None]) | (
            (t_b[:, None, :] == times[:, :, None]) & (schedule.order[:, None, :width] <= orders[:, :, None]))
        tau = np.where(seen, times[:, :, None] - np.where(np.isfinite(t_b), t_b, 0.0)[:, None, :], 0.0)
        cmt = schedule.cmt[:, :width]
        drate = np.where(np.isfinite(t_b), schedule.drate[:, :width], 0.0)
        bolus = np.where(np.isfinite(t_b), schedule.bolus[:, :width], 0.0)
        return cls(tau, seen, cmt, bolus, drate, _running_rates(seen, cmt, drate, n))

    def take(self, rows: np.ndarray) -> SuperpositionPlan:
        """The plan of the subjects ``rows`` (repeats allowed)."""
        return SuperpositionPlan(self.tau[rows], self.seen[rows], self.cmt[rows], self.bolus[rows],
                                 self.drate[rows], self.running[rows])

    def solve(self, k: np.ndarray, readout: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Outputs (S, T, n_out) of ``readout`` (n_out, n) under rate matrices ``k`` (S, n, n), and the mask of
        subjects whose K could not be diagonalised safely (their outputs are NaN; solve them with
        :func:`ketaplan.engine.exact.solve`)."""
        s, t, b = self.tau.shape
        modal, bad = ModalPropagator.decompose(k)
        out = np.empty((s, t, readout.shape[0]))
        chunk = max(1, CHUNK_ELEMENTS // max(1, t * b * k.shape[-1]))
        for start in range(0, s, chunk):
            sl = slice(start, min(start + chunk, s))
            out[sl] = self._solve_chunk(modal.take(sl), sl, readout)
        out[bad] = np.nan
        return out, bad

    def _solve_chunk(self, modal: ModalPropagator, sl: slice, readout: np.ndarray) -> np.ndarray:
        lam = modal.lam  # (S, n)
        tau, seen = self.tau[sl], self.seen[sl]
        # the dosed state's column of V^-1 for every boundary: (S, B, n)
        u = np.take_along_axis(modal.inv, self.cmt[sl][:, None, :], axis=2).swapaxes(1, 2)
        bolus, rate = self.bolus[sl][..., None] * u, self.drate[sl][..., None] * u
        fast = np.abs(lam) >= SLOW_MODE
        with np.errstate(divide="ignore", invalid="ignore"):
            per_lam = np.where(fast, 1.0 / np.where(fast, lam, 1.0), 0.0)
        amplitude = bolus + rate * per_lam[:, None, :]  # (S, B, n)
        # mode-major so that the sum over boundaries is one batched matrix product per (subject, mode)
        lam_t = lam[:, :, None, None]
        decay = np.exp(lam_t * tau[:, None])  # (S, n, T, B)
        decay *= seen[:, None]
        z = np.matmul(decay, amplitude.transpose(0, 2, 1)[..., None])[..., 0]  # (S, n, T)
        z -= np.einsum("sni,sti->snt", modal.inv, self.running[sl]) * per_lam[:, :, None]
        if not fast.all():
            slow = ~fast
            growth = np.where(seen[:, None] & slow[:, :, None, None], phi1(lam_t, tau[:, None]), 0.0)
            z += np.matmul(growth, np.where(slow[:, None, :], rate, 0.0).transpose(0, 2, 1)[..., None])[..., 0]
        mixed = np.matmul(readout, modal.vec)  # (S, n_out, n)
        return np.matmul(mixed, z).transpose(0, 2, 1)


def _width(schedule: Schedule, times: np.ndarray) -> int:
    """The most boundaries any subject has at or before its last output."""
    last = times.max(axis=1, initial=-np.inf)[:, None]
    return int((np.isfinite(schedule.time) & (schedule.time <= last)).sum(axis=1).max(initial=0))


def _running_rates(seen: np.ndarray, cmt: np.ndarray, drate: np.ndarray, n: int) -> np.ndarray:
    """Input rates (S, T, n) running at each output: the rate changes it has seen, summed in double-double so
    that they cancel exactly when every infusion has ended."""
    s, t, b = seen.shape
    hi = np.zeros((s, t, n))
    lo = np.zeros((s, t, n))
    if b == 0 or not np.any(drate):
        return hi
    rows = np.arange(s)[:, None]
    cols = np.arange(t)[None, :]
    for j in np.flatnonzero(np.any(drate != 0, axis=0)):
        c = cmt[:, j][:, None]
        step = np.where(seen[:, :, j], drate[:, j][:, None], 0.0)
        hi[rows, cols, c], lo[rows, cols, c] = add_rates(hi[rows, cols, c], lo[rows, cols, c], step)
    return hi + lo
