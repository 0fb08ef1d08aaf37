"""From a :class:`~ketaplan.regimen.Regimen` to the engine's dose records."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ketaplan.engine.schedule import DoseRecords
from ketaplan.errors import InputError
from ketaplan.regimen.events import Regimen


def regimen_records(regimen: Regimen, route_parts: Mapping[str, Sequence], weight_kg: float | None = None
                    ) -> tuple[DoseRecords, tuple[tuple[str, int], ...]]:
    """Dose records (0-based compartments) and the (route, part) of each record.

    ``route_parts`` maps each route the model supports to its parts, each ``(state index, RouteDose)``;
    a dose by a route split into parts (e.g. absorbed through the mucosa and swallowed) becomes one
    record per part. A part with a zero-order duration turns a bolus into a modelled-duration
    infusion (RATE = -2). Events that pin a compartment number (from a dataset) keep it.
    """
    r = regimen.resolve(weight_kg)
    rows: list[dict] = []
    parts: list[tuple[str, int]] = []
    for e in r.events:
        base = {"time": e.time, "amount": e.amount, "rate": e.rate, "duration": e.duration, "ii": e.ii,
                "addl": e.addl, "ss": e.ss, "evid": e.evid}
        if e.cmt is not None or e.evid == 3:
            rows.append({**base, "cmt": (e.cmt - 1) if e.cmt is not None else 0})
            parts.append((e.route, -1))
            continue
        if e.route not in route_parts:
            raise InputError("route", e.route, f"this model supports {', '.join(sorted(route_parts))}")
        for k, (state, part) in enumerate(route_parts[e.route]):
            row = {**base, "cmt": state}
            if getattr(part, "duration", None) is not None and not e.is_infusion:
                row["rate"] = -2.0
            rows.append(row)
            parts.append((e.route, k))
    records = DoseRecords.from_lists(**{key: [row[key] for row in rows] for key in
                                        ("time", "amount", "cmt", "rate", "duration", "ii", "addl", "ss", "evid")})
    return records, tuple(parts)
