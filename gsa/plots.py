"""Figures the notebooks show and save (png + pdf in ``figures/<preset>/``), in one palette per method."""
from __future__ import annotations

import itertools

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import FuncFormatter

from gsa.analysis import MIN_RUNS
from gsa.data.store import OfflineDataset
from gsa.paths import figures_dir


# One colour per method in every figure (GSA and its ablations in greens, baselines apart).
METHOD_COLORS = {"gsa": "#1b7837", "p+er": "#7fbf7b", "p": "#c2a5cf", "dreamerv3": "#2166ac",
                 "drqv2": "#d6604d", "jsrl-bc": "#f4a582", "uds-rlpd": "#8c510a", "explore": "#bf812d",
                 "r3m": "#762a83", "diffusion-policy": "#878787", "packnet": "#e08214"}


# Colours for labels without a fixed one (sweep variants such as ``p+er.ots``), unlike any of METHOD_COLORS, so a
# variant never looks like its base method in a figure that shows both.
SPARE_COLORS = ("#e377c2", "#bcbd22", "#17becf", "#9467bd", "#ff7f0e", "#8c564b", "#7f7f7f", "#1f77b4")


def palette(methods) -> dict:
    """``{method: colour}`` for seaborn's ``palette=``: the fixed colour of a method, spare colours in order for
    the rest (variants, unknown labels)."""
    spare = itertools.cycle(SPARE_COLORS)
    return {m: METHOD_COLORS.get(m) or next(spare) for m in methods}


def frames_axis(*axes) -> None:
    """Environment frames on the x axis in thousands ("10k", "1.5M") instead of matplotlib's bare 10000 … 50000."""
    label = FuncFormatter(lambda x, _: f"{x / 1e6:g}M" if abs(x) >= 1e6 else f"{x / 1e3:g}k" if x else "0")
    for ax in axes:
        ax.xaxis.set_major_formatter(label)


def save(fig, name: str, preset: str) -> None:
    """``figures/<preset>/<name>.png`` and ``.pdf``, byte-identical when redrawn from the same results (no
    creation date in the PDF), so a redraw changes only the figures whose data changed."""
    folder = figures_dir() / preset
    folder.mkdir(parents=True, exist_ok=True)
    for ext, metadata in (("png", None), ("pdf", {"CreationDate": None})):
        fig.savefig(folder / f"{name}.{ext}", dpi=120, bbox_inches="tight", metadata=metadata)


def frame_grid(ds: OfflineDataset, frames: int = 8, seed: int = 0):
    """One random episode per embodiment, ``frames`` frames evenly spaced over it."""
    rng = np.random.default_rng(seed)
    embodiments = list(dict.fromkeys(ds.manifest["embodiment"]))
    fig, axes = plt.subplots(len(embodiments), frames, figsize=(1.3 * frames, 1.4 * len(embodiments)), squeeze=False)
    for row, embodiment in zip(axes, embodiments):
        e = int(rng.choice(np.flatnonzero(ds.manifest["embodiment"] == embodiment)))
        episode = ds.episode(e)["observation"]
        for ax, t in zip(row, np.linspace(0, len(episode) - 1, frames).astype(int)):
            ax.imshow(episode[t].transpose(1, 2, 0))
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_title(f"t={t}", fontsize=7)
        row[0].set_ylabel(f"{embodiment}\n{ds.manifest['source'][e]}", fontsize=8)
    fig.tight_layout()
    return fig


def action_histograms(ds: OfflineDataset, episodes: int = 20, seed: int = 0):
    """Distribution of the real action dims per embodiment and source (padded dims are not shown)."""
    rng = np.random.default_rng(seed)
    rows = []
    for (embodiment, source), group in ds.manifest.groupby(["embodiment", "source"]):
        for e in rng.choice(group.index, min(episodes, len(group)), replace=False):
            actions = ds.episode(int(e))["action"][1:, : ds.native_action_of(int(e))]
            rows.append(pd.DataFrame({"embodiment": embodiment, "source": source, "action": actions.ravel()}))
    data = pd.concat(rows)
    grid = sns.displot(data, x="action", hue="source", col="embodiment", col_wrap=3, stat="density",
                       common_norm=False, bins=40, element="step", height=2.2, aspect=1.3,
                       facet_kws={"sharey": False})
    grid.set_titles("{col_name}")
    return grid.figure


