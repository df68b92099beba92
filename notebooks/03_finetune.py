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
# # 03 · Fine-tuning: GSA vs DreamerV3
# The pre-trained world model becomes a task specialist (paper Alg. 1): retrieve the offline trajectories
# nearest to the task's reset observation, replay them next to online data (experience rehearsal, 4 of 16
# rows), and let a BC prior trained on them steer early episodes (execution guidance). DreamerV3 is the same
# agent from scratch with every technique off; P and P+ER are the paper's ablations (Fig. 6).
#
# Each preset has a study (`gsa/experiments/studies.py`): its tasks, methods and seeds were fixed before any
# result existed. The `cpu` study tests the paper's central claim at CPU scale (state mode, 50k frames):
# - **DMC** — `cheetah-run` (stock), `cheetah-run-backwards` and `walker-run-backwards` (the paper's custom
#   rewards: behaviours random and curiosity data rarely contain), `quadruped-run` (the quadruped task of the
#   paper's retrieval-precision table);
# - **Meta-World** — `assembly`, `shelf-place`, `stick-pull` (hard tasks of the paper; assembly and
#   shelf-place are in its retrieval table, shelf-place is its t-SNE figure) and `door-open` (the retrieval
#   table's task with imperfect precision);
# - DreamerV3 and GSA with 3 seeds (run first, side by side), then DrQ-v2 with 3 seeds, P and P+ER with 1
#   seed, and the offline-data baselines of Fig. 4 (JSRL-BC, Diffusion Policy, R3M-style, UDS+RLPD, ExPLORe)
#   with 3 seeds on the Meta-World tasks (added in a later session, before any of their runs existed).
#
# Runs are idempotent: finished runs (`done.json`, committed with their small result files) are skipped, and
# with `run = False` nothing is trained at all — the figures are made from the committed results.

# %% tags=["parameters"]
preset = "smoke"         # smoke | cpu | paper
tasks = None             # None: the preset's study tasks
methods = None           # None: the study's methods (gsa | p+er | p | dreamerv3)
experiment = None        # results/runs/<experiment>/ (default: the preset name)
workers = None           # parallel runs (default: one per core)
run = True               # False: only read the results on disk (nothing is trained)
unfinished = False       # True: the learning curves also show runs still training (to watch a study)
bootstrap_reps = 20_000  # rliable's stratified-bootstrap resamples for the 95% CIs

# %%
import json

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from gsa import analysis, plots
from gsa.config import preset as get_preset
from gsa.data.card import markdown
from gsa.diagnostics import still_curves, still_return
from gsa.envs import get_spec
from gsa.experiments.studies import study, study_runs
from gsa.experiments.sweep import read_status, results_table, sweep, tidy
from gsa.paths import results_dir
from gsa.train.online import score

experiment = experiment or preset
plan = study(preset)
tasks = list(tasks or plan.tasks)
methods = list(methods or [m for m, _ in plan.methods])
cfg = get_preset(preset)
settings = {k: getattr(cfg.finetune, k) for k in
            ["frames", "warmup_frames", "train_ratio", "batch_size", "seq_len", "offline_share", "retrieval_k",
             "eval_every", "eval_episodes"]}
settings.update({f"guidance ({b})": cfg.finetune.schedule(b) for b in ("dmc", "metaworld")})
settings.update({"observations": cfg.world_model.obs, "seeds": dict(plan.methods)})
pd.Series(settings, name=preset)

# %% [markdown]
# ## Runs
# The sweep runner executes the runs in parallel worker processes, the main methods' first seeds first.

# %%
runs = study_runs(preset, experiment, tasks, methods)
if run:
    status = sweep(runs, workers=workers)
    failed = {name: s for name, s in status.items() if s != "done"}
    assert not failed, failed
status = read_status(runs)
status.pivot_table(index=["task", "method"], columns="seed", values="status", aggfunc="first")

# %% [markdown]
# Every finished run: its score at each evaluation, what its training episodes did, and its minutes (wall
# time of the online phase, which depends on what else shared the machine, and its CPU time).

