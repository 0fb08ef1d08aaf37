"""What the fuzz tests throw at ketaplan, and what every run must satisfy whatever it was given.

Strategies (hypothesis) for the inputs a new user or a malformed file gives: regimen texts, NONMEM-style datasets,
PREDPP model files and command-line options, from ordinary through extreme (1e308, 1e-300, a billion repeats) to
malformed (text in number cells, 'nan', 'inf', duplicate keys and columns, extra fields, garbage). Each strategy
produces a :class:`Case`: the command's arguments and the files it reads.

:func:`check_run` states the contract of issue 14 for one run: exit code 0 or 2 (never a crash), no traceback, no
library warning, a refusal in one sentence, nothing written on refusal, finite numbers in whatever was written,
within the time and memory limits (the runner enforces 30 s of CPU and 2 GB of address space).
"""

from __future__ import annotations

import math
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml
from hypothesis import strategies as st

GOOD_WEIGHTS = ["80", "59.5", "1", "400", "70", "120"]
BAD_WEIGHTS = ["0", "-5", "401", "nan", "inf", "-inf", "1e308", "abc"]
WEIGHTS = st.one_of(st.sampled_from(GOOD_WEIGHTS), st.sampled_from(GOOD_WEIGHTS), st.sampled_from(BAD_WEIGHTS))
REGIMEN_TEXTS = ["20 mg/h IV for 5 d", "20 mg/h IV for 5 d every 11 weeks x 4", "25 mg IN", "50 mg PO q8h for 14 d",
                 "0.35 mg/kg/h IV for 4 h daily x 10 days (max 25 mg/h)", "0.5 mg/kg IV bolus over 1 min"]


def rare(draw, one_in: int) -> bool:
    """True about once in ``one_in`` draws, False for hypothesis's simplest choice (so shrinking removes it)."""
    return draw(st.integers(0, one_in - 1)) == one_in - 1


@dataclass
class Case:
    """One command run: its arguments and the files (name -> text) it needs in its folder."""

    args: list[str]
    files: dict[str, str] = field(default_factory=dict)
    outputs: tuple[str, ...] = ()


# ------------------------------------------------------------------------------------------ regimen texts
_NUMBERS = st.one_of(
    st.sampled_from(["20", "25", "5", "1", "0.35", "0", "0.0000001", "99999999999", "1e3", "-20", ".5", "1.",
                     "nan", "inf", "1e308", "00", "2.5.1"]),
    st.integers(0, 10**6).map(str),
    st.floats(0, 1e4, allow_nan=False).map(lambda x: f"{x:.3f}"),
)
_DOSE_UNITS = st.sampled_from(["mg", "mg/h", "ug", "mcg/h", "mg/kg/h", "mg/kg", "g", "mg/min", "ug/kg/min", "mL",
                               "xyz", "%", "mg/d", "kg", "mg/kg/min", "µg/h", "MG/H"])
_ROUTES = st.sampled_from(["IV", "PO", "IN", "SL", "IM", "PR", "topical", "oral", "IVV", "", "inhaled"])
_TIME_UNITS = st.sampled_from(["h", "d", "min", "weeks", "y", "s", "months", "ms", "years"])
_COUNTS = st.sampled_from(["1", "2", "4", "100", "25000", "25001", "1000000000", "0", "-3", "1.5", "x"])


@st.composite
def regimen_texts(draw) -> str:
    """A regimen in (or near) the regimen language: one or two parts, with repeats, caps, starts and junk."""
    parts = []
    for _ in range(draw(st.integers(1, 2))):
        words = [draw(_NUMBERS) + " " + draw(_DOSE_UNITS), draw(_ROUTES)]
        if draw(st.booleans()):
            words.append(f"for {draw(_NUMBERS)} {draw(_TIME_UNITS)}")
        repeat = draw(st.sampled_from(["", "every", "daily", "bid", "q8h", "q0h", "titrate"]))
        if repeat == "every":
            words.append(f"every {draw(_NUMBERS)} {draw(_TIME_UNITS)}")
        elif repeat == "titrate":
            words.append(f"titrate +{draw(_NUMBERS)} mg/h every {draw(_NUMBERS)} h to {draw(_NUMBERS)} mg/h")
        elif repeat:
            words.append(repeat)
        if repeat and draw(st.booleans()):
            words.append(f"x {draw(_COUNTS)}")
        if rare(draw, 5):
            words.append(f"(max {draw(_NUMBERS)} mg/h)")
        if rare(draw, 5):
            words.append(f"at {draw(_NUMBERS)} h")
        parts.append(" ".join(w for w in words if w))
    text = "; ".join(parts)
    if rare(draw, 6):
        text += " starting " + draw(st.sampled_from(["2026-12-01 09:00", "1800-01-01", "2026-02-30",
                                                     "2026-12-01 25:00"]))
    if rare(draw, 9):
        text = draw(st.text(max_size=40))
    return text


