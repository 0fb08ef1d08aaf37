"""One patient's measurements: plasma levels (with below-quantification flags) and pain scores."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ketaplan.errors import InputError

PAIN = "pain_nrs"
"""Output name of a pain score (NRS 0-10)."""


@dataclass(frozen=True)
class Observations:
    """Measurements of one patient, each at a time (h from the first record) of a named output.

    ``blq`` marks levels below the limit of quantification ``lloq`` (ng/mL; the M3 likelihood uses
    only the fact that the level was below it); ``row`` is the position in the source table, for messages.
    """

    time: np.ndarray
    output: np.ndarray  # object array of output names
    value: np.ndarray
    blq: np.ndarray
    lloq: np.ndarray
    row: np.ndarray

    @classmethod
    def of(cls, time, output, value, blq=None, lloq=None, row=None) -> Observations:
        t = np.asarray(time, dtype=float)
        n = len(t)
        return cls(t, np.asarray(output, dtype=object).reshape(n), np.asarray(value, dtype=float).reshape(n),
                   np.zeros(n, bool) if blq is None else np.asarray(blq, dtype=bool).reshape(n),
                   np.full(n, np.nan) if lloq is None else np.asarray(lloq, dtype=float).reshape(n),
                   np.arange(n) if row is None else np.asarray(row).reshape(n))

    def __len__(self) -> int:
        return len(self.time)

    @property
    def is_score(self) -> np.ndarray:
        return self.output == PAIN

    def select(self, keep: np.ndarray) -> Observations:
        return Observations(self.time[keep], self.output[keep], self.value[keep], self.blq[keep], self.lloq[keep],
                            self.row[keep])

    def until(self, hours: float) -> Observations:
        """The measurements up to ``hours`` (to see how a forecast changes as data arrive)."""
        return self.select(self.time <= hours)


def check_observations(obs: Observations, first_dose: float | None, outputs: set[str], label: str = "row",
                       log_scale: bool = False) -> None:
    """Refuse bad data in one sentence: no doses, levels before the first dose, scores outside 0-10, ..."""
    if first_dose is None:
        raise InputError("doses", "none", "the data need at least one dose (EVID 1 or 4 with AMT > 0)")
    if len(obs) == 0:
        raise InputError("observations", "none", "give at least one measured level or pain score")
    for i in range(len(obs)):
        where = f"{label} {obs.row[i] + 1}" if label == "row" else label
        name, t, v = obs.output[i], obs.time[i], obs.value[i]
        if name not in outputs:
            raise InputError(f"{where}, output", name, f"this model predicts {', '.join(sorted(outputs))}")
        if not np.isfinite(t) or t < 0:
            raise InputError(f"{where}, TIME", t, "times must be finite and >= 0 h")
        if name == PAIN:
            if not np.isfinite(v) or not 0 <= v <= 10:
                raise InputError(f"{where}, DV", v, "a pain score must be a number from 0 to 10 (NRS)")
            if obs.blq[i]:
                raise InputError(f"{where}, BLQ", 1, "pain scores cannot be below a quantification limit")
            continue
        if t < first_dose:
            raise InputError(f"{where}, TIME", t, f"a level measured before the first dose (at {first_dose:g} h) "
                             "cannot be fitted; remove it or mark it as a baseline sample with EVID 2")
        if obs.blq[i]:
            if not np.isfinite(obs.lloq[i]) or (obs.lloq[i] <= 0 and not log_scale):
                raise InputError(f"{where}, LLOQ", obs.lloq[i], "a BLQ level needs its quantification limit > 0 "
                                 "(in the LLOQ column or as DV; on the log scale any finite log)")
            continue
        if not np.isfinite(v) or (v <= 0 and not log_scale):
            raise InputError(f"{where}, DV", v, "a level must be > 0 ng/mL; flag levels below the quantification "
                             "limit with BLQ = 1 (M3)")
