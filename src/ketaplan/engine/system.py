"""Linear compartment structures and their rate matrices.

A structure is plain data: named states, first-order transfers between them (or out of the
system), and effect compartments that follow a concentration with rate ke0. The model layer
supplies per-subject parameter arrays; :meth:`LinearStructure.rate_matrix` turns them into the
batched rate matrix K (per hour) of dA/dt = K A + input.

* a transfer of rate constant k from state i to state j removes k*A_i from i and adds
  yield*k*A_i to j (the yield carries a formation fraction and a molar-mass ratio for
  metabolites); a transfer to ``None`` leaves the system;
* an effect state e following source state c with volume V obeys dCe/dt = ke0*(A_c/V - Ce), so
  it holds a concentration in the source's amount-per-volume unit and removes nothing from c.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

Number = float | str


@dataclass(frozen=True)
class Transfer:
    """First-order flow ``rate`` (parameter name, 1/h) from ``source`` to ``target`` (None: out)."""

    source: str
    target: str | None
    rate: str
    yield_: Number = 1.0


@dataclass(frozen=True)
class EffectLink:
    """Effect state ``effect`` following the concentration ``source`` amount / ``volume``."""

    effect: str
    source: str
    ke0: str
    volume: str


@dataclass(frozen=True)
class LinearStructure:
    """States, transfers and effect links of a linear compartment model."""

    states: tuple[str, ...]
    transfers: tuple[Transfer, ...] = ()
    effects: tuple[EffectLink, ...] = ()

    def __post_init__(self) -> None:
        known = set(self.states)
        if len(known) != len(self.states):
            raise ValueError(f"duplicate state names in {self.states}")
        for t in self.transfers:
            if t.source not in known or (t.target is not None and t.target not in known):
                raise ValueError(f"transfer {t} refers to an unknown state")
        for e in self.effects:
            if e.effect not in known or e.source not in known:
                raise ValueError(f"effect link {e} refers to an unknown state")

    @property
    def n_states(self) -> int:
        return len(self.states)

    def index(self, name: str) -> int:
        """Position of a state."""
        return self.states.index(name)

    def parameter_names(self) -> set[str]:
        """Names of all parameters the rate matrix needs."""
        names = {t.rate for t in self.transfers}
        names |= {t.yield_ for t in self.transfers if isinstance(t.yield_, str)}
        names |= {e.ke0 for e in self.effects} | {e.volume for e in self.effects}
        return names

    def rate_matrix(self, params: Mapping[str, np.ndarray | float]) -> np.ndarray:
        """Batched rate matrix K with shape (*batch, n, n) from parameter arrays of shape batch."""
        missing = self.parameter_names() - set(params)
        if missing:
            raise KeyError(f"missing parameters for the rate matrix: {sorted(missing)}")
        arrays = {name: np.asarray(params[name], dtype=float) for name in self.parameter_names()}
        batch = np.broadcast_shapes(*(a.shape for a in arrays.values())) if arrays else ()
        n = self.n_states
        k = np.zeros((*batch, n, n))
        for t in self.transfers:
            i = self.index(t.source)
            rate = np.broadcast_to(arrays[t.rate], batch)
            k[..., i, i] -= rate
            if t.target is not None:
                y = arrays[t.yield_] if isinstance(t.yield_, str) else t.yield_
                k[..., self.index(t.target), i] += y * rate
        for e in self.effects:
            ie, ic = self.index(e.effect), self.index(e.source)
            ke0 = np.broadcast_to(arrays[e.ke0], batch)
            k[..., ie, ie] -= ke0
            k[..., ie, ic] += ke0 / arrays[e.volume]
        return k


def mammillary_rates(cl, v1, q=(), vp=()) -> dict[str, np.ndarray]:
    """Micro-constants k10, k1p and kp1 (p = 2, 3, ...) from clearances and volumes.

    k10 = CL/V1, k1p = Qp/V1, kp1 = Qp/Vp; all in the clearance's time unit.
    """
    v1 = np.asarray(v1, dtype=float)
    out = {"k10": np.asarray(cl, dtype=float) / v1}
    for p, (qp, vpp) in enumerate(zip(q, vp, strict=True), start=2):
        out[f"k1{p}"] = np.asarray(qp, dtype=float) / v1
        out[f"k{p}1"] = np.asarray(qp, dtype=float) / np.asarray(vpp, dtype=float)
    return out