@st.composite
def simulate_cases(draw) -> Case:
    known = st.sampled_from(REGIMEN_TEXTS)
    args = ["simulate", draw(st.one_of(known, known, regimen_texts())), "--weight", draw(WEIGHTS)]
    if rare(draw, 4):
        args += ["--until", draw(st.one_of(st.sampled_from(["30 d", "1 y", "20 y", "2 weeks"]),
                                           st.builds(lambda n, u: f"{n} {u}", _NUMBERS, _TIME_UNITS)))]
    if rare(draw, 4):
        args += ["--baseline-pain", draw(st.sampled_from(["7", "11", "-1", "nan"]))]
    if rare(draw, 4):
        args.append("--force")
    outputs: tuple[str, ...] = ()
    if draw(st.booleans()):
        args += ["--out", "course.csv"]
        outputs = ("course.csv",)
    if rare(draw, 4):
        args.append("--json")
    return Case(args, outputs=outputs)


# ------------------------------------------------------------------------------------------ datasets
_CELL_EXTREMES = ["1e308", "-1", "0", "1e-300", "1e20", "nan", "inf", "-inf", "abc", ".", "", "NA", " 5 ", "1,5"]


def _cell(draw, typical: st.SearchStrategy, odd: bool) -> str:
    return draw(st.sampled_from(_CELL_EXTREMES)) if odd else draw(typical)


@st.composite
def dataset_texts(draw) -> str:
    """A NONMEM-style CSV: mostly sensible rows, with extreme or malformed cells, columns and fields mixed in."""
    columns = ["ID", "TIME", "AMT", "RATE", "EVID", "CMT", "II", "ADDL", "SS", "DV", "MDV"]
    if rare(draw, 7):
        columns.append(draw(st.sampled_from(["amt", " AMT", "TIME", "WT", "DUR"])))
    rows = []
    time = 0.0
    for i in range(draw(st.integers(1, 8))):
        subject = "1" if i < 4 else "2"
        time += draw(st.sampled_from([0.0, 0.5, 1.0, 12.0, 12.0, 1e4]))
        dose = draw(st.booleans())
        typical = {
            "ID": st.just(subject), "TIME": st.just(f"{time:g}"),
            "AMT": st.sampled_from(["100", "2400", "0"]) if dose else st.just("0"),
            "RATE": st.sampled_from(["0", "20", "-1", "-2", "1"]) if dose else st.just("0"),
            "EVID": st.just("1" if dose else "0"), "CMT": st.sampled_from(["1", "1", "0", ".", "2"]),
            "II": st.sampled_from(["12", "24", "12", "0.001", "1e-9"]) if dose else st.just("0"),
            "ADDL": st.sampled_from(["0", "0", "3", "100", "1000000"]) if dose else st.just("0"),
            "SS": st.sampled_from(["0", "0", "0", "1", "2"]) if dose else st.just("0"),
            "DV": st.just(".") if dose else st.sampled_from(["5", "0.1", "."]),
            "MDV": st.just("1" if dose else "0"), "WT": st.just("80"), "DUR": st.just("0"),
        }
        odd = draw(st.integers(0, 4 * len(columns) - 1)) - 3 * len(columns)  # now and then one odd cell
        row = [_cell(draw, typical.get(c.strip().upper(), st.just("0")), j == odd) for j, c in enumerate(columns)]
        if rare(draw, 16):
            row.append("5")  # an extra field
        rows.append(row)
    lines = [",".join(columns)] + [",".join(f'"{c}"' if "," in c else c for c in r) for r in rows]
    return "\n".join(lines) + "\n"


