"""Command-line start-up benchmark: the real ``ketaplan`` console script, run as a user runs it.

Each command is run ``--runs`` times in a fresh process (subprocess, output discarded) and timed from
start to exit; the minimum and the median are printed beside the target. The baseline, measured in the
same run, is a bare ``python -c pass``: the interpreter's own start-up, which no command can beat.
Targets (minimum over the runs, on the 2-core development machine): ``--help`` <= 0.3 s, ``pump`` <= 0.8 s,
one-course ``simulate`` <= 1.5 s.

Run: python benchmarks/bench_cli.py [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = (
    ("--help", ["--help"], 0.3),
    ("pump", ["pump", "20 mg/h IV for 5 d", "--concentration", "10 mg/mL"], 0.8),
    ("simulate", ["simulate", "20 mg/h IV for 5 d", "--weight", "80"], 1.5),
)


def ketaplan_script() -> str:
    """The installed ``ketaplan`` script next to this interpreter (or on PATH)."""
    beside = Path(sys.executable).with_name("ketaplan")
    found = str(beside) if beside.exists() else shutil.which("ketaplan")
    if found is None:
        sys.exit("bench_cli: the ketaplan script is not installed (pip install -e .)")
    return found


def wall_times(argv: list[str], runs: int) -> list[float]:
    """Seconds from start to exit of ``argv``, ``runs`` times; fails loudly if the command fails."""
    env = {**os.environ, "COLUMNS": "80"}
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, check=False)
        times.append(time.perf_counter() - t0)
        if done.returncode != 0:
            sys.exit(f"bench_cli: {' '.join(argv)} failed: {done.stderr.decode()[-500:]}")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="runs per command (default 7)")
    runs = parser.parse_args().runs
    script = ketaplan_script()
    base = wall_times([sys.executable, "-c", "pass"], runs)
    print(f"baseline, python -c pass: min {min(base):.3f} s, median {statistics.median(base):.3f} s")
    print(f"{'command':<10} {'min s':>7} {'median s':>9} {'target s':>9} {'min / baseline':>15}")
    for name, args, target in COMMANDS:
        t = wall_times([script, *args], runs)
        verdict = "ok" if min(t) <= target else "OVER"
        print(f"{name:<10} {min(t):>7.3f} {statistics.median(t):>9.3f} {target:>9.1f} {min(t) / min(base):>15.1f}"
              f"  {verdict}")


if __name__ == "__main__":
    main()
