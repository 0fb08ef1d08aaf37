"""Corrections without loss in the browser: an entry's page with its history, correct or void it with a reason,
cancel a planned course."""

from __future__ import annotations

from fastapi import APIRouter, Request

from ketaplan.course import store
from ketaplan.course.corrections import ENTRIES, cancel_course, correct_entry, history, values, void_entry
from ketaplan.errors import InputError
from ketaplan.web.i18n import N_
from ketaplan.web.pages_patients import ACTIONS, patient_view
from ketaplan.web.views import Visit, db, form_endpoint, refused, render, staff_action, staff_view, translator, visit

router = APIRouter()
FORM_OF = {"weights": "weight", "infusions": "infusion", "levels": "level", "pain_diary": "diary",
           "side_effects": "side-effect", "labs": "lab", "notes": "note"}
"""The patient-page form that records each kind of entry (a correction is recorded the same way)."""


def _typed(entity: str, row, course_number: int | None) -> dict:
    """The entry's values as the fields of its form (to start a correction from)."""

    def stamp(t):
        return t.strftime("%Y-%m-%dT%H:%M")

    return {
        "weights": lambda: {"on": row.recorded_on.isoformat(), "kg": f"{row.kg:g}"},
        "infusions": lambda: {"course": str(course_number), "start": stamp(row.start), "end": stamp(row.end),
                              "rate": f"{row.rate_mg_h:g} mg/h", "note": row.note},
        "levels": lambda: {"taken_at": stamp(row.taken_at), "analyte": row.analyte,
                           "value": f"{row.value_ng_ml:g} ng/mL" if row.value_ng_ml is not None else "",
                           "blq": "yes" if row.blq else "",
                           "lloq": f"{row.lloq_ng_ml:g} ng/mL" if row.lloq_ng_ml is not None else ""},
        "pain_diary": lambda: {"recorded_at": stamp(row.recorded_at), "nrs": str(row.nrs)},
        "side_effects": lambda: {"recorded_at": stamp(row.recorded_at), "kind": row.kind, "grade": str(row.grade)},
        "labs": lambda: {"taken_at": stamp(row.taken_at), "test": row.test, "value": f"{row.value_u_l:g}",
                         "uln": f"{row.uln_u_l:g}"},
        "notes": lambda: {"text": row.text},
    }[entity]()


def _entry_view(request: Request, s, v: Visit, code: str, entity: str, entry_id: int, status: int = 200,
                error: str | None = None, typed: dict | None = None, active: str | None = None):
    if entity not in ENTRIES:
        return refused(request, v, N_("There is no such page."), status=404)
    p = store.get_patient(s, code)
    row = s.get(ENTRIES[entity], entry_id)
    course = next((c for c in p.courses if entity == "infusions" and row is not None and c.id == row.course_id), None)
    if row is None or (entity != "infusions" and row.patient_id != p.id) or (entity == "infusions" and course is None):
        return refused(request, v, N_("There is no such page."), status=404)
    revisions = history(s, p).get((entity, entry_id), [])
    replaced = [(r, s.get(ENTRIES[entity], r.replaced_by)) for r in revisions if r.replaced_by]
    return render(request, "entry.html", v, status=status, p=p, entity=entity, row=row, current=values(row),
                  revisions=revisions, replaced=replaced, form_name=FORM_OF[entity], error=error, active=active,
                  typed=typed or _typed(entity, row, course.number if course else None))


@router.get("/patients/{code}/entries/{entity}/{entry_id:int}")
def entry_page(request: Request, code: str, entity: str, entry_id: int):
    def view(s, v):
        try:
            return _entry_view(request, s, v, code, entity, entry_id)
        except InputError:
            return refused(request, v, N_("No patient has this code."), status=404)

    return staff_view(request, view)


def _revise(request: Request, form: dict, kind: str):
    code, entity = request.path_params["code"], request.path_params["entity"]
    entry_id = request.path_params["entry_id"]

    def action(s, v):
        p = store.get_patient(s, code)
        if kind == "void":
            if form.get("confirm") != "yes":
                raise InputError("confirmation", "not ticked", "tick the box to confirm")
            void_entry(s, v.user.username, p, entity, entry_id, form.get("reason", ""))
        else:
            replacement = ACTIONS[FORM_OF.get(entity, "note")]
            correct_entry(s, v.user.username, p, entity, entry_id, form.get("reason", ""),
                          lambda: replacement(s, v.user.username, p, form))

    def on_error(exc: InputError):
        with db(request) as s:
            typed = {**form, "needs_confirm": isinstance(exc, store.UnitSlipRefused)}
            return _entry_view(request, s, visit(request, s), code, entity, entry_id, status=400,
                               error=translator(request).error(exc), typed=typed, active=kind)

    return staff_action(request, form, action, f"/patients/{code}/entries/{entity}/{entry_id}", on_error)


def _void(request: Request, form: dict):
    return _revise(request, form, "void")


def _correct(request: Request, form: dict):
    return _revise(request, form, "correct")


router.add_api_route("/patients/{code}/entries/{entity}/{entry_id:int}/void", form_endpoint(_void), methods=["POST"])
router.add_api_route("/patients/{code}/entries/{entity}/{entry_id:int}/correct", form_endpoint(_correct),
                     methods=["POST"])


def _cancel(request: Request, form: dict):
    code, number = request.path_params["code"], request.path_params["number"]

    def action(s, v):
        p = store.get_patient(s, code)
        cancel_course(s, v.user.username, p, store.get_course(p, number), form.get("reason", ""))

    def on_error(exc: InputError):
        with db(request) as s:
            return patient_view(request, s, visit(request, s), code, error=translator(request).error(exc),
                                status=400, active=f"cancel-{number}", typed=form)

    return staff_action(request, form, action, f"/patients/{code}#courses", on_error)


router.add_api_route("/patients/{code}/courses/{number:int}/cancel", form_endpoint(_cancel), methods=["POST"])
