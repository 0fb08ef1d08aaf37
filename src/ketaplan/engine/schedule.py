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
from ketaplan.limits import DOSE_EVENTS_PER_INDIVIDUAL, DOSE_EVENTS_PER_RUN

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


_RECORD_FIELDS = ("time", "amount", "cmt", "rate", "duration", "ii", "addl", "ss", "evid", "order")

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


def compile_schedule(records: DoseRecords, modifiers: DoseModifiers, n_states: int) -> Schedule:
    """Compile dose records shared by a batch of subjects, with per-subject modifiers, into sorted boundaries.

    Raises :class:`InputError` for records that cannot be given (a missing modelled rate or
    duration, a steady state without an interval, a lag of at least II on a steady-state dose).
    """
    n_subj, n_rec = modifiers.f.shape
    tiled = DoseRecords(*(np.tile(getattr(records, name), n_subj) for name in _RECORD_FIELDS))
    flat = DoseModifiers(*(np.asarray(a, dtype=float).reshape(1, -1) for a in
                           (modifiers.f, modifiers.lag, modifiers.rate, modifiers.duration)))
    return compile_batch(tiled, np.repeat(np.arange(n_subj), n_rec), n_subj, flat, n_states)


def _dtype(name: str):
    if name in ("order", "cmt", "ss_kind"):
        return np.int64
    if name == "reset":
        return bool
    return float


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
    counts = _running_counts(*(np.asarray(a, dtype=float) for a in (duration, ii, lag)))
    kmax = int(counts.max(initial=0))
    return np.arange(1, kmax + 1)[None, :] <= counts[:, None]


MAX_BOUNDARIES = DOSE_EVENTS_PER_RUN.value
"""Most boundaries one compilation may create (about 2 GB of schedule arrays); more is refused before
anything is allocated (:data:`ketaplan.limits.DOSE_EVENTS_PER_RUN`)."""

_RESET, _STEADY, _RUN_START, _RUN_END, _START, _END = range(6)
"""Emission ranks of the boundaries of one record; with equal (time, order) they act in this order."""


@dataclass(frozen=True)
class _Blocks:
    """Boundaries being collected: parallel lists of arrays, one entry per block."""

    columns: dict[str, list[np.ndarray]] = field(default_factory=lambda: {n: [] for n in (*_ARRAY_FIELDS, "subject",
                                                                                            "record", "rank", "k")})

    def add(self, rank: int, records: np.ndarray, subject: np.ndarray, time: np.ndarray, order: np.ndarray,
            cmt: np.ndarray, k: np.ndarray | None = None, **values: np.ndarray | float | bool | int) -> None:
        n = len(time)
        if n == 0:
            return
        cols = self.columns
        cols["record"].append(records)
        cols["subject"].append(subject)
        cols["rank"].append(np.full(n, rank, dtype=np.int64))
        cols["k"].append(np.zeros(n, dtype=np.int64) if k is None else k)
        cols["time"].append(time)
        cols["order"].append(order)
        cols["cmt"].append(cmt)
        for name in _ARRAY_FIELDS[3:]:
            value = values.get(name, False if name == "reset" else 0)
            cols[name].append(np.broadcast_to(np.asarray(value, dtype=_dtype(name)), (n,)))

    def concatenated(self) -> dict[str, np.ndarray]:
        return {name: np.concatenate(parts).astype(_dtype(name) if name in _ARRAY_FIELDS else np.int64, copy=False)
                if parts else np.zeros(0, dtype=_dtype(name) if name in _ARRAY_FIELDS else np.int64)
                for name, parts in self.columns.items()}