MODEL_1 = "advan: 1\nCL: 1\nV: 10\nscale: 1000\n"
MODEL_4 = "advan: 4\nCL: 5\nV2: 20\nQ: 2\nV3: 40\nKA: 1.5\nF1: 0.8\nALAG1: 0.2\n"


@st.composite
def dataset_cases(draw) -> Case:
    model = draw(st.sampled_from([MODEL_1, MODEL_4]))
    return Case(["simulate-dataset", "data.csv", "--model", "model.yaml", "--out", "out.csv"],
                {"data.csv": draw(dataset_texts()), "model.yaml": model}, ("out.csv",))


# ------------------------------------------------------------------------------------------ model files
_VALUES = st.one_of(
    st.floats(1e-3, 1e3, allow_nan=False), st.sampled_from([0, -1, 1e308, 1e-308, math.inf, -math.inf, math.nan,
                                                              "abc", "1e3", True, None, "VCOL", "THETA(1)"]),
    st.lists(st.integers(0, 3), max_size=2), st.just({"a": 1}),
)


@st.composite
def model_texts(draw) -> str:
    """A PREDPP model file: a mapping with odd values, or malformed YAML."""
    advan = draw(st.sampled_from([1, 2, 3, 4, 11, 12, 1, 3, 5, 0, True, "1", 1.5, None]))
    names = {1: ["CL", "V"], 2: ["CL", "V", "KA"], 3: ["CL", "V1", "Q", "V2"], 4: ["CL", "V2", "Q", "V3", "KA"],
             11: ["CL", "V1", "Q2", "V2", "Q3", "V3"], 12: ["CL", "V2", "Q3", "V3", "Q4", "V4", "KA"]}
    params = names.get(advan if isinstance(advan, int) and not isinstance(advan, bool) else 1, ["CL", "V"])
    model: dict = {"advan": advan}
    for name in params:
        model[name] = draw(_VALUES) if rare(draw, 6) else draw(st.floats(0.1, 50))
    for key in ("scale", "F1", "ALAG1", "transform"):
        if rare(draw, 7):
            model[key] = draw(st.one_of(_VALUES, st.sampled_from(["log", "sqrt"])))
    if rare(draw, 6):
        model["omega"] = draw(st.one_of(st.dictionaries(st.sampled_from([*params, "CL~" + params[-1], "X"]), _VALUES,
                                                        max_size=3), _VALUES))
    if rare(draw, 6):
        model["sigma"] = draw(st.one_of(st.dictionaries(st.sampled_from(["proportional", "additive", "bogus"]),
                                                        _VALUES, max_size=2), _VALUES))
    text = yaml.safe_dump(model, sort_keys=False)
    damage = 15 - draw(st.integers(0, 15))  # 15 (no damage) is what hypothesis leans towards
    if damage == 0:
        text += f"{params[0]}: 7\n"  # a key given twice
    elif damage == 1:
        text = text.replace(": ", ":\t", 1)
    elif damage == 2:
        text = ("a: &a [1, 2, 3, 4, 5, 6, 7, 8]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\n"
                "c: &c [*b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c]\n" + text)
    elif damage == 3:
        text = draw(st.text(max_size=60))
    return text


DATA_FOR_MODELS = ("ID,TIME,AMT,RATE,EVID,CMT,II,ADDL,SS,DV,MDV,VCOL\n1,0,100,0,1,1,12,3,0,.,1,10\n"
                   "1,1,0,0,0,1,0,0,0,5,0,10\n1,30,0,0,0,1,0,0,0,2,0,12\n")


@st.composite
def model_cases(draw) -> Case:
    return Case(["simulate-dataset", "data.csv", "--model", "model.yaml", "--out", "out.csv"],
                {"data.csv": DATA_FOR_MODELS, "model.yaml": draw(model_texts())}, ("out.csv",))


