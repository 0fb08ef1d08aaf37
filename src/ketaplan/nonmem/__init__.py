"""The NONMEM layer: datasets (reading, checking, splitting), PREDPP models and ``simulate-dataset``.

Modules: :mod:`~ketaplan.nonmem.dataset` (NONMEM-style data, checked row by row),
:mod:`~ketaplan.nonmem.predpp` (ADVAN 1-4, 11, 12 model files), :mod:`~ketaplan.nonmem.simulate`
(IPRED and amounts for every record), :mod:`~ketaplan.nonmem.records` (a regimen as records and back),
:mod:`~ketaplan.nonmem.control_stream` (NONMEM control streams read into model files).
Imports the engine, the regimen layer and :mod:`ketaplan.errors`.
"""

from ketaplan._lazy import lazy_exports

_EXPORTS = {
    "read_dataset": "ketaplan.nonmem.dataset",
    "split_individuals": "ketaplan.nonmem.dataset",
    "simulate_dataset": "ketaplan.nonmem.simulate",
    "regimen_to_records": "ketaplan.nonmem.records",
    "regimen_from_records": "ketaplan.nonmem.records",
    "nonmem_observations": "ketaplan.nonmem.records",
    "read_control_stream": "ketaplan.nonmem.control_stream",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
