"""``ketaplan clinic learn`` and model versions, end to end on a SQLite record of a simulated clinic.

The clinic is drawn from a known truth unlike the published model (C50 0.4 ng/mL instead of 10.5, relief
half-life 20 days instead of 10.9, like the seed patient); the learned version must move towards it, be
saved as proposed with its provenance, be used by forecasts only once an admin accepts it (audited), and be
reversible ('published').
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from sqlalchemy import select

from conftest import invoke_cli
from ketaplan.course.db import make_engine, transaction
from ketaplan.course.schema import AuditEntry, ModelVersion
from ketaplan.course.simulated_record import write_cohort
from ketaplan.estimation.simulated_cohort import Truth, simulate_cohort
from ketaplan.regimen.text import parse_regimen
from ketaplan.simulation.run import model_for

pytestmark = pytest.mark.usefixtures("wide_console")


@pytest.fixture(scope="module")
def clinic(tmp_path_factory):
    path = tmp_path_factory.mktemp("learn") / "clinic.db"
    mp = pytest.MonkeyPatch()
    mp.setenv("KETAPLAN_PASSWORD", "admin-password-1")
    mp.setenv("KETAPLAN_USER", "dr.a")
    r = invoke_cli("clinic", "init", "--db", str(path), "--admin", "admin")
    assert r.exit_code == 0, r.output
    spec = model_for(parse_regimen("20 mg/h IV for 5 d"))
    cohort, _ = simulate_cohort(spec, Truth({"RELIEF_C50": 0.4, "RELIEF_HALF_LIFE": 20.0}, 0.7, years=1.5), 14,
                                seed=5)
    with transaction(make_engine(str(path))) as s:
        write_cohort(s, cohort)
    r = invoke_cli("clinic", "learn", "--clinic", "Pijnkliniek Test", "--folds", "2", "--db", str(path))
    yield str(path), r
    mp.undo()


def run(db, *args, code=0):
    r = invoke_cli("clinic", *args, "--db", db)
    assert r.exit_code == code, r.output + r.stderr
    return r.stdout if code == 0 else r.stderr


def test_learn_saves_a_proposed_version_that_moves_towards_the_clinic(clinic):
    db, r = clinic
    assert r.exit_code == 0, r.output + r.stderr
    out = r.output
    assert "Saved as model version 1 (proposed)" in out
    for text in ("Typical values", "RELIEF_C50", "RELIEF_HALF_LIFE", "P_RESPONSE", "shrinkage", "Objective",
                 "not learned: RELIEF_EMAX", "held-out", "14 patients"):
        assert text in out, text
    # the truth's C50 (0.4) lies 4 prior SDs below the published 10.5: the report says the two disagree
    assert "prior-data conflict: RELIEF_C50: the clinic's data alone put it at" in " ".join(out.split())
    with transaction(make_engine(db)) as s:
        v = s.scalar(select(ModelVersion))
        result = json.loads(v.result)
        assert (v.status, v.in_use, v.clinic, v.n_patients, v.prior) == \
            ("proposed", False, "Pijnkliniek Test", 14, "dahan_2011_crps_pkpd")
    typical = {row["name"]: row for row in result["typical"]}
    # 14 patients and the published prior: C50 lies between the truth (0.4) and the published 10.5, far
    # below the latter; the relief half-life moves from 10.9 towards 20 days
    assert 0.4 / 3 < typical["RELIEF_C50"]["learned"] < 10.5 / 3
    assert typical["RELIEF_HALF_LIFE"]["learned"] > 10.9
    assert result["objective"]["change"] < -10  # the clinic's data fit far better than the published values


def test_forecasts_use_a_version_only_after_an_admin_accepts_it(clinic):
    db, _ = clinic
    assert "published" in _forecast_model(db, "KP-S0001")
    run(db, "models", "accept", "1", "--admin", "dr.a", code=2)  # not an admin
    assert "proposed" in run(db, "models", "list")
    run(db, "models", "accept", "1", "--admin", "admin")
    assert "accepted, in use" in run(db, "models", "list")
    assert _forecast_model(db, "KP-S0001") == "clinic version 1"
    compared = run(db, "show", "KP-S0001", "--model", "published")
    assert "model: published" in compared  # one patient's forecast under another model, to compare
    assert "model: clinic version 1" in run(db, "show", "KP-S0001")
    assert "published model" in run(db, "models", "use", "published", "--admin", "admin")
    assert _forecast_model(db, "KP-S0001") == "published"
    run(db, "models", "use", "1", "--admin", "admin")
    run(db, "models", "reject", "1", "--admin", "admin", code=2)  # in use: cannot be rejected
    with transaction(make_engine(db)) as s:
        actions = [a.action for a in s.scalars(select(AuditEntry).where(AuditEntry.entity == "model_versions"))]
    assert actions == ["learn", "accept", "use-published", "use"]


def test_unknown_version_and_too_few_patients_are_one_sentence(clinic, tmp_path, monkeypatch):
    db, _ = clinic
    out = run(db, "models", "show", "7", code=2)
    assert "model version" in out and "\n" not in out.strip()
    empty = tmp_path / "empty.db"
    monkeypatch.setenv("KETAPLAN_PASSWORD", "admin-password-1")
    assert invoke_cli("clinic", "init", "--db", str(empty), "--admin", "admin").exit_code == 0
    out = run(str(empty), "learn", code=2)
    assert "at least 5 consenting patients" in out


def _forecast_model(db: str, code: str) -> str:
    from ketaplan.course.forecast import cached_forecast
    from ketaplan.course.store import get_patient

    with transaction(make_engine(db)) as s:
        fc = cached_forecast(s, get_patient(s, code))
    assert fc["status"] == "ok", fc
    return fc["model"]


def test_a_simulated_record_lies_in_the_past_even_when_a_course_outlasts_the_last_score(tmp_path):
    from dataclasses import replace
    from datetime import datetime

    from conftest import fresh_engine, seed_clinic
    from ketaplan.course.schema import Infusion
    from ketaplan.estimation.library_cohort import Cohort
    from ketaplan.regimen.events import DoseEvent, Regimen

    spec = model_for(parse_regimen("20 mg/h IV for 5 d"))
    cohort, _ = simulate_cohort(spec, Truth({"RELIEF_C50": 0.4, "RELIEF_HALF_LIFE": 20.0}, 0.7, years=0.5), 2,
                                seed=5)
    first = cohort.patients[0]
    late = max(float(p.observations.time.max()) for p in cohort.patients) + 48.0  # after every last score
    events = (*first.regimen.events, DoseEvent(time=late, amount=2400.0, rate=20.0, route="iv"))
    cohort = Cohort((replace(first, regimen=Regimen(events, drug=first.regimen.drug)), *cohort.patients[1:]),
                    cohort.label)
    engine = fresh_engine("sqlite", tmp_path)
    seed_clinic(engine)
    end = datetime(2026, 6, 1, 12)
    with transaction(engine) as s:
        assert write_cohort(s, cohort, end=end) > 0
    with transaction(engine) as s:
        assert max(i.end for i in s.scalars(select(Infusion))) <= end


def test_a_version_carries_the_uncertainty_of_its_values_into_the_forecasts(clinic):
    """The learned typical values' covariance (from the covariance step) travels with the version: the model
    built from it holds the block of the typical values on their estimation scales, and a new patient's
    spread of relief under it is wider than under the same values taken as certain."""
    from ketaplan.course.model_versions import get_version, version_spec
    from ketaplan.planning.relief_spread import relief_spread
    from ketaplan.simulation.patient import Patient

    db, _ = clinic
    regimen = parse_regimen("20 mg/h IV for 5 d")
    with transaction(make_engine(db)) as s:
        v = get_version(s, 1)
        result = json.loads(v.result)
        spec = version_spec(v, regimen)
    u = spec.uncertainty
    assert u is not None and "learned from Pijnkliniek Test, version 1" in u.source
    names = [row["name"] for row in result["typical"]]
    assert list(u.parameters) == names
    assert dict(zip(u.parameters, u.transforms, strict=True))["P_RESPONSE"] == "logit"
    index = [result["names"].index(n) for n in names]
    assert np.allclose(u.covariance, np.asarray(result["covariance"])[np.ix_(index, index)])
    patient = Patient(80.0, 59.0, "male")
    with_uncertainty = relief_spread(spec, regimen, patient, draws=2000)
    certain = relief_spread(spec.model_copy(update={"uncertainty": None}), regimen, patient, draws=2000)
    wide, narrow = with_uncertainty.courses[0].days, certain.courses[0].days
    assert wide[2] / wide[0] > narrow[2] / narrow[0]
    assert with_uncertainty.p_response_90[0] < spec.parameters["P_RESPONSE"].value < with_uncertainty.p_response_90[1]