# ------------------------------------------------------------------------------------------ other commands
_QUANTITY = st.builds(lambda n, u: f"{n} {u}", _NUMBERS, st.sampled_from(["mg/mL", "ug/mL", "mL", "L", "mL/h", "h",
                                                                           "min", "d", "ng/mL", "mg", "kg"]))


@st.composite
def pump_cases(draw) -> Case:
    args = ["pump", draw(st.one_of(st.sampled_from(REGIMEN_TEXTS), st.sampled_from(REGIMEN_TEXTS), regimen_texts())),
            "--concentration", draw(st.one_of(st.sampled_from(["1 mg/mL", "10 mg/mL", "1e-9 mg/mL", "50 ug/mL"]),
                                              _QUANTITY))]
    good = {"--syringe": ["50 mL", "20 mL"], "--pump-increment": ["0.1 mL/h", "1 mL/h"], "--max-hang": ["24 h", "12 h"]}
    for option, values in good.items():
        if rare(draw, 3):
            args += [option, draw(st.one_of(st.sampled_from(values), _QUANTITY))]
    args += ["--weight", draw(WEIGHTS)]
    if draw(st.booleans()):
        args.append("--json")
    return Case(args)


@st.composite
def population_cases(draw) -> Case:
    args = ["population", draw(st.sampled_from([*REGIMEN_TEXTS[:4], "20 mg/h IV for 5 d every 1 h x 100"])),
            "--n", draw(st.sampled_from(["37", "150", "1", "0", "-5", "1000000000", "20000000"])), "--seed",
            draw(st.sampled_from(["1", "7", "-1"]))]
    for option, values in (("--chunk", ["1", "7", "100", "0"]), ("--percentiles", ["5,50,95", "101", "", "a,b", "50"]),
                           ("--relief-threshold", ["0.3", "1.5", "nan"]), ("--window-fraction", ["0.8", "-1", "inf"]),
                           ("--until", ["1 y", "25 y", "0 h", "2 weeks"]), ("--sample-at", ["1,24 h", "1e9 h", "x"]),
                           ("--workers", ["100", "0"])):
        if rare(draw, 4):
            args += [option, draw(st.sampled_from(values))]
    outputs: tuple[str, ...] = ()
    if draw(st.booleans()):
        args += ["--out", "subjects.csv", "--bands", "bands.csv"]
        outputs = ("subjects.csv", "bands.csv")
    return Case(args, outputs=outputs)


@st.composite
def search_cases(draw) -> Case:
    args = ["search", "--n", draw(st.sampled_from(["10", "20", "5", "20000000"])), "--rates",
            draw(st.sampled_from(["10,20 mg/h", "0.1 mg/kg/h", "nan mg/h", "1e308 mg/h", "", "20"])), "--durations",
            draw(st.sampled_from(["5 d", "1,2 d", "0 d", "1e9 d"])), "--intervals",
            draw(st.sampled_from(["11 weeks", "8,11 weeks", "1 h", "1e6 weeks"])), "--courses",
            draw(st.sampled_from(["1", "2", "100000", "0"]))]
    return Case(args)


@st.composite
def compare_cases(draw) -> Case:
    args = ["compare"]
    for option, values in (("--routes", ["iv,oral", "iv,bogus", "", "topical"]), ("--dose", ["25 mg", "1e308 mg",
                                                                                            "nan mg", "25 mg/h"]),
                           ("--hours", ["12 h", "1 y", "0 h", "1e-9 h"]), ("--basis", ["dose", "exposure", "x"])):
        if draw(st.booleans()):
            args += [option, draw(st.sampled_from(values))]
    return Case(args)


def diary_text(level: str, dose: str, rate: str, extra_rows: int = 0) -> str:
    """The seed case's diary and two levels as a NONMEM-style CSV, with the given level, dose and rate."""
    rows = ["ID,TIME,AMT,RATE,EVID,MDV,DV,DVID,WT,AGE,SEX"]
    rows += [f"7,{24 * i},.,.,0,0,{v},3,80,59,M" for i, v in enumerate([7, 7, 8, 7, 6, 7, 7])]
    rows.append(f"7,168,{dose},{rate},1,1,.,.,80,59,M")
    rows += [f"7,192,.,.,0,0,{level},1,80,59,M", "7,260,.,.,0,0,175,1,80,59,M"]
    rows += [f"7,{288 + 168 * w},.,.,0,0,{v},3,80,59,M" for w, v in enumerate([2, 2, 3, 4, 6, 7], start=1)]
    rows += [f"7,{1300 + 0.5 * i},.,.,0,0,7,3,80,59,M" for i in range(extra_rows)]
    return "\n".join(rows) + "\n"


