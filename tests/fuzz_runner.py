"""Run the ``ketaplan`` command line many times, each run in its own process under resource limits, fast.

A *zygote* process imports ketaplan and its libraries once; for every run it forks a child, which sets its
limits (CPU seconds, address space), changes to the run's folder and calls the command line's entry point as
the installed script does, with stdout and stderr in files. The parent waits (killing the child after a wall
clock timeout) and reports the exit code, both outputs, the time and the child's peak resident memory. A fork
costs milliseconds where a fresh interpreter costs a second of imports, so a fuzz test fits many examples into
its budget while each run is still a separate process that cannot hurt the next.

The environment keeps address-space reservations honest: one BLAS thread, two glibc arenas and the system
allocator for pyarrow (its own pool reserves about 1 GB of address space it never uses).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "2",
       "ARROW_DEFAULT_MEMORY_POOL": "system", "COLUMNS": "80", "TERM": "dumb", "NO_COLOR": "1"}
CPU_SECONDS = 30
ADDRESS_SPACE = 2 * 1024**3
WALL_SECONDS = 90
PRELOAD = ("ketaplan.cli", "ketaplan.planning.plan", "ketaplan.nonmem.files", "ketaplan.nonmem.simulate",
           "ketaplan.population.api", "ketaplan.individualize.api", "ketaplan.planning.pump",
           "ketaplan.planning.next_course", "ketaplan.models.library", "pandas", "scipy.optimize", "scipy.linalg",
           "pyarrow.csv", "pyarrow.parquet")


@dataclass(frozen=True)
class Run:
    """What one command run did."""

    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: str
    seconds: float
    peak_mb: float
    killed: bool


class Zygote:
    """A process with ketaplan imported that forks one limited child per command run."""

    def __init__(self) -> None:
        env = {**os.environ, **ENV}
        self.proc = subprocess.Popen([sys.executable, "-c", _SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, env=env, bufsize=1)
        ready = self.proc.stdout.readline()
        if ready.strip() != "ready":
            raise RuntimeError(f"the fuzz zygote did not start: {ready!r}")

    def run(self, args: list[str], cwd: Path, cpu: int = CPU_SECONDS, address_space: int = ADDRESS_SPACE,
            wall: float = WALL_SECONDS) -> Run:
        request = {"args": [str(a) for a in args], "cwd": str(cwd), "cpu": cpu, "as": address_space, "wall": wall}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        answer = json.loads(self.proc.stdout.readline())
        return Run(tuple(request["args"]), answer["code"], Path(answer["out"]).read_text(errors="replace"),
                   Path(answer["err"]).read_text(errors="replace"), answer["seconds"], answer["peak_mb"],
                   answer["killed"])

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


_SERVER = r'''
import importlib, json, os, resource, signal, sys, time
for name in PRELOAD:
    importlib.import_module(name)
print("ready", flush=True)
for line in sys.stdin:
    req = json.loads(line)
    out, err = os.path.join(req["cwd"], ".fuzz-stdout"), os.path.join(req["cwd"], ".fuzz-stderr")
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        try:
            resource.setrlimit(resource.RLIMIT_CPU, (req["cpu"], req["cpu"] + 5))
            resource.setrlimit(resource.RLIMIT_AS, (req["as"], req["as"]))
            os.chdir(req["cwd"])
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
            os.dup2(os.open(out, flags), 1); os.dup2(os.open(err, flags), 2)
            sys.stdout = open(1, "w", closefd=False); sys.stderr = open(2, "w", closefd=False)
            sys.argv = ["ketaplan", *req["args"]]
            from ketaplan.cli import main
            code = 0
            try:
                main()
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            sys.stdout.flush(); sys.stderr.flush()
            os._exit(code)
        except BaseException:
            import traceback
            traceback.print_exc()
            sys.stderr.flush()
            os._exit(99)
    killed = False
    deadline = start + req["wall"]
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            break
        if time.perf_counter() > deadline:
            os.kill(pid, signal.SIGKILL)
            done, status, usage = os.wait4(pid, 0)
            killed = True
            break
        time.sleep(0.005)
    code = os.waitstatus_to_exitcode(status)
    print(json.dumps({"code": code, "out": out, "err": err, "seconds": time.perf_counter() - start,
                      "peak_mb": usage.ru_maxrss / 1024, "killed": killed}), flush=True)
'''.replace("PRELOAD", repr(PRELOAD), 1)
