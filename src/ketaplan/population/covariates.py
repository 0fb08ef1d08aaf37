"""Virtual patients' covariates: the built-in adult neuropathic-pain population or a user's CSV.

Random numbers are drawn in fixed blocks of subjects from a seed, so subject i gets the same values
whatever the chunk size or number of workers (see :func:`block_normals`).
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from scipy.special import ndtr, ndtri

from ketaplan.engine.build import Covariates
from ketaplan.errors import InputError
from ketaplan.limits import TABLE_FILE_BYTES

BLOCK = 4096
"""Subjects per random-number block; any chunking reproduces the same numbers per subject."""

STREAM_COVARIATES, STREAM_ETAS, STREAM_RESPONSE = 1, 2, 3
STREAM_RESIDUAL = 100
"""First of the residual-error streams (one per observable: 100, 101, ...)."""
STREAM_OCCASIONS = 1000
"""First of the between-course streams (one per course: 1000, 1001, ...)."""


@lru_cache(maxsize=1)
def builtin_population() -> dict:
    """The built-in covariate distributions with their sources."""
    return yaml.safe_load((resources.files("ketaplan.population") / "neuropathic_pain_adults.yaml").read_text())


@lru_cache(maxsize=16)
def _block_numbers(seed: int, stream: int, block: int, width: int) -> np.ndarray:
    """The uniforms of one block of subjects (read-only; remembered, as several slices of a chunk share a block)."""
    numbers = np.random.default_rng(np.random.SeedSequence([int(seed), int(stream), int(block)])).random((BLOCK, width))
    numbers.flags.writeable = False
    return numbers


def block_uniforms(seed: int, stream: int, start: int, stop: int, width: int) -> np.ndarray:
    """Uniform(0, 1) numbers (stop - start, width) for subjects start..stop-1, independent of chunking."""
    out = np.empty((stop - start, width))
    first, last = start // BLOCK, (stop - 1) // BLOCK
    for b in range(first, last + 1):
        block = _block_numbers(int(seed), int(stream), b, int(width))
        lo, hi = max(start, b * BLOCK), min(stop, (b + 1) * BLOCK)
        out[lo - start:hi - start] = block[lo - b * BLOCK:hi - b * BLOCK]
    return out


def block_normals(seed: int, stream: int, start: int, stop: int, width: int) -> np.ndarray:
    """Standard normal numbers (stop - start, width), independent of chunking (from block_uniforms)."""
    u = block_uniforms(seed, stream, start, stop, width)
    return ndtri(np.clip(u, 1e-16, 1 - 1e-16))


def _truncated_normal(u: np.ndarray, mu: float, sd: float, lo: float, hi: float) -> np.ndarray:
    """Inverse CDF of a normal truncated to [lo, hi] at uniforms u."""
    a, b = ndtr((lo - mu) / sd), ndtr((hi - mu) / sd)
    return mu + sd * ndtri(np.clip(a + u * (b - a), 1e-16, 1 - 1e-16))


def _truncated(dist: dict, u: np.ndarray) -> np.ndarray:
    lo, hi = dist["bounds"]
    if dist["distribution"] == "normal":
        return np.clip(_truncated_normal(u, dist["mean"], dist["sd"], lo, hi), lo, hi)
    sigma2 = np.log(1 + (dist["sd"] / dist["mean"]) ** 2)
    mu = np.log(dist["mean"]) - sigma2 / 2
    return np.clip(np.exp(_truncated_normal(u, mu, np.sqrt(sigma2), np.log(lo), np.log(hi))), lo, hi)


def sample_covariates(seed: int, start: int, stop: int) -> Covariates:
    """Covariates of subjects start..stop-1 from the built-in population."""
    pop = builtin_population()
    u = block_uniforms(seed, STREAM_COVARIATES, start, stop, 4)
    age = _truncated(pop["age"], u[:, 0])
    weight = _truncated(pop["weight"], u[:, 1])
    sex = np.where(u[:, 2] < pop["female_fraction"]["value"], "female", "male").astype(object)
    height = _truncated(pop["height"], u[:, 3])
    return Covariates(weight, age, sex, height)


COVARIATE_COLUMNS = ("weight", "age", "sex", "height")


def read_covariates(path: str | Path) -> pd.DataFrame:
    """A user's covariate CSV: one row per virtual patient; columns weight (kg) and optionally age, sex, height."""
    p = Path(path)
    if not p.is_file():
        raise InputError("--covariates", str(path), "the file does not exist")
    TABLE_FILE_BYTES.check("--covariates", p.stat().st_size, "give fewer rows (the table is cycled over the patients)")
    try:
        frame = pd.read_csv(p)
    except Exception as exc:
        raise InputError("--covariates", str(path), f"could not be read as CSV ({exc})") from None
    cols = {c.lower().strip(): c for c in frame.columns}
    # a repeated header (any case; pandas renames an exact repeat 'weight' to 'weight.1') is refused
    names = [re.sub(r"\.\d+$", "", str(c).lower().strip()) for c in frame.columns]
    twice = [n for n in COVARIATE_COLUMNS if names.count(n) > 1]
    if twice:
        raise InputError("--covariates", list(frame.columns), f"the column {twice[0]} appears twice")
    if "weight" not in cols:
        raise InputError("--covariates", list(frame.columns), "a 'weight' column (kg) is required")
    out = pd.DataFrame({"weight": pd.to_numeric(frame[cols["weight"]], errors="coerce")})
    for name in ("weight", "age", "height"):
        if name in cols:
            given = frame[cols[name]].notna() & (frame[cols[name]].astype(str).str.strip() != "")
            text = np.flatnonzero((given & pd.to_numeric(frame[cols[name]], errors="coerce").isna()).to_numpy())
            if len(text):
                raise InputError(f"--covariates row {text[0] + 1}, column {name}", frame.iloc[text[0]][cols[name]],
                                 "a number (or an empty cell where the value is unknown)")
    for name in ("age", "height"):
        out[name] = pd.to_numeric(frame[cols[name]], errors="coerce") if name in cols else np.nan
    out["sex"] = frame[cols["sex"]].astype(str).str.strip().str.lower() if "sex" in cols else "unknown"
    checks = [("weight", (out["weight"] < 1) | (out["weight"] > 400) | out["weight"].isna(), "between 1 and 400 kg"),
              ("age", (out["age"] < 0) | (out["age"] > 120), "between 0 and 120 years"),
              ("height", (out["height"] < 40) | (out["height"] > 250), "between 40 and 250 cm"),
              ("sex", ~out["sex"].isin(["male", "female", "unknown", "nan"]), "male or female")]
    for name, bad, allowed in checks:
        idx = np.flatnonzero(bad.to_numpy())
        if len(idx):
            raise InputError(f"--covariates row {idx[0] + 1}, column {name}", frame.iloc[idx[0]][cols.get(name, name)]
                             if name in cols else "missing", f"must be {allowed}")
    out["sex"] = out["sex"].replace("nan", "unknown")
    return out


def covariates_from_table(table: pd.DataFrame, start: int, stop: int) -> Covariates:
    """Covariates of subjects start..stop-1 taken from a user's table (cycled if it is shorter)."""
    idx = np.arange(start, stop) % len(table)
    rows = table.iloc[idx]
    return Covariates(rows["weight"].to_numpy(float), rows["age"].to_numpy(float), rows["sex"].to_numpy(object),
                      rows["height"].to_numpy(float))
