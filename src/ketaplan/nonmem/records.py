"""A regimen as NONMEM-style records and back: ID TIME AMT RATE DUR EVID CMT II ADDL SS MDV DV.

``regimen_to_records`` writes the dose records of a :class:`~ketaplan.regimen.Regimen` (plus observation
rows); ``regimen_from_records`` reads one individual's records back. The round trip is exact.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ketaplan.errors import InputError
from ketaplan.nonmem.dataset import column_map, numeric_column, split_individuals
from ketaplan.regimen.events import DoseEvent, Regimen


def regimen_to_records(
    regimen: Regimen,
    id: int | str = 1,
    *,
    cmt_of_route: Mapping[str, int] | None = None,
    observations: Sequence[float] | pd.DataFrame | None = None,
    weight_kg: float | None = None,
) -> pd.DataFrame:
    """NONMEM-style records: ID TIME AMT RATE DUR EVID CMT II ADDL SS MDV DV.

    ``cmt_of_route`` maps routes to 1-based compartment numbers (default: IV -> 1). Observations
    are times (DV missing, MDV 1) or a frame with TIME and DV (and optionally CMT) columns.
    Records at the same time keep doses before observations.
    """
    r = regimen.resolve(weight_kg)
    mapping = {"iv": 1, **(cmt_of_route or {})}
    rows = []
    for e in r.events:
        if e.cmt is not None:
            cmt = e.cmt
        elif e.evid == 3:
            cmt = 0
        elif e.route in mapping:
            cmt = mapping[e.route]
        else:
            raise InputError("route", e.route, "give cmt_of_route a compartment number for this route")
        rows.append({"ID": id, "TIME": e.time, "AMT": e.amount if e.evid != 3 else 0.0, "RATE": e.rate,
                     "DUR": e.duration, "EVID": e.evid, "CMT": cmt, "II": e.ii, "ADDL": e.addl, "SS": e.ss,
                     "MDV": 1, "DV": np.nan})
    rows.extend(_observation_rows(id, observations))
    frame = pd.DataFrame(rows, columns=list(NONMEM_COLUMNS))
    frame["_k"] = np.where(np.isin(frame["EVID"], [0, 2]), 1, 0)
    frame = frame.sort_values(["TIME", "_k"], kind="stable").drop(columns="_k").reset_index(drop=True)
    for col in ("EVID", "CMT", "ADDL", "SS", "MDV"):
        frame[col] = frame[col].astype(int)
    return frame

def regimen_from_records(data: pd.DataFrame, *, route_of_cmt: Mapping[int, str] | None = None,
                drug: str = "racemic") -> Regimen:
    """The regimen of one individual's NONMEM-style records (observation rows are skipped).

    Compartment numbers are kept on the events, so ``regimen_to_records`` gives them back unchanged.
    """
    individuals = split_individuals(data)
    if len({ind.id for ind in individuals}) > 1:
        raise InputError("ID", sorted({str(i.id) for i in individuals}), "give the records of one individual")
    routes = dict(route_of_cmt or {})
    events = []
    for ind in individuals:
        for k in range(ind.n_records):
            evid = int(ind.evid[k])
            if evid not in (1, 3, 4):
                continue
            cmt = int(ind.cmt[k]) or None
            events.append(DoseEvent(
                time=float(ind.time[k]), amount=float(ind.amt[k]), route=routes.get(cmt or 0, "iv"),
                rate=float(max(ind.rate[k], 0.0)), duration=float(ind.dur[k]), ii=float(ind.ii[k]),
                addl=int(ind.addl[k]), ss=int(ind.ss[k]), evid=evid, cmt=cmt))
    return Regimen(tuple(events), drug=drug)


NONMEM_COLUMNS = ("ID", "TIME", "AMT", "RATE", "DUR", "EVID", "CMT", "II", "ADDL", "SS", "MDV", "DV")

def nonmem_observations(data: pd.DataFrame) -> pd.DataFrame:
    """The non-dose rows (EVID 0 and 2) of NONMEM-style records as TIME, EVID, CMT, MDV, DV."""

    cols = column_map(data)
    evid = numeric_column(data, cols["EVID"]) if "EVID" in cols else np.zeros(len(data))
    keep = np.isin(evid, [0, 2])
    out = pd.DataFrame({"TIME": numeric_column(data, cols["TIME"])[keep], "EVID": evid[keep].astype(int)})
    out["CMT"] = numeric_column(data, cols["CMT"])[keep].astype(int) if "CMT" in cols else 1
    dv = numeric_column(data, cols["DV"])[keep] if "DV" in cols else np.full(keep.sum(), np.nan)
    out["DV"] = dv
    out["MDV"] = (numeric_column(data, cols["MDV"])[keep].astype(int) if "MDV" in cols
                  else np.isnan(dv).astype(int))
    return out.reset_index(drop=True)


def _observation_rows(id, observations) -> list[dict]:
    if observations is None:
        return []
    if not isinstance(observations, pd.DataFrame):
        observations = pd.DataFrame({"TIME": np.asarray(observations, dtype=float)})
    cols = {c.upper(): c for c in observations.columns}
    rows = []
    for _, o in observations.iterrows():
        dv = float(o[cols["DV"]]) if "DV" in cols else np.nan
        mdv = int(o[cols["MDV"]]) if "MDV" in cols else int(np.isnan(dv))
        rows.append({"ID": id, "TIME": float(o[cols["TIME"]]), "AMT": 0.0, "RATE": 0.0, "DUR": 0.0,
                     "EVID": int(o[cols["EVID"]]) if "EVID" in cols else 0,
                     "CMT": int(o[cols["CMT"]]) if "CMT" in cols else 1, "II": 0.0, "ADDL": 0, "SS": 0,
                     "MDV": mdv, "DV": dv})
    return rows
