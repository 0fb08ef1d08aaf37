"""Dose records with NONMEM/PREDPP semantics, compiled into per-subject input boundaries.

A *record* is one row of a dosing history (EVID 1 dose, 3 reset, 4 reset-and-dose), with AMT,
RATE, DUR, II, ADDL and SS data items. Records are shared by a batch of subjects, while the
dose modifiers (bioavailability F, lag time, modelled rate R and duration D) may differ per
subject; compiling them gives, per subject, a time-ordered list of *boundaries*. Between two
boundaries the input to the linear system is constant, so the engine can solve each stretch
exactly.

Event rules (PREDPP, NONMEM 7.5 help: AMT, RATE, SS DOSE, ADDL, BIOAVAILABILITY, EVID):

* bolus: F*AMT enters at TIME + ALAG;
* RATE > 0: infusion at RATE for F*AMT/RATE (F changes the duration, not the rate);
  RATE = -1: rate R from the model, duration F*AMT/R; RATE = -2: duration D from the model,
  rate F*AMT/D; a DUR data item (ketaplan extension) fixes the duration like RATE = -2;
* ADDL/II: ADDL more copies of the dose at TIME + k*II (plain doses, never resets or SS);
* EVID 3 resets the system; EVID 4 resets, then doses; SS=1 resets, then sets the steady
  state of the dose pattern; SS=2 adds the steady state to the current amounts. A reset (and
  SS=1) turns off running infusions and cancels doses still pending from earlier records
  (additional and lagged doses);
* steady state with lag: computed as if there were no lag, then advanced II - ALAG into the
  cycle; the record's own dose follows at TIME + ALAG;
* SS=1 with AMT=0, RATE>0, II=0 sets the amounts of a constant infusion at steady state (F not
  applied); as the record's amount is zero, no infusion runs after it (as NONMEM does);
* ordering: records at equal times act in record order; doses that the records imply
  (additional doses, lagged doses, ends of infusions) act before any record at the same time,
  so an observation at the exact time of an additional or lagged dose sees that dose.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ketaplan.errors import InputError

IMPLIED = -1
"""Order key of implied events: before every record at the same time."""

_TIE_TOLERANCE = 1e-12


@dataclass(frozen=True)
class DoseRecords:
    """Dose and reset records of one dosing history, in record order (times non-decreasing).

    All arrays have one entry per record. ``cmt`` is the 0-based state index dosed. ``order``
    is the record's position in its dataset (used to break ties with observations).
    """

    time: np.ndarray
    amount: np.ndarray
    cmt: np.ndarray
    rate: np.ndarray
    duration: np.ndarray
    ii: np.ndarray
    addl: np.ndarray
    ss: np.ndarray
    evid: np.ndarray
    order: np.ndarray

    @classmethod
    def from_lists(
        cls,
        time,
        amount,
        cmt,
        rate=None,
        duration=None,
        ii=None,
        addl=None,
        ss=None,
        evid=None,
        order=None,
    ) -> DoseRecords:
        """Build records from sequences, filling absent data items with NONMEM defaults."""
        n = len(time)

        def arr(x, default, dtype):
            return np.full(n, default, dtype=dtype) if x is None else np.asarray(x, dtype=dtype).reshape(n)

        return cls(
            time=arr(time, 0.0, float),
            amount=arr(amount, 0.0, float),
            cmt=arr(cmt, 0, np.int64),
            rate=arr(rate, 0.0, float),
            duration=arr(duration, 0.0, float),
            ii=arr(ii, 0.0, float),
            addl=arr(addl, 0, np.int64),
            ss=arr(ss, 0, np.int64),
            evid=arr(evid, 1, np.int64),
            order=arr(order, 0, np.int64) if order is not None else np.arange(n, dtype=np.int64),
        )

    def __len__(self) -> int:
        return len(self.time)


@dataclass(frozen=True)
class DoseModifiers:
    """Per-subject dose modifiers for each record, shape (subjects, records).

    ``f`` bioavailability, ``lag`` absorption lag (h), ``rate`` modelled rate R (for RATE=-1),
    ``duration`` modelled duration D (for RATE=-2). NaN in ``rate``/``duration`` means the model
    does not define it.
    """

    f: np.ndarray
    lag: np.ndarray
    rate: np.ndarray
    duration: np.ndarray

    @classmethod
    def neutral(cls, n_subjects: int, n_records: int) -> DoseModifiers:
        """F = 1, no lag, no modelled rate or duration."""
        shape = (n_subjects, n_records)
        return cls(np.ones(shape), np.zeros(shape), np.full(shape, np.nan), np.full(shape, np.nan))


@dataclass(frozen=True)
class Schedule:
    """Per-subject boundaries, shape (subjects, boundaries), sorted by (time, order).

    At a boundary, in this order: ``reset`` zeroes amounts and rates; ``ss_kind`` 1 sets (2 adds)
    the steady state of the pattern (``ss_amount`` bolus, or ``ss_rate`` for ``ss_duration``
    every ``ss_ii``, phase ``ss_lag``; ``ss_ii`` = 0 means constant infusion); ``bolus`` is added
    to state ``cmt``; ``drate`` is added to the input rate of state ``cmt``. Padding boundaries
    have time = +inf and no action.
    """

    time: np.ndarray
    order: np.ndarray
    cmt: np.ndarray
    bolus: np.ndarray
    drate: np.ndarray
    reset: np.ndarray
    ss_kind: np.ndarray
    ss_amount: np.ndarray
    ss_rate: np.ndarray
    ss_duration: np.ndarray
    ss_ii: np.ndarray
    ss_lag: np.ndarray
    n_states: int = field(default=0)

    @property
    def n_subjects(self) -> int:
        return self.time.shape[0]

    @property
    def n_boundaries(self) -> int:
        return self.time.shape[1]

    @property
    def has_steady_state(self) -> bool:
        return bool(np.any(self.ss_kind > 0))

    def take(self, subjects: np.ndarray | slice) -> Schedule:
        """The schedule of a subset of subjects."""
        kw = {name: getattr(self, name)[subjects] for name in _ARRAY_FIELDS}
        return Schedule(**kw, n_states=self.n_states)


_ARRAY_FIELDS = (
    "time",
    "order",
    "cmt",
    "bolus",
    "drate",
    "reset",
    "ss_kind",
    "ss_amount",
    "ss_rate",
    "ss_duration",
    "ss_ii",
    "ss_lag",
)


def _pieces() -> dict[str, list[np.ndarray]]:
    return {name: [] for name in _ARRAY_FIELDS}


def _add(pieces, n_subj, time, order, cmt, bolus=0.0, drate=0.0, reset=False, ss_kind=0,
         ss_amount=0.0, ss_rate=0.0, ss_duration=0.0, ss_ii=0.0, ss_lag=0.0) -> None:
    """Append a block of boundaries; every argument broadcasts to (subjects, k)."""
    time = np.asarray(time, dtype=float)
    if time.ndim == 1:
        time = np.broadcast_to(time, (n_subj, time.shape[0]))
    shape = time.shape
    values = {
        "time": time,
        "order": order,
        "cmt": cmt,
        "bolus": bolus,
        "drate": drate,
        "reset": reset,
        "ss_kind": ss_kind,
        "ss_amount": ss_amount,
        "ss_rate": ss_rate,
        "ss_duration": ss_duration,
        "ss_ii": ss_ii,
        "ss_lag": ss_lag,
    }
    for name, value in values.items():
        v = np.asarray(value)
        if v.ndim == 1 and v.shape[0] == n_subj and shape[1] != n_subj:
            v = v[:, None]
        pieces[name].append(np.broadcast_to(v, shape))


def _dose_times(t0: float, ii: float, addl: int) -> np.ndarray:
    return t0 + ii * np.arange(addl + 1, dtype=float)


def compile_schedule(records: DoseRecords, modifiers: DoseModifiers, n_states: int) -> Schedule:
    """Compile dose records and per-subject modifiers into sorted per-subject boundaries.

    Raises :class:`InputError` for records that cannot be given (a missing modelled rate or
    duration, a steady state without an interval, a lag of at least II on a steady-state dose).
    """
    n_subj = modifiers.f.shape[0]
    pieces = _pieces()
    reset_keys = _next_reset_keys(records)
    for i in range(len(records)):
        _compile_record(records, i, modifiers, n_subj, n_states, pieces, reset_keys[i])
    if not pieces["time"]:
        return _empty_schedule(n_subj, n_states)
    arrays = {name: np.concatenate([np.asarray(p, dtype=_dtype(name)) for p in parts], axis=1)
              for name, parts in pieces.items()}
    order = np.lexsort((np.arange(arrays["time"].shape[1])[None, :].repeat(n_subj, 0), arrays["order"],
                        arrays["time"]), axis=1)
    sorted_arrays = {name: np.take_along_axis(a, order, axis=1) for name, a in arrays.items()}
    return Schedule(**sorted_arrays, n_states=n_states)


def _dtype(name: str):
    if name in ("order", "cmt", "ss_kind"):
        return np.int64
    if name == "reset":
        return bool
    return float


def _empty_schedule(n_subj: int, n_states: int) -> Schedule:
    kw = {name: np.zeros((n_subj, 0), dtype=_dtype(name)) for name in _ARRAY_FIELDS}
    return Schedule(**kw, n_states=n_states)


def _next_reset_keys(records: DoseRecords) -> list[tuple[float, int]]:
    """For each record, the (time, order) of the first later record that resets the system."""
    keys: list[tuple[float, int]] = [(np.inf, 0)] * len(records)
    upcoming: tuple[float, int] = (np.inf, 0)
    for i in range(len(records) - 1, -1, -1):
        keys[i] = upcoming
        resets = records.evid[i] in (3, 4) or (records.evid[i] in (1, 4) and records.ss[i] == 1)
        if resets:
            upcoming = (float(records.time[i]), int(records.order[i]))
    return keys


def _before(time: np.ndarray, order: int | np.ndarray, cutoff: tuple[float, int]) -> np.ndarray:
    """Mask of events whose (time, order) key is strictly before the cutoff key."""
    t_cut, o_cut = cutoff
    return (time < t_cut) | ((time == t_cut) & (np.asarray(order) < o_cut))


def _compile_record(records, i, modifiers, n_subj, n_states, pieces, cutoff) -> None:
    evid = int(records.evid[i])
    t0 = float(records.time[i])
    order = int(records.order[i])
    cmt = int(records.cmt[i])
    row = f"record {order + 1}"
    if evid in (3, 4):
        _add(pieces, n_subj, [t0], order, 0, reset=True)
    if evid not in (1, 4):
        return
    if not 0 <= cmt < n_states:
        raise InputError(f"{row}: CMT", cmt + 1, f"allowed compartments are 1 to {n_states}")
    amt = float(records.amount[i])
    rate = float(records.rate[i])
    dur_data = float(records.duration[i])
    ii = float(records.ii[i])
    addl = int(records.addl[i])
    ss = int(records.ss[i])
    f = modifiers.f[:, i]
    lag = modifiers.lag[:, i]
    if np.any(f < 0) or not np.all(np.isfinite(f)):
        raise InputError(f"{row}: F{cmt + 1}", float(np.min(f)), "bioavailability must be a finite number >= 0")
    if np.any(lag < 0) or not np.all(np.isfinite(lag)):
        raise InputError(f"{row}: ALAG{cmt + 1}", float(np.min(lag)), "lag time must be a finite number >= 0")

    if ss in (1, 2) and amt == 0 and rate > 0 and ii == 0:
        _constant_steady_infusion(pieces, n_subj, t0, order, cmt, rate, ss)
        return

    infusion, inf_rate, inf_dur = _infusion_shape(records, i, modifiers, row, cmt, amt, rate, dur_data, f)
    if ss in (1, 2):
        if ii <= 0:
            raise InputError(f"{row}: II", ii, "a steady-state dose needs II > 0")
        if np.any(lag >= ii):
            raise InputError(f"{row}: ALAG{cmt + 1}", float(np.max(lag)),
                             f"a steady-state dose needs a lag time shorter than II = {ii:g}")
        _steady_state(pieces, n_subj, t0, order, cmt, amt * f, infusion, inf_rate, inf_dur, ii, lag, ss,
                      cutoff)

    starts = t0 + lag[:, None] + ii * np.arange(addl + 1, dtype=float)[None, :]
    start_order = np.where(np.arange(addl + 1) == 0, order, IMPLIED)[None, :]
    start_order = np.where(lag[:, None] > 0, IMPLIED, start_order)
    keep = _before(starts, start_order, cutoff)
    if infusion:
        ends = starts + inf_dur[:, None]
        ends_kept = _before(ends, IMPLIED, cutoff) & keep
        _add(pieces, n_subj, np.where(keep, starts, np.inf), np.where(keep, start_order, 0), cmt,
             drate=np.where(keep, inf_rate[:, None], 0.0))
        _add(pieces, n_subj, np.where(ends_kept, ends, np.inf), IMPLIED, cmt,
             drate=np.where(ends_kept, -inf_rate[:, None], 0.0))
    else:
        _add(pieces, n_subj, np.where(keep, starts, np.inf), np.where(keep, start_order, 0), cmt,
             bolus=np.where(keep, (amt * f)[:, None], 0.0))


def _infusion_shape(records, i, modifiers, row, cmt, amt, rate, dur_data, f):
    """Whether record i is an infusion, and its per-subject rate and duration after F."""
    n_subj = f.shape[0]
    if rate == -1:
        r = modifiers.rate[:, i]
        if np.any(~np.isfinite(r)) or np.any(r <= 0):
            raise InputError(f"{row}: RATE", -1, f"RATE=-1 needs a modelled rate R{cmt + 1} > 0 in the model")
        return True, r, amt * f / r
    if rate == -2:
        d = modifiers.duration[:, i]
        if np.any(~np.isfinite(d)) or np.any(d <= 0):
            raise InputError(f"{row}: RATE", -2, f"RATE=-2 needs a modelled duration D{cmt + 1} > 0 in the model")
        return True, amt * f / d, np.broadcast_to(d, (n_subj,)).astype(float)
    if rate > 0:
        return True, np.full(n_subj, rate), amt * f / rate
    if rate < 0:
        raise InputError(f"{row}: RATE", rate, "allowed values are 0 (bolus), a positive rate, -1 or -2")
    if dur_data > 0:
        return True, amt * f / dur_data, np.full(n_subj, dur_data)
    return False, np.zeros(n_subj), np.zeros(n_subj)


def _constant_steady_infusion(pieces, n_subj, t0, order, cmt, rate, ss) -> None:
    """Amounts as if the infusion had always run; with AMT = 0 nothing follows the record."""
    _add(pieces, n_subj, [t0], order, cmt, reset=(ss == 1), ss_kind=ss, ss_rate=rate, ss_ii=0.0)


def _steady_state(pieces, n_subj, t0, order, cmt, bolus_amount, infusion, inf_rate, inf_dur, ii, lag, ss,
                  cutoff) -> None:
    """Boundary that sets the steady state at t0, plus the implied infusions still running then."""
    if infusion:
        _add(pieces, n_subj, [t0], order, cmt, reset=(ss == 1), ss_kind=ss, ss_rate=inf_rate,
             ss_duration=inf_dur, ss_ii=ii, ss_lag=lag)
        running = running_infusions(inf_dur, ii, lag)
        if running.shape[1]:
            # implied infusion k started at t0 + lag - k*II and is still running at t0
            k = np.arange(1, running.shape[1] + 1, dtype=float)[None, :]
            ends = t0 + lag[:, None] - k * ii + inf_dur[:, None]
            on = running & _before(ends, IMPLIED, cutoff)
            _add(pieces, n_subj, np.where(running, t0, np.inf), order, cmt,
                 drate=np.where(running, inf_rate[:, None], 0.0))
            _add(pieces, n_subj, np.where(on, ends, np.inf), IMPLIED, cmt,
                 drate=np.where(on, -inf_rate[:, None], 0.0))
    else:
        _add(pieces, n_subj, [t0], order, cmt, reset=(ss == 1), ss_kind=ss, ss_amount=bolus_amount,
             ss_ii=ii, ss_lag=lag)


def add_rates(hi: np.ndarray, lo: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Running input rates hi + lo plus x, kept as an unevaluated double-double sum (TwoSum).

    Rates are stored as changes (+rate at an infusion's start, -rate at its end). Summed in plain floats,
    a 1e12 mg/h pulse wipes the low bits of a background infusion and leaves a residue that keeps
    "infusing" after every infusion has ended; the double-double sum cancels it exactly.
    """
    s = hi + x
    back = s - hi
    lo = lo + ((hi - (s - back)) + (x - back))
    hi = s + lo
    return hi, lo - (hi - s)


