"""The long fuzz run: many more generated inputs than CI's fixed budget, new random ones each time.

    python benchmarks/fuzz_cli.py [--examples 300] [--only simulate,dataset] [--seed N]

Every strategy of ``tests/fuzz_inputs.py`` runs ``--examples`` examples through the command line, each in its
own process under 30 s of CPU and 2 GB of address space (``tests/fuzz_runner.py``), and every run is checked
against issue 14's contract (``fuzz_inputs.check_run``). It prints, per strategy, how many runs ended in 0
(done) and 2 (refused), the slowest run, the largest peak memory, and every broken run with its arguments, so
that it can become a regression test. Exit code 1 if any run broke the contract.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from hypothesis import HealthCheck, given, settings
from hypothesis import seed as hypothesis_seed

import fuzz_inputs
from fuzz_runner import Zygote

STRATEGIES = {"simulate": fuzz_inputs.simulate_cases, "dataset": fuzz_inputs.dataset_cases,
              "model": fuzz_inputs.model_cases, "pump": fuzz_inputs.pump_cases,
              "population": fuzz_inputs.population_cases, "search": fuzz_inputs.search_cases,
              "compare": fuzz_inputs.compare_cases, "fit": fuzz_inputs.fit_cases}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=300, help="examples per strategy")
    parser.add_argument("--only", default=",".join(STRATEGIES), help="comma-separated strategies")
    parser.add_argument("--seed", type=int, default=None, help="hypothesis seed (default: random)")
    options = parser.parse_args()
    seed = options.seed if options.seed is not None else random.randrange(2**32)
    print(f"seed {seed}; {options.examples} examples per strategy; 30 s CPU and 2 GB address space per run")
    zygote = Zygote()
    broken = 0
    try:
        for name in options.only.split(","):
            broken += _run_strategy(zygote, name, STRATEGIES[name], options.examples, seed)
    finally:
        zygote.close()
    print("all runs kept the contract" if not broken else f"{broken} runs broke the contract")
    return 1 if broken else 0


class _Recording:
    """The zygote, keeping every run it made (for the statistics, whether or not the contract held)."""

    def __init__(self, zygote: Zygote, runs: list) -> None:
        self.zygote, self.runs = zygote, runs

    def run(self, *args, **kwargs):
        self.runs.append(self.zygote.run(*args, **kwargs))
        return self.runs[-1]


def _run_strategy(zygote: Zygote, name: str, strategy, examples: int, seed: int) -> int:
    stats = {"codes": {}, "slowest": 0.0, "slowest_args": (), "peak": 0.0, "broken": []}
    start = time.perf_counter()

    @settings(max_examples=examples, deadline=None, database=None, derandomize=False,
              suppress_health_check=list(HealthCheck))
    @given(case=strategy())
    def one(case):
        runs = []
        try:
            with fuzz_inputs.checked_run(_Recording(zygote, runs), case):
                pass
        except AssertionError as exc:
            stats["broken"].append(f"{exc}\n  files: {case.files}")
        run = runs[0]
        stats["codes"][run.code] = stats["codes"].get(run.code, 0) + 1
        if run.seconds > stats["slowest"]:
            stats["slowest"], stats["slowest_args"] = run.seconds, run.args
        stats["peak"] = max(stats["peak"], run.peak_mb)

    hypothesis_seed(seed)(one)()
    codes = ", ".join(f"exit {c}: {n}" for c, n in sorted(stats["codes"].items()))
    print(f"{name:>10}: {sum(stats['codes'].values())} runs in {time.perf_counter() - start:.0f} s ({codes}); "
          f"slowest {stats['slowest']:.2f} s ({' '.join(stats['slowest_args'])[:80]}); peak {stats['peak']:.0f} MB")
    for text in stats["broken"]:
        print("  BROKEN " + text.replace("\n", "\n    "))
    return len(stats["broken"])


if __name__ == "__main__":
    sys.exit(main())