# %%
finished_runs = analysis.run_table(runs)
order = {m: i for i, m in enumerate(methods)}
finished_runs = finished_runs.sort_values(["method", "task", "seed"], key=lambda c: c.map(order) if c.name == "method" else c)
finished_runs.to_csv(results_dir() / f"finetune_{experiment}_runs.csv", index=False)
tables = results_dir() / "tables" / experiment  # the same tables as markdown, for the docs
tables.mkdir(parents=True, exist_ok=True)
(tables / "finetune_runs.md").write_text(markdown(finished_runs) + "\n")
finished_runs

# %% [markdown]
# ## Learning curves per task
# Normalised score: Meta-World success × 100, DMC return / 10; mean and 95% CI over seeds. Finished runs only,
# so the figures are the same wherever the committed results are; `unfinished=True` adds the evaluations of runs
# still training (their figures then depend on the machine that draws them).

# %%
path = tidy(experiment)  # results/<experiment>.csv, finished runs: method, task, seed, frame, return, success, success_any, score
results = results_table(experiment, finished_only=False) if unfinished else pd.read_csv(path)
results = results[results.task.isin(tasks) & results.method.isin(methods)]
fig = plots.learning_curves(results)
plots.save(fig, f"finetune_{experiment}", preset)

# %% [markdown]
# Meta-World's score is success only, which stays at 0 until a policy finishes the task. The episode return
# (the task's dense reward summed over the episode's 100 agent steps) shows progress before that.

# %%
returns = results[results.task.str.startswith("mw-")]
if len(returns):
    fig = plots.learning_curves(returns, y="return")
    plots.save(fig, f"finetune_{experiment}_mw_returns", preset)

# %% [markdown]
# The score counts a Meta-World success at the episode's last step only. Whether the policy reached the goal
# at some step, and perhaps drifted off again, is recorded beside it (`success_any`, in runs from December
# 2026 on; docs/cpu_study.md: on door-open the two differ a lot). It is a diagnostic, not the score.

# %%
reached = returns.dropna(subset=["success_any"])
if len(reached):
    fig = plots.learning_curves(reached.assign(goal_reached=100 * reached["success_any"]), y="goal_reached")
    plots.save(fig, f"finetune_{experiment}_mw_goal_reached", preset)
else:
    print("no Meta-World run has recorded success_any yet")

# %% [markdown]
# ## Aggregate over tasks (rliable)
# The interquartile mean (IQM) of normalised scores over all runs and tasks, with 95% stratified-bootstrap
# confidence intervals, at every evaluation all methods reached — the paper's Fig. 1/3 at this scale. Only
# finished runs (their last evaluation at the full budget) enter the final aggregates.

