"""One patient's run: regimen -> model -> engine -> outputs -> per-course summary.

Modules: :mod:`~ketaplan.simulation.patient` (covariates), :mod:`~ketaplan.simulation.run` (the one
place a patient's simulation is run), :mod:`~ketaplan.simulation.summary` (per-course numbers),
:mod:`~ketaplan.simulation.predict` (levels at chosen times) and :mod:`~ketaplan.simulation.model_info`
(what ``models show`` displays). Imports the engine, the models and the regimen layer.
"""

from ketaplan._lazy import lazy_exports

_EXPORTS = {
    "Patient": "ketaplan.simulation.patient",
    "predict": "ketaplan.simulation.predict",
    "run_patient": "ketaplan.simulation.run",
    "model_for": "ketaplan.simulation.run",
    "course_summary": "ketaplan.simulation.summary",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
