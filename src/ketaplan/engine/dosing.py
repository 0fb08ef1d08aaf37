"""From a :class:`~ketaplan.regimen.Regimen` to the engine's dose records."""

from __future__ import annotations

from collections.abc import Mapping

from ketaplan.engine.schedule import DoseRecords
from ketaplan.errors import InputError
from ketaplan.regimen import Regimen


def regimen_records(regimen: Regimen, cmt_of_route: Mapping[str, int],
                    weight_kg: float | None = None) -> tuple[DoseRecords, tuple[str, ...]]:
    """Dose records (0-based compartments) and the route of each record.

    ``cmt_of_route`` maps each route the model supports to its dose compartment; events that pin a
    compartment number (from a dataset) keep it.
    """
    r = regimen.resolve(weight_kg)
    cmts, routes = [], []
    for e in r.events:
        if e.cmt is not None:
            cmts.append(e.cmt - 1)
        elif e.evid == 3:
            cmts.append(0)
        elif e.route in cmt_of_route:
            cmts.append(cmt_of_route[e.route])
        else:
            raise InputError("route", e.route, f"this model supports {', '.join(sorted(cmt_of_route))}")
        routes.append(e.route)
    records = DoseRecords.from_lists(
        time=[e.time for e in r.events], amount=[e.amount for e in r.events], cmt=cmts,
        rate=[e.rate for e in r.events], duration=[e.duration for e in r.events],
        ii=[e.ii for e in r.events], addl=[e.addl for e in r.events], ss=[e.ss for e in r.events],
        evid=[e.evid for e in r.events])
    return records, tuple(routes)
