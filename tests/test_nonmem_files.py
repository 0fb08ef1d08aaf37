"""Datasets streamed from files by chunks of whole individuals: same numbers as in memory, rows counted
from the top of the file in messages, nothing written on refusal, memory bounded by the chunk."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from ketaplan.cli import app
from ketaplan.errors import InputError
from ketaplan.nonmem.files import read_chunks, simulate_file
from ketaplan.nonmem.simulate import simulate_dataset

MODEL = {"advan": 3, "CL": "CL", "V1": 10.0, "Q": 2.0, "V2": 20.0}


def _dataset(sizes: list[int], seed: int = 1) -> pd.DataFrame:
    """Individuals with the given numbers of observation records, a bolus and an infusion each."""
    rng = np.random.default_rng(seed)
    frames = []
    for i, n_obs in enumerate(sizes, start=1):
        obs = np.sort(rng.uniform(0.1, 48.0, n_obs)).round(3)
        frames.append(pd.DataFrame({
            "ID": i, "TIME": np.concatenate([[0.0, 6.0], obs]), "AMT": [100.0, 50.0] + [0.0] * n_obs,
            "RATE": [0.0, 25.0] + [0.0] * n_obs, "EVID": [1, 1] + [0] * n_obs,
            "CL": float(rng.uniform(1, 5))}).sort_values("TIME", kind="stable"))
    return pd.concat(frames, ignore_index=True)


@settings(max_examples=25, deadline=None)
@given(sizes=st.lists(st.integers(0, 40), min_size=1, max_size=12), chunk=st.integers(1, 60),
       suffix=st.sampled_from([".csv", ".parquet"]))
def test_chunks_hold_whole_individuals_and_give_the_in_memory_result(tmp_path_factory, sizes, chunk, suffix):
    tmp = tmp_path_factory.mktemp("chunks")
    data = _dataset(sizes)
    source = tmp / f"data{suffix}"
    data.to_csv(source, index=False) if suffix == ".csv" else data.to_parquet(source)
    chunks = list(read_chunks(source, chunk_rows=chunk))
    assert sum(len(f) for _, f in chunks) == len(data)
    largest = max(s + 2 for s in sizes)
    for (first, frame), following in zip(chunks, [*chunks[1:], (len(data), None)], strict=True):
        assert len(frame) <= max(chunk, 1) + largest  # a chunk ends at the first individual boundary past its size
        assert following[0] == first + len(frame)
        ids = frame["ID"].astype(str).to_numpy()
        if following[1] is not None:
            assert str(following[1]["ID"].iloc[0]) != ids[-1]  # no individual is cut in two
    out = tmp / f"out{suffix}"
    assert simulate_file(source, MODEL, out, chunk_rows=chunk) == len(data)
    written = pd.read_csv(out) if suffix == ".csv" else pd.read_parquet(out)
    expected = simulate_dataset(data, MODEL)
    # a chunk batches other individuals together than the whole table does: a few ulps of rounding differ
    np.testing.assert_allclose(written["IPRED"].to_numpy(), expected["IPRED"].to_numpy(), rtol=1e-13)
    assert list(written.columns) == list(expected.columns)


def test_a_bad_row_in_a_later_chunk_is_named_from_the_top_and_nothing_is_written(tmp_path):
    data = _dataset([30] * 10)
    data["TIME"] = data["TIME"].astype(object)
    data.loc[250, "TIME"] = "abc"
    source, out = tmp_path / "data.csv", tmp_path / "out.csv"
    data.to_csv(source, index=False)
    with pytest.raises(InputError, match=r"^row 251, column TIME: got 'abc'; a number is required"):
        simulate_file(source, MODEL, out, chunk_rows=40)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.csv"]


def test_the_command_reads_and_writes_parquet_and_csv(tmp_path):
    data = _dataset([5, 7, 3])
    data.to_parquet(tmp_path / "data.parquet")
    (tmp_path / "model.yaml").write_text("advan: 3\nCL: CL\nV1: 10\nQ: 2\nV2: 20\n")
    runner = CliRunner()
    for suffix in (".csv", ".parquet"):
        done = runner.invoke(app, ["simulate-dataset", str(tmp_path / "data.parquet"), "--model",
                                   str(tmp_path / "model.yaml"), "--out", str(tmp_path / f"out{suffix}")])
        assert done.exit_code == 0, done.output
        assert "wrote 21 rows" in done.output
    a, b = pd.read_csv(tmp_path / "out.csv"), pd.read_parquet(tmp_path / "out.parquet")
    np.testing.assert_array_equal(a["IPRED"].to_numpy(), b["IPRED"].to_numpy())


def test_text_cells_are_carried_through_unchanged(tmp_path):
    source = tmp_path / "data.csv"
    source.write_text('ID,TIME,AMT,DV,NOTE\n1,0,100,.,"first, dose"\n1,1,0,5.2,\n1,2,.,.,x\n')
    out = tmp_path / "out.csv"
    simulate_file(source, {"advan": 1, "CL": 1.0, "V": 10.0}, out)
    lines = out.read_text().splitlines()
    assert lines[0] == "ID,TIME,AMT,DV,NOTE,IPRED,A1"
    assert lines[1].startswith('1,0,100,.,"first, dose",')
    assert lines[3].startswith("1,2,.,.,x,")


@pytest.mark.parametrize("text, message", [
    ("", "the file is empty"),
    ("ID,TIME,AMT\n", "needs at least one row"),
    ("ID,TIME,AMT,amt\n1,0,100,100\n", "two columns for AMT"),
])
def test_empty_files_and_repeated_columns_are_refused(tmp_path, text, message):
    source = tmp_path / "data.csv"
    source.write_text(text)
    with pytest.raises(InputError, match=message):
        simulate_file(source, {"advan": 1, "CL": 1.0, "V": 10.0}, tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists()