# %%
budget = cfg.finetune.frames
finished = results[results.groupby(["method", "task", "seed"])["frame"].transform("max") >= budget]
present = [m for m in methods if m in set(finished.method)]
compared = [m for m in present if set(finished[finished.method == m].task) >= set(tasks)] or present
if len(compared):
    curve = analysis.aggregate_curve(finished, compared, reps=bootstrap_reps // 4)
    fig, ax = plt.subplots(figsize=(5, 3.2))
    plots.aggregate_curves(ax, curve)
    ax.set_xlabel("environment frames"), ax.set_ylabel("IQM normalised score"), ax.legend()
    ax.set_title(f"{preset} preset, {len(tasks)} tasks, {budget // 1000}k frames")
    plots.save(fig, f"finetune_{experiment}_aggregate", preset)
    final = analysis.final_scores(finished)
    aggregates = analysis.aggregates(final, compared, reps=bootstrap_reps)
    display(aggregates.round(1))
else:
    print("no finished runs yet")

# %%
if len(compared):
    plots.save(plots.aggregate_bars(aggregates, list(dict.fromkeys(aggregates.metric)), compared),
               f"finetune_{experiment}_metrics", preset)

# %% [markdown]
# ## The claim: GSA's IQM at the final budget ≥ 1.3× DreamerV3's, with non-overlapping 95% CIs
# (the paper reports +102.8% over DreamerV3 at 150k frames on 72 tasks). Each method enters with the seeds it
# has finished on every task (printed: GSA's / DreamerV3's).

# %%
if {"gsa", "dreamerv3"} <= set(compared):
    iqm = aggregates[aggregates.metric == "IQM"].set_index("method")
    g, d = iqm.loc["gsa"], iqm.loc["dreamerv3"]
    ratio = g.value / d.value if d.value > 0 else float("inf")
    separated = g.low > d.high
    improvement = analysis.probability_of_improvement(final, "gsa", "dreamerv3", reps=bootstrap_reps)
    print(f"IQM: GSA {g.value:.1f} [{g.low:.1f}, {g.high:.1f}] vs DreamerV3 {d.value:.1f} [{d.low:.1f}, {d.high:.1f}] "
          f"over {int(g.tasks)} tasks x {int(g.runs)} / {int(d.runs)} seeds -> ratio {ratio:.2f}, CIs "
          f"{'are points (one seed)' if min(g.runs, d.runs) < analysis.MIN_RUNS else 'do not overlap' if separated else 'overlap'}; P(GSA > DreamerV3) = {improvement['p']:.2f} "
          f"[{improvement['low']:.2f}, {improvement['high']:.2f}]")
    print("target (ratio >= 1.3 and separated CIs):", analysis.claim_verdict(aggregates, "gsa", "dreamerv3", 1.3))
else:
    print("GSA and DreamerV3 do not both have finished runs on every task yet")

# %% [markdown]
# The same metrics per benchmark (the paper's Fig. 3 reports DMC and Meta-World apart): where one benchmark's
# scores are all 0 for every method, the aggregate over both is decided by the other. With 2 seeds per task the
# stratified bootstrap resamples from two runs per task, so its intervals are narrower than 3 seeds would give.

# %%
if len(compared):
    by_benchmark = analysis.aggregates_by_benchmark(final, compared, reps=bootstrap_reps)
    by_benchmark.to_csv(tables / "aggregates_by_benchmark.csv", index=False)
    display(by_benchmark[by_benchmark.metric.isin(["IQM", "mean"])].set_index(["benchmark", "metric", "method"]).round(1))

# %% [markdown]
# Does the verdict hang on one task? The same comparison with each task left out in turn (every task once).

# %%
if {"gsa", "dreamerv3"} <= set(compared):
    left_out = analysis.leave_one_task_out(final, "gsa", "dreamerv3", 1.3, reps=bootstrap_reps // 4)
    left_out.to_csv(tables / "claim_leave_one_task_out.csv", index=False)
    display(left_out.round(2))

# %% [markdown]
# ## Final scores per task (mean ± 95% CI over seeds)
# Beside ours, marked "paper @150k": the paper's own scores (its appendix tables; pixels, 150k frames,
# 3 seeds), for orientation only — this preset's budget, observations and model differ. "zero actions":
# what a policy that does nothing scores, evaluated like the runs over 4× their evaluation episodes
# (`gsa.diagnostics.still_return`): a quadruped that lands upright from its random start collects reward
# without moving, so a learner is read against it.

# %%
if len(finished):
    table = analysis.per_task_table(analysis.final_scores(finished))
    cells = table.apply(lambda r: f"{r['mean']:.1f} ± {r['ci']:.1f} (n={int(r['seeds'])})" if r["seeds"] > 1
                        else f"{r['mean']:.1f} (n=1)", axis=1).unstack()
    cells = cells.reindex(index=[t for t in tasks if t in cells.index], columns=[m for m in methods if m in cells.columns])
    paper = analysis.paper_scores("150k")
    for method in ("gsa", "dreamerv3"):
        cells[f"{method} (paper @150k)"] = [f"{paper.loc[t, method]:.1f}" if t in paper.index else "–" for t in cells.index]
    still = {t: still_return(cfg, t, episodes=4 * cfg.finetune.eval_episodes) for t in cells.index}
    cells["zero actions"] = [f"{score(t, r['episode_return'], r['success']):.1f}" for t, r in still.items()]
    cells.to_csv(results_dir() / f"finetune_{experiment}_table.csv")
    (tables / "finetune_final.md").write_text(markdown(cells.reset_index()) + "\n")
    display(cells)

# %% [markdown]
# Where doing nothing scores (the quadruped tasks), each evaluation is read against zero actions on the same
# starts: every method's run with seed k plays the same 5 starts at a given frame count
# (`gsa.train.online.eval_seed`), and whether the quadruped lands upright there decides much of the score.
# Below, each such task's scores per seed and evaluation beside zero actions on those starts
# (`gsa.diagnostics.still_curve`).

# %%
still_tasks = [t for t in cells.index if float(cells.loc[t, "zero actions"]) > 1] if len(finished) else []
here = results[results.task.isin(still_tasks)]
if len(here):
    zero = still_curves(cfg, here).assign(method="zero actions")
    order = {"task": still_tasks.index, "method": lambda m: "" if m == "zero actions" else m}  # zero actions first
    same_starts = (pd.concat([zero, here]).pivot_table(index=["task", "seed", "method"], columns="frame", values="score")
                   .sort_index(key=lambda level: level.map(order.get(level.name, lambda v: v))).round(1))
    same_starts.to_csv(results_dir() / f"finetune_{experiment}_same_starts.csv")
    display(same_starts)
    long = same_starts.rename_axis(columns="frame").stack().rename("score").reset_index()
    fig = plots.same_starts_curves(long)
    plots.save(fig, f"finetune_{experiment}_same_starts", preset)

# %% [markdown]
# ## Retrieval and guidance
# Embodiment precision: share of retrieved trajectories from the task's embodiment (must be 1). Precision@k
# (Meta-World): share from the task itself, out of the k retrieved (paper §4.4). Guided share: the fraction
# of agent steps the BC prior acted, over training (warm-up episodes are all prior).

# %%
shown = [r for r in runs if unfinished or r.done()]  # as the learning curves: finished runs unless `unfinished`
rows = []
for r in shown:
    path = r.paths()[0] / "retrieval.json"
    if path.exists() and (info := json.loads(path.read_text())):
        rows.append({"task": r.task, "method": r.label, "seed": r.seed, **info})
retrieval = pd.DataFrame(rows)
if len(retrieval):
    display(retrieval.groupby(["task", "method"])[["k", "embodiment_precision", "precision_at_k"]].mean())
    assert (retrieval.embodiment_precision == 1.0).all()

# %%
logs = []
for r in shown:
    path = r.paths()[0] / "train.csv"
    if r.method == "gsa" and path.exists():
        log = pd.read_csv(path)
        steps = log.frame.diff().fillna(log.frame.iloc[0]) / cfg.finetune.action_repeat
        logs.append(log.assign(task=r.task, seed=r.seed, share=log.prior_steps / steps))
if logs:
    guided = pd.concat(logs)
    guided["frames"] = (guided.frame // cfg.finetune.eval_every + 1) * cfg.finetune.eval_every
    fig, ax = plt.subplots(figsize=(5, 3))
    sns.lineplot(guided, x="frames", y="share", hue="task", errorbar=None, ax=ax)
    ax.set_ylabel("share of steps by the BC prior"), ax.set_xlabel("environment frames"), plots.frames_axis(ax)
    ax.legend(fontsize=6)
    plots.save(fig, f"finetune_{experiment}_guidance", preset)

# %% [markdown]
# ## Why: training episodes with and without the prior, and the world model's fit
# Where GSA's scores do or do not separate from DreamerV3's, the training logs say why, without any new run.
# Every training episode of a finished run, split by whether the BC prior acted in it (guided: warm-up
# episodes and guidance windows; JSRL-BC's roll-ins count too): how many, their mean return, the share with
# any reward (on shelf-place, Meta-World's reward stays 0 until the block is lifted) and their successes.
# If guided episodes find reward and successes but evaluations (the RL policy alone) stay at 0, the prior
# explores well and the policy has not yet learned to do what it showed.

# %%
logs = []
for r in runs:
    path = r.paths()[0]
    if (path / "done.json").exists():
        log = pd.read_csv(path / "train.csv")
        guided = log["guided"] if "guided" in log else pd.Series(False, index=log.index)
        logs.append(log.assign(task=r.task, method=r.label, seed=r.seed, guided=guided.astype(bool)))
if logs:
    episodes = pd.concat(logs)
    episodes["rewarded"] = episodes.episode_return > 0
    by = episodes.groupby(["task", "method", "guided"])
    split = by.agg(runs=("seed", "nunique"), episodes=("episode", "size"), mean_return=("episode_return", "mean"),
                   rewarded=("rewarded", "mean"), successes=("success", lambda s: int((s > 0).sum())))
    split.to_csv(results_dir() / f"finetune_{experiment}_guided_split.csv")
    display(split.round(2))

# %% [markdown]
# The world model's fit during fine-tuning, per 10k frames (mean over the logged updates and runs): its
# observation-reconstruction loss (on the whole batch: GSA's hold retrieved rows, 4 of 16; DreamerV3's are
# online only) and the reward head's loss (online rows only, as it is trained). A world model pre-trained on
# the non-curated data should start far lower on the first; the second shows how hard the task's reward is
# to predict.

# %%
if logs and "recon" in episodes:
    fit = episodes.dropna(subset=["recon"]).copy()
    fit["frames"] = (fit.frame - 1) // cfg.finetune.eval_every * cfg.finetune.eval_every + cfg.finetune.eval_every
    if len(fit):
        fig, ax = plt.subplots(figsize=(5, 3))
        sns.lineplot(fit, x="frames", y="recon", hue="task", style="method", errorbar=None, ax=ax)
        ax.set_yscale("log"), ax.set_ylabel("reconstruction loss"), ax.set_xlabel("environment frames")
        plots.frames_axis(ax)
        ax.legend(fontsize=6)
        plots.save(fig, f"finetune_{experiment}_world_model_fit", preset)
        for column in ("recon", "reward_loss"):
            display(fit.pivot_table(index=["task", "method"], columns="frames", values=column).round(3)
                    .style.set_caption(column))

# %% [markdown]
# The reward head on the retrieved data. It is trained on online rows only (the offline data has no
# rewards), yet imagination starts from the retrieved rows' states too, so rehearsal helps only as far as
# the head's rewards there are right. `gsa diagnose <run>` measures it at the end of a run (it needs the
# run's checkpoint and the dataset, so it runs in the session that trained it) and writes
# `diagnostics.json`: per group (online episodes; retrieved trajectories of the task itself, whose true
# rewards it recovers by replaying their actions in the env; other retrieved ones), the head's mean
# absolute error, its mean prediction against the mean true reward, their correlation, and the world
# model's reconstruction error.
#
# It also plays the run's policies alone for 20 episodes: π_RL with its mean action (as the evaluations do)
# and the BC prior π_bc for whole episodes (training only lets it act in windows), with the success at the
# final step (the score) and at any step. A policy that reaches Meta-World's goal and drifts off scores 0.
# With `--priors` it also clones π_bc, as the run does, from each quality slice of the retrieved data (all
# of it; the experts at or below each noise level σ; each exploration source) and plays it alone: how good
# a prior the data can give at all.

# %%
rows, played, by_quality, objects = [], [], [], []
for r in runs:
    path = r.paths()[0] / "diagnostics.json"
    if path.exists():
        report = json.loads(path.read_text())
        run_id = {"task": r.task, "method": r.label, "seed": r.seed, "frame": report.get("frame")}
        rows += [{**run_id, **g} for g in report.get("groups", [])]  # none in a --priors-only report
        played += [{**run_id, **p} for p in report.get("policies", [])]  # diagnostics from December 2026 on
        by_quality += [{**run_id, **p} for p in report.get("priors", [])]  # gsa diagnose --priors
        objects += [{**run_id, **o} for o in report.get("objects", [])]  # Meta-World, from December 4 on
diagnostics, played, by_quality = pd.DataFrame(rows), pd.DataFrame(played), pd.DataFrame(by_quality)
if len(diagnostics):
    diagnostics.to_csv(results_dir() / f"finetune_{experiment}_diagnostics.csv", index=False)
    display(diagnostics.set_index(["task", "method", "seed", "group"]).round(3))
else:
    print("no run has diagnostics.json yet (gsa diagnose <run> in the session that ran it)")
if len(played):
    played.to_csv(results_dir() / f"finetune_{experiment}_policies.csv", index=False)
    display(played.set_index(["task", "method", "seed", "policy"]).round(3))
if len(by_quality):
    by_quality.to_csv(results_dir() / f"finetune_{experiment}_priors.csv", index=False)
    display(by_quality.set_index(["task", "method", "seed", "data"]).round(3))

# %% [markdown]
# Does imagination expect more than the policy gets? Reports from December 4, 2026 on also give, per group,
# `imag_reward`: the head's mean reward over π's imagined steps (the horizon) from each of the group's
# states, and the critic's `value` there, also as a reward per step (`value_per_step` = value × (1 − γ)).
# Reports from the evening of December 4, 2026 on add, from every 10th of those states, π imagined for 3 / (1 − γ) steps: the
# head's mean reward over them (`imag_reward_long`) and the value those rewards give (`value_imagined`,
# discounted sum plus the critic's value at the end). `value / imagined` near 1 says the critic is consistent
# with the model, so a value above reality comes from what the model imagines beyond the training horizon.
# Below, for each run: on its online states, the reward per step imagination expects and the critic's, beside
# the true reward of those states and what π_RL earns per agent step when it plays alone (its return over
# the episode's agent steps, 20 episodes on fresh starts).

# %%
if len(diagnostics) and "imag_reward" in diagnostics and len(played):
    online = diagnostics[(diagnostics.group == "online") & diagnostics.imag_reward.notna()]
    alone = played[played.policy == "π_RL (mean action)"].set_index(["task", "method", "seed"])
    steps = {t: get_spec(t).embodiment.episode_length(cfg.finetune.action_repeat) for t in online.task.unique()}
    online = online.assign(**{k: online.get(k, np.nan) for k in ("imag_reward_long", "value_imagined")})  # NaN: older reports
    online["value / imagined"] = online["value"] / online["value_imagined"]
    imagination = online.set_index(["task", "method", "seed"])[
        ["reward_true", "imag_reward", "imag_reward_long", "value_per_step", "value / imagined"]]
    imagination = imagination.join(alone["episode_return"].rename("π_RL alone"), how="inner")
    imagination["π_RL alone"] /= [steps[task] for task in imagination.index.get_level_values("task")]
    imagination["imagined / π_RL alone"] = imagination["imag_reward"] / imagination["π_RL alone"]
    imagination.round(3).to_csv(results_dir() / f"finetune_{experiment}_imagination.csv")
    (tables / "finetune_imagination.md").write_text(markdown(imagination.round(3).reset_index()) + "\n")
    display(imagination.round(3))

# %% [markdown]
# Where does imagination take the object? On Meta-World, `gsa diagnose` decodes, from every 10th state of
# the run's last 40 online episodes, (1) the real episode, (2) the world model rolled open loop with the
# episode's own actions and (3) π imagined for 3 / (1 − γ) steps: the distances hand–object and
# object–goal, the object's height and the reward (true, or the head's). If (2) follows (1) while (3) lifts
# the object where the real episodes never do, the policy exploits dynamics that are right for the actions
# the run took and wrong for those it imagines.

# %%
objects = pd.DataFrame(objects)
if len(objects):
    objects = objects.set_index(["task", "method", "seed", "source", "step"]).drop(columns="frame")
    objects.round(3).to_csv(results_dir() / f"finetune_{experiment}_objects.csv")
    (tables / "finetune_objects.md").write_text(markdown(objects.round(3).reset_index()) + "\n")
    display(objects.round(3))
