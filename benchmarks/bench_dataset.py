"""NONMEM dataset benchmark: ``simulate_dataset`` end to end against a ``solve_ivp`` loop, in the same run.

200 subjects, ADVAN11 (ketamine, 3 compartments; Domino typical values), four courses of 20 mg/h for
5 days 11 weeks apart, hourly observation records for a year (8,761 per subject, 1.75 M rows), with
30 % log-normal variability on CL, V1, Q2 and V2 given as dataset columns. ketaplan simulates the whole
table (reading the items, checking every row, splitting individuals, compiling schedules, solving,
writing IPRED and amounts); the baseline integrates the first 10 subjects with ``solve_ivp`` (LSODA,
rtol 1e-8, atol 1e-12, piecewise between dose boundaries, same records). Printed: per-subject speed
ratio (target >= 150 end to end), largest difference, and the peak memory of the ketaplan call
(tracemalloc) against input + output (target <= 3x).

With ``--rows N`` it also writes an N-record dataset to a temporary CSV and runs ``ketaplan
simulate-dataset`` on it as a subprocess, sampling its resident memory (target: flat, bounded by the
chunk, not the file).

Run: python benchmarks/bench_dataset.py [--rows 10000000]
"""

from __future__ import annotations

import argparse
import itertools
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
from scipy.integrate import solve_ivp

from ketaplan.nonmem.simulate import simulate_dataset

N_SUBJECTS = 200
N_REFERENCE = 10
HOURS = np.arange(0.0, 8761.0)
COURSE_STARTS = [c * 11 * 168.0 for c in range(4)]
RATE, DURATION = 20.0, 120.0
# Domino TCI set, 70 kg (derived macro-constants, reference section 2.1); benchmark inputs only.
TYPICAL = {"CL": 115.9, "V1": 4.41, "Q2": 156.7, "V2": 10.57, "Q3": 156.2, "V3": 178.2}
MODEL = {"advan": 11, "CL": "CL", "V1": "V1", "Q2": "Q2", "V2": "V2", "Q3": 156.2, "V3": 178.2, "scale": 1000}


def dataset(n_subjects: int, seed: int = 2026) -> pd.DataFrame:
    """Doses (EVID 1) and hourly observations for each subject, parameters as columns."""
    rng = np.random.default_rng(seed)
    n_obs = len(HOURS)
    n_dose = len(COURSE_STARTS)
    per = n_obs + n_dose
    time_one = np.concatenate([COURSE_STARTS, HOURS])
    evid_one = np.concatenate([np.ones(n_dose), np.zeros(n_obs)])
    order = np.lexsort((1 - evid_one, time_one))  # doses before observations at the same time
    time_one, evid_one = time_one[order], evid_one[order]
    frame = pd.DataFrame({
        "ID": np.repeat(np.arange(1, n_subjects + 1), per),
        "TIME": np.tile(time_one, n_subjects),
        "EVID": np.tile(evid_one, n_subjects).astype(int),
        "AMT": np.tile(np.where(evid_one == 1, RATE * DURATION, 0.0), n_subjects),
        "RATE": np.tile(np.where(evid_one == 1, RATE, 0.0), n_subjects),
        "CMT": 1,
        "DV": 0.0,
    })
    for name in ("CL", "V1", "Q2", "V2"):
        frame[name] = np.repeat(TYPICAL[name] * np.exp(rng.normal(0.0, 0.3, n_subjects)), per)
    return frame


def reference(p: dict[str, float]) -> np.ndarray:
    """Plasma ketamine (ng/mL) of one subject at HOURS by solve_ivp, piecewise between dose boundaries."""
    v1 = p["V1"]
    k10, k12, k21 = p["CL"] / v1, p["Q2"] / v1, p["Q2"] / p["V2"]
    k13, k31 = TYPICAL["Q3"] / v1, TYPICAL["Q3"] / TYPICAL["V3"]
    k = np.array([[-(k10 + k12 + k13), k21, k31], [k12, -k21, 0.0], [k13, 0.0, -k31]])
    bounds = sorted({0.0, HOURS[-1], *COURSE_STARTS, *(s + DURATION for s in COURSE_STARTS)})
    a = np.zeros(3)
    out = np.empty(len(HOURS))
    for lo, hi in itertools.pairwise(bounds):
        u = np.array([RATE if any(s <= lo < s + DURATION for s in COURSE_STARTS) else 0.0, 0.0, 0.0])
        last = hi == bounds[-1]
        mask = (lo <= HOURS) & ((hi >= HOURS) if last else (hi > HOURS))
        sol = solve_ivp(lambda t, x, u=u: k @ x + u, (lo, hi), a, method="LSODA", rtol=1e-8, atol=1e-12,
                        t_eval=np.append(HOURS[mask], hi) if not last else HOURS[mask], jac=lambda t, x: k)
        out[mask] = 1000 * sol.y[0, : mask.sum()] / v1
        a = sol.y[:, -1]
    return out


