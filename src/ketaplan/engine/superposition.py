"""Outputs of a linear system with constant parameters as a sum over the boundaries before each output.

With K = V diag(lambda) V^-1 constant, each mode evolves on its own. Between consecutive boundaries the input
rate is constant, so the modal amounts at time t are

    z(t) = sum over boundaries j at or before t of  b_j e^(lambda tau_j)
         + sum over the stretches [t_(j-1), t_j) before t of  rho_(j-1) phi1(lambda, t_j - t_(j-1)) e^(lambda tau_j)
         + R(t) phi1(lambda, t - t_last)

where tau_j = t - t_j, b_j the bolus at boundary j and rho_j the input rate running after it (both in modal
coordinates), R(t) the rate running at t since the last boundary t_last, and phi1(lambda, d) =
(e^(lambda d) - 1) / lambda taken without cancellation. Every term of an infusion has the sign of its rate:
nothing cancels, however short the infusion or slow the mode (the form sum rho_j (e^(lambda tau_j) - 1) /
lambda over the rate's changes loses eps / (lambda d) of an infusion of duration d, 1e-9 of a small state's
peak for a 14-second infusion and a mode of 0.015 /h). The rates after each boundary are summed in
double-double, so they are exactly zero once every infusion has ended. Everything is one vectorised pass
over (subject, output, boundary, mode), without the boundary-by-boundary loop of
:mod:`ketaplan.engine.exact`: the faster choice when each subject has few boundaries and few outputs, as in
estimation, where the same individuals are predicted again and again with new parameters (a plan is built
once per dataset).

Not covered (:meth:`SuperpositionPlan.applies` says which subjects): steady-state items and resets
(EVID 3 and 4), and parameters that change over time; those go through :func:`ketaplan.engine.exact.solve`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ketaplan.engine.propagators import ModalPropagator, phi1
from ketaplan.engine.schedule import Schedule, add_rates

CHUNK_ELEMENTS = 2_000_000
"""Target size (subjects x outputs x boundaries x modes) of the temporaries of one chunk."""

CONDITION_LIMIT = 1e4
"""Eigenvector condition above which a subject is handed back to the engine. Every output here is a round trip
through the modes, also at a dose's own time, where the engine reads the amounts as they are; with a
condition c that costs about c x eps of the largest amount (a depot whose rate is within 3e-5 of k10,
c ~ 4e4: 3e-11 where the truth is 0, 1.3e-10 of the metabolite's peak, as a hypothesis run drew)."""

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
    after: np.ndarray  # (S, B, n) input rates running after each boundary
    gap: np.ndarray  # (S, B) time since the boundary before (0 for the first)
    running: np.ndarray  # (S, T, n) input rates running at each output
    since: np.ndarray  # (S, T) time since the last boundary the output sees (0 if none)

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
        live = np.isfinite(t_b)
        t_live = np.where(live, t_b, 0.0)
        tau = np.where(seen, times[:, :, None] - t_live[:, None, :], 0.0)
        cmt = schedule.cmt[:, :width]
        drate = np.where(live, schedule.drate[:, :width], 0.0)
        bolus = np.where(live, schedule.bolus[:, :width], 0.0)
        after = _rates_after(cmt, drate, n)
        gap = np.zeros(t_b.shape)
        gap[:, 1:] = np.where(live[:, 1:], t_live[:, 1:] - t_live[:, :-1], 0.0)
        running, since = np.zeros((*times.shape, n)), np.zeros(times.shape)
        if width:
            last = seen.sum(axis=2) - 1  # boundaries are sorted: the seen ones come first
            some, pick, rows = last >= 0, np.maximum(last, 0), np.arange(s)[:, None]
            running = np.where(some[..., None], after[rows, pick], 0.0)
            since = np.where(some, times - t_live[rows, pick], 0.0)
        return cls(tau, seen, cmt, bolus, after, gap, running, since)

    def take(self, rows: np.ndarray) -> SuperpositionPlan:
        """The plan of the subjects ``rows`` (repeats allowed)."""
        return SuperpositionPlan(self.tau[rows], self.seen[rows], self.cmt[rows], self.bolus[rows], self.after[rows],
                                 self.gap[rows], self.running[rows], self.since[rows])

    def solve(self, k: np.ndarray, readout: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Outputs (S, T, n_out) of ``readout`` (n_out, n) under rate matrices ``k`` (S, n, n), and the mask of
        subjects whose K could not be diagonalised safely (their outputs are NaN; solve them with
        :func:`ketaplan.engine.exact.solve`)."""
        s, t, b = self.tau.shape
        modal, bad = ModalPropagator.decompose(k)
        bad = bad | (_condition(modal) > CONDITION_LIMIT)
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
        to_modal = modal.inv.swapaxes(1, 2)
        # the dosed state's column of V^-1 for every boundary: (S, B, n)
        u = np.take_along_axis(modal.inv, self.cmt[sl][:, None, :], axis=2).swapaxes(1, 2)
        amplitude = self.bolus[sl][..., None] * u  # (S, B, n): what each boundary adds, decaying from there
        rho = np.matmul(self.after[sl], to_modal)  # (S, B, n): modal input rates after each boundary
        amplitude[:, 1:] += rho[:, :-1] * phi1(lam[:, None, :], self.gap[sl][:, 1:, None])
        # mode-major so that the sum over boundaries is one batched matrix product per (subject, mode)
        decay = np.exp(lam[:, :, None, None] * tau[:, None])  # (S, n, T, B)
        decay *= seen[:, None]
        z = np.matmul(decay, amplitude.transpose(0, 2, 1)[..., None])[..., 0]  # (S, n, T)
        z += np.matmul(self.running[sl], to_modal).transpose(0, 2, 1) * phi1(lam[:, :, None],
                                                                            self.since[sl][:, None, :])
        mixed = np.matmul(readout, modal.vec)  # (S, n_out, n)
        return np.matmul(mixed, z).transpose(0, 2, 1)


def _condition(modal: ModalPropagator) -> np.ndarray:
    """1-norm condition number of each subject's eigenvector matrix."""
    return np.abs(modal.vec).sum(axis=1).max(axis=1) * np.abs(modal.inv).sum(axis=1).max(axis=1)


def _width(schedule: Schedule, times: np.ndarray) -> int:
    """The most boundaries any subject has at or before its last output."""
    last = times.max(axis=1, initial=-np.inf)[:, None]
    return int((np.isfinite(schedule.time) & (schedule.time <= last)).sum(axis=1).max(initial=0))


def _rates_after(cmt: np.ndarray, drate: np.ndarray, n: int) -> np.ndarray:
    """Input rates (S, B, n) running after each boundary: its change and those before it, summed in double-double
    so that they are exactly zero once every infusion has ended."""
    s, b = drate.shape
    hi = np.zeros((s, n))
    lo = np.zeros((s, n))
    out = np.zeros((s, b, n))
    rows = np.arange(s)
    for j in range(b):
        if np.any(drate[:, j]):
            c = cmt[:, j]
            hi[rows, c], lo[rows, c] = add_rates(hi[rows, c], lo[rows, c], drate[:, j])
        out[:, j] = hi + lo
    return out
