"""ketaplan: plan, simulate and follow ketamine therapy for refractory neuropathic pain.

The public API is small; everything here is re-exported from the module that defines it.
Decision support for clinicians and researchers, not a prescription.
"""

from ketaplan.errors import InputError, UnitError
from ketaplan.models.library import load_model
from ketaplan.nonmem import simulate_dataset
from ketaplan.predict import Patient, predict
from ketaplan.regimen import DoseEvent, Regimen

__all__ = [
    "DoseEvent",
    "InputError",
    "Patient",
    "Regimen",
    "UnitError",
    "load_model",
    "predict",
    "simulate_dataset",
]
__version__ = "0.1.0"
