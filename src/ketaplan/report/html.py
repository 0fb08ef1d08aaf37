"""Self-contained HTML reports: every style, script and figure is inside the file (no network needed)."""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

from ketaplan import __version__
from ketaplan.models.describe import parameter_rows
from ketaplan.planning.pump import PumpPlan
from ketaplan.regimen.safety import contraindications, monitoring_schedule
from ketaplan.report.figures import simulation_figure, svg_text
from ketaplan.report.summary_table import summary_table
from ketaplan.simulation.summary import date_of

DISCLAIMER = ("Decision support for clinicians and researchers, not a prescription: every number comes from the "
              "named model and publication, and relief predictions for one patient are uncertain.")

def pump_context(plan: PumpPlan, level_note: str) -> dict:
    header = (f"Concentration {plan.concentration_mg_ml:g} mg/mL; {plan.container} of {plan.container_ml:g} mL; "
              f"pump increment {plan.increment_ml_h:g} mL/h.")
    cols = ["course", "from", "to", "prescribed (mg/h)", "weight-based", "exact (mL/h)", "pump (mL/h)",
            "delivered (mg/h)"]
    rows = [[str(s.course), date_of(plan.start, s.start_h), date_of(plan.start, s.end_h), f"{s.rate_mg_h:.3g}",
             s.per_kg or "-", f"{s.rate_ml_h:.3f}", f"{s.rate_ml_h_rounded:g}", f"{s.delivered_mg_h:.3g}"]
            for s in plan.segments]
    return {"header": header, "segment_columns": cols, "segment_rows": rows, "notes": plan.notes,
            "changes": [{**c.__dict__, "volume_ml": f"{c.volume_ml:g}", "drug_mg": f"{c.drug_mg:g}"}
                        for c in plan.changes],
            "per_day": [{"day": d.day, "drug_mg": f"{d.drug_mg:.1f}", "volume_ml": f"{d.volume_ml:.1f}"}
                        for d in plan.per_day],
            "level_note": level_note}


def template_environment() -> Environment:
    """Jinja environment over the report templates (HTML autoescaped)."""
    return Environment(loader=PackageLoader("ketaplan.report", "templates"),
                       autoescape=select_autoescape(["html", "j2"]))


def model_context(spec) -> dict:
    """The model section of a report: id, title, citations, caveats and parameters."""
    return {"id": spec.id, "title": spec.title, "citations": [c.text for c in spec.citations],
            "caveats": list(spec.caveats), "parameters": parameter_rows(spec.parameters)}


def render_report(frame, path: str | Path, title: str, facts: list[tuple[str, str]], pump: dict | None = None,
                  callout: dict | None = None, extra_figures: list[tuple[str, str]] | None = None) -> None:
    """Write the report of a simulation (figures as inline SVG)."""
    template = template_environment().get_template("report.html.j2")
    columns, rows = summary_table(frame)
    contra, guideline = contraindications()
    monitoring, _ = monitoring_schedule()
    figures = [{"title": "Levels, relief and course timeline", "svg": svg_text(simulation_figure(frame))}]
    figures += [{"title": t, "svg": s} for t, s in (extra_figures or [])]
    html = template.render(
        title=title, disclaimer=DISCLAIMER, facts=facts, callout=callout, summary_columns=columns, summary_rows=rows,
        notes=frame.notes, findings=frame.findings, figures=figures, pump=pump, contraindications=contra,
        monitoring=monitoring, guideline=guideline, version=__version__,
        model=model_context(frame.spec),
    )
    Path(path).write_text(html, encoding="utf-8")
