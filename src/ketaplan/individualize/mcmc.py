"""A full posterior of one patient's random effects by MCMC (emcee's affine-invariant ensemble sampler).

Walkers start around the MAP (spread by the Laplace covariance); every step evaluates all walkers in
one batched call of the engine. Diagnostics: mean acceptance fraction (0.2-0.5 is healthy), the
integrated autocorrelation time per parameter and the effective sample size; the run warns when it
is shorter than 50 autocorrelation times (emcee's advice for a reliable estimate).
"""

from __future__ import annotations

import numpy as np

from ketaplan.errors import InputError
from ketaplan.individualize.estimate import Estimate


def sample_posterior(est: Estimate, steps: int = 2000, burn: int = 500, walkers: int | None = None,
                     seed: int = 1) -> Estimate:
    """Add MCMC draws and diagnostics to ``est`` (returned); the MAP and Laplace results are kept."""
    import emcee

    problem = est.problem
    k = problem.k
    if steps < 100 or burn < 0 or burn >= steps:
        raise InputError("--mcmc-steps", steps, "at least 100 steps, with burn-in below the number of steps")
    n_walkers = walkers or max(16, 4 * k)
    rng = np.random.default_rng(seed)
    start = rng.multivariate_normal(est.eta, est.covariance, size=n_walkers, method="eigh")

    def log_prob(etas: np.ndarray) -> np.ndarray:
        return -0.5 * problem.objective(etas)

    sampler = emcee.EnsembleSampler(n_walkers, k, log_prob, vectorize=True,
                                    moves=[(emcee.moves.DEMove(), 0.8), (emcee.moves.DESnookerMove(), 0.2)])
    sampler.random_state = np.random.RandomState(seed).get_state()
    sampler.run_mcmc(start, steps, progress=False)
    chain = sampler.get_chain(discard=burn, flat=True)
    tau = sampler.get_autocorr_time(discard=burn, tol=0)
    kept = (steps - burn) * n_walkers
    ess = kept / np.maximum(tau, 1.0)
    acceptance = float(np.mean(sampler.acceptance_fraction))
    warnings = []
    if (steps - burn) < 50 * np.max(tau):
        warnings.append(f"The MCMC chain ({steps - burn} kept steps) is shorter than 50 autocorrelation times "
                        f"(max {np.max(tau):.0f}); run more steps before trusting the intervals.")
    if not 0.15 <= acceptance <= 0.7:
        warnings.append(f"MCMC acceptance fraction {acceptance:.2f} is outside 0.15-0.7; the sampler may be stuck.")
    est.samples = chain
    est.diagnostics = {"walkers": n_walkers, "steps": steps, "burn_in": burn, "acceptance_fraction": acceptance,
                       "autocorrelation_time": dict(zip(problem.eta_names, map(float, tau), strict=True)),
                       "effective_sample_size": dict(zip(problem.eta_names, map(float, ess), strict=True)),
                       "posterior_mean_eta": dict(zip(problem.eta_names, map(float, chain.mean(axis=0)),
                                                      strict=True))}
    est.warnings = [*est.warnings, *warnings]
    return est
