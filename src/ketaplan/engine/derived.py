"""Quantities derived from a model for a given patient: clearance, volumes and half-lives.

All follow from the rate matrix: the parent system is the set of compartments that exchange with
the IV dose compartment (its strongly connected part); clearance is the constant infusion rate over
the steady-state plasma concentration; Vss is the amount in the parent system at steady state over
that concentration; half-lives are ln 2 over the eigenvalues of the parent system.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ketaplan.engine.build import BuiltModel


@dataclass(frozen=True)
class Derived:
    """Derived disposition of one analyte for one patient (internal units: L, h)."""

    analyte: str
    clearance_l_per_h: float
    central_volume_l: float
    vss_l: float
    half_lives_h: tuple[float, ...]
    compartments: tuple[str, ...]


def _exchange_group(k: np.ndarray, start: int) -> list[int]:
    """States that both receive from and return to ``start`` (its strongly connected component)."""
    n = k.shape[0]
    adj = (np.abs(k) > 0) & ~np.eye(n, dtype=bool)  # adj[j, i]: flow from i to j

    def reach(forward: bool) -> set[int]:
        seen, todo = {start}, [start]
        while todo:
            i = todo.pop()
            nxt = np.flatnonzero(adj[:, i] if forward else adj[i, :])
            for j in nxt:
                if j not in seen:
                    seen.add(int(j))
                    todo.append(int(j))
        return seen

    return sorted(reach(True) & reach(False))


def derived_quantities(built: BuiltModel, subject: int = 0) -> list[Derived]:
    """Clearance, central volume, Vss and half-lives of each analyte with a plasma observable."""
    k = built.rate_matrix()[subject]
    comps = {c.name: c for c in built.spec.compartments}
    out = []
    for obs in built.spec.observables.values():
        if obs.compartment not in comps:
            continue
        c = built.structure.index(obs.compartment)
        group = _exchange_group(k, c)
        sub = k[np.ix_(group, group)]
        r = np.zeros(len(group))
        r[group.index(c)] = 1.0  # 1 mg/h into this compartment
        a_ss = np.linalg.solve(sub, -r)
        volume = float(built.params[comps[obs.compartment].volume][subject])
        css = a_ss[group.index(c)] / volume
        lam = np.linalg.eigvals(sub).real
        half = tuple(sorted(float(np.log(2) / -x) for x in lam if x < 0))
        out.append(Derived(obs.analyte, float(1.0 / css), volume, float(a_ss.sum() / css), half,
                           tuple(built.structure.states[i] for i in group)))
    return out
