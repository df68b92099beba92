# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 06 · The paper's figures and tables, from the results that exist
# This notebook redraws the paper's main figures and tables for one preset from its tidy results
# (`results/<experiment>.csv`, written by the sweep runner). Nothing is trained here:
# - Fig. 1/3: aggregate IQM curves against DreamerV3 (and DrQ-v2 once it exists), with 95% CIs;
# - Fig. 13: IQM and optimality-gap bars, and rliable's performance profiles;
# - Tables 2–4: per-task scores (Meta-World success rate, DMC return), with the paper's own values beside;
# - Fig. 4: GSA against the offline-data baselines (JSRL-BC, UDS+RLPD, ExPLORe, R3M-style, Diffusion Policy);
# - Fig. 5: continual adaptation along the quadruped chain, GSA against PackNet;
# - Fig. 2: a t-SNE of offline, online and retrieved data on one task;
# - the retrieval-precision table and the hyper-parameter table (generated from `gsa/config.py`).
#
# A method that has not been run shows as "not run" in tables and is left out of plots, never as a value.
# The paper's values are pixels, 150k frames and the paper-size model. The presets' own budgets,
# observations and models differ, so they are printed for orientation only.

# %% tags=["parameters"]
preset = "smoke"          # smoke | cpu | paper
experiment = None         # results/<experiment>.csv (default: the preset name)
methods = None            # None: GSA, DreamerV3, DrQ-v2 (those without results show as "not run")
tsne_task = None          # None: the first Meta-World task of the preset's study
tsne = True               # False: skip the t-SNE (it needs the preset's dataset and world model)
bootstrap_reps = 5_000    # rliable's stratified-bootstrap resamples

# %%
import json

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from gsa import analysis, plots
from gsa.config import hyperparameter_table
from gsa.config import preset as get_preset
from gsa.diagnostics import still_curves, still_on_starts, still_return
from gsa.envs import get_spec
from gsa.experiments.studies import study, study_runs
from gsa.experiments.sweep import tidy
from gsa.paths import project_root, results_dir
from gsa.train.continual import chain_table, pruned_eval_seed
from gsa.train.online import score
from gsa.train.pretrain import world_model_path

experiment = experiment or preset
cfg, plan = get_preset(preset), study(preset)
methods = list(methods or ["gsa", "dreamerv3", "drqv2"])
tables = results_dir() / "tables" / preset
tables.mkdir(parents=True, exist_ok=True)
path = results_dir() / f"{experiment}.csv"
if (results_dir() / "runs" / experiment).exists():
    path = tidy(experiment)  # fresh from the runs' eval.csv files
results = pd.read_csv(path) if path.exists() else pd.DataFrame(columns=["method", "task", "seed", "frame", "score"])
budget = cfg.finetune.frames
finished = results[results.groupby(["method", "task", "seed"])["frame"].transform("max") >= budget]
present = [m for m in methods if m in set(finished.method)]
print(f"{preset} preset, experiment {experiment!r}: {len(results)} evaluations; finished runs per method:",
      finished.groupby("method")[["task", "seed"]].apply(lambda g: len(g.drop_duplicates())).to_dict())
print("not run:", [m for m in methods if m not in present] or "none")

# %% [markdown]
# ## Fig. 1/3 · Aggregate IQM over frames
# Per benchmark and over all tasks. Only finished runs count, and a method enters a panel only if it has
# every task of that panel.

# %%
def benchmark_of(task: str) -> str:
    return get_spec(task).benchmark


panels = [("all tasks", lambda t: True), ("DMControl", lambda t: benchmark_of(t) == "dmc"),
          ("Meta-World", lambda t: benchmark_of(t) == "metaworld")]
