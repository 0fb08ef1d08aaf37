"""ketaplan: plan, simulate and follow ketamine therapy for refractory neuropathic pain.

The public API is small; every name here is re-exported, on first use, from the module that defines
it, so ``import ketaplan`` loads no heavy library. Decision support for clinicians and researchers,
not a prescription.
"""

from ketaplan._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "InputError": "ketaplan.errors",
    "UnitError": "ketaplan.errors",
    "DoseEvent": "ketaplan.regimen.events",
    "Regimen": "ketaplan.regimen.events",
    "load_regimen": "ketaplan.regimen.text",
    "parse_regimen": "ketaplan.regimen.text",
    "assemble": "ketaplan.models.library",
    "load_model": "ketaplan.models.library",
    "Patient": "ketaplan.simulation.patient",
    "predict": "ketaplan.simulation.predict",
    "simulate_dataset": "ketaplan.nonmem.simulate",
    "estimate": "ketaplan.estimation.api",
    "simulate_population": "ketaplan.population.api",
    "fit_dataset": "ketaplan.individualize.api",
    "fit_patient": "ketaplan.individualize.api",
    "simulate": "ketaplan.planning.plan",
    "pump_plan": "ketaplan.planning.pump",
    "search_regimens": "ketaplan.planning.regimen_search",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
