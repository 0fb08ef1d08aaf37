"""ketaplan: plan, simulate and follow ketamine therapy for refractory neuropathic pain.

The public API is small; everything here is re-exported from the module that defines it.
Decision support for clinicians and researchers, not a prescription.
"""

from ketaplan.errors import InputError, UnitError
from ketaplan.individualize.api import fit_dataset, fit_patient
from ketaplan.models.compose import assemble
from ketaplan.models.library import load_model
from ketaplan.nonmem import simulate_dataset
from ketaplan.planning.plan import simulate
from ketaplan.planning.pump import pump_plan
from ketaplan.planning.regimen_search import search_regimens
from ketaplan.population.api import simulate_population
from ketaplan.predict import Patient, predict
from ketaplan.regimen import DoseEvent, Regimen
from ketaplan.regimen_text import load_regimen, parse_regimen

__all__ = [
    "DoseEvent",
    "InputError",
    "Patient",
    "Regimen",
    "UnitError",
    "assemble",
    "fit_dataset",
    "fit_patient",
    "load_model",
    "load_regimen",
    "parse_regimen",
    "predict",
    "pump_plan",
    "search_regimens",
    "simulate",
    "simulate_dataset",
    "simulate_population",
]
__version__ = "0.1.0"
