"""Engine benchmark: ketaplan's exact solver vs scipy solve_ivp, measured in the same run.

1,000 virtual patients (30 % log-normal variability on CL, V1, Q2, V2), racemic ketamine in
3 compartments + a norketamine compartment + an effect compartment; four courses of 20 mg/h
for 5 days, 11 weeks apart; hourly output for one year (8,761 time points).

ketaplan solves all 1,000; solve_ivp (LSODA, rtol 1e-8, atol 1e-12, integrated piecewise between
dose boundaries) solves the first 10. Printed: per-subject speed ratio, largest differences, and
peak memory of the ketaplan call (tracemalloc) against the size of its output arrays.
Targets (issue 2): ratio >= 300, difference <= 1e-6 relative, peak <= 2 x output.

Run: python benchmarks/bench_engine.py
"""

from __future__ import annotations

import itertools
import time
import tracemalloc

import numpy as np
from scipy.integrate import solve_ivp

from ketaplan.engine.exact import solve
from ketaplan.engine.schedule import DoseModifiers, DoseRecords, compile_schedule
from ketaplan.engine.system import EffectLink, LinearStructure, Transfer

N_SUBJECTS = 1000
N_REFERENCE = 10
HOURS = np.arange(0.0, 8761.0)

# Typical values, 70 kg: ketamine from the Domino TCI set (derived macro-constants, reference §2.1),
# norketamine 1-compartment from Otto 2021 (central V and CL of its 2-compartment S-NK model),
# effect site ke0 0.238 /min (Navarrete 2024). Benchmark inputs only, not a library model.
TYPICAL = {"CL": 115.9, "V1": 4.41, "Q2": 156.7, "V2": 10.57, "Q3": 156.2, "V3": 178.2,
           "CLM": 57.7, "VM": 98.6, "KE0": 0.238 * 60}
FM_MW = 223.70 / 237.73  # all eliminated ketamine forms norketamine (assumption), mass converted


def structure() -> LinearStructure:
    return LinearStructure(
        ("central", "p1", "p2", "norketamine", "effect"),
        (Transfer("central", "norketamine", "k10", "y"), Transfer("central", "p1", "k12"),
         Transfer("p1", "central", "k21"), Transfer("central", "p2", "k13"), Transfer("p2", "central", "k31"),
         Transfer("norketamine", None, "km")),
        (EffectLink("effect", "central", "ke0", "V1"),))


def parameters(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    p = {k: np.full(n, v) for k, v in TYPICAL.items()}
    for name in ("CL", "V1", "Q2", "V2"):
        p[name] = p[name] * np.exp(rng.normal(0.0, 0.3, n))
    return {"k10": p["CL"] / p["V1"], "k12": p["Q2"] / p["V1"], "k21": p["Q2"] / p["V2"], "k13": p["Q3"] / p["V1"],
            "k31": p["Q3"] / p["V3"], "km": p["CLM"] / p["VM"], "y": np.full(n, FM_MW), "ke0": p["KE0"],
            "V1": p["V1"], "VM": p["VM"]}


def readout(p: dict[str, np.ndarray]) -> np.ndarray:
    n = len(p["V1"])
    r = np.zeros((n, 3, 5))
    r[:, 0, 0] = 1000 / p["V1"]
    r[:, 1, 3] = 1000 / p["VM"]
    r[:, 2, 4] = 1000.0
    return r


def reference(k: np.ndarray, r: np.ndarray) -> np.ndarray:
    """solve_ivp piecewise between dose boundaries, hourly output."""
    rate = 20.0
    starts = [c * 11 * 168.0 for c in range(4)]
    bounds = sorted({0.0, HOURS[-1], *starts, *(s + 120.0 for s in starts)})
    a = np.zeros(5)
    out = np.empty((len(HOURS), 3))
    for lo, hi in itertools.pairwise(bounds):
        infusing = any(s <= lo < s + 120.0 for s in starts)
        u = np.zeros(5)
        u[0] = rate if infusing else 0.0
        last = hi == bounds[-1]
        mask = (lo <= HOURS) & ((hi >= HOURS) if last else (hi > HOURS))
        sol = solve_ivp(lambda t, x, u=u: k @ x + u, (lo, hi), a, method="LSODA", rtol=1e-8, atol=1e-12,
                        t_eval=np.append(HOURS[mask], hi) if not last else HOURS[mask], jac=lambda t, x: k)
        values = sol.y.T
        out[mask] = values[: mask.sum()] @ r.T
        a = sol.y[:, -1]
    return out


def _best_of(repeats: int, func):
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = func()
        times.append(time.perf_counter() - t0)
    return times, result


def main() -> None:
    rng = np.random.default_rng(2026)
    st = structure()
    p = parameters(rng, N_SUBJECTS)
    k = st.rate_matrix(p)
    r = readout(p)
    records = DoseRecords.from_lists([0.0], [2400.0], [0], rate=[20.0], ii=[11 * 168.0], addl=[3])
    output_bytes = N_SUBJECTS * len(HOURS) * 3 * 8

    def ketaplan_run():
        sched = compile_schedule(records, DoseModifiers.neutral(N_SUBJECTS, 1), st.n_states)
        return solve(k, sched, HOURS, r)

    exact_times, exact = _best_of(3, ketaplan_run)
    ref_times, ref = _best_of(3, lambda: np.stack([reference(k[i], r[i]) for i in range(N_REFERENCE)]))
    tracemalloc.start()
    ketaplan_run()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    per_exact = min(exact_times) / N_SUBJECTS
    per_ref = min(ref_times) / N_REFERENCE
    diff = np.abs(exact[:N_REFERENCE] - ref)
    peak_norm = diff.max(axis=1) / np.abs(ref).max(axis=1)
    significant = np.abs(ref) > 1e-3 * np.abs(ref).max(axis=1, keepdims=True)
    pointwise = (diff[significant] / np.abs(ref[significant])).max()
    print(f"ketaplan: {N_SUBJECTS} subjects, best of 3: {min(exact_times):.3f} s ({per_exact * 1e3:.3f} ms/subject); "
          f"first call {exact_times[0]:.3f} s (includes the OS faulting in {output_bytes / 1e6:.0f} MB of new output)")
    print(f"solve_ivp LSODA: {N_REFERENCE} subjects, best of 3: {min(ref_times):.3f} s "
          f"({per_ref * 1e3:.1f} ms/subject)")
    print(f"speed ratio per subject: {per_ref / per_exact:.0f} (target >= 300); "
          f"first call: {per_ref / (exact_times[0] / N_SUBJECTS):.0f}")
    print(f"largest difference / series peak: {peak_norm.max():.2e}; pointwise relative where above 0.1 % of "
          f"peak: {pointwise:.2e} (target <= 1e-6)")
    print(f"peak memory of the ketaplan call: {peak / 1e6:.0f} MB; output arrays {output_bytes / 1e6:.0f} MB; "
          f"ratio {peak / output_bytes:.2f} (target <= 2)")


if __name__ == "__main__":
    main()