def compile_batch(records: DoseRecords, subject: np.ndarray, n_subjects: int, modifiers: DoseModifiers,
                  n_states: int, label: np.ndarray | None = None) -> Schedule:
    """Compile the dose records of many subjects at once, each record with its own modifiers.

    ``records`` hold every subject's records, grouped by ``subject`` (0..n_subjects-1) and in record
    order within each subject; ``modifiers`` have shape (1, records). No Python loop visits records
    or subjects: boundaries are generated for all records in a few vectorised passes, sorted by
    (subject, time, order, record, emission rank) and laid out as one padded batch. ``label`` names
    each record in error messages (default ``record N`` from its order key). The event rules are those
    of :func:`compile_schedule` (see the module docstring).
    """
    subject = np.asarray(subject, dtype=np.int64)
    n = len(records)
    f, lag = modifiers.f.reshape(n), modifiers.lag.reshape(n)
    mrate, mdur = modifiers.rate.reshape(n), modifiers.duration.reshape(n)
    t0, order, cmt = records.time, records.order, records.cmt
    amt, rate, dur_data, ii = records.amount, records.rate, records.duration, records.ii
    addl, ss, evid = records.addl, records.ss, records.evid
    dose = np.isin(evid, [1, 4])
    constant_ss = dose & np.isin(ss, [1, 2]) & (amt == 0) & (rate > 0) & (ii == 0)
    shaped = dose & ~constant_ss
    inf_rate, inf_dur, infusion = _infusion_shapes(amt, rate, dur_data, f, mrate, mdur, shaped)
    steady = shaped & np.isin(ss, [1, 2])
    _check_batch(records, modifiers, shaped, steady, n_states, label)

    cut_t, cut_o = _reset_cutoffs(records, subject)
    blocks = _Blocks()
    idx = np.arange(n, dtype=np.int64)
    r = idx[np.isin(evid, [3, 4])]
    blocks.add(_RESET, r, subject[r], t0[r], order[r], np.zeros(len(r), np.int64), reset=True)

    r = idx[constant_ss]
    blocks.add(_STEADY, r, subject[r], t0[r], order[r], cmt[r], reset=ss[r] == 1, ss_kind=ss[r], ss_rate=rate[r])
    r = idx[steady & infusion]
    blocks.add(_STEADY, r, subject[r], t0[r], order[r], cmt[r], reset=ss[r] == 1, ss_kind=ss[r], ss_rate=inf_rate[r],
               ss_duration=inf_dur[r], ss_ii=ii[r], ss_lag=lag[r])
    r = idx[steady & ~infusion]
    blocks.add(_STEADY, r, subject[r], t0[r], order[r], cmt[r], reset=ss[r] == 1, ss_kind=ss[r],
               ss_amount=amt[r] * f[r], ss_ii=ii[r], ss_lag=lag[r])

    ss_inf = idx[steady & infusion]
    running = _running_counts(inf_dur[ss_inf], ii[ss_inf], lag[ss_inf])
    copies = np.where(shaped, addl + 1, 0)
    _check_size(records, subject, n_subjects, ss_inf, running, copies, inf_dur, label)
    r, k = _expand(ss_inf, running)
    k = k + 1  # implied infusion k started k * II before the record
    blocks.add(_RUN_START, r, subject[r], t0[r], order[r], cmt[r], k=k, drate=inf_rate[r])
    ends = t0[r] + lag[r] - k * ii[r] + inf_dur[r]
    on = _before_key(ends, IMPLIED, cut_t[r], cut_o[r])
    r, k, ends = r[on], k[on], ends[on]
    blocks.add(_RUN_END, r, subject[r], ends, np.full(len(r), IMPLIED), cmt[r], k=k, drate=-inf_rate[r])

    r, j = _expand(idx, copies)
    starts = t0[r] + lag[r] + ii[r] * j
    start_order = np.where((j == 0) & (lag[r] <= 0), order[r], IMPLIED)
    keep = _before_key(starts, start_order, cut_t[r], cut_o[r])
    r, j, starts, start_order = r[keep], j[keep], starts[keep], start_order[keep]
    inf = infusion[r]
    blocks.add(_START, r, subject[r], starts, start_order, cmt[r], k=j, drate=np.where(inf, inf_rate[r], 0.0),
               bolus=np.where(inf, 0.0, amt[r] * f[r]))
    r, j, starts = r[inf], j[inf], starts[inf]
    ends = starts + inf_dur[r]
    on = _before_key(ends, IMPLIED, cut_t[r], cut_o[r])
    r, j, ends = r[on], j[on], ends[on]
    blocks.add(_END, r, subject[r], ends, np.full(len(r), IMPLIED), cmt[r], k=j, drate=-inf_rate[r])
    return _lay_out(blocks.concatenated(), n_subjects, n_states)