def running_infusions(duration: np.ndarray, ii: float | np.ndarray, lag: np.ndarray) -> np.ndarray:
    """Mask (subjects, k) of implied steady-state infusions k = 1, 2, ... still running at the record.

    Implied infusion k started k*II - lag before the record; it is running if that is less than
    its duration. Near-equality (within 1e-12 relative) counts as ended.
    """
    elapsed_limit = duration + lag
    counts = np.ceil(elapsed_limit / ii * (1 - _TIE_TOLERANCE)) - 1
    counts = np.maximum(counts, 0).astype(np.int64)
    kmax = int(counts.max(initial=0))
    return np.arange(1, kmax + 1)[None, :] <= counts[:, None]


def pad_schedules(schedules: list[Schedule]) -> Schedule:
    """Stack single-subject schedules with different boundary counts into one batch."""
    n_states = schedules[0].n_states
    width = max(s.n_boundaries for s in schedules)
    out = {}
    for name in _ARRAY_FIELDS:
        fill = np.inf if name == "time" else 0
        rows = []
        for s in schedules:
            a = getattr(s, name)
            padded = np.full((a.shape[0], width), fill, dtype=a.dtype)
            padded[:, : a.shape[1]] = a
            rows.append(padded)
        out[name] = np.concatenate(rows, axis=0)
    return Schedule(**out, n_states=n_states)
