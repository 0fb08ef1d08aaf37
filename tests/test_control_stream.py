"""NONMEM control streams read into ketaplan model files: every construct, the refusals, and phenobarbital
estimated from its control stream against NONMEM's own run (pharmpy's pheno.lst/pheno.ext, NONMEM 7)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import ketaplan
from ketaplan.errors import InputError
from ketaplan.estimation.data import population_model
from ketaplan.estimation.parameters import ParameterSpace
from ketaplan.nonmem.control_stream import parse_control_stream, read_control_stream
from ketaplan.nonmem.expressions import compile_expressions
from ketaplan.nonmem.predpp import PredppModel, load_model
from ketaplan.nonmem.random_effects import parse_omega

DATA = Path(__file__).parent / "data"

NONMEM_PHENO = {  # pheno.ext (FOCE-I, NONMEM 7): final estimates, OFV and sandwich SEs
    "ofv": 586.27605628520962,
    "theta": (4.69555e-03, 9.84258e-01, 1.58920e-01),
    "omega": (2.93508e-02, 2.79060e-02),
    "sigma": 1.32410e-02,
    "se": {"THETA(1)": 2.09967e-04, "THETA(2)": 2.68946e-02, "THETA(3)": 8.37555e-02, "OMEGA(1,1)": 1.34156e-02,
           "OMEGA(2,2)": 7.47591e-03, "SIGMA(1,1)": 2.27991e-03},
}


def stream(pk: str = "CL = THETA(1)*EXP(ETA(1))\nV = THETA(2)\nS1 = V", error: str = "Y = F + F*EPS(1)",
           theta: str = "(0, 1) (0, 10)", omega: str = "0.1", sigma: str = "0.04", est: str = "METHOD=1 INTER",
           head: str = "$INPUT ID TIME AMT DV WT\n$SUBROUTINES ADVAN1 TRANS2") -> str:
    return (f"$PROBLEM test\n{head}\n$PK\n{pk}\n$ERROR\n{error}\n$THETA {theta}\n$OMEGA {omega}\n"
            f"$SIGMA {sigma}\n$ESTIMATION {est}\n")


def parse(text: str, directory: Path = DATA):
    return parse_control_stream(text, directory)


def values(expression, **columns) -> np.ndarray:
    """Evaluate a parsed parameter at THETA = 1, 2, 3, ... and ETA = 0 on the given data items."""
    names = tuple(sorted(columns))
    f = compile_expressions({"x": expression.expr}, 6, 2, names)
    return f(np.arange(1.0, 7.0), np.zeros((1, 2)), {k: np.asarray(columns[k], float) for k in names})["x"]


# ---------------------------------------------------------------------------------------------- phenobarbital
@pytest.fixture(scope="module")
def pheno_ctl():
    return ketaplan.estimate(None, DATA / "pheno.mod")


def test_pheno_control_stream_reproduces_nonmem(pheno_ctl):
    r = pheno_ctl
    assert r.method == "foce-i"
    assert r.ofv == pytest.approx(NONMEM_PHENO["ofv"], abs=0.05)
    assert list(r.theta.values()) == pytest.approx(NONMEM_PHENO["theta"], rel=2e-3)
    assert list(r.omega.values()) == pytest.approx(NONMEM_PHENO["omega"], rel=5e-3)
    assert r.sigma["SIGMA(1,1)"] == pytest.approx(NONMEM_PHENO["sigma"], rel=2e-3)
    for name, se in NONMEM_PHENO["se"].items():
        assert r.se[name] == pytest.approx(se, rel=0.01), name


def test_pheno_control_stream_and_yaml_give_the_same_estimates(pheno_ctl):
    yaml = ketaplan.estimate(DATA / "pheno.csv", DATA / "pheno.yaml", covariance=False)
    assert yaml.ofv == pytest.approx(pheno_ctl.ofv, abs=1e-4)
    for got, want in ((pheno_ctl.theta, yaml.theta), (pheno_ctl.omega, yaml.omega), (pheno_ctl.sigma, yaml.sigma)):
        assert got.keys() == want.keys()
        assert list(got.values()) == pytest.approx(list(want.values()), rel=1e-3)


def test_load_model_reads_a_control_stream_with_omega_and_sigma():
    pm = load_model(DATA / "pheno.mod")
    assert isinstance(pm, PredppModel) and pm.advan.number == 1
    assert [t.label for t in pm.thetas] == ["POP_CL", "POP_VC", "COVAPGR"]
    assert (pm.thetas[2].lower, pm.thetas[2].init) == (-0.99, 0.1)
    assert pm.extra["omega"] == [0.0309626, 0.031128]
    assert pm.extra["sigma"] == {"proportional": 0.0130865}
    v = values(pm.parameters["V"], WGT=[2.0, 2.0], APGR=[3, 7])  # THETA(2)=2, THETA(3)=3
    assert v == pytest.approx([2 * 2 * (1 + 3), 2 * 2])


def test_estimate_evaluates_at_maxeval_0_and_method_overrides(tmp_path):
    text = (DATA / "pheno.mod").read_text().replace("MAXEVALS=99999", "MAXEVAL=0")
    (tmp_path / "run.ctl").write_text(text.replace("pheno.csv", str(DATA / "pheno.csv")))
    r = ketaplan.estimate(None, tmp_path / "run.ctl", covariance=False)
    assert r.evaluated_only and r.theta["THETA(1)"] == 0.00469307
    assert r.ofv == pytest.approx(587.36644134661617, abs=1e-3)  # pheno.ext, iteration 0
    fo = ketaplan.estimate(DATA / "pheno.csv", tmp_path / "run.ctl", method="fo", covariance=False)
    assert fo.method == "fo" and fo.evaluated_only


# ---------------------------------------------------------------------------------------------- $INPUT, $DATA
def test_input_drop_skip_and_synonyms(tmp_path):
    (tmp_path / "d.csv").write_text("ID,TIME,AMT,CONC,WT,X,Y\n1,0,100,.,70,9,9\n1,1,0,5,70,9,9\n")
    text = stream(head="$INPUT ID TIME AMT CONC=DV WT=DROP SKIP X=DROP\n$DATA d.csv IGNORE=@\n"
                       "$SUBROUTINES ADVAN1 TRANS2",
                  pk="CL = THETA(1)\nV = THETA(2)\nS1 = V", error="Y = F + F*EPS(1)\nZ = CONC")
    s = parse(text, tmp_path)
    frame = s.read_data()
    assert list(frame.columns) == ["ID", "TIME", "AMT", "DV"]
    assert frame["DV"].tolist() == [".", "5"]
    with pytest.raises(InputError, match=r"\$PK.*WT is neither defined"):
        parse(text.replace("CL = THETA(1)", "CL = THETA(1)*WT"), tmp_path)


def test_data_ignore_and_accept_filters(tmp_path):
    (tmp_path / "d.dta").write_text("C header\n1 0 100 0 70\n1 1 0 5 70\n2 0 100 0 80\n2 1 0 6 80\n"
                                    "3 0 100 0 90\n3 1 0 7 90\n")
    head = "$INPUT ID TIME AMT DV WT\n$SUBROUTINES ADVAN1 TRANS2\n$DATA d.dta "
    kept = {opts: parse(stream(head=head + opts), tmp_path).read_data()["ID"].unique().tolist() for opts in (
        "IGNORE=C IGNORE=(ID.EQ.2)", "IGNORE=C IGNORE (ID.EQ.2, WT.GT.85)", "IGNORE=C ACCEPT=(WT.LT.75,ID.EQ.3)",
        "IGNORE=C IGNORE=(ID==1) IGNORE=(ID.NE.1)")}
    assert kept == {"IGNORE=C IGNORE=(ID.EQ.2)": ["1", "3"], "IGNORE=C IGNORE (ID.EQ.2, WT.GT.85)": ["1"],
                    "IGNORE=C ACCEPT=(WT.LT.75,ID.EQ.3)": ["1", "3"], "IGNORE=C IGNORE=(ID==1) IGNORE=(ID.NE.1)": []}
    with pytest.raises(InputError, match=r"\$DATA line 1"):  # with the default IGNORE=# the header is a record
        parse(stream(head=head), tmp_path).read_data()
    with pytest.raises(InputError, match="cannot be combined"):
        parse(stream(head=head + "IGNORE=(ID.EQ.2) ACCEPT=(ID.EQ.3)"), tmp_path)
    with pytest.raises(InputError, match="IGNORE= and ACCEPT= options only"):
        parse(stream(head=head + "RECORDS=10"), tmp_path)


def test_data_with_a_hash_header_and_dots(tmp_path):
    (tmp_path / "d.csv").write_text("#id,amt,time,dv,evid\n1,100,0,.,1\n1,.,1,5.5,0\n")
    frame = parse(stream(head="$INPUT ID AMT TIME DV EVID\n$DATA d.csv\n$SUBROUTINES ADVAN1 TRANS2"),
                  tmp_path).read_data()
    assert frame.to_dict("list") == {"ID": ["1", "1"], "AMT": ["100", "."], "TIME": ["0", "1"], "DV": [".", "5.5"],
                                     "EVID": ["1", "0"]}


def test_estimate_reads_data_relative_to_the_control_stream(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "pheno.csv").write_text((DATA / "pheno.csv").read_text())
    (tmp_path / "sub" / "run1.mod").write_text((DATA / "pheno.mod").read_text().replace("MAXEVALS=99999",
                                                                                          "MAXEVAL=0"))
    r = ketaplan.estimate(None, str(tmp_path / "sub" / "run1.mod"), covariance=False)
    assert r.n_subjects == 59 and r.n_observations == 155


# ---------------------------------------------------------------------------------------------- $SUBROUTINES, $PK
@pytest.mark.parametrize(("subs", "pk", "names"), [
    ("ADVAN2 TRANS2", "CL=THETA(1)\nV=THETA(2)\nKA=THETA(3)\nS2=V", ["CL", "V", "KA"]),
    ("ADVAN4 TRANS4", "CL=THETA(1)\nV2=THETA(2)\nQ=THETA(3)\nV3=THETA(4)\nKA=THETA(5)\nS2=V2",
     ["CL", "V2", "Q", "V3", "KA"]),
    ("ADVAN11 TRANS4", "CL=THETA(1)\nV1=THETA(2)\nQ2=THETA(3)\nV2=THETA(4)\nQ3=THETA(5)\nV3=THETA(6)\nS1=V1",
     ["CL", "V1", "Q2", "V2", "Q3", "V3"]),
    ("ADVAN12 TRANS4", "CL=1\nV2=2\nQ3=3\nV3=4\nQ4=5\nV4=6\nKA=THETA(1)\nS2=V2",
     ["CL", "V2", "Q3", "V3", "Q4", "V4", "KA"]),
    ("ADVAN3", "K=THETA(1)\nK12=THETA(2)\nK21=THETA(3)\nS1=THETA(4)", ["K", "K12", "K21", "V"]),
])
def test_advan_trans_parameters(subs, pk, names):
    s = parse(stream(head=f"$INPUT ID TIME AMT DV\n$SUBR {subs}", pk=pk, theta="1 2 3 4 5 6",
                     omega="0.1", error="Y = F + EPS(1)"))
    assert list(s.model["parameters"]) == names
    assert load_model(s.model).advan.number == int(subs.split()[0][5:])


def test_scale_from_s2_and_trans1_volume():
    s = parse(stream(head="$INPUT ID TIME AMT DV\n$SUBROUTINES ADVAN2 TRANS2",
                     pk="CL=THETA(1)\nV=THETA(2)*EXP(ETA(1))\nKA=THETA(3)\nS2=V/1000", theta="1 2 3"))
    assert s.model["scale"].expr == 1000
    s = parse(stream(pk="K = THETA(1)\nS1 = THETA(2)*EXP(ETA(1))", head="$INPUT ID TIME AMT DV\n$SUBROUTINES "
                     "ADVAN1 TRANS1"))
    assert s.model["scale"].expr == 1 and "THETA2" in str(s.model["parameters"]["V"].expr)
    with pytest.raises(InputError, match="set S1"):
        parse(stream(pk="CL=THETA(1)\nV=THETA(2)\nS2=V"))


def test_pk_statements_if_blocks_fortran_operators_and_modifiers():
    pk = """
    MU_1 = LOG(THETA(1))            ; mu-referencing
    CL = EXP(MU_1 + ETA(1)) * (WT/70)**0.75
    IF (WT.GT.80.AND.WT.LE.100) THEN
      V = THETA(2)*2
    ELSE IF (WT.GE.100) THEN
      V = THETA(2)*3
    ELSE
      V = THETA(2)
      IF (WT.EQ.50) V = SQRT(THETA(4)) &
          * 5
    ENDIF
    KA = THETA(3)
    F1 = 1/(1 + EXP(-THETA(4)))
    ALAG1 = THETA(5)
    R1 = THETA(6)
    D1 = 2
    S2 = V
    """
    s = parse(stream(head="$INPUT ID TIME AMT RATE DV WT\n$SUBROUTINES ADVAN2 TRANS2", pk=pk,
                     theta="1 2 3 4 5 6"))
    p = s.model["parameters"]
    assert list(p) == ["CL", "V", "KA", "F1", "ALAG1", "R1", "D1"]
    assert values(p["V"], WT=[90, 120, 50, 60]) == pytest.approx([4, 6, 10, 2])
    assert values(p["CL"], WT=[70]) == pytest.approx([1.0])
    assert values(p["F1"]) == pytest.approx(1 / (1 + np.exp(-4)))
    assert load_model(s.model).modifiers.keys() == {("F", 1), ("ALAG", 1), ("R", 1), ("D", 1)}


@pytest.mark.parametrize(("pk", "message"), [
    ("CALL PASS(MODE)\nCL=THETA(1)\nV=THETA(2)\nS1=V", "not supported"),
    ("CL=THETA(1)\nV=THETA(2)\nS1=V\nA_0(1)=10", "not supported"),
    ("CL=THETA(1)*A(1)\nV=THETA(2)\nS1=V", "amount A(1) is not available"),
    ("IF (WT.GT.70) CL=THETA(1)\nV=THETA(2)\nS1=V", "CL is set only when"),
    ("CL=THETA(1)\nV=THETA(2)\nS1=V\nELSE", "without an IF"),
    ("IF (WT.GT.70) THEN\nCL=THETA(1)\nV=THETA(2)\nS1=V", "needs its ENDIF"),
    ("CL=THETA(1)*HT\nV=THETA(2)\nS1=V", "HT is neither defined"),
    ("CL=INT(THETA(1))\nV=THETA(2)\nS1=V", "function INT is not known"),
    ("V=THETA(2)\nS1=V", "does not set CL"),
])
def test_pk_refusals_name_the_record_and_statement(pk, message):
    with pytest.raises(InputError, match=r"\$PK") as err:
        parse(stream(pk=pk))
    assert message in str(err.value)


# ---------------------------------------------------------------------------------------------- $ERROR
@pytest.mark.parametrize(("error", "sigma", "sigma_record", "transform"), [
    ("Y = F + F*EPS(1)", {"proportional": 0.04}, "0.04", None),
    ("Y = F*(1 + EPS(1))", {"proportional": 0.04}, "0.04", None),
    ("Y = F*EXP(EPS(1))", {"proportional": 0.04}, "0.04", None),
    ("IPRED = F\nW = F\nY = IPRED + W*EPS(1)\nIRES = DV - IPRED\nIWRES = IRES/W", {"proportional": 0.04}, "0.04", None),
    ("Y = F + EPS(1)", {"additive": 0.04}, "0.04", None),
    ("Y = F + F*EPS(1) + EPS(2)", {"proportional": 0.04, "additive": 0.5}, "0.04 0.5", None),
    ("Y = F + EPS(1) + F*EPS(2)", {"additive": 0.04, "proportional": 0.5, "fix": ["proportional"]},
     "0.04 0.5 FIX", None),
    ("IPRED = LOG(F)\nY = IPRED + EPS(1)", {"additive": 0.04}, "0.04", "log"),
    ("IPRED = A(1)/V\nIF (IPRED.EQ.0) THEN\n  ADJ = 1E-16\nELSE\n  ADJ = IPRED\nEND IF\nY = IPRED + EPS(1)*ADJ",
     {"proportional": 0.04}, "0.04", None),
    ("IPRED = F\nDEL = 0\nIF (IPRED.EQ.0) DEL = 0.0001\nW = IPRED + DEL\nY = IPRED + W*EPS(1)\n"
     "IF (ICALL.EQ.4) THEN\n  IF (Y.LT.0) Y = 0\nENDIF", {"proportional": 0.04}, "0.04", None),
])
def test_error_forms(error, sigma, sigma_record, transform):
    s = parse(stream(error=error, sigma=sigma_record))
    assert s.model["sigma"] == sigma
    assert s.model.get("transform") == transform


def test_error_sd_thetas_become_sigma_variances_and_thetas_are_renumbered():
    error = "IPRED = F\nW = SQRT(THETA(2)**2 + (THETA(3)*IPRED)**2)\nIF (W.EQ.0) W = 1\nY = IPRED + W*EPS(1)"
    s = parse(stream(pk="CL = THETA(1)*EXP(ETA(1))\nV = THETA(4)\nS1 = V", error=error,
                     theta="(0, 1) (0, 0.5) (0, 0.2) (0, 10, 100)", sigma="1 FIX"))
    assert s.model["sigma"] == pytest.approx({"additive": 0.25, "proportional": 0.04})
    assert [t["init"] for t in s.model["theta"]] == [1, 10]
    assert str(s.model["parameters"]["V"].expr) == "THETA2"
    s = parse(stream(error="W = THETA(3)*F\nY = F + W*EPS(1)", theta="1 2 (0.1 FIX)", sigma="1 FIX"))
    assert s.model["sigma"]["fix"] == ["proportional"]
    assert s.model["sigma"]["proportional"] == pytest.approx(0.01)


@pytest.mark.parametrize(("error", "sigma", "message"), [
    ("IPRED = F", "0.04", "must set Y"),
    ("Y = F + THETA(3) + EPS(1)", "0.04", "Y must be F"),
    ("Y = F + EPS(1)", "0.04 0.1", "one $SIGMA variance per EPS"),
    ("Y = F + 2*F*EPS(1)", "0.04", "W*EPS with W built from THETAs"),
    ("Y = F + EPS(1) + EPS(2)", "0.04 0.1", "two additive error terms"),
    ("Y = F + F*EXP(ETA(1))*EPS(1)", "0.04", "F and THETAs only"),
    ("Y = LOG(F) + LOG(F)*EPS(1)", "0.04", "one additive EPS"),
    ("Y = A(2) + EPS(1)", "0.04", "amount A(2) is not available"),
])
def test_error_refusals(error, sigma, message):
    with pytest.raises(InputError) as err:
        parse(stream(error=error, sigma=sigma))
    assert message in str(err.value)


def test_error_theta_cannot_also_be_used_in_pk():
    with pytest.raises(InputError, match="residual error SD"):
        parse(stream(pk="CL = THETA(1)\nV = THETA(2)\nS1 = V", error="W = THETA(2)*F\nY = F + W*EPS(1)",
                     sigma="1 FIX"))


# ---------------------------------------------------------------------------------------------- $THETA, $OMEGA
def test_theta_record_forms():
    s = parse(stream(theta="(0, 1.5, 10) ; CL\n(0,2) 3 FIX (-INF, 4, INF) (5 FIXED) (0.0 FIX)X2\n1E-2"))
    got = [(t["lower"], t["init"], t["upper"], t["fix"]) for t in s.model["theta"]]
    assert got == [(0, 1.5, 10, False), (0, 2, np.inf, False), (-np.inf, 3, np.inf, True),
                   (-np.inf, 4, np.inf, False), (-np.inf, 5, np.inf, True), (-np.inf, 0.0, np.inf, True),
                   (-np.inf, 0.0, np.inf, True), (-np.inf, 0.01, np.inf, False)]
    assert s.model["theta"][0]["name"] == "CL"


@pytest.mark.parametrize("theta", ["(0,,10)", "(,1)", "(0,1,)", "()"])
def test_theta_refuses_empty_places(theta):
    with pytest.raises(InputError, match=r"\$THETA"):
        parse(stream(theta=f"{theta} 10"))


def test_omega_diagonal_block_and_fix():
    s = parse(stream(omega="0.1 0.2 FIX\n$OMEGA DIAGONAL(2) 0.3 0.4\n$OMEGA BLOCK(2) 0.5 0.01 0.6\n"
                           "$OMEGA BLOCK(1) FIX 0.7"))
    assert s.model["omega"] == [0.1, {"value": 0.2, "fix": True}, 0.3, 0.4,
                                {"block": [[0.5], [0.01, 0.6]], "fix": False}, {"block": [[0.7]], "fix": True}]
    pm = load_model(s.model)
    assert isinstance(pm, PredppModel)


def test_omega_same_repeats_the_block_before_it_and_is_estimated_with_it():
    s = parse(stream(pk="CL = THETA(1)*EXP(ETA(1) + (1 - OCC)*ETA(2) + OCC*ETA(3) + OCC*ETA(5))\nV = THETA(2)\nS1 = V",
                     head="$INPUT ID TIME AMT DV OCC\n$SUBROUTINES ADVAN1 TRANS2",
                     omega="0.1\n$OMEGA BLOCK(1) 0.04\n$OMEGA BLOCK(1) SAME\n$OMEGA BLOCK(2) 0.2 0.01 0.3\n"
                           "$OMEGA BLOCK(2) SAME(2)"))
    assert s.model["omega"][2:] == [{"same": True}, {"block": [[0.2], [0.01, 0.3]], "fix": False}, {"same": True},
                                    {"same": True}]
    model = population_model(load_model(s.model))
    omega = model.omega
    assert [b.same_as for b in omega.blocks] == [None, None, 1, None, 3, 3]
    assert omega.matrix[2, 2] == 0.04 and omega.matrix[8, 7] == 0.01 and omega.size == 9
    space = ParameterSpace(model)
    assert space.omega_free == ((0, 0), (1, 1), (3, 3), (4, 3), (4, 4))
    est = space.from_unconstrained(space.to_unconstrained(space.initial()) + 0.1, space.initial())
    m = est.omega
    assert m[2, 2] == m[1, 1] != 0.04 and np.array_equal(m[5:7, 5:7], m[3:5, 3:5])
    assert np.array_equal(m[7:9, 7:9], m[3:5, 3:5])
    natural = space.from_natural(space.natural(est) * 2, est)
    assert natural.omega[2, 2] == natural.omega[1, 1] == 2 * m[1, 1]


@pytest.mark.parametrize(("omega", "message"), [
    ("BLOCK(2) 0.1 0.2", "needs 3 numbers"),
    ("BLOCK(1) SAME 0.3", "takes no values"),
    ("SD 0.3", "SD"),
    ("DIAGONAL(2) 0.1", "needs 2 variances"),
])
def test_omega_refusals(omega, message):
    with pytest.raises(InputError, match=r"\$OMEGA") as err:
        parse(stream(omega=omega))
    assert message in str(err.value)


def test_saem_refuses_same_blocks_until_it_ties_them():
    model = {"advan": 1, "theta": [0.005, 1.0], "CL": "THETA(1)*WGT*exp(ETA(1))", "V": "THETA(2)*WGT*exp(ETA(2))",
             "omega": [{"block": [[0.03]]}, {"same": True}], "sigma": {"proportional": 0.013}}
    with pytest.raises(InputError, match="SAME"):
        ketaplan.estimate(DATA / "pheno.csv", model, method="saem")


def test_omega_same_in_a_model_file_needs_a_block_before_it():
    with pytest.raises(InputError, match="give that block first"):
        parse_omega([{"same": True}])
    with pytest.raises(InputError, match="takes nothing else"):
        parse_omega([0.1, {"same": True, "fix": True}])


def test_sigma_block_with_covariance_is_refused():
    with pytest.raises(InputError, match="correlated EPS"):
        parse(stream(error="Y = F + F*EPS(1) + EPS(2)", sigma="BLOCK(2) 0.04 0.01 0.1"))
    s = parse(stream(error="Y = F + F*EPS(1) + EPS(2)", sigma="BLOCK(2) 0.04 0 0.1"))
    assert s.model["sigma"] == {"proportional": 0.04, "additive": 0.1}


# ---------------------------------------------------------------------------------------------- $ESTIMATION
@pytest.mark.parametrize(("est", "error", "method", "evaluate"), [
    ("METHOD=0", "Y = F + F*EPS(1)", "fo", False),
    ("METHOD=ZERO MAXEVAL=0 POSTHOC", "Y = F + F*EPS(1)", "fo", True),
    ("METHOD=1", "Y = F + EPS(1)", "foce", False),
    ("METH=COND INTERACTION NOABORT", "Y = F + F*EPS(1)", "foce-i", False),
    ("METHOD=COND LAPLACE INTER MAX=0", "Y = F + F*EPS(1)", "laplace", True),
    ("METHOD=COND LAPLACE", "Y = F + EPS(1)", "laplace", False),
    ("METHOD=SAEM NBURN=500\n$EST METHOD=IMP EONLY=1", "Y = F + F*EPS(1)", "saem", False),
])
def test_estimation_record(est, error, method, evaluate):
    s = parse(stream(est=est, error=error))
    assert (s.method, s.evaluate) == (method, evaluate)


@pytest.mark.parametrize(("est", "message"), [
    ("METHOD=IMP", "METHOD=IMP"),
    ("METHOD=COND LAPLACE", "add INTER"),
    ("METHOD=0 INTER", "no INTERACTION"),
    ("METHOD=COND INTER\n$EST METHOD=SAEM", "one estimation step"),
])
def test_estimation_refusals(est, message):
    with pytest.raises(InputError, match=r"\$ESTIMATION") as err:
        parse(stream(est=est))
    assert message in str(err.value)


# ---------------------------------------------------------------------------------------------- records
@pytest.mark.parametrize(("text", "message"), [
    ("$PROBLEM x\n$INPUT ID TIME DV\n$PRED\nY = THETA(1) + EPS(1)\n", "$PRED"),
    (stream(head="$INPUT ID TIME AMT DV\n$SUBROUTINES ADVAN13 TOL=6"), "ADVAN1, 2, 3, 4, 11 and 12"),
    (stream(head="$INPUT ID TIME AMT DV\n$SUBROUTINES ADVAN3 TRANS2"), "TRANS4"),
    (stream() + "$DES\nDADT(1) = -K*A(1)\n", "$DES"),
    (stream() + "$ABBREVIATED DERIV2=NO\n$ABBR PROTECT\n$ABBR REPLACE THETA(CL)=THETA(1)\n", "REPLACE name=ETA"),
    (stream(pk="CL=THETA(1)\nV=THETA(2)\nS1=V").replace("$PK", "$PROBLEM second\n$PK"), "one problem"),
    ("no records at all", "a control stream starts with $PROBLEM"),
])
def test_record_refusals(text, message):
    with pytest.raises(InputError) as err:
        parse(text)
    assert message in str(err.value)


def test_record_abbreviations_and_ignored_records():
    text = stream(est="METHOD=1 INTER") + "$COV MATRIX=R\n$TAB ID TIME FILE=x\n$SIZES PD=50\n"
    text = text.replace("$ESTIMATION", "$EST").replace("$SUBROUTINES", "$SUB").replace("$PROBLEM", "$PROB")
    s = parse(text)
    assert s.method == "foce-i" and s.problem == "test"


def test_read_control_stream_refuses_a_missing_file(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_control_stream(tmp_path / "nope.mod")
    with pytest.raises(InputError, match=r"\$DATA.*names no data file"):
        parse(stream()).read_data()
