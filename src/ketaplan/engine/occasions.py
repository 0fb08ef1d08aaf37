"""Parameters that change from one occasion (treatment course) to the next: inter-occasion variability.

The system is solved occasion by occasion, each with its own parameters; the amounts in every state at
the start of an occasion are carried over as boluses (their per-subject sizes given as the bolus's F),
which is exact for a linear system. Doses must not repeat across occasions (expand ADDL first) and
steady-state records are not allowed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from ketaplan.engine.build import BuiltModel
from ketaplan.engine.exact import solve
from ketaplan.engine.schedule import DoseModifiers, DoseRecords, compile_schedule
from ketaplan.errors import InputError
from ketaplan.regimen.events import DoseEvent, Regimen


def expand_repeats(regimen: Regimen) -> Regimen:
    """The same doses with every ADDL repeat written out as its own event (needed to split by occasion)."""
    events: list[DoseEvent] = []
    for e in regimen.events:
        if e.ss:
            raise InputError("regimen", e.ss, "steady-state doses cannot be combined with course-to-course "
                             "variability; give the doses themselves")
        for t in e.dose_times():
            events.append(replace(e, time=float(t), ii=0.0, addl=0))
    return Regimen(tuple(sorted(events, key=lambda x: x.time)), drug=regimen.drug, label=regimen.label,
                   start=regimen.start, notes=regimen.notes)


def _take(records: DoseRecords, keep: np.ndarray) -> DoseRecords:
    return DoseRecords(**{name: getattr(records, name)[keep] for name in records.__dataclass_fields__})


def _join(a: DoseRecords, b: DoseRecords) -> DoseRecords:
    return DoseRecords(**{name: np.concatenate([getattr(a, name), getattr(b, name)])
                          for name in a.__dataclass_fields__})


def _join_mods(a: DoseModifiers, b: DoseModifiers) -> DoseModifiers:
    return DoseModifiers(*(np.concatenate([getattr(a, f), getattr(b, f)], axis=1)
                           for f in ("f", "lag", "rate", "duration")))


def solve_by_occasion(builts: Sequence[BuiltModel], starts: Sequence[float], records: DoseRecords,
                      parts: Sequence[tuple[str, int]], times: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """Outputs (S, T, len(names)) when occasion k (from ``starts[k]``; the first from time 0) uses ``builts[k]``.

    ``records`` and ``parts`` come from :func:`ketaplan.engine.dosing.regimen_records` of an expanded regimen.
    """
    if np.any(records.addl > 0) or np.any(records.ss > 0):
        raise InputError("regimen", "repeats", "expand ADDL repeats and avoid steady state with occasions")
    times = np.asarray(times, dtype=float)
    n_states = builts[0].structure.n_states
    s = builts[0].n_subjects
    out = np.zeros((s, len(times), len(names)))
    state = None
    bounds = [*starts[1:], np.inf]
    for k, built in enumerate(builts):
        lo, hi = (starts[k] if k else -np.inf), bounds[k]
        keep = (records.time >= lo) & (records.time < hi)
        rec = _take(records, keep)
        mods = built.modifiers([p for p, kept in zip(parts, keep, strict=True) if kept])
        if state is not None:
            carry = DoseRecords.from_lists(time=np.full(n_states, lo), amount=np.ones(n_states),
                                           cmt=np.arange(n_states), order=np.full(n_states, -1))
            carry_mods = DoseModifiers(np.maximum(state, 0.0), np.zeros((s, n_states)),
                                       np.full((s, n_states), np.nan), np.full((s, n_states), np.nan))
            rec, mods = _join(carry, rec), _join_mods(carry_mods, mods)
        window = (times >= lo) & (times < hi)
        t_k = times[window]
        if np.isfinite(hi):
            t_k = np.append(t_k, hi)
        readout = np.concatenate([built.readout(list(names)), np.broadcast_to(np.eye(n_states),
                                                                               (s, n_states, n_states))], axis=1)
        if len(t_k) == 0:  # nothing to report in the last occasion
            break
        if len(rec.time) == 0:
            values = np.zeros((s, len(t_k), readout.shape[1]))
        else:
            schedule = compile_schedule(rec, mods, n_states)
            values = solve(built.rate_matrix(), schedule, t_k, readout)
        out[:, window] = values[:, :window.sum(), :len(names)]
        state = values[:, -1, len(names):]
    return out