def _infusion_shapes(amt, rate, dur_data, f, mrate, mdur, shaped):
    """Per record: infusion rate and duration after F, and whether it is an infusion (RATE, -1, -2 or DUR)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        modelled_rate = rate == -1
        modelled_dur = rate == -2
        by_rate = rate > 0
        by_dur = (rate == 0) & (dur_data > 0)
        inf_rate = np.select([modelled_rate, modelled_dur, by_rate, by_dur],
                             [mrate, amt * f / mdur, rate, amt * f / np.where(by_dur, dur_data, 1.0)], 0.0)
        inf_dur = np.select([modelled_rate, modelled_dur, by_rate, by_dur],
                            [amt * f / mrate, mdur, amt * f / np.where(by_rate, rate, 1.0), dur_data], 0.0)
    infusion = shaped & (modelled_rate | modelled_dur | by_rate | by_dur)
    return inf_rate, inf_dur, infusion


def _check_batch(records: DoseRecords, modifiers: DoseModifiers, shaped, steady, n_states, label) -> None:
    """The first record that cannot be given, with the first of its problems, as one sentence."""
    n = len(records)
    f, lag = modifiers.f.reshape(n), modifiers.lag.reshape(n)
    mrate, mdur = modifiers.rate.reshape(n), modifiers.duration.reshape(n)
    dose = np.isin(records.evid, [1, 4])
    cmt, rate, ii = records.cmt, records.rate, records.ii
    with np.errstate(invalid="ignore"):
        problems = [
            (dose & ~((cmt >= 0) & (cmt < n_states)), "CMT", cmt + 1, lambda i: f"allowed compartments are 1 to "
             f"{n_states}"),
            (dose & ((f < 0) | ~np.isfinite(f)), "F", f, lambda i: "bioavailability must be a finite number >= 0"),
            (dose & ((lag < 0) | ~np.isfinite(lag)), "ALAG", lag, lambda i: "lag time must be a finite number >= 0"),
            (shaped & (rate == -1) & ~(np.isfinite(mrate) & (mrate > 0)), "RATE", rate,
             lambda i: f"RATE=-1 needs a modelled rate R{cmt[i] + 1} > 0 in the model"),
            (shaped & (rate == -2) & ~(np.isfinite(mdur) & (mdur > 0)), "RATE", rate,
             lambda i: f"RATE=-2 needs a modelled duration D{cmt[i] + 1} > 0 in the model"),
            (shaped & (rate < 0) & (rate != -1) & (rate != -2), "RATE", rate,
             lambda i: "allowed values are 0 (bolus), a positive rate, -1 or -2"),
            (steady & (ii <= 0), "II", ii, lambda i: "a steady-state dose needs II > 0"),
            (steady & (lag >= ii), "ALAG", lag, lambda i: f"a steady-state dose needs a lag time shorter than II = "
             f"{ii[i]:g}"),
        ]
    bad = np.zeros(n, dtype=bool)
    for mask, *_ in problems:
        bad |= mask
    if not bad.any():
        return
    i = int(np.argmax(bad))
    where = label[i] if label is not None else f"record {records.order[i] + 1}"
    for mask, item, values, allowed in problems:
        if mask[i]:
            name = f"{item}{cmt[i] + 1}" if item in ("F", "ALAG") else item
            value = values[i].item() if hasattr(values[i], "item") else values[i]
            raise InputError(f"{where}: {name}", value, allowed(i))


def _check_size(records: DoseRecords, subject: np.ndarray, n_subjects: int, ss_inf: np.ndarray,
                running: np.ndarray, copies: np.ndarray, inf_dur: np.ndarray, label) -> None:
    """Refuse, before anything is allocated, records whose dose events (each dose's start and end, additional
    doses, infusions still running after a steady-state record) pass the limits per individual and per run.

    The sentence names the record that asks for most: its ADDL, or the steady-state infusion longer than its II.
    """
    per_record = 2.0 * copies + 1.0
    per_record[ss_inf] += 2.0 * running
    per_subject = np.bincount(subject, weights=per_record, minlength=n_subjects)
    total = float(per_subject.sum())
    worst = int(np.argmax(per_subject)) if n_subjects else 0
    if n_subjects and per_subject[worst] > DOSE_EVENTS_PER_INDIVIDUAL.value:
        limit, amount = DOSE_EVENTS_PER_INDIVIDUAL, float(per_subject[worst])
    elif total > DOSE_EVENTS_PER_RUN.value:
        limit, amount = DOSE_EVENTS_PER_RUN, total
    else:
        return
    mine = np.flatnonzero(subject == worst) if limit is DOSE_EVENTS_PER_INDIVIDUAL else np.arange(len(records))
    heaviest = int(mine[np.argmax(per_record[mine])])
    where = label[heaviest] if label is not None else f"record {records.order[heaviest] + 1}"
    at = np.flatnonzero(ss_inf == heaviest)
    if len(at) and running[at[0]] >= copies[heaviest]:
        limit.check(f"{where}: SS infusion", amount,
                    f"an infusion of {inf_dur[heaviest]:g} h every II = {records.ii[heaviest]:g} h at steady state "
                    f"leaves {running[at[0]]:,} earlier infusions running after the record, each ending on its own; "
                    "give a shorter infusion or a longer II")
    limit.check(f"{where}: ADDL", amount, "use a steady-state dose (SS=1) or fewer additional doses")


def _reset_cutoffs(records: DoseRecords, subject: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(time, order) of the first later record of the same subject that resets the system; (inf, 0) if none."""
    n = len(records)
    if n == 0:  # a dataset without any dose record
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    resets = np.isin(records.evid, [3, 4]) | (np.isin(records.evid, [1, 4]) & (records.ss == 1))
    candidate = np.where(resets, np.arange(n), n)
    first_from = np.minimum.accumulate(candidate[::-1])[::-1]
    following = np.append(first_from[1:], n)
    same = following < n
    same[same] = subject[following[same]] == subject[same]
    safe = np.where(same, following, 0)
    cut_t = np.where(same, records.time[safe] if n else 0.0, np.inf)
    cut_o = np.where(same, records.order[safe] if n else 0, 0)
    return cut_t, cut_o


