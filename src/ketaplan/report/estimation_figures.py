"""Figures of a population fit: goodness of fit, ETA distributions, the pcVPC and the objective per iteration."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy.stats import norm

from ketaplan.estimation.vpc import VPC
from ketaplan.report.figures import SERIES_COLOURS

POINT = {"s": 14, "alpha": 0.6, "color": SERIES_COLOURS[0], "edgecolors": "none"}
IDENTITY = {"color": "#c62828", "lw": 1.0}
REFERENCE = {"color": "#616161", "lw": 0.8, "ls": "--"}


def gof_figure(table: pd.DataFrame, dv_label: str = "DV") -> plt.Figure:
    """DV against PRED and IPRED (identity lines), CWRES against TIME and PRED (0 and +-2 lines)."""
    obs = table[table["MDV"] == 0]
    fig, axes = plt.subplots(2, 2, figsize=(10, 8.5), constrained_layout=True)
    top = float(np.nanmax(obs[["DV", "PRED", "IPRED"]].to_numpy())) * 1.05
    for ax, column, title in ((axes[0, 0], "PRED", "population"), (axes[0, 1], "IPRED", "individual")):
        ax.scatter(obs[column], obs["DV"], **POINT)
        ax.plot([0, top], [0, top], **IDENTITY, label="identity")
        ax.set_xlim(0, top)
        ax.set_ylim(0, top)
        ax.set_aspect("equal")
        ax.set_xlabel(f"{column} ({title} prediction)")
        ax.set_ylabel(f"observed {dv_label}")
        ax.set_title(f"Observed against {column}", fontsize=11)
        ax.legend(fontsize=8, loc="upper left")
    for ax, column in ((axes[1, 0], "TIME"), (axes[1, 1], "PRED")):
        ax.scatter(obs[column], obs["CWRES"], **POINT)
        ax.axhline(0, **IDENTITY)
        for y in (-2, 2):
            ax.axhline(y, **REFERENCE)
        limit = max(3.5, float(np.nanmax(np.abs(obs["CWRES"]))) * 1.1)
        ax.set_ylim(-limit, limit)
        ax.set_xlabel(column)
        ax.set_ylabel("CWRES")
        ax.set_title(f"CWRES against {column} (dashed: +-2)", fontsize=11)
    return fig


def eta_figure(etas: np.ndarray, omega: np.ndarray) -> plt.Figure:
    """Per ETA: a histogram of the EBEs with the N(0, OMEGA(k,k)) density, and a normal QQ plot."""
    m = etas.shape[1]
    fig, axes = plt.subplots(2, m, figsize=(max(5.0, 4.2 * m), 7.5), constrained_layout=True, squeeze=False)
    for k in range(m):
        values = etas[:, k]
        sd = float(np.sqrt(omega[k, k]))
        ax = axes[0, k]
        ax.hist(values, bins=min(20, max(5, len(values) // 4)), density=True, color=SERIES_COLOURS[0], alpha=0.6,
                edgecolor="white")
        grid = np.linspace(-3.5 * sd, 3.5 * sd, 200)
        ax.plot(grid, norm.pdf(grid, scale=sd), **IDENTITY, label=f"N(0, OMEGA({k + 1},{k + 1}))")
        ax.set_xlabel(f"ETA({k + 1}) (EBE)")
        ax.set_ylabel("density")
        ax.set_title(f"ETA({k + 1}): {len(values)} individuals", fontsize=11)
        ax.legend(fontsize=8)
        ax = axes[1, k]
        ordered = np.sort(values)
        theoretical = norm.ppf((np.arange(1, len(ordered) + 1) - 0.5) / len(ordered))
        ax.scatter(theoretical, ordered, **POINT)
        ax.plot(theoretical, theoretical * sd, **IDENTITY, label="N(0, OMEGA) line")
        ax.set_xlabel("standard normal quantile")
        ax.set_ylabel(f"ETA({k + 1})")
        ax.set_title(f"ETA({k + 1}) normal QQ plot", fontsize=11)
        ax.legend(fontsize=8, loc="upper left")
    return fig


def vpc_figure(vpc: VPC, dv_label: str = "DV") -> plt.Figure:
    """Observed 5th, 50th and 95th percentiles (lines) over the 95 % intervals of the simulated ones (bands),
    observations as points; percentiles drawn at each bin's median time."""
    bins = vpc.bins
    fig, ax = plt.subplots(figsize=(10, 6.5), constrained_layout=True)
    x = bins["time"].to_numpy()
    points = vpc.observations
    ax.scatter(points["TIME"], points["DV"], s=10, color="#616161", alpha=0.45, edgecolors="none",
               label="observations" + (" (prediction-corrected)" if vpc.corrected else ""))
    interval = f"{vpc.interval:g} % interval"
    lines = (("p5", "#1565c0", "--", "observed 5th and 95th percentiles", f"simulated 5th and 95th: {interval}"),
             ("p95", "#1565c0", "--", None, None),
             ("p50", "#c62828", "-", "observed median", f"simulated median: {interval}"))
    for key, colour, style, observed, simulated in lines:
        ax.fill_between(x, bins[f"sim_{key}_lo"], bins[f"sim_{key}_hi"], color=colour, alpha=0.18, lw=0,
                        label=simulated)
        ax.plot(x, bins[f"obs_{key}"], ls=style, color=colour, lw=1.8, marker="o", ms=4, label=observed)
    for edge in bins["time_lo"].iloc[1:]:
        ax.axvline(edge, color="#bdbdbd", lw=0.6, ls=":")
    ax.set_xlabel("TIME (dotted lines: bin edges, at quantiles of the observation times)")
    ax.set_ylabel(("prediction-corrected " if vpc.corrected else "") + dv_label)
    ax.set_title(f"{'Prediction-corrected ' if vpc.corrected else ''}VPC: {vpc.n_replicates} simulated datasets",
                 fontsize=11)
    fig.legend(fontsize=8, loc="outside lower center", ncols=3)
    return fig


def objective_figure(iterations: pd.DataFrame, label: str = "objective (-2 log L, no n log 2 pi)") -> plt.Figure:
    """The objective (``label``) at each iteration of the search."""
    fig, ax = plt.subplots(figsize=(8, 3.5), constrained_layout=True)
    ax.plot(iterations["ITERATION"], iterations["OFV"], marker="o", ms=4 if len(iterations) <= 60 else 0,
            color=SERIES_COLOURS[0])
    ax.set_xlabel("iteration")
    ax.set_ylabel(label)
    ax.set_title("Objective per iteration", fontsize=11)
    return fig


def png_bytes(fig: plt.Figure) -> bytes:
    """The figure as PNG (150 dpi); the figure stays open."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=150)
    return buffer.getvalue()