@st.composite
def fit_cases(draw) -> Case:
    level = draw(st.sampled_from(["160", "160", "300", "1e12", "0", "-5", "nan", "abc", "1e-300"]))
    dose = draw(st.sampled_from(["2400", "2400", "1e9", "0.0001", "inf"]))
    rate = draw(st.sampled_from(["20", "20", "1e9", "-1", "0"]))
    return Case(["fit", "diary.csv", "--model", "domino_racemic_3cmt_nk", "--out", "fit.csv"],
                {"diary.csv": diary_text(level, dose, rate)}, ("fit.csv",))


# ------------------------------------------------------------------------------------------ the contract
@contextmanager
def checked_run(zygote, case: Case) -> Iterator[tuple[object, Path]]:
    """Run ``case`` in a fresh folder holding its files, check the contract (:func:`check_run`), and give the run
    and the folder (removed afterwards)."""
    folder = Path(tempfile.mkdtemp(prefix="ketaplan-fuzz-"))
    try:
        for name, text in case.files.items():
            (folder / name).write_text(text)
        before = {p.name for p in folder.iterdir()}
        run = zygote.run(case.args, folder)
        check_run(run, folder, before, case)
        yield run, folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


LIBRARY_WARNINGS = ("Warning:", "RuntimeWarning", "UserWarning", "FutureWarning", "DeprecationWarning",
                    "warnings.warn", "ComplexWarning")


def check_run(run, folder: Path, before: set[str], case: Case, cpu_seconds: float = 30.0) -> None:
    """Issue 14's contract for one command run (see the module docstring); raises AssertionError saying which
    part was broken. (`search` exits with 1, as documented, when no candidate meets the constraints.)"""
    where = f"ketaplan {' '.join(repr(a) for a in run.args)}"
    text = run.stdout + run.stderr
    assert not run.killed, f"{where}: still running after the wall-clock limit"
    infeasible = run.args[0] == "search" and run.code == 1 and "No candidate meets the constraints" in run.stdout
    assert run.code in (0, 2) or infeasible, f"{where}: exit code {run.code}\n{run.stderr[-2000:]}"
    assert "Traceback" not in text and "╭─ Traceback" not in text, f"{where}: traceback\n{text[-2000:]}"
    assert not any(w in run.stderr for w in LIBRARY_WARNINGS), f"{where}: a library warning\n{run.stderr[-2000:]}"
    assert run.seconds < 2 * cpu_seconds, f"{where}: took {run.seconds:.1f} s"
    after = {p.name for p in folder.iterdir()} - {".fuzz-stdout", ".fuzz-stderr"}
    if run.code == 2:
        assert run.stderr.strip(), f"{where}: exit code 2 without a message"
        lines = [line for line in run.stderr.splitlines() if line.strip()]
        if lines[0].startswith("error:"):
            assert len(lines) == 1, f"{where}: the refusal is not one sentence\n{run.stderr}"
        assert after == before, f"{where}: refused, yet wrote {sorted(after - before)}"
        return
    for name in case.outputs:
        path = folder / name
        if path.exists():
            check_finite_csv(path, where)


def check_finite_csv(path: Path, where: str) -> None:
    """Every number a command wrote is finite: no 'inf' anywhere, and no NaN in the columns it computed."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    for column in frame.columns:
        text = frame[column].str.strip().str.lower()
        assert not text.isin(["inf", "-inf", "infinity"]).any(), f"{where}: {path.name} column {column} has inf"
        if column == "IPRED" or (column.startswith("A") and column[1:].isdigit()):
            assert not text.isin(["nan", ""]).any(), f"{where}: {path.name} column {column} has a missing number"
