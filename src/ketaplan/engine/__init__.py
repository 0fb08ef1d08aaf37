"""Exact solution of linear compartment systems with NONMEM event semantics; ODE cross-check."""

from ketaplan._lazy import lazy_exports

_EXPORTS = {
    "solve": "ketaplan.engine.exact",
    "solve_ode": "ketaplan.engine.ode",
    "DoseModifiers": "ketaplan.engine.schedule",
    "DoseRecords": "ketaplan.engine.schedule",
    "Schedule": "ketaplan.engine.schedule",
    "compile_schedule": "ketaplan.engine.schedule",
    "EffectLink": "ketaplan.engine.system",
    "LinearStructure": "ketaplan.engine.system",
    "Transfer": "ketaplan.engine.system",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