colors = plots.palette(methods)
fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.2))
for ax, (title, keep) in zip(axes, panels):
    part = finished[[keep(t) for t in finished.task]] if len(finished) else finished
    tasks = sorted(set(part.task) & set(plan.tasks))
    complete = [m for m in present if set(part[part.method == m].task) >= set(tasks)] if tasks else []
    if complete:
        curve = analysis.aggregate_curve(part[part.task.isin(tasks)], complete, reps=bootstrap_reps // 5)
        plots.aggregate_curves(ax, curve, colors=colors)
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "not run", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(f"{title} ({len(tasks)} tasks)"), ax.set_xlabel("environment frames")
    ax.set_ylabel("IQM normalised score (0–100)")
fig.suptitle(f"{preset} preset, {budget // 1000}k frames, 95% stratified-bootstrap CIs (n: seeds on every task)", y=1.02)
plots.save(fig, "paper_aggregate_curves", preset)

# %% [markdown]
# ## Fig. 13 · IQM, mean and optimality gap at the final budget; performance profiles

# %%
tasks_all = sorted(set(finished.task))
complete = [m for m in present if set(finished[finished.method == m].task) >= set(tasks_all)]
if complete:
    final = analysis.final_scores(finished)
    agg = analysis.aggregates(final, complete, reps=bootstrap_reps)
    agg.to_csv(tables / "aggregates.csv", index=False)
    display(agg.round(1))
    plots.save(plots.aggregate_bars(agg, ["IQM", "mean", "optimality gap"], complete, colors), "paper_metrics", preset)
    profiles = analysis.performance_profiles(final, complete, reps=bootstrap_reps // 5)
    seeds = agg.groupby("method")["runs"].min()
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    for method, group in profiles.groupby("method"):
        ax.plot(group.tau, group.fraction, color=colors[method], label=f"{method} (n={seeds[method]})")
        if seeds[method] >= analysis.MIN_RUNS:  # with one seed per task the bootstrap band is the line itself
            ax.fill_between(group.tau, group.low, group.high, color=colors[method], alpha=0.2)
    ax.set_xlabel("normalised score τ"), ax.set_ylabel("fraction of runs with score > τ"), ax.legend(fontsize=7)
    plots.save(fig, "paper_profiles", preset)
else:
    print("not run: no method has finished runs on every task")

# %% [markdown]
# ## Tables 2–4 · Per-task scores
# Ours: mean ± 95% CI over seeds at the final evaluation (n = seeds). "paper @150k": the paper's appendix
# tables (`results/reference/paper_scores.csv`).

# %%
final_all = analysis.final_scores(finished) if len(finished) else finished
for benchmark, name in (("metaworld", "Meta-World success rate"), ("dmc", "DMControl return")):
    tasks = [t for t in plan.tasks if benchmark_of(t) == benchmark]
    if not tasks:
        continue
    table = analysis.comparison_table(final_all, methods, tasks, benchmark)
    table.to_csv(tables / f"per_task_{benchmark}.csv")
    print(f"{name}, {preset} preset at {budget // 1000}k frames (ours) vs the paper at 150k:")
    display(table)

# %% [markdown]
# ## Fig. 4 · Offline-data baselines on the hard tasks
# GSA against the baselines that also use the non-curated data (method §7): JSRL-BC, UDS+RLPD, ExPLORe,
# R3M-style pre-training and Diffusion Policy, each on the same retrieved trajectories as GSA. Every task on
# which at least one of them has results gets a panel (mean and 95% CI over seeds).

# %%
offline_methods = ["gsa", "jsrl-bc", "uds-rlpd", "explore", "r3m", "diffusion-policy"]
baseline_tasks = sorted(set(results[results.method.isin(offline_methods[1:])].task))
if baseline_tasks:
    shown = results[results.method.isin(offline_methods) & results.task.isin(baseline_tasks)]
    fig = plots.learning_curves(shown)
    plots.save(fig, "paper_offline_baselines", preset)
    if (shown.score == 0).all():  # success stays 0 until a policy finishes the task: the dense return shows progress
        plots.save(plots.learning_curves(shown, y="return"), "paper_offline_baselines_returns", preset)
    print("not run:", [m for m in offline_methods if m not in set(shown.method)] or "none")
else:
    print("not run: no offline-data baseline has results for this preset")

# %% [markdown]
# ## Fig. 5 · Continual adaptation
# The quadruped's chain stand → walk → run → jump → roll → roll-fast (`gsa continual`, method §8): GSA,
# starting each task from the previous one's weights with all earlier experience, against PackNet. Curves
# run along the chain (task boundaries dashed); the table gives each task's final score (PackNet: also with
# its task mask after pruning). The quadruped starts every episode in a random orientation, and a body that
# does nothing collects most of a task's reward when it lands upright. Every evaluation at a given frame count
# plays the same starts (`gsa.train.online.eval_seed`: the seed and the frame count decide them, whatever the
# task or method), so each is read against zero actions on those starts (grey, `gsa.diagnostics.still_curve`;
# table: "zero actions, same starts" at the last evaluation, and on the starts of PackNet's evaluation after
# pruning beside its masked score) as well as on 20 other starts (`still_return`).

# %%
chain_path = results_dir() / f"continual-{preset}_chain.csv"
chain_curves = results_dir() / f"continual-{preset}.csv"
if (results_dir() / "runs" / f"continual-{preset}").exists():
    chain_table(cfg, f"continual-{preset}")  # fresh from the runs' files, as the study's results above
chain_methods = ["gsa", "packnet"]
if chain_path.exists() and chain_curves.exists() and len(pd.read_csv(chain_path)):
    chain, curves = pd.read_csv(chain_path), pd.read_csv(chain_curves)
    order = {task: i for i, task in enumerate(cfg.continual.tasks)}
    curves = curves[curves.task.isin(order)].assign(position=lambda d: d.task.map(order))
    curves["chain_frame"] = curves.position * cfg.continual.frames + curves.frame
    fig, ax = plt.subplots(figsize=(9, 3.2))
    chain_colors = plots.palette(chain_methods)
    for method, group in curves.groupby("method"):  # mean over seeds, shaded between the lowest and highest seed
        stats = group.groupby("chain_frame")["score"].agg(["mean", "min", "max"]).reset_index()
        ax.plot(stats.chain_frame, stats["mean"], marker="o", color=chain_colors[method], label=method)
        ax.fill_between(stats.chain_frame, stats["min"], stats["max"], alpha=0.2, color=chain_colors[method])
    # zero actions on the evaluations' own starts, per seed
    same = still_curves(cfg, curves)
    same["chain_frame"] = same.task.map(order) * cfg.continual.frames + same.frame
    stats = same.groupby("chain_frame")["score"].mean()
    ax.plot(stats.index, stats.values, color="grey", ls=":", marker="s", ms=3, label="zero actions (same starts)")
    still = {task: score(task, still_return(cfg, task)["episode_return"], np.nan) for task in cfg.continual.tasks}
    for i, task in enumerate(cfg.continual.tasks):
        ax.axvline(i * cfg.continual.frames, color="grey", ls="--", lw=0.7)
        ax.text((i + 0.5) * cfg.continual.frames, ax.get_ylim()[1], task.removeprefix("dmc-quadruped-"), ha="center", va="bottom", fontsize=8)
    ax.set_xlabel("environment frames along the chain"), plots.frames_axis(ax), ax.set_ylabel("normalised score (return / 10)"), ax.legend(fontsize=7)
    plots.save(fig, "paper_continual", preset)
    table = chain.pivot_table(index="task", columns="method", values=["score", "score_masked"], aggfunc="mean")
    table = table.reindex(list(cfg.continual.tasks))
    last = same[same.frame == same.groupby("task").frame.transform("max")].groupby("task").score.mean()
    table[("score", "zero actions, same starts")] = last
    masked_seeds = chain[chain.score_masked.notna()].groupby("task").seed.unique()  # PackNet's pruned evaluation
    table[("score_masked", "zero actions, same starts")] = pd.Series(
        {task: np.mean([score(task, still_on_starts(cfg, task, int(s), [pruned_eval_seed(int(s))])[0], np.nan)
                        for s in seeds]) for task, seeds in masked_seeds.items()}, dtype=float)
    table[("score", "zero actions, 20 starts")] = pd.Series(still)
    table.to_csv(tables / "continual.csv")
    display(table.round(1).fillna("not run"))
else:
    print("not run: no continual chain for this preset (gsa continual --preset", preset, "--method gsa|packnet)")

# %% [markdown]
# ## Fig. 2 · t-SNE of offline, online and retrieved data
# The pre-trained encoder's features: the whole offline dataset of the task's benchmark (grey), online
# observations (random actions: a stand-in for early online data, blue) and the retrieved trajectories
# (green). The paper shows Shelf Place. Retrieval should pick the offline data nearest the online data.

# %%
tsne_task = tsne_task or next((t for t in plan.tasks if benchmark_of(t) == "metaworld"), plan.tasks[0])
if tsne and world_model_path(cfg, benchmark_of(tsne_task)).exists():
    from sklearn.manifold import TSNE

    from gsa.theory import feature_sets

    features, info = feature_sets(cfg, tsne_task, frames_per_episode=4, online_episodes=2)
    rng = np.random.default_rng(0)
    picked = {k: f[rng.choice(len(f), min(len(f), 800), replace=False)] for k, f in features.items()}
    points = TSNE(2, perplexity=30, init="pca", random_state=0).fit_transform(np.concatenate(list(picked.values())))
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    start = 0
    for (name, f), color in zip(picked.items(), ["tab:blue", "lightgrey", "tab:green"]):
        ax.scatter(*points[start:start + len(f)].T, s=4, color=color, label=f"{name} ({len(f)})",
                   zorder=1 if name == "offline" else 2)
        start += len(f)
    ax.legend(fontsize=7, markerscale=3), ax.set_xticks([]), ax.set_yticks([])
    ax.set_title(f"{tsne_task}: k={info['k']} retrieved, {preset} preset")
    plots.save(fig, "paper_tsne", preset)
else:
    print(f"t-SNE not run ({'tsne=False' if not tsne else 'no pre-trained world model for this preset'})")

# %% [markdown]
# ## Retrieval precision
# Share of the k retrieved trajectories that come from the task itself (Meta-World data carry task labels;
# DMC data are reward-free, so only the embodiment share is defined), next to the paper's table at k = 250 / 500.

# %%
rows = []
for r in study_runs(preset, experiment):
    file = r.paths()[0] / "retrieval.json"
    if r.done() and file.exists() and (info := json.loads(file.read_text())):  # finished runs, as everywhere
        rows.append({"task": r.task, "k": info["k"], "precision": info["precision_at_k"],
                     "embodiment precision": info["embodiment_precision"]})
ours = pd.DataFrame(rows, columns=["task", "k", "precision", "embodiment precision"])
ours = ours.groupby("task").agg({"k": "first", "precision": "mean", "embodiment precision": "mean"})
reference = pd.read_csv(project_root() / "results" / "reference" / "retrieval_precision.csv")
paper = reference.pivot_table(index="task_id", columns="k", values="precision")
paper.columns = [f"paper @{k}" for k in paper.columns]
precision = ours.join(paper, how="outer").reindex([t for t in plan.tasks if t in set(ours.index) | set(paper.index)])
precision.index.name = "task"
precision = precision.astype(object).where(precision.notna(), "not run")
precision.to_csv(tables / "retrieval_precision.csv")
display(precision)

# %% [markdown]
# ## Hyper-parameters
# Generated from `gsa/config.py`, never typed by hand: the paper preset, with this preset's values beside
# where they differ.

# %%
params = hyperparameter_table(get_preset("paper")).rename(columns={"value": "paper"})
mine = hyperparameter_table(cfg)["value"]
params[preset] = [v if str(v) != str(p) else "" for v, p in zip(mine, params["paper"])]
params.astype(str).to_csv(tables / "hyperparameters.csv", index=False)
with pd.option_context("display.max_rows", 200, "display.max_colwidth", 60):
    display(params.set_index(["section", "name"]))
