"""Learning benchmark: ``clinic learn`` on 300 patients with 3 years of records each (target <= 120 s here).

A clinic of 300 simulated patients (truth: C50 0.4 ng/mL, relief half-life 20 days, 70 % responders; about 7
courses of 20 mg/h for 5 days, one level per course and weekly diary scores with a third missing, over 3
years) is written into a SQLite record (not timed). Then, timed: the learning run exactly as ``ketaplan clinic
learn`` does it (reading the record, binding, the relief-site table, the search with the covariance step, the
5-fold held-out check of next-course timing, saving the version). Reported with its stages, the learned
values against the truth, and, as a yardstick of this machine's speed on the day, the time of one engine-free
reference workload (a 300 x 300 matrix inverse repeated 200 times) in the same process.

Run: python benchmarks/bench_learn.py [N_PATIENTS]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ketaplan.course.db import make_engine, transaction, upgrade
from ketaplan.course.learn import LearnProgress, learn_relief_model
from ketaplan.course.model_versions import result_of
from ketaplan.course.simulated_record import write_cohort
from ketaplan.estimation.simulated_cohort import Truth, simulate_cohort
from ketaplan.regimen.text import parse_regimen
from ketaplan.simulation.run import model_for

TARGET_S = 120.0


def yardstick() -> float:
    rng = np.random.default_rng(0)
    m = rng.normal(size=(300, 300)) + 300 * np.eye(300)
    t = time.perf_counter()
    for _ in range(200):
        np.linalg.inv(m)
    return time.perf_counter() - t


def main(n: int = 300) -> None:
    spec = model_for(parse_regimen("20 mg/h IV for 5 d"))
    t = time.perf_counter()
    cohort, responders = simulate_cohort(spec, Truth({"RELIEF_C50": 0.4, "RELIEF_HALF_LIFE": 20.0}, 0.7), n, seed=3)
    print(f"simulated {n} patients in {time.perf_counter() - t:.0f} s (not timed)", flush=True)
    folder = Path(tempfile.mkdtemp())
    engine = make_engine(str(folder / "clinic.db"))
    upgrade(engine)
    t = time.perf_counter()
    with transaction(engine) as s:
        entries = write_cohort(s, cohort)
    print(f"wrote {entries} record entries in {time.perf_counter() - t:.0f} s (not timed)", flush=True)
    stages: list[tuple[str, float]] = []
    started = time.perf_counter()

    def stage(text: str) -> None:
        stages.append((text, time.perf_counter() - started))
        print(f"  {time.perf_counter() - started:6.1f} s  {text}", flush=True)

    with transaction(engine) as s:
        v = learn_relief_model(s, "benchmark", "simulated clinic", progress=LearnProgress(stage))
        result = result_of(v)
    total = time.perf_counter() - started
    print(f"clinic learn, {n} patients: {total:.1f} s (target <= {TARGET_S:.0f} s); yardstick {yardstick():.2f} s")
    for row in result["typical"]:
        lo, hi = row.get("learned_90") or (float("nan"), float("nan"))
        released = " (prior set aside: the data conflict with it)" if (row.get("prior_data_conflict") or {}).get(
            "released") else ""
        print(f"  {row['name']:<18} published {row['published']:<8.3g} learned {row['learned']:<8.3g} "
              f"90 % {lo:.3g}-{hi:.3g}{released}")
    t = result["timing"]
    print(f"  responders drawn {responders.mean():.3f}; held-out next-course timing over {t['learned']['gaps']} "
          f"gaps: median error {t['learned']['median_abs_error_weeks']:.1f} weeks (published "
          f"{t['published']['median_abs_error_weeks']:.1f}), inside the 90 % interval "
          f"{100 * t['learned']['coverage_90']:.0f} % (published {100 * t['published']['coverage_90']:.1f} %)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
