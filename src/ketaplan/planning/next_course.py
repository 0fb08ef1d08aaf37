"""When this patient's relief will wear off, and what to give next: from an individual fit.

* Next course due: the time after the last course when predicted relief falls below the threshold
  (pain back above baseline x (1 - threshold)), with its 90 % interval over the posterior.
* Rate for a target steady-state level: rate = target x individual clearance, with the interval of
  the level that rate gives.
* Rate and duration for a target relief duration: the smallest dose per course (then the shortest
  course) whose relief, started when the next course is due, lasts at least the target in half or more
  of the posterior draws, whose individual steady-state level stays below the psychotomimetic
  threshold and which passes the dose checks without warnings.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ketaplan.engine.build import build_from_parameters
from ketaplan.errors import InputError
from ketaplan.individualize.estimate import Estimate
from ketaplan.individualize.problem import OCCASION_MARK, SpecModel, occasion_name, relief_of
from ketaplan.models.thresholds import thresholds_for
from ketaplan.population.metrics import relief_days
from ketaplan.population.variability import eta_parameters, omega_matrix
from ketaplan.regimen.courses import administrations, group_courses
from ketaplan.regimen.events import Regimen
from ketaplan.regimen.safety import Finding, check_plan, check_regimen, rules

DRAWS = 400
HORIZON_WEEKS = 52


@dataclass
class NextCourse:
    """The forecast relief after the last course and when the next course is due (hours from time 0)."""

    last_course_end_h: float
    relief_days_map: float
    relief_days: tuple[float, float, float]  # p5, p50, p95; inf = beyond the horizon
    due_h: tuple[float, float, float]
    due_map_h: float
    threshold: float
    never_reaches: float  # posterior probability that relief never reaches the threshold after the last course


def forecast_grid(start: float, weeks: float = HORIZON_WEEKS) -> np.ndarray:
    """Times after ``start``: dense over the first two days, then every 6 hours."""
    dense = start + np.concatenate([[0.0], np.geomspace(1 / 60, 48.0, 40)])
    return np.unique(np.concatenate([dense, np.arange(start, start + weeks * 168.0 + 1e-9, 6.0)]))


def next_course(est: Estimate, model: SpecModel, threshold: float = 0.3, draws: int = DRAWS,
                seed: int = 1) -> NextCourse:
    """Forecast of the date the next course is due, from the MAP and posterior draws."""
    if model.relief is None:
        raise InputError("model", model.spec.id, "has no relief layer, so no relief duration can be forecast")
    if not 0 < threshold < 1:
        raise InputError("--relief-threshold", threshold, "a fraction between 0 and 1")
    courses = group_courses(administrations(model.regimen.resolve(float(model.covariates.weight[0]))))
    end = courses[-1].end
    times = forecast_grid(end)
    etas = np.vstack([est.eta[None, :], est.draws(draws, seed)])
    relief = model.curves(etas, times, ["relief"])["relief"]
    days, censored = relief_days(times, relief, end, times[-1], threshold)
    days = np.where(censored, np.inf, days)
    never = relief[:, :].max(axis=1) < threshold
    q = np.quantile(days[1:], [0.05, 0.5, 0.95], method="inverted_cdf")
    due = tuple(float(end + 24 * d) for d in q)
    return NextCourse(end, float(days[0]), tuple(float(x) for x in q), due, float(end + 24 * days[0]), threshold,
                      float(np.mean(never[1:])))


def new_course_effects(model: SpecModel, etas: np.ndarray, seed: int = 1) -> tuple[tuple[str, ...], np.ndarray]:
    """Names and random effects of a model for one new course: the patient's own effects, plus (for models with
    course-to-course variability) a fresh course effect drawn from its prior for every row but the first (the
    MAP row keeps the typical course)."""
    keep = [j for j, n in enumerate(model.eta_names) if OCCASION_MARK not in n]
    names, values = tuple(model.eta_names[j] for j in keep), etas[:, keep]
    occasional = eta_parameters(model.spec, occasion=True)
    if occasional:
        kappa = np.random.default_rng(seed).multivariate_normal(
            np.zeros(len(occasional)), omega_matrix(model.spec, occasion=True), size=len(etas), method="eigh")
        kappa[0] = 0.0
        names += tuple(occasion_name(p, 1) for p in occasional)
        values = np.hstack([values, kappa])
    return names, values


def _unit_levels(model: SpecModel, etas: np.ndarray, seed: int = 1) -> np.ndarray:
    """Plasma parent level (ng/mL) at steady state of 1 mg/h IV in a new course, for each parameter set
    (exact: -K^-1 r)."""
    names, values = new_course_effects(model, etas, seed)
    params = SpecModel(model.spec, model.regimen, model.covariates, names).parameters(values, course=1)
    built = build_from_parameters(model.spec, params, len(etas))
    k = built.rate_matrix()
    r = np.zeros(k.shape[:2])
    state = built.route_parts["iv"][0][0]
    r[:, state] = 1.0
    amounts = np.linalg.solve(k, -r[:, :, None])[:, :, 0]
    readout = built.readout([model.parent])[:, 0, :]
    return np.einsum("sn,sn->s", readout, amounts)


@dataclass
class RateForLevel:
    target_ng_ml: float
    rate_mg_h: float
    rate_interval_mg_h: tuple[float, float]
    level_interval_ng_ml: tuple[float, float]  # 90 % interval of the level at rate_mg_h
    findings: list[Finding] = field(default_factory=list)


def rate_for_level(est: Estimate, model: SpecModel, target_ng_ml: float, hours: float = 120.0, draws: int = DRAWS,
                   seed: int = 1) -> RateForLevel:
    """Infusion rate (mg/h) for a target steady-state plasma level of the parent drug."""
    if not np.isfinite(target_ng_ml) or target_ng_ml <= 0:
        raise InputError("--target-level", target_ng_ml, "a plasma level above 0 ng/mL")
    etas = np.vstack([est.eta[None, :], est.draws(draws, seed)])
    unit = _unit_levels(model, etas, seed)
    rates = target_ng_ml / unit
    rate = float(np.round(rates[0], 1))
    lo, hi = np.quantile(rates[1:], [0.05, 0.95])
    levels = rate * unit[1:]
    lv_lo, lv_hi = np.quantile(levels, [0.05, 0.95])
    weight = float(model.covariates.weight[0])
    regimen = Regimen.infusion(f"{rate} mg/h", duration=f"{hours} h", drug=model.regimen.drug)
    findings = check_regimen(regimen, weight, force=True)
    return RateForLevel(target_ng_ml, rate, (float(lo), float(hi)), (float(lv_lo), float(lv_hi)), findings)


@dataclass
class ReliefPlan:
    """Candidates for a target relief duration (one row each) and the chosen one (or None)."""

    target_days: float
    start_h: float
    table: pd.DataFrame
    chosen: pd.Series | None


def plan_for_relief(est: Estimate, model: SpecModel, target_days: float, start_h: float, threshold: float = 0.3,
                    rates: np.ndarray | None = None, durations_d: np.ndarray | None = None, draws: int = 200,
                    seed: int = 1) -> ReliefPlan:
    """Rate and duration of a course starting at ``start_h`` whose relief lasts ``target_days``."""
    if not np.isfinite(target_days) or target_days <= 0:
        raise InputError("--target-relief", target_days, "a duration above 0 days")
    drug = model.regimen.drug
    lo_rate, hi_rate = rules()[drug]["long_infusion_range_mg_h"]["value"]
    rates = np.arange(lo_rate, hi_rate + 1e-9, 2.5) if rates is None else np.asarray(rates, dtype=float)
    durations_d = np.arange(1, 8, 1.0) if durations_d is None else np.asarray(durations_d, dtype=float)
    weight = float(model.covariates.weight[0])
    etas = np.vstack([est.eta[None, :], est.draws(draws, seed)])
    unit_level = _unit_levels(model, etas[:1])[0]
    psycho = thresholds_for(drug)["psychotomimetic"].value
    layer = model.relief
    params = model.parameters(etas)
    history = model.regimen.resolve(weight)
    course_names, course_etas = new_course_effects(model, etas, seed)
    rows = []
    for days in durations_d:
        hours = days * 24.0
        end = start_h + hours
        times = np.unique(np.concatenate([forecast_grid(end), [start_h]]))
        hist = model.curves(etas, times, [layer.input])[layer.input]
        unit = SpecModel(model.spec, Regimen.infusion("1 mg/h", duration=f"{hours} h", at=f"{start_h} h", drug=drug),
                         model.covariates, course_names).curves(course_etas, times, [layer.input])[layer.input]
        for rate in rates:
            relief = relief_of(layer, params, hist + rate * unit)
            d, censored = relief_days(times, relief, end, times[-1], threshold)
            d = np.where(censored, np.inf, d)
            candidate = Regimen(tuple(history.events) + Regimen.infusion(f"{rate} mg/h", duration=f"{hours} h",
                                                                         at=f"{start_h} h", drug=drug).events,
                                drug=drug)
            warnings = [f.code for f in check_plan(candidate, weight, force=True)
                        if f.severity in ("warning", "refused")]
            rows.append({"rate_mg_h": float(rate), "duration_d": float(days), "dose_mg": float(rate * hours),
                         "relief_days_map": float(d[0]), "relief_days_p50": float(np.median(d[1:])),
                         "probability_target": float(np.mean(d[1:] >= target_days)),
                         "css_ng_ml": float(rate * unit_level), "dose_warnings": "; ".join(dict.fromkeys(warnings))})
    table = pd.DataFrame(rows)
    table["feasible"] = ((table["probability_target"] >= 0.5) & (table["css_ng_ml"] < psycho)
                         & (table["dose_warnings"] == ""))
    table = table.sort_values(["feasible", "dose_mg", "duration_d"], ascending=[False, True, True],
                              ignore_index=True)
    chosen = table.iloc[0] if bool(table["feasible"].iloc[0]) else None
    return ReliefPlan(float(target_days), float(start_h), table, chosen)


@dataclass
class FollowUp:
    """Everything the clinic needs after a fit: forecast, next course, recommendations and the curves."""

    next: NextCourse | None
    rate: RateForLevel | None
    plan: ReliefPlan | None
    curves: pd.DataFrame  # time, output, map, p5, p50, p95
    notes: list[str] = field(default_factory=list)


def follow_up(est: Estimate, model: SpecModel, threshold: float = 0.3, target_level: float | None = None,
              target_relief_days: float | None = None, draws: int = DRAWS, seed: int = 1) -> FollowUp:
    """Forecast and recommendations for a fitted patient (library models)."""
    from ketaplan.individualize.forecast import prediction_table
    from ketaplan.individualize.observations import PAIN

    notes: list[str] = []
    nc = next_course(est, model, threshold, draws, seed) if model.relief is not None else None
    rate = rate_for_level(est, model, target_level, draws=draws, seed=seed) if target_level else None
    plan = None
    if target_relief_days:
        if nc is None:
            raise InputError("--target-relief", target_relief_days, "needs a model with a relief layer")
        window = rules()["liver"]["repeat_window_days"]["value"] * 24.0
        start = nc.due_h[1] if np.isfinite(nc.due_h[1]) else nc.last_course_end_h + window
        if start < nc.last_course_end_h + window:
            notes.append(f"The next course is planned {window / 24:g} days after the last one ended (the "
                         "liver-injury window for repeated long infusions, Noppers 2011), later than relief is "
                         "forecast to wear off.")
            start = nc.last_course_end_h + window
        plan = plan_for_relief(est, model, target_relief_days, start, threshold, seed=seed)
    names = [n for n in (model.parent, model.metabolite) if n]
    if model.relief is not None:
        names.append("relief")
        if model.relief.baseline is not None:
            names.append(PAIN)
    end = nc.due_h[2] if nc is not None and np.isfinite(nc.due_h[2]) else None
    courses = group_courses(administrations(model.regimen.resolve(float(model.covariates.weight[0]))))
    horizon = max(end or 0.0, courses[-1].end + 16 * 168.0, float(est.problem.observations.time.max()) + 168.0)
    times = _plot_grid(courses, horizon)
    curves = prediction_table(est, model, times, names, draws=min(draws, 300), seed=seed)
    return FollowUp(nc, rate, plan, curves, notes)


def _plot_grid(courses, horizon: float, max_points: int = 4000) -> np.ndarray:
    pieces = [np.arange(0.0, horizon + 1e-9, max(6.0, horizon / max_points))]
    for c in courses:
        pieces.append(np.linspace(c.start, c.end + 12.0, 120))
    grid = np.unique(np.concatenate(pieces))
    return grid[grid <= horizon]
