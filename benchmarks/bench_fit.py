"""Fit benchmark: MAP (with its Laplace covariance) for one patient with 20 observations.

The default racemic model (3 compartments + norketamine + effect site + slow relief site, 6 random
effects): 8 ketamine and 4 norketamine levels during and after a 5-day infusion and 8 weekly pain
scores. Target: < 100 ms per fit. Also prints the number of model evaluations (parameter sets
predicted) and, as a baseline measured in the same run, the time of the same MAP when every
objective evaluation solves the ODEs with scipy's solve_ivp (LSODA, rtol 1e-8).

Run: python benchmarks/bench_fit.py
"""

from __future__ import annotations

import time

import numpy as np

from ketaplan.engine.build import Covariates, build_from_parameters
from ketaplan.engine.ode import solve_ode
from ketaplan.engine.schedule import compile_schedule
from ketaplan.individualize.estimate import fit
from ketaplan.individualize.observations import PAIN, Observations
from ketaplan.individualize.problem import Problem, spec_problem
from ketaplan.regimen.text import parse_regimen
from ketaplan.simulation.run import model_for

REGIMEN = parse_regimen("20 mg/h IV for 5 d")


def patient_problem() -> tuple[Problem, object]:
    spec = model_for(REGIMEN)
    times = [1, 4, 12, 24, 72, 119, 121, 126] + [24, 72, 119, 124] + [120 + 168 * w for w in range(1, 9)]
    outputs = ["ketamine"] * 8 + ["norketamine"] * 4 + [PAIN] * 8
    cov = Covariates.of(80.0, 59, "male")
    template = Observations.of(times, outputs, np.ones(len(times)))
    problem, _ = spec_problem(spec, REGIMEN, cov, template)
    rng = np.random.default_rng(7)
    truth = rng.multivariate_normal(np.zeros(problem.k), problem.omega)
    pred = problem.predict(truth[None])[0]
    value = pred * (1 + 0.2 * rng.standard_normal(len(pred)))
    score = template.is_score
    value[score] = np.clip(np.round(pred[score] + rng.standard_normal(score.sum())), 0, 10)
    return spec_problem(spec, REGIMEN, cov, Observations.of(times, outputs, value))


def ode_problem(problem: Problem, model) -> Problem:
    """The same problem, predicting with solve_ivp one parameter set at a time (the baseline)."""
    obs = problem.observations
    times, index = np.unique(obs.time, return_inverse=True)
    names = list(dict.fromkeys(obs.output))
    pk = [n for n in names if n != PAIN] + [model.relief.input]

    def predict(etas: np.ndarray) -> np.ndarray:
        out = np.empty((len(etas), len(obs)))
        for s, eta in enumerate(etas):
            params = model.parameters(eta[None])
            built = build_from_parameters(model.spec, params, 1)
            sched = compile_schedule(model.records, built.modifiers(model.parts), built.structure.n_states)
            values = solve_ode(built.rate_matrix(), sched, times, built.readout(pk), rtol=1e-8, atol=1e-12)[0]
            curves = {n: values[:, i] for i, n in enumerate(pk)}
            from ketaplan.individualize.problem import relief_of

            relief = relief_of(model.relief, params, curves[model.relief.input][None])[0]
            curves[PAIN] = params[model.relief.baseline][0] * (1 - relief)
            out[s] = [curves[o][i] for o, i in zip(obs.output, index, strict=True)]
        return out

    return Problem(problem.eta_names, problem.omega, problem.typical, problem.units, obs, problem.residual, predict)


def main() -> None:
    problem, model = patient_problem()
    fit(problem)  # warm-up (imports, caches)
    runs = []
    for _ in range(10):
        problem.evaluations = 0
        t0 = time.perf_counter()
        est = fit(problem)
        runs.append(time.perf_counter() - t0)
    best, median = min(runs), float(np.median(runs))
    print(f"MAP + Laplace, {len(problem.observations)} observations, {problem.k} random effects: "
          f"median {1000 * median:.1f} ms, best {1000 * best:.1f} ms (target < 100 ms); "
          f"{est.evaluations} model evaluations, {est.iterations} BFGS iterations")
    slow = ode_problem(problem, model)
    t0 = time.perf_counter()
    ref = fit(slow)
    ode_time = time.perf_counter() - t0
    print(f"baseline, the same MAP with solve_ivp per evaluation: {ode_time:.1f} s; ratio {ode_time / median:.0f}; "
          f"largest eta difference {np.max(np.abs(ref.eta - est.eta)):.1e}")


if __name__ == "__main__":
    main()