def _timed(repeats: int, func):
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = func()
        times.append(time.perf_counter() - t0)
    return times, result


def _frame_bytes(frame: pd.DataFrame) -> int:
    return int(frame.memory_usage(index=True, deep=True).sum())


def in_process() -> None:
    data = dataset(N_SUBJECTS)
    first_times, _ = _timed(1, lambda: simulate_dataset(data, MODEL))  # first call: lazy imports, page faults
    exact_times, out = _timed(7, lambda: simulate_dataset(data, MODEL))
    firsts = data.groupby("ID").head(1)
    refs = [reference(firsts.iloc[i].to_dict()) for i in range(N_REFERENCE)]
    ref_times, _ = _timed(3, lambda: [reference(firsts.iloc[i].to_dict()) for i in range(N_REFERENCE)])
    tracemalloc.start()
    simulate_dataset(data, MODEL)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    obs = out[out["EVID"] == 0]
    ipred = obs["IPRED"].to_numpy().reshape(N_SUBJECTS, len(HOURS))[:N_REFERENCE]
    ref = np.stack(refs)
    diff = np.abs(ipred - ref).max(axis=1) / np.abs(ref).max(axis=1)
    per_exact = min(exact_times) / N_SUBJECTS
    per_ref = min(ref_times) / N_REFERENCE
    size = _frame_bytes(data) + _frame_bytes(out)
    print(f"dataset: {len(data):,} rows, {N_SUBJECTS} subjects (ADVAN11, parameters as columns)")
    print(f"simulate_dataset end to end: min {min(exact_times):.3f} s, median {np.median(exact_times):.3f} s "
          f"({per_exact * 1e3:.2f} ms/subject); first call in the process {first_times[0]:.3f} s")
    print(f"solve_ivp LSODA: {N_REFERENCE} subjects {min(ref_times):.2f} s ({per_ref * 1e3:.0f} ms/subject)")
    print(f"speed ratio per subject, end to end: {per_ref / per_exact:.0f} (target >= 150); with the median "
          f"{per_ref / (np.median(exact_times) / N_SUBJECTS):.0f}, the first call "
          f"{per_ref / (first_times[0] / N_SUBJECTS):.0f}")
    print(f"largest difference / series peak: {diff.max():.1e}")
    print(f"peak memory of the call: {peak / 1e6:.0f} MB; input + output {size / 1e6:.0f} MB; "
          f"ratio {peak / size:.2f} (target <= 3)")


def through_cli(rows: int) -> None:
    per = len(HOURS) + len(COURSE_STARTS)
    n_subjects = max(1, rows // per)
    with tempfile.TemporaryDirectory() as tmp:
        data_path, model_path, out_path = Path(tmp, "data.csv"), Path(tmp, "model.yaml"), Path(tmp, "out.csv")
        model_path.write_text("\n".join(f"{k}: {v}" for k, v in MODEL.items()) + "\n")
        with data_path.open("w") as fh:
            for start in range(0, n_subjects, 100):
                part = dataset(min(100, n_subjects - start), seed=start)
                part["ID"] += start
                part.to_csv(fh, index=False, header=start == 0)
        size = data_path.stat().st_size
        cmd = [sys.executable, "-m", "ketaplan.cli", "simulate-dataset", str(data_path), "--model", str(model_path),
               "--out", str(out_path)]
        samples: list[int] = []
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        watcher = threading.Thread(target=_watch, args=(proc.pid, samples), daemon=True)
        watcher.start()
        _, err = proc.communicate()
        elapsed = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"simulate-dataset failed: {err.decode()}")
        rss = np.array(samples or [0]) / 1e6
        print(f"CLI: {n_subjects * per:,} records ({size / 1e9:.2f} GB CSV) in {elapsed:.1f} s; resident memory "
              f"max {rss.max():.0f} MB, median {np.median(rss):.0f} MB over {len(rss)} samples; output "
              f"{out_path.stat().st_size / 1e9:.2f} GB")
        quarter = max(1, len(rss) // 4)
        print(f"memory in the first and last quarter of the run: {rss[:quarter].max():.0f} MB and "
              f"{rss[-quarter:].max():.0f} MB (flat when these agree)")


def _watch(pid: int, samples: list[int]) -> None:
    try:
        proc = psutil.Process(pid)
        while proc.is_running():
            samples.append(proc.memory_info().rss)
            time.sleep(0.2)
    except psutil.Error:
        return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=0, help="also run the CLI on a CSV of this many records")
    args = parser.parse_args()
    in_process()
    if args.rows:
        through_cli(args.rows)


if __name__ == "__main__":
    main()