def data_quality(manifest: pd.DataFrame, analysis: pd.DataFrame):
    """Hidden task return per episode by source / σ, and Meta-World success by σ (analysis only)."""
    data = manifest.merge(analysis, on="id")
    data["policy"] = [f"σ={s:g}" if s == s else src for s, src in zip(data["sigma"], data["source"])]
    data.loc[data["benchmark"] == "metaworld", "hidden_task"] = "Meta-World (all tasks)"  # one panel, not 50
    tasks = list(dict.fromkeys(data["hidden_task"]))
    fig, axes = plt.subplots(1, len(tasks) + 1, figsize=(2.6 * (len(tasks) + 1), 2.8), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        sns.stripplot(data[data["hidden_task"] == task], x="policy", y="hidden_return", ax=ax, size=3)
        ax.set_title(task.removeprefix("dmc-"), fontsize=8)
        ax.set_xlabel("")
        ax.tick_params(axis="x", labelsize=7, rotation=45)
    mw = data[data["benchmark"] == "metaworld"]
    ax = axes[0, -1]
    if len(mw):
        rates = mw.groupby("sigma")[["success", "success_any"]].mean().reset_index().melt("sigma")
        sns.barplot(rates, x="sigma", y="value", hue="variable", ax=ax)
        ax.set_ylim(0, 1)
        ax.set_title("Meta-World success by σ", fontsize=8)
    fig.tight_layout()
    return fig


def loss_curves(log: pd.DataFrame, columns=("recon", "dyn", "rep", "grad_norm")):
    """Training curves of a ``train.csv`` (one panel per column, log scale where it helps)."""
    columns = [c for c in columns if c in log]
    fig, axes = plt.subplots(1, len(columns), figsize=(3.2 * len(columns), 2.6), squeeze=False)
    for ax, column in zip(axes[0], columns):
        ax.plot(log["step"], log[column])
        ax.set_title(column, fontsize=9)
        ax.set_xlabel("step")
        if column in ("recon", "grad_norm"):
            ax.set_yscale("log")
    fig.tight_layout()
    return fig


def openloop_grid(true: np.ndarray, pred: np.ndarray, names: list[str], context: int, frames: int = 8):
    """Rows of true / predicted frames (N, T, 3, H, W) for each name; the first ``context`` are filtered
    with observations, the rest imagined from the recorded actions alone."""
    T = true.shape[1]
    steps = np.unique(np.r_[0, context - 1, np.linspace(context, T - 1, frames - 2).astype(int)])
    fig, axes = plt.subplots(2 * len(names), len(steps), figsize=(1.2 * len(steps), 2.5 * len(names)), squeeze=False)
    for i, name in enumerate(names):
        for j, t in enumerate(steps):
            for k, (images, label) in enumerate(((true, "true"), (pred, "model"))):
                ax = axes[2 * i + k, j]
                ax.imshow(images[i, t].transpose(1, 2, 0))
                ax.set_xticks([]), ax.set_yticks([])
                if j == 0:
                    ax.set_ylabel(f"{name}\n{label}", fontsize=7)
                if i == 0 and k == 0:
                    ax.set_title(("ctx " if t < context else "imag ") + f"t={t}", fontsize=7)
    fig.tight_layout()
    return fig


def learning_curves(results: pd.DataFrame, y: str = "score"):
    """Evaluation score against environment frames, one panel per task, one line per method (mean and
    bootstrapped 95% CI over seeds, shaded; the bootstrap is seeded, so a redraw gives the same bands)."""
    grid = sns.relplot(results, x="frame", y=y, hue="method", col="task", kind="line", errorbar=("ci", 95), seed=0,
                       marker="o", height=2.8, aspect=1.2, facet_kws={"sharey": False},
                       col_wrap=min(4, results["task"].nunique()),
                       palette=palette(results["method"].unique()))
    grid.set_titles("{col_name}")
    grid.set_axis_labels("environment frames", {"score": "normalised score", "return": "episode return",
                                                    "goal_reached": "goal reached at any step (%)"}.get(y, y))
    frames_axis(*grid.axes.flat)
    return grid.figure


def aggregate_curves(ax, curve: pd.DataFrame, metric: str = "IQM", colors: dict | None = None) -> None:
    """:func:`gsa.analysis.aggregate_curve` on ``ax``: one line per method (label: seeds per task), its 95% CI
    shaded only where at least :data:`~gsa.analysis.MIN_RUNS` seeds cover every task; with fewer the
    stratified bootstrap has nothing to resample and the "interval" is the line itself, so none is drawn and
    the panel says so."""
    colors = colors or palette(curve["method"].unique())
    single = False
    for method, group in curve.groupby("method", sort=False):
        runs = int(group["runs"].min())
        ax.plot(group["frame"], group[metric], marker="o", color=colors[method], label=f"{method} (n={runs})")
        if runs >= MIN_RUNS:
            ax.fill_between(group["frame"], group["low"], group["high"], color=colors[method], alpha=0.2)
        single |= runs < MIN_RUNS
    if single:
        ax.text(0.02, 0.98, "n < 2 seeds on every task: no CI", transform=ax.transAxes, va="top", fontsize=7,
                color="0.4")
    frames_axis(ax)


def aggregate_bars(table: pd.DataFrame, metrics=("IQM", "mean", "optimality gap"), methods=None,
                   colors: dict | None = None):
    """:func:`gsa.analysis.aggregates` as bars, one panel per metric, one bar per method (label: its seeds per
    task); the 95% CI is drawn only for methods with at least :data:`~gsa.analysis.MIN_RUNS` seeds on every
    task (with one it is the bar's own value, see :func:`aggregate_curves`)."""
    methods = list(methods or dict.fromkeys(table["method"]))
    colors = colors or palette(methods)
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.4 * len(metrics), 0.6 + 0.45 * len(methods)), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        group = table[table["metric"] == metric].set_index("method").loc[methods]
        ax.barh(range(len(group)), group["value"], color=[colors[m] for m in methods])
        wide = (group["runs"] >= MIN_RUNS).to_numpy()
        y = np.arange(len(group))[wide]
        ax.errorbar(group["value"][wide], y, xerr=[(group["value"] - group["low"])[wide],
                                                   (group["high"] - group["value"])[wide]], fmt="none", color="k")
        ax.set_yticks(range(len(group)), [f"{m} (n={int(r)})" for m, r in zip(methods, group["runs"])])
        ax.set_title(metric), ax.set_xlabel("normalised score")
    if not all(table["runs"] >= MIN_RUNS):
        fig.text(0.01, 0.01, "n < 2 seeds on every task: no CI", fontsize=7, color="0.4")
    fig.tight_layout()
    return fig


def same_starts_curves(curves: pd.DataFrame):
    """Each method's score with seed k beside zero actions on seed k's evaluation starts (method "zero actions",
    dashed grey), one panel per task (columns) and seed (rows): every run with seed k plays the same starts, so
    a learner is read against doing nothing there. ``curves``: task, seed, method, frame, score."""
    methods = list(dict.fromkeys(curves["method"]))
    colours = {**palette([m for m in methods if m != "zero actions"]), "zero actions": "0.55"}
    grid = sns.relplot(curves, x="frame", y="score", hue="method", style="method", row="seed", col="task", kind="line",
                       marker="o", height=2.4, aspect=1.3, palette=colours, facet_kws={"sharey": False},
                       dashes={m: (3, 2) if m == "zero actions" else "" for m in methods})
    grid.set_titles("{col_name}, seed {row_name}")
    grid.set_axis_labels("environment frames", "normalised score")
    frames_axis(*grid.axes.flat)
    return grid.figure
