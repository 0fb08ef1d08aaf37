"""Exact propagators of dA/dt = K A + r (r constant) for batches of subjects.

Two interchangeable implementations:

* :class:`ModalPropagator` diagonalises K = V diag(lambda) V^-1 once per subject and then
  evaluates A(t) = V [e^(lambda t) z0 + (e^(lambda t) - 1)/lambda w] with z0 = V^-1 A0 and
  w = V^-1 r. This is the fast path: one exponential per mode and time point.
* :class:`ExpmPropagator` uses the matrix exponential of the augmented matrix [[K, r], [0, 0]]
  (scipy.linalg.expm, Pade with scaling and squaring). It is exact also when K is defective
  (for example an absorption rate equal to an elimination rate), where eigenvectors are not.

Steady states are closed forms (geometric series over the dosing interval), never simulated.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ketaplan.engine.schedule import running_infusions
from ketaplan.errors import InputError

CONDITION_LIMIT = 1e7
"""Eigenvector condition number above which a subject is solved with matrix exponentials."""


def _difference_of_products(a, d, b, c):
    """a d - b c without cancellation (Dekker's exact products): for a two-compartment K this is
    k10 k21, which the plain difference loses when k10 is far below k12."""
    p1, e1 = _two_product(a, d)
    p2, e2 = _two_product(b, c)
    return (p1 - p2) + (e1 - e2)


def _two_product(x, y):
    p = x * y
    xh, xl = _split(x)
    yh, yl = _split(y)
    return p, ((xh * yh - p) + xh * yl + xl * yh) + xl * yl


def _split(x):
    c = 134217729.0 * x  # 2^27 + 1
    hi = c - (c - x)
    return hi, x - hi


def _eigen_2x2(k: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Eigenvalues and eigenvectors of a batch of real 2 x 2 matrices in closed form (LAPACK's per-matrix
    overhead dominates for these); complex or repeated eigenvalues are marked for the matrix exponential.

    The larger-magnitude eigenvalue comes from the quadratic formula without cancellation, the other from
    the determinant; each eigenvector is taken from the row of K - lambda I that defines it best.
    """
    a, b, c, d = k[:, 0, 0], k[:, 0, 1], k[:, 1, 0], k[:, 1, 1]
    half = 0.5 * (a - d)
    disc = half * half + b * c
    with np.errstate(all="ignore"):
        root = np.sqrt(np.maximum(disc, 0.0))
        mean = 0.5 * (a + d)
        big = mean - np.where(mean >= 0, -1.0, 1.0) * root  # |big| = |mean| + root
        det = _difference_of_products(a, d, b, c)
        small = np.where(big != 0, det / big, 0.0)
        lam = np.stack([small, big], axis=-1)
        vec = np.empty_like(k)
        for j in range(2):
            lj = lam[:, j]
            row1 = np.stack([b, lj - a], axis=-1)  # from (a - l) v1 + b v2 = 0
            row2 = np.stack([lj - d, c], axis=-1)  # from c v1 + (d - l) v2 = 0
            n1, n2 = np.hypot(*row1.T), np.hypot(*row2.T)
            pick = np.where((n1 >= n2)[:, None], row1 / n1[:, None], row2 / n2[:, None])
            vec[:, :, j] = pick
    bad = ~(disc > 0) | ~np.isfinite(lam).all(axis=-1) | ~np.isfinite(vec).all(axis=(1, 2))
    vec[bad] = np.eye(2)
    return lam, vec, bad


def phi1(lam: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """(exp(lam*tau) - 1) / lam, equal to tau where lam == 0, without cancellation."""
    nonzero = lam != 0
    if np.all(nonzero):  # the usual case (every compartment empties): three operations instead of six
        return np.expm1(lam * tau) / lam
    safe = np.where(nonzero, lam, 1.0)
    return np.where(nonzero, np.expm1(lam * tau) / safe, tau)


def whole_intervals(dur: np.ndarray, ii: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """dur = whole x ii + part with 0 <= part <= ii.

    At steady state, infusions of duration dur started every ii overlap: at any moment before the record
    ``whole`` of them run for sure and one more runs for ``part`` of each interval. Their input is a constant
    infusion of whole x rate plus a periodic infusion of duration ``part``, both with closed-form steady
    states, so the cost does not grow with dur / ii (an infusion of 1e5 h every 1e-3 h included).
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        whole = np.floor(dur / ii)
    whole = np.where(np.isfinite(whole) & (whole > 0), whole, 0.0)
    part = dur - whole * ii
    low, high = part < 0, part > ii
    whole = np.where(low, whole - 1, np.where(high, whole + 1, whole))
    part = np.clip(np.where(low, part + ii, np.where(high, part - ii, part)), 0.0, ii)
    return whole, part


def _no_steady_state(lam: np.ndarray) -> None:
    if np.any(lam >= 0):
        raise InputError(
            "SS", 1,
            "a steady state does not exist for this model because one of its compartments never "
            "empties; remove the SS item or give the compartment an elimination",
        )


@dataclass
class ModalPropagator:
    """Eigen-decomposition propagator for a batch of diagonalisable systems."""

    lam: np.ndarray  # (S, n)
    vec: np.ndarray  # (S, n, n)
    inv: np.ndarray  # (S, n, n)

    @staticmethod
    def decompose(k: np.ndarray) -> tuple[ModalPropagator, np.ndarray]:
        """Diagonalise K (S, n, n); returns the propagator and a mask of subjects it cannot serve."""
        if k.shape[-1] == 1:  # one compartment: K is its own eigenvalue
            ones = np.ones_like(k)
            return ModalPropagator(k[..., 0].copy(), ones, ones.copy()), ~np.isfinite(k[:, 0, 0])
        if k.shape[-1] == 2:
            lam, vec, bad = _eigen_2x2(k)
        else:
            lam, vec = np.linalg.eig(k)
            bad = np.any(np.abs(lam.imag) > 0, axis=-1)
            lam = lam.real
            vec = vec.real
        try:
            with np.errstate(all="ignore"):
                inv = np.linalg.inv(vec)
                # 1-norm condition number: within a factor n of the 2-norm one, and nearly free given the inverse
                cond = np.abs(vec).sum(axis=1).max(axis=1) * np.abs(inv).sum(axis=1).max(axis=1)
        except np.linalg.LinAlgError:  # an exactly singular eigenvector matrix somewhere in the batch
            with np.errstate(all="ignore"):
                cond = np.linalg.cond(vec)
            inv = None
        bad |= ~np.isfinite(cond) | (cond > CONDITION_LIMIT)
        if inv is None or bad.any():
            safe_vec = np.where(bad[:, None, None], np.eye(k.shape[-1]), vec)
            inv = np.linalg.inv(safe_vec)
            vec = safe_vec
        return ModalPropagator(lam, vec, inv), bad

    def take(self, idx) -> ModalPropagator:
        return ModalPropagator(self.lam[idx], self.vec[idx], self.inv[idx])

    def to_modal(self, a: np.ndarray) -> np.ndarray:
        return np.einsum("sij,sj->si", self.inv, a)

    def advance(self, a: np.ndarray, r: np.ndarray, tau: np.ndarray) -> np.ndarray:
        """States after ``tau`` (S,) hours from states ``a`` with constant input ``r`` (S, n)."""
        z0 = self.to_modal(a)
        w = self.to_modal(r)
        lt = self.lam * tau[:, None]
        z = np.exp(lt) * z0 + phi1(self.lam, tau[:, None]) * w
        return np.einsum("sij,sj->si", self.vec, z)

    def steady_state_bolus(self, b: np.ndarray, ii: np.ndarray, lag: np.ndarray) -> np.ndarray:
        """Amounts II - lag after a bolus b (S, n) at steady state with interval ii (S,)."""
        _no_steady_state(self.lam)
        zb = self.to_modal(b)
        z = np.exp(self.lam * (ii - lag)[:, None]) / -np.expm1(self.lam * ii[:, None]) * zb
        return np.einsum("sij,sj->si", self.vec, z)

    def steady_state_infusion(self, r: np.ndarray, dur: np.ndarray, ii: np.ndarray,
                              lag: np.ndarray) -> np.ndarray:
        """Amounts at the steady-state record from implied infusions of rate r and duration dur, in closed form
        whatever dur / ii (see :func:`whole_intervals`)."""
        whole, part = whole_intervals(dur, ii)
        return self._periodic_infusion(r, part, ii, lag) + whole[:, None] * self.steady_state_constant(r)

    def _periodic_infusion(self, r: np.ndarray, dur: np.ndarray, ii: np.ndarray, lag: np.ndarray) -> np.ndarray:
        """Steady state of infusions of duration dur <= ii (at most one still running at the record)."""
        _no_steady_state(self.lam)
        w = self.to_modal(r)
        lam = self.lam
        running = running_infusions(dur, ii, lag)
        m = running.sum(axis=1)
        total = np.zeros_like(w)
        for k in range(1, running.shape[1] + 1):
            elapsed = (k * ii - lag)[:, None]
            total += np.where(running[:, k - 1 : k], phi1(lam, elapsed), 0.0)
        first_ended = ((m + 1) * ii - lag - dur)[:, None]
        total += np.exp(lam * first_ended) * phi1(lam, dur[:, None]) / -np.expm1(lam * ii[:, None])
        return np.einsum("sij,sj->si", self.vec, total * w)

    def steady_state_constant(self, r: np.ndarray) -> np.ndarray:
        """Amounts at steady state of a constant infusion r (S, n)."""
        _no_steady_state(self.lam)
        return np.einsum("sij,sj->si", self.vec, -self.to_modal(r) / self.lam)

    def evaluate(self, a: np.ndarray, r: np.ndarray, tau: np.ndarray, readout: np.ndarray) -> np.ndarray:
        """Outputs readout @ A at many times: a, r (S, T, n) states after the last boundary, tau (S, T).

        ``readout`` is (S, n_out, n). Returns (S, T, n_out).
        """
        z0 = np.einsum("sij,stj->sti", self.inv, a)
        w = np.einsum("sij,stj->sti", self.inv, r)
        lt = self.lam[:, None, :] * tau[:, :, None]
        z = np.exp(lt) * z0
        z += phi1(self.lam[:, None, :], tau[:, :, None]) * w
        mixed = np.matmul(readout, self.vec)  # (S, n_out, n)
        return np.matmul(z, np.swapaxes(mixed, 1, 2))

    def output_coefficients(self, a: np.ndarray, r: np.ndarray, readout: np.ndarray) -> OutputCoefficients:
        """Outputs after each boundary as c + sum_i P_i exp(lambda_i tau).

        a, r: (S, B, n) amounts and input rates just after each boundary; readout (S, n_out, n).
        With z0 = V^-1 a and w = V^-1 r, readout @ A(tau) = M (e^(lam tau) (z0 + w/lam) - w/lam),
        M = readout @ V. Modes with |lambda| < SLOW_MODE (compartments that hardly empty) keep the
        form e^(lam tau) z0 + phi1 w, which has no cancellation when lam tau is tiny.
        """
        to_modal = np.swapaxes(self.inv, 1, 2)
        z0 = np.matmul(a, to_modal)  # (S, B, n): V^-1 a after each boundary
        w = np.matmul(r, to_modal)
        mixed = np.matmul(readout, self.vec)  # (S, n_out, n)
        slow = np.abs(self.lam) < SLOW_MODE
        safe = np.where(slow, 1.0, self.lam)
        q = np.where(slow[:, None, :], 0.0, w / safe[:, None, :])
        p = mixed[:, None, :, :] * (z0 + q)[:, :, None, :]  # (S, B, n_out, n)
        c = -np.matmul(q, np.swapaxes(mixed, 1, 2))
        if np.any(slow):
            p = np.where(slow[:, None, None, :], 0.0, p)
            return OutputCoefficients(p, c, mixed, z0, slow, w, np.matmul(a, np.swapaxes(readout, 1, 2)))
        return OutputCoefficients(p, c, mixed, z0, None, None, np.matmul(a, np.swapaxes(readout, 1, 2)))


SLOW_MODE = 1e-4
"""Eigenvalues (1/h) smaller than this in magnitude are evaluated without dividing by them: the form
e^(lam tau)(z0 + w/lam) - w/lam loses about eps / (lam tau) of the output, 2e-7 for lam = 1e-6 /h seen
3.6 s into an infusion; with 1e-4 /h that stays below 1e-9 for outputs a few seconds after a boundary."""


@dataclass
class OutputCoefficients:
    """Per-boundary output coefficients of a :class:`ModalPropagator` (see ``output_coefficients``)."""

    p: np.ndarray  # (S, B, n_out, n)
    c: np.ndarray  # (S, B, n_out)
    mixed: np.ndarray  # (S, n_out, n)
    z0: np.ndarray  # (S, B, n) modal amounts after each boundary
    slow: np.ndarray | None  # (S, n) modes handled directly
    w: np.ndarray | None
    at_boundaries: np.ndarray  # (S, B, n_out) outputs just after each boundary, from the amounts themselves

    def at(self, lam: np.ndarray, j: np.ndarray, tau: np.ndarray) -> np.ndarray:
        """Outputs (S, T, n_out) at times ``tau`` (S, T) after each subject's boundary ``j`` (S, T)."""
        rows = np.arange(len(lam))[:, None]
        e = _exp_clipped(lam[:, None, :] * tau[..., None], floor=-700.0)  # (S, T, n)
        out = np.einsum("stoi,sti->sto", self.p[rows, j], e) + self.c[rows, j]
        z0 = self.z0[rows, j]  # (S, T, n)
        if self.slow is not None:
            lam_slow = np.where(self.slow, lam, 0.0)[:, None, :]
            z = np.exp(lam_slow * tau[..., None]) * z0 + phi1(lam_slow, tau[..., None]) * self.w[rows, j]
            out += np.einsum("soi,sti->sto", self.mixed, np.where(self.slow[:, None, :], z, 0.0))
        at_boundary = tau == 0.0
        if at_boundary.any():  # at the boundary itself: the amounts as they are (no round trip through modes)
            out = np.where(at_boundary[..., None], self.at_boundaries[rows, j], out)
        return out

    def segment(self, lam: np.ndarray, j: int, tau: np.ndarray, dest: np.ndarray, origin: float = 0.0) -> None:
        """Write outputs at times ``tau`` (T,) after boundary j (at time ``origin``) into ``dest`` (S, n_out, T)."""
        for lo, hi, step in _even_pieces(tau, origin):
            if step is None and not np.any(tau[lo:hi]):
                continue  # only the boundary itself: written below
            if step is None:
                self._segment_direct(lam, j, tau[lo:hi], dest[:, :, lo:hi])
            else:
                self._segment_uniform(lam, j, tau[lo:hi], step, dest[:, :, lo:hi])
        at_boundary = np.flatnonzero(tau == 0.0)
        if len(at_boundary):  # at the boundary itself: the amounts as they are (no round trip through modes)
            dest[:, :, at_boundary] = self.at_boundaries[:, j, :, None]

    def _segment_uniform(self, lam, j, tau, step: float, dest) -> None:
        # On a uniform grid tau_k = tau_0 + step*(m*width + b): exp(lam tau_k) is the product of a
        # block factor (m) and an in-block factor (b), so each output is one batched matrix product
        # (S, M, n + 1) @ (S, n + 1, width), written straight into dest; the extra column carries the
        # constant c (times a row of ones). Only (M + width) exponentials per mode are taken.
        s, n = lam.shape
        t = len(tau)
        width = int(np.ceil(np.sqrt(t)))
        blocks = t // width
        main = blocks * width
        rest = t - main  # a last, partial block: the first ``rest`` columns of the in-block factor
        block_start = tau[0] + step * width * np.arange(blocks + (rest > 0))
        outer = _exp_clipped(lam[:, None, :] * block_start[None, :, None])  # (S, M, n)
        inner = np.ones((s, n + 1, width))
        inner[:, :n] = _exp_clipped(lam[:, :, None] * (step * np.arange(width))[None, None, :])  # (S, n, width)
        n_out = self.p.shape[2]
        q = np.empty((s, n_out, len(block_start), n + 1))
        np.multiply(self.p[:, j, :, None, :], outer[:, None, :, :], out=q[..., :n])
        q[..., n] = self.c[:, j, :, None]
        for o in range(n_out):
            target = dest[:, o, :main]
            grid = target.reshape(s, blocks, width)
            if np.shares_memory(grid, target):
                np.matmul(q[:, o, :blocks], inner, out=grid)
            else:
                target[...] = np.matmul(q[:, o, :blocks], inner).reshape(s, main)
            if rest:
                dest[:, o, main:] = np.matmul(q[:, o, blocks:], inner[:, :, :rest])[:, 0]
        if self.slow is not None:
            dest[:, :, :] += self._slow_part(lam, j, tau)

    def _segment_direct(self, lam, j, tau, dest) -> None:
        e = _exp_clipped(lam[:, :, None] * tau[None, None, :], floor=-700.0)  # (S, n, T)
        np.matmul(self.p[:, j], e, out=dest)
        dest += self.c[:, j, :, None]
        if self.slow is not None:
            dest += self._slow_part(lam, j, tau)

    def _slow_part(self, lam, j, tau) -> np.ndarray:
        lam_slow = np.where(self.slow, lam, 0.0)[:, :, None]
        e = np.exp(lam_slow * tau[None, None, :])
        z = e * self.z0[:, j, :, None] + phi1(lam_slow, tau[None, None, :]) * self.w[:, j, :, None]
        return np.matmul(self.mixed, np.where(self.slow[:, :, None], z, 0.0))


_SPECTATOR = np.array([[0.0, 1e-100], [-1e-100, 0.0]])


def expm_general(m: np.ndarray) -> np.ndarray:
    """Matrix exponential of a batch (..., n, n), always by scipy's general Pade scaling and squaring.

    scipy.linalg.expm recomputes the diagonal and first off-diagonal of a triangular matrix with
    (exp(b) - exp(a)) / (b - a), which cancels catastrophically when two diagonal entries differ by a
    few ulps (an absorption rate within 1e-15 of an elimination rate: exactly the near-defective
    systems this propagator serves); metabolite amounts came out 56 % low. A decoupled 2x2 block
    with entries above and below its diagonal keeps the matrix from being triangular and, being
    block-diagonal, leaves the exponential of ``m`` unchanged.
    """
    from scipy.linalg import expm  # imported here: scipy.linalg costs 0.2 s at start-up and few systems need it

    n = m.shape[-1]
    padded = np.zeros((*m.shape[:-2], n + 2, n + 2))
    padded[..., :n, :n] = m
    padded[..., n:, n:] = _SPECTATOR
    return expm(padded)[..., :n, :n]


def _exp_clipped(x: np.ndarray, floor: float = -345.0) -> np.ndarray:
    """exp(x) with x clipped at ``floor``, in place: terms below exp(-345) ~ 1e-150 are negligible, and
    keeping them (and products of two of them) clear of denormal numbers avoids x86's slow path."""
    np.maximum(x, floor, out=x)
    return np.exp(x, out=x)


MIN_EVEN_RUN = 64
"""Evenly spaced runs of at least this many output times use the block-exponential evaluation."""


def _even_pieces(tau: np.ndarray, origin: float = 0.0) -> list[tuple[int, int, float | None]]:
    """:func:`_split_even` of ``tau``, remembered: a population's blocks of subjects share their output times."""
    return list(_split_even(np.ascontiguousarray(tau, dtype=float).tobytes(), float(origin)))


@lru_cache(maxsize=256)
def _split_even(tau_bytes: bytes, origin: float) -> tuple[tuple[int, int, float | None], ...]:
    """Split output times into (start, stop, step) pieces: evenly spaced runs of at least MIN_EVEN_RUN
    points carry their step, the points between them carry None (evaluated directly).

    A run must lie on its straight line tau_0 + k * step to within a few ulps of its largest absolute
    time (``origin`` + tau: times since a late boundary carry the rounding of the clock times); comparing
    neighbouring steps alone accepted smoothly graded grids (np.geomspace), whose points then moved
    along the line, by up to 8 % of the peak.
    """
    tau = np.frombuffer(tau_bytes)
    t = len(tau)
    if t < MIN_EVEN_RUN:
        return ((0, t, None),)
    d = np.diff(tau)
    tol = 1e-12 * max(1.0, abs(float(tau[-1])) + abs(origin))  # candidates; each is then checked against its line
    bounds = np.concatenate([[0], np.flatnonzero(np.abs(np.diff(d)) > tol) + 1, [len(d)]])
    pieces: list[tuple[int, int, float | None]] = []
    cursor = 0
    for a, b in itertools.pairwise(bounds):
        start = max(int(a), cursor)  # points a..b have nearly equal steps; check they lie on one line
        stop = int(b) + 1
        if stop - start < MIN_EVEN_RUN or d[a] <= 0:
            continue
        step = (tau[stop - 1] - tau[start]) / (stop - 1 - start)
        line = tau[start] + step * np.arange(stop - start)
        largest = max(abs(tau[start]), abs(tau[stop - 1])) + abs(origin)
        if np.max(np.abs(tau[start:stop] - line)) > LINE_ULPS * np.spacing(largest):
            continue
        if start > cursor:
            pieces.append((cursor, start, None))
        pieces.append((start, stop, float(step)))
        cursor = stop
    if cursor < t:
        pieces.append((cursor, t, None))
    return tuple(pieces)


LINE_ULPS = 64
"""How far (in ulps of its largest time) a point of an evenly spaced run may lie from the run's line."""


@dataclass
class ExpmPropagator:
    """Matrix-exponential propagator; exact for defective systems too."""

    k: np.ndarray  # (S, n, n)

    def take(self, idx) -> ExpmPropagator:
        return ExpmPropagator(self.k[idx])

    def _augmented(self, k: np.ndarray, r: np.ndarray, tau: np.ndarray) -> np.ndarray:
        """expm of [[K, r], [0, 0]] * tau for matching leading shapes."""
        n = k.shape[-1]
        aug = np.zeros((*k.shape[:-2], n + 1, n + 1))
        aug[..., :n, :n] = k
        aug[..., :n, n] = r
        return expm_general(aug * tau[..., None, None])

    def advance(self, a: np.ndarray, r: np.ndarray, tau: np.ndarray) -> np.ndarray:
        e = self._augmented(self.k, r, tau)
        n = a.shape[-1]
        return np.einsum("sij,sj->si", e[:, :n, :n], a) + e[:, :n, n]

    def _phi_matrices(self, tau: np.ndarray):
        """exp(K tau) and integral_0^tau exp(K s) ds, both (S, n, n)."""
        s, n, _ = self.k.shape
        aug = np.zeros((s, 2 * n, 2 * n))
        aug[:, :n, :n] = self.k
        aug[:, :n, n:] = np.eye(n)
        e = expm_general(aug * tau[:, None, None])
        return e[:, :n, :n], e[:, :n, n:]

    def _geometric(self, ii: np.ndarray) -> np.ndarray:
        """(I - exp(K II))^-1, raising when the steady state does not exist."""
        lam = np.linalg.eigvals(self.k).real
        _no_steady_state(lam)
        phi_ii, _ = self._phi_matrices(ii)
        n = self.k.shape[-1]
        return np.linalg.inv(np.eye(n) - phi_ii)

    def steady_state_bolus(self, b, ii, lag):
        geo = self._geometric(ii)
        phi_shift, _ = self._phi_matrices(ii - lag)
        return np.einsum("sij,sjk,sk->si", phi_shift, geo, b)

    def steady_state_infusion(self, r, dur, ii, lag):
        whole, part = whole_intervals(dur, ii)
        return self._periodic_infusion(r, part, ii, lag) + whole[:, None] * self.steady_state_constant(r)

    def _periodic_infusion(self, r, dur, ii, lag):
        geo = self._geometric(ii)
        running = running_infusions(dur, ii, lag)
        m = running.sum(axis=1)
        total = np.zeros_like(r)
        for k in range(1, running.shape[1] + 1):
            _, gamma = self._phi_matrices(k * ii - lag)
            total += np.where(running[:, k - 1 : k], np.einsum("sij,sj->si", gamma, r), 0.0)
        _, gamma_d = self._phi_matrices(dur)
        phi_shift, _ = self._phi_matrices((m + 1) * ii - lag - dur)
        total += np.einsum("sij,sjk,skl,sl->si", phi_shift, geo, gamma_d, r)
        return total

    def steady_state_constant(self, r):
        lam = np.linalg.eigvals(self.k).real
        _no_steady_state(lam)
        return -np.linalg.solve(self.k, r[..., None])[..., 0]

    def evaluate(self, a, r, tau, readout):
        s, t, n = a.shape
        k = np.broadcast_to(self.k[:, None], (s, t, n, n))
        e = self._augmented(k, r, tau)
        states = np.einsum("stij,stj->sti", e[..., :n, :n], a) + e[..., :n, n]
        return np.einsum("soj,stj->sto", readout, states)
