"""Run a virtual population in chunks, locally or on a Dask cluster, folding results as they arrive.

Memory grows with the number of subjects (one summary row each), not subjects x time points: each
chunk is simulated on the shared time grid, reduced to per-subject metrics and histogram counts for
the percentile bands, and dropped. Subject i gets the same covariates, random effects and response
whatever the chunk size or number of workers, and histogram counts add exactly, so results are identical.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ketaplan.errors import InputError
from ketaplan.finite import require_finite
from ketaplan.population.metrics import Columns, subject_metrics
from ketaplan.population.model_run import PopulationSpec, simulate_slice
from ketaplan.population.stream import Binning, Histograms, percentiles_from_counts
from ketaplan.population.work import Work, check_patients, check_points

DEFAULT_PERCENTILES = (5.0, 50.0, 95.0)
MIN_CHUNK, MAX_CHUNK = 2_000, 20_000
TASKS_PER_WORKER = 16
"""Without ``chunk`` a run is cut into about this many chunks per worker, of MIN_CHUNK to MAX_CHUNK patients.
Each chunk is a task with a fixed cost (scheduling, sending its result, folding it in the main process, which
shares the cores with the workers): at 1,000,000 patients on 2 workers, chunks of 2,000 spent about a tenth of
the run on it. Sixteen per worker still balance the load and move the progress bar; the memory a chunk needs
is bounded by its blocks (BLOCK_VALUES), not by its size."""
BLOCK_VALUES = 400_000
"""A chunk is simulated and reduced in blocks of about this many grid values (subjects x times; 3.2 MB per
output): small enough that a block's time courses are mostly still in cache while its metrics are taken, large
enough to spread each block's fixed cost (about 400 subjects on the benchmark's grid; blocks of 258 to 2,000
subjects were 3 to 10 % slower here, 128 were 22 % slower)."""


@dataclass
class ChunkResult:
    """Per-subject columns and histogram counts of one chunk."""

    start: int
    columns: Columns
    counts: dict[str, np.ndarray]


def simulate_chunk(pspec: PopulationSpec, start: int, stop: int) -> ChunkResult:
    """Simulate subjects start..stop-1 block by block, reduced to columns and histogram counts (runs on workers)."""
    histograms = Histograms()
    block = max(1, BLOCK_VALUES // len(pspec.times))
    parts = [subject_metrics(pspec, simulate_slice(pspec, a, b), histograms=histograms)
             for a, b in chunk_ranges(stop, block, start)]
    columns = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
    # counts travel from worker to client: 16 bits suffice below 65,536 subjects and halve the traffic
    return ChunkResult(start, columns, histograms.counts(np.uint16 if stop - start < 2**16 else np.int64))


@dataclass
class PopulationResult:
    """Per-subject table, percentile bands over time and the population summary."""

    subjects: pd.DataFrame
    bands: dict[str, pd.DataFrame]
    summary: dict
    pspec: PopulationSpec
    percentiles: tuple[float, ...]


def chunk_size(n: int, workers: int | None, chunk: int | None = None, scheduler: str | None = None) -> int:
    """``chunk`` if given, else about TASKS_PER_WORKER chunks per worker within MIN_CHUNK..MAX_CHUNK; on a
    cluster at ``scheduler``, whose size is not known here, MIN_CHUNK (many tasks keep a large cluster busy)."""
    if chunk is not None:
        return chunk
    if scheduler is not None:
        return MIN_CHUNK
    per_task = -(-n // (max(workers or 1, 1) * TASKS_PER_WORKER))
    return int(min(MAX_CHUNK, max(MIN_CHUNK, per_task)))


def chunk_ranges(n: int, chunk: int, first: int = 0) -> list[tuple[int, int]]:
    """Consecutive (start, stop) ranges of at most ``chunk`` subjects from ``first`` up to ``n``."""
    return [(a, min(a + chunk, n)) for a in range(first, n, chunk)]


def check_percentiles(percentiles) -> tuple[float, ...]:
    qs = tuple(float(q) for q in percentiles)
    for q in qs:
        if not 0 <= q <= 100:
            raise InputError("--percentiles", f"{q:g}", "percentiles must be between 0 and 100")
    if not qs:
        raise InputError("--percentiles", "nothing", "give at least one percentile, e.g. 5,50,95")
    return qs


PILOT_POINTS = 200_000
"""Grid values (patients x times) of the pilot chunk that times a large run (well under a second)."""


def estimate_seconds(pspec: PopulationSpec, workers: int | None = None) -> float:
    """Seconds the whole run should take here, from a timed pilot chunk of the same population (its result is
    discarded), divided among ``workers`` processes."""
    size = max(1, min(pspec.n, PILOT_POINTS // max(len(pspec.times), 1)))
    start = time.perf_counter()
    simulate_chunk(pspec, 0, size)
    per_patient = (time.perf_counter() - start) / size
    return per_patient * pspec.n / max(workers or 1, 1)


def run_population(pspec: PopulationSpec, chunk: int | None = None, percentiles=DEFAULT_PERCENTILES,
                   workers: int | None = None, scheduler: str | None = None,
                   on_chunk: Callable[[int, int], None] | None = None) -> PopulationResult:
    """Simulate the population locally (default), on a new LocalCluster (``workers``) or at ``scheduler``.

    ``chunk`` patients are simulated per task (default: :func:`chunk_size`). ``on_chunk(done, total)`` is called
    after each chunk (for progress bars).
    """
    chunk = chunk_size(pspec.n, workers, chunk, scheduler)
    check_patients(pspec.n, workers, chunk)
    check_points("population", Work(pspec.n, len(pspec.times)))
    if pspec.seed < 0:
        raise InputError("--seed", pspec.seed, "a whole number >= 0")
    if workers is not None and scheduler is not None:
        raise InputError("--workers/--scheduler", f"{workers} and {scheduler}", "give one of them, not both")
    qs = check_percentiles(percentiles)
    ranges = chunk_ranges(pspec.n, chunk)
    fold = _Fold()
    if workers is None and scheduler is None:
        for i, (a, b) in enumerate(ranges):
            fold.add(simulate_chunk(pspec, a, b))
            if on_chunk:
                on_chunk(i + 1, len(ranges))
    else:
        _run_dask(pspec, ranges, workers, scheduler, on_chunk, fold)
    return fold.result(pspec, qs)


class _Fold:
    """Running reduction of chunk results: summed counts, columns by start index."""

    def __init__(self) -> None:
        self.columns: dict[int, Columns] = {}
        self.counts: dict[str, np.ndarray] = {}

    def add(self, r: ChunkResult) -> None:
        self.columns[r.start] = r.columns
        for name, c in r.counts.items():
            if name in self.counts:
                self.counts[name] += c
            else:
                self.counts[name] = c.astype(np.int64)

    def result(self, pspec: PopulationSpec, qs: tuple[float, ...]) -> PopulationResult:
        parts = [self.columns[k] for k in sorted(self.columns)]
        subjects = pd.DataFrame({name: np.concatenate([p[name] for p in parts]) for name in parts[0]})
        require_finite({name: subjects[name].to_numpy() for name in ("cmax_ng_ml", "auc_ng_h_ml")},
                       lambda i: f"virtual patient {i + 1}")
        bands = {name: bands_from_counts(total, pspec.times[pspec.band_index], qs,
                                         Binning.fraction() if name == "relief" else Binning.concentration())
                 for name, total in self.counts.items()}
        return PopulationResult(subjects, bands, summarise(subjects, pspec), pspec, qs)


def bands_from_counts(counts: np.ndarray, times: np.ndarray, qs: tuple[float, ...], binning: Binning) -> pd.DataFrame:
    """A frame with a time column and one column per percentile (p5, p50, ...)."""
    values = percentiles_from_counts(counts, binning, list(qs))
    frame = pd.DataFrame({"time": times})
    for j, q in enumerate(qs):
        frame[f"p{q:g}"] = values[:, j]
    return frame


WORKER_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(32 * 2**20), "MALLOC_TRIM_THRESHOLD_": str(256 * 2**20)}
"""glibc malloc settings of the local cluster's workers. Dask's own MALLOC_TRIM_THRESHOLD_ (64 kB) turns off glibc's
adaptive mmap threshold, so every large temporary array is mapped and unmapped again; glibc's defaults still hand
the heap back often. Either way each new array faults its pages in afresh, which cost about a sixth of the run
time. With these, arrays up to 32 MB come from the heap, which keeps up to 256 MB of free memory for reuse."""


def _run_dask(pspec, ranges, workers, scheduler, on_chunk, fold: _Fold) -> None:
    import dask
    from dask.distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler is None:
        with dask.config.set({f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in WORKER_MALLOC.items()}):
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
    else:
        try:
            client = Client(scheduler, timeout="5s")
        except OSError as exc:
            raise InputError("--scheduler", scheduler, f"no Dask scheduler answered there ({exc})") from None
    try:
        shared = client.scatter(pspec, broadcast=True)
        futures = [client.submit(simulate_chunk, shared, a, b, pure=False) for a, b in ranges]
        for done, future in enumerate(as_completed(futures), start=1):
            fold.add(future.result())
            future.release()
            if on_chunk:
                on_chunk(done, len(ranges))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def summarise(subjects: pd.DataFrame, pspec: PopulationSpec) -> dict:
    """Population summary: target attainment, psychotomimetic risk, responders, relief duration."""
    out = {
        "n": len(subjects),
        "probability_of_target_attainment": float(subjects["target_attained"].mean()),
        "psychotomimetic_risk": float(subjects["psychotomimetic"].mean()),
        "window_fraction": pspec.window_fraction,
        "cmax_ng_ml": quantiles(subjects["cmax_ng_ml"]),
        "auc_ng_h_ml": quantiles(subjects["auc_ng_h_ml"]),
        "hours_in_window": quantiles(subjects["hours_in_window"]),
    }
    if "norketamine_cmax_ng_ml" in subjects:
        out["norketamine_cmax_ng_ml"] = quantiles(subjects["norketamine_cmax_ng_ml"])
    if "responder" in subjects:
        resp = subjects[subjects["responder"]]
        out["responder_fraction"] = float(subjects["responder"].mean())
        out["relief_threshold"] = pspec.relief_threshold
        days = np.where(resp["relief_first_censored"], np.inf, resp["relief_days_first"])
        out["relief_days_first_course_responders"] = quantiles(pd.Series(days))
        if "relief_maintained" in subjects:
            out["relief_maintained_responders"] = float(resp["relief_maintained"].mean()) if len(resp) else None
    return out


def quantiles(series: pd.Series, qs=(5, 50, 95)) -> dict:
    """Sample percentiles (inverted CDF, so censored values held as +inf stay +inf); None if empty."""
    v = series.to_numpy(dtype=float)
    v = v[~np.isnan(v)]
    if len(v) == 0:
        return {f"p{q:g}": None for q in qs}
    return {f"p{q:g}": float(x) for q, x in zip(qs, np.percentile(v, qs, method="inverted_cdf"), strict=True)}
