"""Published values as priors for learning a relief model (one YAML file per PD model, with sources)."""

from __future__ import annotations

from importlib import resources

import yaml

from ketaplan.errors import InputError
from ketaplan.estimation.library_estimation import Learnable, Prior

DEFAULT_PRIOR = "dahan_2011_crps_pkpd"
DEFAULT_PRIOR_WEIGHT = 0.25
"""The published values count with a quarter of their stated precision (prior SDs doubled, inverse-Wishart
degrees of freedom quartered): their intervals describe one trial's estimate (S-ketamine, 60 CRPS patients,
an abstract-level report), not how far a clinic's racemic-treated population may lie from it. At full weight
a clinic's values 8 prior SDs away (C50 0.4 against 10.5 ng/mL) stay out of the learned interval even with 40
patients (tests/test_learning_recovers_truth.py); at a quarter they are covered."""


def prior_names() -> list[str]:
    """The PD models that have a prior file."""
    return sorted(p.name.removesuffix(".yaml") for p in resources.files(__package__).iterdir()
                  if p.name.endswith(".yaml"))


def load_prior(name: str = DEFAULT_PRIOR, weight: float = DEFAULT_PRIOR_WEIGHT) -> Prior:
    """The prior of PD model ``name``; ``weight`` scales every prior's precision and the inverse-Wishart's
    degrees of freedom (1: as published, 0: the clinic's data alone; default :data:`DEFAULT_PRIOR_WEIGHT`)."""
    if name not in prior_names():
        raise InputError("prior", name, f"one of {', '.join(prior_names())}")
    if not (isinstance(weight, (int, float)) and 0 <= weight <= 100):
        raise InputError("--prior-weight", weight, "a number from 0 (no prior) to 100; 1 is the published weight")
    raw = yaml.safe_load(resources.files(__package__).joinpath(f"{name}.yaml").read_text(encoding="utf-8"))
    learnables = tuple(Learnable(d["name"], d["transform"], float(d["sd"]), d["source"]) for d in raw["learn"])
    return Prior(learnables, tuple(raw["variances"]["parameters"]), float(raw["variances"]["nu"]), float(weight))
