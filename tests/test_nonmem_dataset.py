"""simulate_dataset: PREDPP structures, carried-through columns, and bad datasets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ketaplan.engine.ode import solve_ode
from ketaplan.engine.schedule import DoseModifiers, DoseRecords, compile_schedule
from ketaplan.errors import InputError
from ketaplan.nonmem.predpp import load_model
from ketaplan.nonmem.simulate import simulate_dataset


def dataset(dose_cmt: int, obs_cmt: int, n_obs: int = 25) -> pd.DataFrame:
    rows = [{"ID": 1, "TIME": 0.0, "EVID": 1, "AMT": 100.0, "CMT": dose_cmt, "RATE": 0.0, "II": 12.0, "ADDL": 2}]
    rows += [{"ID": 1, "TIME": float(t), "EVID": 0, "AMT": 0.0, "CMT": obs_cmt, "RATE": 0.0, "II": 0.0, "ADDL": 0}
             for t in np.linspace(0.5, 48, n_obs)]
    return pd.DataFrame(rows)


ADVAN_CASES = [
    (1, {"CL": 2.0, "V": 20.0}, 1),
    (2, {"CL": 2.0, "V": 20.0, "KA": 1.3}, 1),
    (3, {"CL": 2.0, "V1": 20.0, "Q": 5.0, "V2": 60.0}, 1),
    (4, {"CL": 2.0, "V2": 20.0, "Q": 5.0, "V3": 60.0, "KA": 1.3}, 1),
    (11, {"CL": 2.0, "V1": 20.0, "Q2": 5.0, "V2": 60.0, "Q3": 1.0, "V3": 200.0}, 1),
    (12, {"CL": 2.0, "V2": 20.0, "Q3": 5.0, "V3": 60.0, "Q4": 1.0, "V4": 200.0, "KA": 1.3}, 1),
]


@pytest.mark.parametrize(("advan", "params", "dose_cmt"), ADVAN_CASES)
def test_advans_match_numerical_integration(advan, params, dose_cmt):
    model = load_model({"advan": advan, **params, "scale": 1000})
    central = model.advan.central + 1
    data = dataset(dose_cmt, central)
    out = simulate_dataset(data, model)
    # reference: solve_ivp on the same micro-constants built independently here
    micro = _micro(advan, params)
    structure = model.structure()
    k = structure.rate_matrix({key: np.atleast_1d(v) for key, v in micro.items()})
    records = DoseRecords.from_lists([0.0], [100.0], [dose_cmt - 1], ii=[12.0], addl=[2])
    sched = compile_schedule(records, DoseModifiers.neutral(1, 1), structure.n_states)
    ref = solve_ode(k, sched, data["TIME"].to_numpy(), np.eye(structure.n_states), np.arange(len(data)))[0]
    vc = params.get("V", params.get("V1", params.get("V2")))
    np.testing.assert_allclose(out["IPRED"], 1000 * ref[:, model.advan.central] / vc, rtol=1e-7, atol=1e-9)
    for j in range(structure.n_states):
        np.testing.assert_allclose(out[f"A{j + 1}"], ref[:, j], rtol=1e-7, atol=1e-9)


def _micro(advan, p):
    if advan == 1:
        return {"K": p["CL"] / p["V"]}
    if advan == 2:
        return {"K": p["CL"] / p["V"], "KA": p["KA"]}
    if advan == 3:
        return {"K": p["CL"] / p["V1"], "K12": p["Q"] / p["V1"], "K21": p["Q"] / p["V2"]}
    if advan == 4:
        return {"K": p["CL"] / p["V2"], "K23": p["Q"] / p["V2"], "K32": p["Q"] / p["V3"], "KA": p["KA"]}
    if advan == 11:
        return {"K": p["CL"] / p["V1"], "K12": p["Q2"] / p["V1"], "K21": p["Q2"] / p["V2"],
                "K13": p["Q3"] / p["V1"], "K31": p["Q3"] / p["V3"]}
    return {"K": p["CL"] / p["V2"], "K23": p["Q3"] / p["V2"], "K32": p["Q3"] / p["V3"], "K24": p["Q4"] / p["V2"],
            "K42": p["Q4"] / p["V4"], "KA": p["KA"]}


def test_micro_constants_equal_clearances():
    data = dataset(1, 1)
    macro = simulate_dataset(data, {"advan": 11, "CL": 2, "V1": 20, "Q2": 5, "V2": 60, "Q3": 1, "V3": 200})
    micro = simulate_dataset(data, {"advan": 11, "K": 0.1, "K12": 0.25, "K21": 5 / 60, "K13": 0.05, "K31": 0.005,
                                    "V1": 20})
    np.testing.assert_allclose(macro["IPRED"], micro["IPRED"], rtol=1e-12)


def test_columns_case_insensitive_missing_dots_and_carry_through():
    data = pd.DataFrame({"id": ["1", "1", "1"], "time": ["0", "1", "2"], "amt": ["100", ".", "."],
                         "evid": ["1", "0", "0"], "Dv": [".", "4.5", "3.9"], "SITE": ["a", "b", "c"],
                         "WT": ["70", "70", "70"]})
    out = simulate_dataset(data, {"advan": 1, "CL": 1, "V": "WT"})
    assert list(out.columns) == ["id", "time", "amt", "evid", "Dv", "SITE", "WT", "IPRED", "A1"]
    assert list(out["SITE"]) == ["a", "b", "c"]
    np.testing.assert_allclose(out["IPRED"], 100 / 70 * np.exp(-np.array([0, 1, 2]) / 70), rtol=1e-12)


def test_per_subject_parameters_from_columns():
    rows = []
    for i, v in ((1, 10.0), (2, 40.0)):
        rows += [{"ID": i, "TIME": 0, "AMT": 100, "EVID": 1, "VC": v},
                 {"ID": i, "TIME": 2, "AMT": 0, "EVID": 0, "VC": v}]
    out = simulate_dataset(pd.DataFrame(rows), {"advan": 1, "CL": 1, "V": "VC"})
    np.testing.assert_allclose(out["IPRED"].iloc[[1, 3]], [10 * np.exp(-0.2), 2.5 * np.exp(-2 / 40)], rtol=1e-12)


def test_reserved_items_are_read_whatever_their_case():
    """SCALE (as NONMEM users write it) was ignored silently when spelled in capitals."""
    lower = simulate_dataset(base_rows(), {"advan": 1, "CL": 1, "V": 10, "scale": 1000})
    upper = simulate_dataset(base_rows(), {"ADVAN": 1, "CL": 1, "V": 10, "SCALE": 1000})
    np.testing.assert_allclose(upper["IPRED"], lower["IPRED"], rtol=0)
    assert upper["IPRED"].iloc[1] == pytest.approx(1000 * 10 * np.exp(-0.1), rel=1e-12)


def base_rows():
    return pd.DataFrame({"ID": [1, 1, 1], "TIME": [0.0, 1.0, 2.0], "AMT": [100.0, 0, 0], "EVID": [1, 0, 0],
                         "CMT": [1, 1, 1], "RATE": [0.0, 0, 0], "DUR": [0.0, 0, 0]})


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d.assign(AMT=["abc", "0", "0"]), "row 1, column AMT: got 'abc'; a number is required"),
    (lambda d: d.assign(AMT=[-5.0, 0, 0]), "row 1, column AMT"),
    (lambda d: d.assign(TIME=[-1.0, 1, 2]), "row 1, column TIME"),
    (lambda d: d.assign(TIME=[0.0, 2, 1]), "row 3, column TIME: got 1; times must not decrease"),
    (lambda d: d.assign(TIME=["0", ".", "2"]), "row 2, column TIME"),  # a missing time: a number is required
    (lambda d: d.assign(TIME=[0.0, np.nan, -2.0]), "row 2, column TIME"),  # missing is named before negative
    (lambda d: d.assign(RATE=[10.0, 0, 0], DUR=[5.0, 0, 0]), "row 1, columns RATE and DUR"),
    (lambda d: d.assign(CMT=[3, 1, 1]), "row 1, column CMT: got 3"),
    (lambda d: d.assign(EVID=[7, 0, 0]), "row 1, column EVID"),
    (lambda d: d.drop(columns="TIME"), "a TIME column is required"),
])
def test_bad_datasets_name_row_and_column(change, message):
    data = change(base_rows())
    with pytest.raises(InputError) as info:
        simulate_dataset(data, {"advan": 1, "CL": 1, "V": 10})
    assert message in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("model", "message"), [
    ({"advan": 1, "CL": 1}, "advan 1 needs V or V1"),
    ({"advan": 5, "CL": 1, "V": 1}, "allowed structures are advan 1, 2, 3, 4, 11 and 12"),
    ({"advan": 1, "CL": 1, "V": "NOPE"}, "MODEL V: got 'NOPE'; is neither a number nor a column"),
    ({"advan": 1, "CL": 1, "K": 1, "V": 1}, "either clearances"),
    ({"advan": 1, "CL": 1, "V": 1, "Q": 2}, "not a parameter of advan 1"),
    ({"advan": 1, "CL": 1, "V": 1, "F3": 0.5}, "advan 1 has compartments 1 to 1"),
    ({"advan": 1, "CL": 1, "V": 1, "scale": 1, "SCALE": 1000}, "scale is given twice"),
    ({"advan": 1, "CL": 1, "V": 1, "parameters": {"CL": 2}}, "CL is given both at the top and under parameters"),
])
def test_bad_models(model, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(")):
        simulate_dataset(base_rows(), model)


def test_modelled_rate_missing_in_model():
    data = base_rows().assign(RATE=[-1.0, 0, 0])
    with pytest.raises(InputError, match="row 1: RATE: got -1; RATE=-1 needs a modelled rate R1"):
        simulate_dataset(data, {"advan": 1, "CL": 1, "V": 10})


@settings(max_examples=200, deadline=None)
@given(ids=st.one_of(st.lists(st.integers(-2**62, 2**62), min_size=1, max_size=20),
                     st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=20),
                     st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=20)))
def test_individual_ids_read_as_pandas_writes_them(ids):
    from ketaplan.nonmem.dataset import _id_texts

    for column in (pd.Series(ids), pd.Series(ids, dtype=object)):
        assert list(_id_texts(column)) == list(column.astype(str).str.strip().to_numpy())
