"""Published values as priors for learning a relief model (one YAML file per PD model, with sources)."""

from __future__ import annotations

from importlib import resources

import yaml

from ketaplan.errors import InputError
from ketaplan.estimation.library_estimation import Learnable, Prior

DEFAULT_PRIOR = "dahan_2011_crps_pkpd"


def prior_names() -> list[str]:
    """The PD models that have a prior file."""
    return sorted(p.name.removesuffix(".yaml") for p in resources.files(__package__).iterdir()
                  if p.name.endswith(".yaml"))


def load_prior(name: str = DEFAULT_PRIOR, weight: float = 1.0) -> Prior:
    """The prior of PD model ``name``; ``weight`` scales every prior's precision and the inverse-Wishart's
    degrees of freedom (1: as published, 0: the clinic's data alone)."""
    if name not in prior_names():
        raise InputError("prior", name, f"one of {', '.join(prior_names())}")
    if not (isinstance(weight, (int, float)) and 0 <= weight <= 100):
        raise InputError("--prior-weight", weight, "a number from 0 (no prior) to 100; 1 is the published weight")
    raw = yaml.safe_load(resources.files(__package__).joinpath(f"{name}.yaml").read_text(encoding="utf-8"))
    learnables = tuple(Learnable(d["name"], d["transform"], float(d["sd"]), d["source"]) for d in raw["learn"])
    return Prior(learnables, tuple(raw["variances"]["parameters"]), float(raw["variances"]["nu"]), float(weight))