def _before_key(time: np.ndarray, order: np.ndarray | int, cut_t: np.ndarray, cut_o: np.ndarray) -> np.ndarray:
    """Events whose (time, order) key lies strictly before their record's reset cutoff."""
    return (time < cut_t) | ((time == cut_t) & (np.asarray(order) < cut_o))


def _running_counts(duration: np.ndarray, ii: np.ndarray, lag: np.ndarray) -> np.ndarray:
    """How many implied steady-state infusions are still running at a record: implied infusion k started
    k*II - lag before it and runs if that is less than its duration (near-equality, 1e-12 relative, ends it)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        counts = np.ceil((duration + lag) / ii * (1 - _TIE_TOLERANCE)) - 1
    return np.clip(np.nan_to_num(counts, nan=0.0, posinf=1e15), 0, 1e15).astype(np.int64)  # beyond any limit


def _expand(records: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each record repeated ``counts`` times, with its 0-based copy number."""
    reps = np.repeat(records, counts)
    starts = np.cumsum(counts) - counts
    copy = np.arange(len(reps), dtype=np.int64) - np.repeat(starts, counts)
    return reps, copy


def _lay_out(cols: dict[str, np.ndarray], n_subjects: int, n_states: int) -> Schedule:
    """Sort the boundaries per subject and lay them out as a padded (subjects, boundaries) batch."""
    order = np.lexsort((cols["k"], cols["rank"], cols["record"], cols["order"], cols["time"], cols["subject"]))
    subject = cols["subject"][order]
    counts = np.bincount(subject, minlength=n_subjects)
    width = int(counts.max(initial=0))
    column = np.arange(len(subject)) - np.repeat(np.cumsum(counts) - counts, counts)
    out = {}
    for name in _ARRAY_FIELDS:
        fill = np.inf if name == "time" else 0
        a = np.full((n_subjects, width), fill, dtype=_dtype(name))
        a[subject, column] = cols[name][order]
        out[name] = a
    return Schedule(**out, n_states=n_states)
