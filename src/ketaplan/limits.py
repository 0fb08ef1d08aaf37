"""The limits on the work one input may ask for, in one place, each with the reason for its value.

Every entry point sizes the work an input implies (doses after expanding repeats, dose events of the
engine, output points, patients x time points, container changes, ...) *before* it allocates anything,
and refuses what lies beyond a limit in one sentence naming the item, the amount asked for and the
limit (:meth:`Limit.check`). The README's "Limits" section lists the same limits; a test keeps the two
in step.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ketaplan.errors import InputError, Verbatim


@dataclass(frozen=True)
class Limit:
    """The most of ``unit`` one ``scope`` may hold, and ``why`` the value is what it is."""

    value: float
    unit: str
    scope: str
    why: str

    def check(self, item: str, amount: float, advice: str) -> None:
        """Refuse ``amount`` above the limit: '{item}: got {amount} {unit}; the limit is ... {scope}; {advice}'."""
        if amount > self.value:
            raise InputError(item, Verbatim(f"{_count(amount)} {self.unit}"),
                             f"the limit is {_count(self.value)} {self.unit} {self.scope}; {advice}")

    def text(self) -> str:
        """'25,000 doses per plan', as the README writes it."""
        return f"{_count(self.value)} {self.unit} {self.scope}"


def _count(x: float) -> str:
    """Whole numbers with thousands separators; anything beyond 1e15 in scientific notation."""
    if x != x or x in (float("inf"), float("-inf")):
        return str(x)
    if abs(x) >= 1e15:
        return f"{x:.3g}"
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:,.3g}"


HOURS_PER_YEAR = 8766.0

DOSES_PER_PLAN = Limit(
    25_000, "doses", "per plan (every repeat counted)",
    "a dose every 8 hours for 20 years is 21,915 doses; more is a slip such as 'every 1 min', and one patient's "
    "run of 25,000 doses already takes about 10 s")
PLAN_YEARS = Limit(
    20, "years", "of treatment and follow-up per simulation",
    "far beyond the 3.5 years of the seed case; the fine output grid of 20 years (1.75 million points) still "
    "fits in memory")
DOSE_EVENTS_PER_RUN = Limit(
    20_000_000, "dose events", "per compilation of a dataset chunk or plan",
    "about 2 GB of schedule arrays")
DOSE_EVENTS_PER_INDIVIDUAL = Limit(
    200_000, "dose events", "per individual (doses, infusion ends and additional doses)",
    "the engine visits dose events one by one (vectorised over individuals): 200,000 take about half a minute "
    "here; hourly doses for 20 years are 175,320")
RECORDS_PER_INDIVIDUAL = Limit(
    1_000_000, "records", "per individual of a dataset",
    "an individual is read, checked and solved whole: hourly records for 100 years are 876,600")
OUTPUT_POINTS_PER_PATIENT = Limit(
    2_000_000, "time points", "per simulated patient",
    "the fine grid of a 20-year plan has at most 1.75 million points; each point holds a dozen outputs")
VIRTUAL_PATIENTS = Limit(
    10_000_000, "virtual patients", "per population run",
    "the per-patient table (one row of about 20 numbers, 125 bytes) of 10 million patients takes 1.25 GB, twice "
    "that while it is assembled")
PATIENT_POINTS_WITHOUT_YES = Limit(
    2e9, "patient-time points", "without --yes",
    "about two million patients on the one-year grid of four 5-day courses (969 points): a few minutes here; "
    "above it `population` and `search` ask for --yes after printing their estimate of the time")
CHUNKS = Limit(
    100_000, "chunks", "per population run (--n divided by --chunk)",
    "each chunk is one task with its own fixed cost (and one Dask future on a cluster)")
PATIENT_POINTS = Limit(
    1e12, "patient-time points", "per population run or regimen search",
    "days of computing even on a cluster")
SEARCH_CANDIDATES = Limit(
    2_000, "candidates", "per regimen search (rates x durations x intervals)",
    "each is one row of the trade-off table; the grid's rates, durations and intervals are lists typed by hand")
CONTAINER_CHANGES = Limit(
    10_000, "container changes", "per pump plan",
    "a syringe every 2 hours for 4 five-day courses a year over 20 years is 4,800 changes; more means a "
    "concentration or volume slip (1e-9 mg/mL)")
FIT_OBSERVATIONS = Limit(
    5_000, "observations", "per patient in `fit`",
    "ten years of daily pain scores and weekly levels are about 4,200; each optimiser step predicts all of them "
    "several times")
MCMC_STEPS = Limit(
    100_000, "steps", "per walker in `fit --mcmc`",
    "50 times the default 2,000; the chain is kept in memory")
ESTIMATION_CELLS = Limit(
    20_000_000, "observation cells", "in `estimate` (individuals x the most observations of one individual)",
    "observations are laid out as one padded grid (several arrays of 8-byte numbers); 20 million cells are "
    "about 640 MB, e.g. 10,000 individuals with up to 2,000 levels each")
SIMULATED_VALUES = Limit(
    500_000_000, "simulated values", "for NPDE and the VPC in `estimate` (replicates x observations)",
    "each value is drawn, simulated and ranked; 1,000 replicates of 500,000 observations")
TABLE_FILE_BYTES = Limit(
    100_000_000, "bytes", "per covariate table or pain-diary file",
    "a million virtual patients' covariates are about 30 MB, fifty years of hourly diary scores 10 MB; the file "
    "is read whole")
LEARNING_CELLS = Limit(
    50_000_000, "table cells", "for learning a relief model (half-life grid x patients x most measurements of one "
                               "patient)",
    "the relief-site table holds about 400 MB at this size; 300 patients with 3 years of weekly diaries need "
    "about 3 million")
YAML_BYTES = Limit(
    1_000_000, "bytes", "per YAML file a user gives (model or plan)",
    "the largest library model is about 10 kB")
YAML_VALUES = Limit(
    100_000, "values", "per YAML file, aliases expanded",
    "a model has at most a few hundred values; aliases that multiply (a 'billion laughs' file) are refused "
    "before anything reads them")
WORKERS = Limit(
    max(1, os.cpu_count() or 1), "worker processes", "for a local Dask cluster (the machine's processor cores)",
    "more processes than cores only compete for them, and each holds its own copy of the model and grid")

ALL = {name: value for name, value in globals().items() if isinstance(value, Limit)}
"""Every limit by its name, for the README's table and its test."""
