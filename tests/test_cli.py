"""The command line: the headline case, dataset simulation, and refusals (exit 2, nothing written)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from ketaplan.cli import app
from ketaplan.regimen.events import Regimen
from ketaplan.simulation.patient import Patient
from ketaplan.simulation.predict import predict

runner = CliRunner()


def test_headline_prints_levels_from_the_engine():
    result = runner.invoke(app, ["headline"])
    assert result.exit_code == 0, result.output
    expected = predict("domino_racemic_3cmt_nk:kamp2020", Regimen.infusion("20 mg/h", duration="5 d"),
                       Patient(80, 59, "male"), [1, 24, 120, 121, 130])["ketamine"]
    for value in expected:
        assert f"{value:.1f}" in result.output
    assert "Domino" in result.output and "not a prescription" in result.output


def test_domino_headline_values_match_the_reference_derivation():
    """Reference §2.1 (derived): Domino, 70 kg, 20 mg/h -> 101 ng/mL at 1 h, 148 at 4 h, 173 at 24 h,
    72 one hour and 24 four hours after the stop; 0.35 mg/kg/h x 4 h -> 182 at the end, 67 an hour later."""
    c = predict("domino_racemic_3cmt", Regimen.infusion("20 mg/h", duration="5 d"), Patient(70),
                [1, 4, 24, 121, 124])["ketamine"].to_numpy()
    np.testing.assert_allclose(c, [101, 148, 173, 72, 24], rtol=0.01)
    s = predict("domino_racemic_3cmt", Regimen.infusion("0.35 mg/kg/h", duration="4 h"), Patient(70),
                [4, 5])["ketamine"].to_numpy()
    np.testing.assert_allclose(s, [182, 67], rtol=0.01)


def test_simulate_dataset_command(tmp_path):
    data = tmp_path / "data.csv"
    pd.DataFrame({"ID": [1, 1], "TIME": [0, 2], "AMT": [100, 0], "EVID": [1, 0]}).to_csv(data, index=False)
    model = tmp_path / "model.yaml"
    model.write_text("advan: 1\nCL: 1\nV: 10\nscale: 1000\n")
    out = tmp_path / "out.csv"
    result = runner.invoke(app, ["simulate-dataset", str(data), "--model", str(model), "--out", str(out)])
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out)
    np.testing.assert_allclose(frame["IPRED"], [10000, 10000 * np.exp(-0.2)], rtol=1e-12)


def test_bad_dataset_exit_code_2_and_nothing_written(tmp_path):
    data = tmp_path / "data.csv"
    pd.DataFrame({"ID": [1, 1], "TIME": [0, 2], "AMT": ["x", 0], "EVID": [1, 0]}).to_csv(data, index=False)
    model = tmp_path / "model.yaml"
    model.write_text("advan: 1\nCL: 1\nV: 10\n")
    out = tmp_path / "out.csv"
    result = runner.invoke(app, ["simulate-dataset", str(data), "--model", str(model), "--out", str(out)])
    assert result.exit_code == 2
    assert "row 1, column AMT: got 'x'; a number is required." in result.output
    assert not out.exists()
    assert set(tmp_path.iterdir()) == {data, model}
