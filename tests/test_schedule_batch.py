"""Compiling many subjects' own dose records at once (datasets) gives each subject exactly the schedule it
gets alone: resets, steady states and pending doses never leak from one subject into the next."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ketaplan.engine.schedule import _ARRAY_FIELDS, DoseModifiers, DoseRecords, compile_batch, compile_schedule
from ketaplan.errors import InputError

FIELDS = ("time", "amount", "cmt", "rate", "duration", "ii", "addl", "ss", "evid", "order")


@st.composite
def subject_records(draw):
    """One subject's dose, reset and steady-state records (valid or not) with its own modifiers."""
    n = draw(st.integers(1, 5))
    times = sorted(draw(st.lists(st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.0, 12.0]), min_size=n, max_size=n)))
    rows = {name: [] for name in FIELDS}
    for i, t in enumerate(times):
        evid = draw(st.sampled_from([1, 1, 1, 3, 4]))
        rate = draw(st.sampled_from([0.0, 0.0, 2.0, 10.0, -1.0, -2.0]))
        ii = draw(st.sampled_from([0.0, 1.0, 4.0]))
        ss = draw(st.sampled_from([0, 0, 1, 2])) if evid in (1, 4) else 0
        amount = draw(st.sampled_from([0.0, 10.0, 25.0]))
        if ss and ii == 0 and not (amount == 0 and rate > 0):
            ii = 4.0
        if amount == 0 and not (ss and rate > 0):
            amount = 10.0
        for name, value in (("time", t), ("amount", amount), ("cmt", draw(st.integers(0, 2))), ("rate", rate),
                            ("duration", draw(st.sampled_from([0.0, 3.0])) if rate == 0 else 0.0), ("ii", ii),
                            ("addl", draw(st.integers(0, 3)) if ii > 0 else 0), ("ss", ss), ("evid", evid),
                            ("order", 2 * i)):
            rows[name].append(value)
    records = DoseRecords.from_lists(**rows)
    mods = DoseModifiers(np.array([draw(st.lists(st.sampled_from([1.0, 0.5]), min_size=n, max_size=n))]),
                         np.array([draw(st.lists(st.sampled_from([0.0, 0.25, 3.0]), min_size=n, max_size=n))]),
                         np.full((1, n), draw(st.sampled_from([np.nan, 5.0]))),
                         np.full((1, n), draw(st.sampled_from([np.nan, 2.5]))))
    return records, mods


def _alone(records, mods):
    try:
        return compile_schedule(records, mods, 3)
    except InputError:
        return None


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(subject_records(), min_size=1, max_size=5))
def test_a_batch_of_subjects_compiles_as_each_subject_alone(subjects):
    alone = [_alone(r, m) for r, m in subjects]
    valid = [s for s, a in zip(subjects, alone, strict=True) if a is not None]
    schedules = [a for a in alone if a is not None]
    if not valid:
        return
    records = DoseRecords(*(np.concatenate([getattr(r, f) for r, _ in valid]) for f in FIELDS))
    mods = DoseModifiers(*(np.concatenate([getattr(m, f) for _, m in valid], axis=1)
                           for f in ("f", "lag", "rate", "duration")))
    subject = np.repeat(np.arange(len(valid)), [len(r) for r, _ in valid])
    batch = compile_batch(records, subject, len(valid), mods, 3)
    for i, single in enumerate(schedules):
        live = np.isfinite(batch.time[i])
        assert live.sum() == np.isfinite(single.time[0]).sum()
        for name in _ARRAY_FIELDS:
            np.testing.assert_array_equal(getattr(batch, name)[i][live], getattr(single, name)[0][:live.sum()])
