"""The model library: every file validates, derived values match the papers, doses give sane levels."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from ketaplan.cli import app
from ketaplan.engine.build import _INTERNAL, _to_internal, build
from ketaplan.engine.derived import derived_quantities
from ketaplan.errors import InputError
from ketaplan.models.compose import with_pd
from ketaplan.models.library import (
    DEFAULT_MODELS,
    assemble,
    library_ids,
    load_entry,
    load_model,
    load_pd,
    parse_spec,
)
from ketaplan.regimen.events import DoseEvent, Regimen
from ketaplan.regimen.units import Q_, _prepare
from ketaplan.simulation.patient import Patient
from ketaplan.simulation.predict import predict

PK_IDS = library_ids("pk")


@pytest.mark.parametrize("entry_id", library_ids())
def test_every_library_file_loads_and_validates(entry_id):
    entry = load_entry(entry_id)
    assert entry.id == entry_id
    assert entry.citations, "every library file cites its sources"


@pytest.mark.parametrize("model_id", PK_IDS)
def test_every_parameter_has_source_and_confidence_and_routes_compose(model_id):
    spec = assemble(model_id)
    for name, p in spec.parameters.items():
        assert p.source.strip(), name
        assert p.confidence in ("high", "moderate", "low")
    assert {"iv", "oral", "intranasal", "sublingual", "im", "rectal", "topical"} <= set(spec.routes)


def _pint_to_internal(unit: str, value: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """The conversion as it was done before the factors were cached: pint on every array."""
    q = Q_(value, _prepare(unit))
    if q.check("[body_weight]") or "[body_weight]" in str(q.dimensionality):
        q = q * Q_(weight, "kgbw")
    target = _INTERNAL.get(str(q.dimensionality))
    return np.asarray(q.magnitude if target is None else q.to(target).magnitude, dtype=float)


@pytest.mark.parametrize("entry_id", PK_IDS + library_ids("pd"))
def test_cached_unit_factors_convert_every_library_parameter_exactly_as_pint(entry_id):
    rng = np.random.default_rng(4)
    params = (assemble(entry_id) if entry_id in PK_IDS else load_pd(entry_id)).parameters
    units = {p.unit for p in params.values()} | {"mL/min/kg", "L/kg", "ug/L", "1/min"}
    for unit in sorted(units):
        value, weight = rng.lognormal(0.0, 2.0, 500), rng.uniform(3.0, 250.0, 500)
        np.testing.assert_array_equal(_to_internal(unit, value, weight), _pint_to_internal(unit, value, weight))


def test_a_parameter_unit_that_is_not_a_plain_factor_is_refused():
    with pytest.raises(InputError, match="converts by a factor"):
        _to_internal("decibel", np.ones(2), np.ones(2))


def _derived(model_id, weight=70.0, age=45.0):
    return derived_quantities(build(load_model(model_id), Patient(weight, age).covariates()))


def test_hijazi_clearance_and_half_life_match_the_abstract():
    (d,) = _derived("hijazi_2003_icu")
    assert d.clearance_l_per_h * 1000 / 60 / 70 == pytest.approx(36.0, rel=0.01)  # mL/min/kg, abstract 36.0
    assert d.half_lives_h[-1] == pytest.approx(4.9, rel=0.02)  # abstract 4.9 h


def test_fanta_otto_half_lives():
    for model_id in ("fanta_2015_s_ketamine", "otto_2021_s_ketamine_norketamine"):
        sk = _derived(model_id)[0]
        np.testing.assert_allclose(np.array(sk.half_lives_h) * 60, [12.9, 89.4, 442], rtol=0.01)  # reference §3.1
        assert sk.clearance_l_per_h == pytest.approx(95.2)


def test_herd_clearance_per_70kg_and_allometry():
    (d70,) = _derived("herd_2007_children")
    assert d70.clearance_l_per_h == pytest.approx(90.0)
    np.testing.assert_allclose(np.array(d70.half_lives_h) * 60, [4.4, 80.4], rtol=0.01)
    (d35,) = _derived("herd_2007_children", weight=35.0)
    assert d35.clearance_l_per_h == pytest.approx(90.0 * 0.5**0.75)


def test_domino_clements_simons_perez_ruixo_derived_values():
    (dom,) = _derived("domino_racemic_3cmt")
    assert dom.clearance_l_per_h == pytest.approx(115.9, rel=1e-3)
    assert dom.vss_l / 70 == pytest.approx(2.76, rel=0.01)
    (cle,) = _derived("clements_nimmo_1981")
    np.testing.assert_allclose(np.array(cle.half_lives_h) * 60, [17.6, 182.9], rtol=0.01)
    sim = _derived("simons_2022_s_ketamine_otf")[0]
    assert sim.clearance_l_per_h == pytest.approx(88.8)
    np.testing.assert_allclose(np.array(sim.half_lives_h) * 60, [1.46, 21.4, 193], rtol=0.01)
    per = _derived("perez_ruixo_2021_esketamine")[0]
    assert per.clearance_l_per_h == pytest.approx(114, rel=0.05)  # abstract 114 L/h (well-stirred liver)
    assert per.vss_l == pytest.approx(752, rel=0.05)  # abstract 752 L


def test_domino_at_20_mg_per_h_in_70_kg():
    c = predict("domino_racemic_3cmt", Regimen.infusion("20 mg/h", duration="2 d"), Patient(70), [24])["ketamine"]
    assert c.iloc[0] == pytest.approx(173, rel=0.01)  # reference §2.1 (derived)


def test_kamp_variant_scales_clearance_to_the_meta_analysis():
    (d,) = derived_quantities(build(load_model("domino_racemic_3cmt:kamp2020"), Patient(70).covariates()))
    assert d.clearance_l_per_h == pytest.approx(79.0, rel=1e-3)  # Kamp 2020 weighted mean 79 L/h/70 kg
    with pytest.raises(InputError, match="variants"):
        load_model("domino_racemic_3cmt:nope")


def test_esketamine_nasal_bioavailability_and_tmax_match_published_values():
    t = np.linspace(0, 200, 100001)
    for variant, dose, published in ((":two_sprays", "56 mg", 0.54), (":three_sprays", "84 mg", 0.51)):
        spec = assemble("perez_ruixo_2021_esketamine" + variant)
        nasal = predict(spec, Regimen.bolus(dose, route="IN", drug="s-ketamine"), Patient(74, 45), t)["s_ketamine"]
        iv = predict(spec, Regimen.bolus(dose, route="IV", drug="s-ketamine"), Patient(74, 45), t)["s_ketamine"]
        f = np.trapezoid(nasal, t) / np.trapezoid(iv, t)
        assert f == pytest.approx(published, abs=0.01)  # Perez-Ruixo 2021 abstract: 54 % / 51 %
        assert 20 <= t[np.argmax(nasal)] * 60 <= 40  # Spravato label Tmax 20-40 min (secondary)


@pytest.mark.parametrize(("route", "published_tmax_h"), [
    ("SL", 0.75),  # Rolan 2014 median Tmax 0.75 h
    ("PO", 0.96),  # Chong 2006 mean Tmax 0.96 h
    ("IN", 16.7 / 60),  # Pharmacotherapy 2022 Table 6: n-weighted geometric mean of 23, 14 and 16 min
])
def test_racemic_absorption_rates_give_the_published_tmax_with_the_default_disposition(route, published_tmax_h):
    t = np.linspace(0, 4, 4801)
    c = predict(assemble(DEFAULT_MODELS["racemic_iv_adult"]), Regimen.bolus("25 mg", route=route), Patient(70),
                t)["ketamine"]
    assert t[np.argmax(c)] == pytest.approx(published_tmax_h, abs=0.01)


def test_racemic_intranasal_bioavailability_is_the_2022_weighted_mean():
    t = np.linspace(0, 96, 96001)
    spec = assemble(DEFAULT_MODELS["racemic_iv_adult"])
    nasal = predict(spec, Regimen.bolus("25 mg", route="IN"), Patient(70), t)["ketamine"]
    iv = predict(spec, Regimen.bolus("25 mg"), Patient(70), t)["ketamine"]
    f = np.trapezoid(nasal, t) / np.trapezoid(iv, t)
    assert f == pytest.approx((7 * 0.17 + 10 * 0.13 + 10 * 0.11) / 27, abs=0.005)  # 17, 13, 11 % (n 7, 10, 10)


def test_default_racemic_model_norketamine_steady_state_is_calibrated_to_koppel():
    # steady state: norketamine / ketamine = FM_NK x CL_ketamine / CL_NK = 1.0 / 1.2 (Koppel, 3 days, ICU)
    spec = load_model(DEFAULT_MODELS["racemic_iv_adult"])
    c = predict(spec, Regimen.infusion("20 mg/h", duration="30 d"), Patient(70), [700.0])
    assert c["norketamine"].iloc[0] / c["ketamine"].iloc[0] == pytest.approx(1.0 / 1.2, rel=0.005)
    (k, *_rest) = derived_quantities(build(spec, Patient(70).covariates()))
    assert k.clearance_l_per_h == pytest.approx(79.0, rel=1e-3)  # Kamp 2020 weighted mean, 70 kg


STUDY_DOSES = [
    ("domino_racemic_3cmt", Regimen.infusion("20 mg/h", duration="5 d"), Patient(70), (150, 200)),
    ("domino_racemic_3cmt_nk", Regimen.infusion("20 mg/h", duration="5 d"), Patient(70), (150, 200)),
    ("clements_nimmo_1981", Regimen.bolus("0.25 mg/kg"), Patient(70), None),
    ("hijazi_2003_icu", Regimen.bolus("1 mg/kg"), Patient(70), None),
    ("herd_2007_children", Regimen.bolus("1.5 mg/kg"), Patient(32.5, 8), None),
    ("fanta_2015_s_ketamine", Regimen.bolus("0.125 mg/kg", drug="s-ketamine"), Patient(77, 22, "male"), None),
    ("fanta_2015_s_ketamine", Regimen.bolus("0.25 mg/kg", route="oral", drug="s-ketamine"), Patient(77, 22), None),
    ("otto_2021_s_ketamine_norketamine", Regimen.infusion(amount="10 mg", duration="30 min", drug="s-ketamine"),
     Patient(70, 30), None),
    ("simons_2022_s_ketamine_otf", Regimen.bolus("100 mg", route="SL", drug="s-ketamine")
     + Regimen.infusion(amount="20 mg", duration="20 min", at="6 h", drug="s-ketamine"), Patient(73, 24), None),
    ("perez_ruixo_2021_esketamine", Regimen.bolus("84 mg", route="oral", drug="s-ketamine"), Patient(74, 45), None),
]


@pytest.mark.parametrize(("model_id", "regimen", "patient", "steady_range"), STUDY_DOSES)
def test_study_doses_give_sane_levels(model_id, regimen, patient, steady_range):
    t = np.linspace(0, 48, 2881) if steady_range is None else np.linspace(0, 130, 1301)
    frame = predict(assemble(model_id), regimen, patient, t)
    values = frame.drop(columns=["id", "time"]).to_numpy()
    assert np.all(np.isfinite(values))
    assert values.min() >= -1e-9 * values.max()
    parent = frame.iloc[:, 2].to_numpy()
    assert parent.max() > 1 and parent.max() < 5000  # ng/mL: between trace and deep anaesthesia
    if steady_range:
        assert steady_range[0] <= parent[t == 100][0] <= steady_range[1]


def _dahan_titration() -> Regimen:
    """100-h S-ketamine infusion titrated 5 -> 20 mg/h (Sigtermans 2009; steps assumed: 12 h each)."""
    events = [DoseEvent(0, 60, rate=5), DoseEvent(12, 120, rate=10), DoseEvent(24, 180, rate=15),
              DoseEvent(36, 20 * 64, rate=20)]
    return Regimen.of(events, drug="s-ketamine")


def test_dahan_relief_outlasts_the_infusion_by_weeks():
    spec = assemble("otto_2021_s_ketamine_norketamine", pd=["dahan_2011_crps_pkpd"])
    days = np.arange(0, 100)
    t = 100 + 24.0 * days
    from ketaplan.engine.pd import evaluate_layers
    frame = predict(spec, _dahan_titration(), Patient(79, 46, "female"), t)
    built = build(spec, Patient(79, 46, "female").covariates())
    layers = evaluate_layers(spec, built.params, {"relief_site": frame["relief_site"].to_numpy()[None]}, 7.0)
    relief = layers["relief"][0]
    assert relief[0] > 0.6  # near-complete relief in responders at the end of the infusion
    assert relief[28] > 0.25  # still substantial four weeks later
    below = int(np.argmax(relief < 0.15))
    assert 35 <= below <= 70  # Dahan 2011: analgesia outlasted the infusion by about 50 days
    assert relief[80] < 0.05  # week 12: difference no longer significant (Sigtermans 2009)
    np.testing.assert_allclose(layers["relief_expected"][0], 0.67 * relief)
    np.testing.assert_allclose(layers["pain_nrs"][0], 7.0 * (1 - relief))


def test_s_ketamine_pd_on_a_racemic_model_is_labelled_an_extrapolation():
    spec = assemble("domino_racemic_3cmt", pd=["dahan_2011_crps_pkpd"])
    (site,) = spec.effect_sites
    assert site.scale == 0.5 and "EXTRAPOLATION" in site.note
    assert any("EXTRAPOLATION" in c for c in spec.caveats)
    c = predict(spec, Regimen.infusion("20 mg/h", duration="5 d"), Patient(70), np.linspace(0, 2000, 2001))
    half = c["ketamine"].to_numpy() * 0.5
    site = c["relief_site"].to_numpy()
    assert 0 < site.max() < half.max()  # the slow site follows half the racemic level, with a lag
    k = np.log(2) / (10.9 * 24)  # from the published half-life: Ce = 0.5 Cp (1 - e^{-k t}) at near-steady Cp
    assert site[120] == pytest.approx(0.5 * 172.5 * (1 - np.exp(-k * 120)), rel=0.02)


def test_olofsen_norketamine_term_needs_a_metabolite():
    spec = with_pd(load_model("domino_racemic_3cmt"), load_pd("olofsen_2012_norketamine_pd"))
    (layer,) = spec.pd
    assert [t[0] for t in layer.terms] == ["pain_site_k"]
    assert any("left out" in c for c in spec.caveats)
    full = assemble("otto_2021_s_ketamine_norketamine", pd=["olofsen_2012_norketamine_pd"])
    assert [t[0] for t in full.pd[0].terms] == ["pain_site_k", "pain_site_nk"]


def test_acute_effect_follows_the_published_contributions():
    """At steady effect-site 100 ng/mL S-K and 50 ng/mL S-NK the VAS change is -3.8 + 1.5 = -2.3 cm."""
    from ketaplan.engine.pd import evaluate_layers

    spec = assemble("otto_2021_s_ketamine_norketamine", pd=["olofsen_2012_norketamine_pd"])
    built = build(spec, Patient(70).covariates())
    out = evaluate_layers(spec, built.params, {"pain_site_k": np.array([[100.0]]), "pain_site_nk": np.array([[50.0]])})
    assert out["acute_pain_change"][0, 0] == pytest.approx(-2.3)


def _domino_raw():
    from importlib import resources

    return yaml.safe_load((resources.files("ketaplan.models") / "library" / "domino_racemic_3cmt.yaml").read_text())


@pytest.mark.parametrize(("change", "field"), [
    (lambda d: d["parameters"]["V1"].pop("source"), "parameters.V1.source"),
    (lambda d: d["parameters"]["k10"].update(confidence="certain"), "parameters.k10.confidence"),
    (lambda d: d["flows"][0].update(source="liver"), "unknown compartment"),
    (lambda d: d["compartments"][0].update(analyte="caffeine"), "compartments.0.analyte"),
    (lambda d: d.update(drug="ketamine"), "drug"),
    (lambda d: d.update(variability=[{"parameters": ["k10"], "omega": [[-1.0]], "source": "x"}]),
     "positive semi-definite"),
    (lambda d: d["routes"].update(oral={"compartment": "central", "bioavailability": "F_NOPE"}), "F_NOPE"),
])
def test_malformed_model_files_name_the_field(change, field):
    raw = _domino_raw()
    change(raw)
    with pytest.raises(InputError) as info:
        parse_spec(raw, "model file bad.yaml")
    assert field in str(info.value)
    assert str(info.value).startswith("model file bad.yaml")


def test_a_users_model_file_loads_through_the_same_path(tmp_path):
    raw = _domino_raw()
    raw["id"] = "my_clinic_model"
    raw["parameters"]["k10"]["value"] = 0.3
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(raw))
    spec = load_model(str(path))
    assert spec.id == "my_clinic_model"
    (d,) = derived_quantities(build(spec, Patient(70).covariates()))
    assert d.clearance_l_per_h == pytest.approx(0.3 * 60 * 0.063 * 70)


def test_models_list_and_show_commands():
    runner = CliRunner()
    listed = runner.invoke(app, ["models", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.output)
    assert {r["id"] for r in rows} == set(library_ids())
    assert {"id", "kind", "drug", "population", "routes", "pd_layers", "confidence"} <= set(rows[0])
    shown = runner.invoke(app, ["models", "show", "hijazi_2003_icu", "--json"])
    assert shown.exit_code == 0, shown.output
    info = json.loads(shown.output)
    assert info["derived"]["values"][0]["half_lives_h"][-1] == pytest.approx(4.945, rel=1e-3)
    assert all({"unit", "source", "confidence"} <= set(p) for p in info["parameters"])
    assert any("ICU" in c for c in info["caveats"]) and info["citations"]
    text = runner.invoke(app, ["models", "show", "dahan_2011_crps_pkpd"])
    assert text.exit_code == 0 and "ASSUMED" in text.output
    bad = runner.invoke(app, ["models", "show", "no_such_model"])
    assert bad.exit_code == 2 and "not in the library" in bad.output


def test_psychotomimetic_threshold_is_a_range_with_a_labelled_central_value():
    from ketaplan.models.spec import NamedThreshold
    from ketaplan.models.thresholds import thresholds_for

    racemic = thresholds_for("racemic")["psychotomimetic"]
    assert (racemic.low, racemic.value, racemic.high) == (50, 150, 250)  # Bowdle 1998; Krystal 1994 (Zanos 2018)
    assert racemic.assumed and "Bowdle 1998" in racemic.source and "reported range 50-250" in racemic.label
    s = thresholds_for("s-ketamine")["psychotomimetic"]
    assert (s.low, s.value, s.high) == (25, 75, 125) and s.extrapolated  # potency ratio 2 (Peltoniemi 2016)
    base = {"name": "x", "role": "side_effect", "drug": "racemic", "source": "s", "confidence": "low"}
    with pytest.raises(ValueError, match="within the range"):
        NamedThreshold.model_validate({**base, "value": 300, "low": 50, "high": 250, "range_source": "r"})
    with pytest.raises(ValueError, match="range_source"):
        NamedThreshold.model_validate({**base, "value": 150, "low": 50, "high": 250})
