"""Pharmacodynamic layers evaluated on effect-site concentrations.

Effect sites are linear states of the engine (exact); the concentration-effect relations here are
algebraic, so evaluating them on the exact effect-site time course is exact too.

* sigmoid Emax: E = E0 + Emax C^g / (EC50^g + C^g)
* linear additive: E = sum_i slope_i C_i
* long-lasting relief (Dahan 2011 form): relief in a responder R = Emax Ce^g / (C50^g + Ce^g);
  expected relief p_response R; pain = baseline (1 - R) for a responder.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ketaplan.models.spec import LinearAdditive, LongLastingRelief, ModelSpec, SigmoidEmax


def hill(c: np.ndarray, c50: np.ndarray | float, gamma: np.ndarray | float) -> np.ndarray:
    """C^g / (C50^g + C^g), 0 where C <= 0."""
    out = np.maximum(np.asarray(c, dtype=float), 0.0)
    if np.all(np.asarray(gamma) == 1.0):  # C / (C50 + C), in place: this runs over whole population grids
        denominator = out + c50
        if denominator.shape != out.shape:  # C50 varies along an axis C does not have
            return out / denominator
        out /= denominator
        return out
    powered = np.divide(out, c50) ** gamma
    return powered / (1.0 + powered)


def _value(params: Mapping[str, np.ndarray], ref: float | str, n: int) -> np.ndarray:
    """Per-subject values, shaped (S, 1) to broadcast over time."""
    v = params[ref] if isinstance(ref, str) else np.full(n, float(ref))
    return np.asarray(v, dtype=float).reshape(-1, 1)


def evaluate_layers(spec: ModelSpec, params: Mapping[str, np.ndarray], observed: Mapping[str, np.ndarray],
                    baseline_pain: np.ndarray | float | None = None) -> dict[str, np.ndarray]:
    """Outputs of every PD layer of ``spec``, each (S, T).

    ``observed`` maps observable names to concentrations (S, T) in ng/mL. For a long-lasting relief
    layer ``name`` the outputs are ``name`` (relief in a responder, 0-1), ``name_expected`` (times the
    response probability) and, with ``baseline_pain`` (NRS 0-10), ``pain_nrs`` (responder) and
    ``pain_nrs_expected``.
    """
    out: dict[str, np.ndarray] = {}
    for layer in spec.pd:
        if isinstance(layer, SigmoidEmax):
            c = observed[layer.input]
            n = c.shape[0]
            out[layer.name] = layer.e0 + _value(params, layer.emax, n) * hill(c, _value(params, layer.ec50, n),
                                                                              _value(params, layer.gamma, n))
        elif isinstance(layer, LinearAdditive):
            first = observed[layer.terms[0][0]]
            total = np.zeros_like(first)
            for name, slope in layer.terms:
                total = total + _value(params, slope, first.shape[0]) * observed[name]
            out[layer.name] = total
        elif isinstance(layer, LongLastingRelief):
            ce = observed[layer.input]
            n = ce.shape[0]
            relief = _value(params, layer.emax, n) * hill(ce, _value(params, layer.c50, n),
                                                          _value(params, layer.gamma, n))
            out[layer.name] = relief
            out[f"{layer.name}_expected"] = _value(params, layer.p_response, n) * relief
            if baseline_pain is not None:
                base = np.asarray(baseline_pain, dtype=float).reshape(-1, 1)
                out["pain_nrs"] = base * (1.0 - relief)
                out["pain_nrs_expected"] = base * (1.0 - out[f"{layer.name}_expected"])
    return out
