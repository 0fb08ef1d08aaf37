"""The validation page (Markdown with PNG figures): published observations against the default models.

``validation_markdown`` builds the text from a validation run (pure); ``write_validation_page`` runs nothing
itself and writes the page and its figures. ``python -m ketaplan.report.validation_page [DIR]`` runs the
validation and writes ``DIR/validation.md`` and ``DIR/validation/*.png`` (default: ``docs``); the test suite
does the same on every run (tests/test_validation.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

from ketaplan.engine.build import build
from ketaplan.engine.derived import derived_quantities
from ketaplan.models.library import assemble, route_table
from ketaplan.models.observed import RATIO_LIMITS
from ketaplan.models.thresholds import thresholds_for
from ketaplan.simulation.patient import Patient
from ketaplan.simulation.run import DEFAULT_PK
from ketaplan.validation.criteria import __doc__ as CRITERIA_DOC
from ketaplan.validation.run import Comparison, StudyResult, clearance_alternative, run_validation

ROLE_WORDS = {"validation": "validation", "calibration": "calibration", "not_independent": "not independent"}


def _g(x: float | None) -> str:
    return "-" if x is None else f"{x:.3g}"


def _observed(c: Comparison) -> str:
    o = c.observation
    s = o.spread
    spread = ""
    if s is not None and s.sd is not None:
        spread = f" +/- {s.sd:g} SD"
    elif s is not None and s.sem is not None:
        spread = f" +/- {s.sem:g} SEM"
    elif s is not None and s.gsd is not None:
        spread = f" (GSD {s.gsd:g})"
    elif s is not None:
        lo, hi = s.range if s.range is not None else s.ci95
        spread = f" ({'range' if s.range is not None else '95 % CI'} {lo:g}-{hi:g})"
    n = f", n {o.n}" if o.n else ""
    if o.statistic == "qualitative":
        return f"statement, read as the bound {o.value:g}"
    return f"{o.value:g}{spread} {o.unit} ({o.statistic.replace('_', ' ')}{n})"


def _predicted(c: Comparison) -> str:
    p = c.prediction
    text = f"{_g(p.value)}"
    if p.low is not None:
        text += f" ({_g(p.low)}-{_g(p.high)})"
    if p.fraction_meeting is not None:
        text += f"; {p.fraction_meeting:.0%} of virtual patients meet the bound"
    return text


def _table(result: StudyResult) -> list[str]:
    lines = ["| quantity | published | predicted (5-95 % of virtual patients) | criterion | result | role | "
             "transcription |", "|---|---|---|---|---|---|---|"]
    for c in result.comparisons:
        o = c.observation
        certainty = o.certainty + (f": {o.certainty_note}" if o.certainty_note else "")
        role = ROLE_WORDS[o.role] + (f": {o.role_note}" if o.role_note else "")
        lines.append(f"| {o.quantity} | {_observed(c)} | {_predicted(c)} | {c.criterion} | "
                     f"**{'pass' if c.passed else 'FAIL'}** | {role} | {certainty} |")
    return lines


def _study_section(result: StudyResult, figure: str) -> list[str]:
    s = result.study
    cite = s.citation.text + (f" doi:{s.citation.doi}" if s.citation.doi else "")
    passed = sum(c.passed for c in result.comparisons)
    lines = [f"## {s.title}", "", f"*{cite}*", "",
             f"- **Retrieved:** {s.retrieved}", f"- **Population:** {s.population}", f"- **Design:** {s.design}",
             f"- **Model:** `{result.model}`; {passed} of {len(result.comparisons)} comparisons pass."]
    lines += [f"- {c}" for c in s.caveats]
    lines += ["", f"![{s.id}](validation/{figure})", "", *_table(result), ""]
    return lines


def _parameters() -> list[str]:
    """The numbers of the default racemic model that these data bear on, with their sources."""
    spec = assemble(DEFAULT_PK["racemic"], routes=True)
    (ketamine, *_rest) = derived_quantities(build(spec, Patient(70.0).covariates()))
    routes = route_table("racemic").parameters
    psycho = thresholds_for("racemic")["psychotomimetic"]
    rows = [("ketamine clearance at 70 kg", f"{ketamine.clearance_l_per_h:.1f} L/h",
             spec.parameters["k10"].note or spec.parameters["k10"].source),
            ("norketamine formation fraction FM_NK", f"{spec.parameters['FM_NK'].value:g}",
             spec.parameters["FM_NK"].source),
            ("norketamine clearance CL_NK at 70 kg", f"{spec.parameters['CL_NK'].value:g} L/h",
             spec.parameters["CL_NK"].source)]
    for name in ("F_ORAL", "KA_ORAL", "F_SL", "KA_SL", "F_IN", "KA_IN"):
        p = routes[name]
        rows.append((name, f"{p.value:g} {p.unit if p.unit != '1' else ''}".strip(), p.source))
    rows.append(("psychotomimetic threshold (racemic)",
                 f"{psycho.value:g} ng/mL (range {psycho.low:g}-{psycho.high:g})", psycho.source))
    lines = ["| parameter | value | source |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {' '.join(c.split())} |" for a, b, c in rows]
    return lines


def _clearance_section(results: list[StudyResult], alternative: list[Comparison]) -> list[str]:
    """The clearance-dependent observations with the default (Kamp) and the Domino clearance."""
    default = {(c.study.id, c.observation.id): c for r in results for c in r.comparisons}
    lines = ["## Why the Kamp 2020 clearance is the default", "",
             "The Domino TCI set clears ketamine at 116 L/h/70 kg, 1.47 x the weighted mean of the Kamp 2020 "
             "meta-analysis (79 L/h/70 kg, 95 % CI 69-90, 18 studies); the default racemic model uses Domino's "
             "distribution with Kamp's clearance (variant `kamp2020`). The observations that depend on the "
             "clearance, with both:", "",
             "| observation | published | Kamp clearance (default) | Domino clearance (`domino_racemic_3cmt_nk`) |",
             "|---|---|---|---|"]
    for alt in alternative:
        d = default.get((alt.study.id, alt.observation.id))
        if d is None:
            continue
        lines.append(f"| {alt.study.id}: {alt.observation.quantity} | {alt.observation.value:.3g} | "
                     f"{d.prediction.value:.3g} ({'pass' if d.passed else 'FAIL'}) | "
                     f"{alt.prediction.value:.3g} ({'pass' if alt.passed else 'FAIL'}) |")
    return [*lines, ""]


def validation_markdown(results: list[StudyResult], figures: dict[str, str], n: int, seed: int,
                        alternative: list[Comparison] | None = None) -> str:
    """The page's Markdown; ``figures`` maps study id (and 'summary') to the figure's file name;
    ``alternative``: the clearance-dependent comparisons with the Domino clearance."""
    total = sum(len(r.comparisons) for r in results)
    passed = sum(c.passed for r in results for c in r.comparisons)
    independent = [c for r in results for c in r.comparisons if c.observation.role == "validation"]
    lines = ["# Validation: the default models against published data", "",
             "*Generated by `tests/test_validation.py` (or `python -m ketaplan.report.validation_page`); do not "
             "edit by hand. Every published number, with its citation and how sure its transcription is, is in "
             "`src/ketaplan/models/validation/*.yaml`.*", "",
             f"Each study's regimen is simulated for {n} virtual patients (seed {seed}; adults with neuropathic "
             "pain: the studies' own patients could not be retrieved) with the default model for its drug form. "
             f"**{passed} of {total} comparisons pass; of the {len(independent)} on data the models were not "
             f"built on, {sum(c.passed for c in independent)} pass.** Rows marked *calibration* are data a "
             "default value was taken from (they show that the value does what it was chosen for); *not "
             "independent* are data the model was fitted to.", "",
             "| study | comparisons | pass | fail | of which validation: pass / fail |", "|---|---|---|---|---|"]
    for r in results:
        v = [c for c in r.comparisons if c.observation.role == "validation"]
        lines.append(f"| {r.study.title} | {len(r.comparisons)} | {sum(c.passed for c in r.comparisons)} | "
                     f"{sum(not c.passed for c in r.comparisons)} | {sum(c.passed for c in v)} / "
                     f"{sum(not c.passed for c in v)} |")
    lines += ["", "## Pass criteria", ""]
    for para in CRITERIA_DOC.split("\n\n")[1:]:
        lines += [para.strip(), ""]
    lines += [f"![summary](validation/{figures['summary']})", "",
              f"Predicted against published for every comparison judged by ratio; the dashed lines are "
              f"{RATIO_LIMITS[0]:g} and {RATIO_LIMITS[1]:g} x.", "",
              "## The default numbers these data bear on", "", *_parameters(), ""]
    if alternative:
        lines += _clearance_section(results, alternative)
    for r in results:
        lines += _study_section(r, figures[r.study.id])
    return "\n".join(lines).rstrip() + "\n"


def write_validation_page(results: list[StudyResult], page: Path, n: int, seed: int,
                          alternative: list[Comparison] | None = None) -> list[Path]:
    """Write ``page`` and its figures in ``page.parent / 'validation'``; returns the files written."""
    import matplotlib.pyplot as plt

    from ketaplan.report.validation_figures import study_figure, summary_figure

    folder = page.parent / "validation"
    folder.mkdir(parents=True, exist_ok=True)
    figures, written = {}, []
    for key, fig in [("summary", summary_figure(results)), *((r.study.id, study_figure(r)) for r in results)]:
        name = f"{key}.png"
        fig.savefig(folder / name, dpi=110, metadata={"Software": None})
        plt.close(fig)
        figures[key] = name
        written.append(folder / name)
    page.write_text(validation_markdown(results, figures, n, seed, alternative))
    return [page, *written]


def main(argv: list[str] | None = None) -> None:
    """Run the validation and write ``DIR/validation.md`` (DIR: first argument, default ``docs``)."""
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0] if args else "docs")
    n, seed = 400, 1
    results, alternative = run_validation(n, seed), clearance_alternative(n=n, seed=seed)
    for path in write_validation_page(results, out / "validation.md", n, seed, alternative):
        print(path)


if __name__ == "__main__":
    main()
