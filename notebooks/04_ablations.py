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
# # 04 · Ablations: what each part of GSA contributes
# The paper's component ablation (Fig. 6) adds the parts one at a time:
# - **DreamerV3**: from scratch;
# - **P**: start from the pre-trained world model;
# - **P+ER**: also replay retrieved offline trajectories (experience rehearsal);
# - **GSA = P+ER+G**: also let the BC prior guide early episodes (execution guidance).
#
# The variants below it fill in as their runs exist. Sweep variants are labelled `<method>.<variant>`
# (`gsa sweep --variant NAME:key=value`), and this notebook looks for these labels:
#
# | study | labels | paper |
# | --- | --- | --- |
# | retrieval k | `gsa.k<k>` (e.g. `gsa.k250`, `-o finetune.retrieval_k=250`) | precision table |
# | guidance-schedule length | `gsa.schedule<N>k` (agent steps of `linear(1,0,N)`) | schedule appendix |
# | uncertainty-aware reward instead of guidance | `p+er.ots` | Fig. 7 |
# | fine-tuned parts | `gsa.encoder_decoder`, `gsa.dynamics` (and `gsa` = all) | Fig. 8 |
#
# Nothing is trained here; see `03_finetune` or `gsa sweep` to produce the runs.

# %% tags=["parameters"]
preset = "smoke"          # smoke | cpu | paper
experiment = None         # results/<experiment>.csv (default: the preset name)
bootstrap_reps = 5_000    # rliable's stratified-bootstrap resamples

# %%
import json
import re

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from gsa import analysis, plots
from gsa.config import preset as get_preset
from gsa.experiments.studies import ABLATIONS
from gsa.experiments.sweep import tidy
from gsa.paths import results_dir

experiment = experiment or preset
cfg = get_preset(preset)
budget = cfg.finetune.frames
tables = results_dir() / "tables" / preset
tables.mkdir(parents=True, exist_ok=True)
runs_dir = results_dir() / "runs" / experiment
path = tidy(experiment) if runs_dir.exists() else results_dir() / f"{experiment}.csv"
results = pd.read_csv(path) if path.exists() else pd.DataFrame(columns=["method", "task", "seed", "frame", "score"])
finished = results[results.groupby(["method", "task", "seed"])["frame"].transform("max") >= budget]
final = analysis.final_scores(finished) if len(finished) else finished
labels = sorted(set(results.method))
print(f"{preset} preset, experiment {experiment!r}: labels with results: {labels or 'none'}")
colors = plots.palette(labels + ["dreamerv3", "p", "p+er", "gsa"])

# %% [markdown]
# ## Fig. 6 · Components
# Final normalised score per task (mean over seeds, dots = seeds), and the IQM with 95% CIs over the tasks
# every component has, over both benchmarks and per benchmark (column `benchmark`: all, dmc, metaworld).

# %%
components = ["dreamerv3", "p", "p+er", "gsa"]
present = [m for m in components if m in set(final.method)]
if present:
    tasks = sorted(set(final[final.method.isin(present)].task))
    fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(tasks), 3.2))
    width = 0.8 / len(present)
    for i, method in enumerate(present):
        part = final[final.method == method]
        means = part.groupby("task").score.mean().reindex(tasks)
        ax.bar(np.arange(len(tasks)) + i * width, means, width, color=colors[method], label=method)
        for j, task in enumerate(tasks):
            seeds = part[part.task == task].score
            ax.scatter(np.full(len(seeds), j + i * width), seeds, s=6, color="k", zorder=3)
    ax.set_xticks(np.arange(len(tasks)) + 0.4 - width / 2, tasks, rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("final normalised score"), ax.legend(fontsize=7)
    ax.set_title(f"components, {preset} preset at {budget // 1000}k frames")
    plots.save(fig, "ablation_components", preset)
    common = set.intersection(*(set(final[final.method == m].task) for m in present))
    if common:  # rliable over the tasks every present component has: all of them, then per benchmark
        shared = final[final.task.isin(common)]
        agg = pd.concat([analysis.aggregates(shared, present, reps=bootstrap_reps).assign(benchmark="all"),
                         analysis.aggregates_by_benchmark(shared, present, reps=bootstrap_reps)], ignore_index=True)
        agg.to_csv(tables / "ablation_components.csv", index=False)
        display(agg[agg.metric.isin(["IQM", "mean"])].set_index(["benchmark", "metric", "method"]).round(1))
    else:
        (tables / "ablation_components.csv").unlink(missing_ok=True)
        print("no task has finished runs of every component yet: no aggregate")
else:
    print("not run: no component has finished runs")
missing = [m for m in components if m not in present]
print("components not run:", missing or "none")

# %% [markdown]
# ## Retrieval precision at k
# Precision@k (Meta-World: share of the retrieved trajectories from the task itself) and embodiment
# precision, per task and k, from the runs' `retrieval.json` (the default k and any `gsa.k<k>` variant).

# %%
rows = []
for file in sorted(runs_dir.glob("*/*/seed*/retrieval.json")) if runs_dir.exists() else []:
    info = json.loads(file.read_text())
    if info and (file.parent / "done.json").exists():  # finished runs, as everywhere
        rows.append({"task": file.parent.parent.name, "label": file.parent.parent.parent.name, "k": info["k"],
                     "precision@k": info["precision_at_k"], "embodiment precision": info["embodiment_precision"]})
precision = pd.DataFrame(rows, columns=["task", "label", "k", "precision@k", "embodiment precision"])
if len(precision):
    precision = precision.groupby(["task", "k"])[["precision@k", "embodiment precision"]].mean()
    precision.to_csv(tables / "retrieval_precision_at_k.csv")
    display(precision)
else:
    print("not run: no run has retrieved data yet")

# %% [markdown]
# ## Guidance-schedule length
# GSA with the guidance probability going from 1 to 0 over N agent steps (`gsa.schedule<N>k`). The
# preset's own schedule is the plain `gsa` row, and P+ER (no guidance) stands for N = 0.

# %%
SCHEDULE = r"gsa\.schedule(\d+)k"


def schedule_of(label: str) -> str:
    if label == "p+er":
        return "none (N = 0)"
    if label == "gsa":
        return f"preset: DMC {cfg.finetune.schedule('dmc')}, Meta-World {cfg.finetune.schedule('metaworld')}"
    steps = int(re.fullmatch(SCHEDULE, label)[1]) * 1000
    return f"linear(1,0,{steps})"


variants = sorted(m for m in set(final.method) if re.fullmatch(SCHEDULE, m))
rows = []
for label in ["p+er", "gsa", *variants]:
    part = final[final.method == label]
    rows.append({"label": label, "schedule": schedule_of(label), "tasks": part.task.nunique(),
                 "runs": len(part), "mean final score": round(part.score.mean(), 1) if len(part) else "not run"})
schedule = pd.DataFrame(rows)
schedule.to_csv(tables / "ablation_schedule.csv", index=False)
display(schedule)
if not variants:
    print("schedule-length variants (gsa.schedule<N>k) not run")


# %% [markdown]
# ## Fig. 7 · Uncertainty-aware reward instead of guidance, and Fig. 8 · fine-tuned parts
# These fill in once the runs labelled `p+er.ots`, `gsa.encoder_decoder` and `gsa.dynamics` exist.
#
# The cpu preset's runs of these variants are fixed in `gsa.experiments.studies.ABLATIONS` (December 6, 2026,
# before any of them ran; `gsa sweep --preset cpu --ablations` runs them, resumably), 3 seeds, 50k frames:
# - Fig. 7 on `mw-assembly` and `mw-stick-pull` (the paper's two tasks): P+ER with its imagined rewards labelled
#   by Optimistic Thompson Sampling over a reward ensemble (`finetune.reward_uncertainty=True`), beside the cpu
#   study's `p+er` and `gsa` runs there.
# - Fig. 8 on `dmc-cheetah-run` and `dmc-walker-run-backwards`: GSA fine-tuning only the encoder and decoder
#   (`finetune.train_parts=encoder_decoder`) or only the dynamics (`finetune.train_parts=dynamics`), beside the
#   study's `gsa` runs ("all"). The paper uses quadruped-walk; at this scale the quadruped's scores are mostly
#   those of its random starts (the cpu study's quadruped-run), which would hide any difference between the
#   variants, so the two tasks are the study's DMC tasks where GSA had learned most by 50k frames.

# %%
planned = {f"{a.method}.{a.variant}": a.tasks for a in ABLATIONS.get(preset, ())}  # the preset's fixed variants
slots = {7: ("uncertainty-aware reward", ["p+er", "p+er.ots", "gsa"], ["p+er.ots"]),
         8: ("fine-tuned parts", ["gsa", "gsa.encoder_decoder", "gsa.dynamics"], ["gsa.encoder_decoder", "gsa.dynamics"])}
for number, (title, group, variant_labels) in slots.items():
    # rows: the tasks the variants are planned on or have results on; the other labels are their references
    tasks = sorted({t for v in variant_labels for t in planned.get(v, ())} | set(results[results.method.isin(variant_labels)].task))
    part = final[final.method.isin(group) & final.task.isin(tasks)]
    table = analysis.per_task_table(part) if len(part) else None
    cells = {}
    for label in group:
        if table is not None and label in set(table.index.get_level_values("method")):
            cells[label] = table.xs(label, level="method").apply(lambda r: f"{r['mean']:.1f} (n={int(r['seeds'])})", axis=1)
    frame = pd.DataFrame(cells, index=pd.Index(tasks, name="task")).reindex(columns=group).fillna("not run")
    frame.to_csv(tables / f"ablation_fig{number}.csv")
    print(f"Fig. {number} {title}, final normalised score (mean over seeds):")
    display(frame if len(frame) else "not run: no variant planned or run for this preset")
    curves = finished[finished.method.isin(group) & finished.task.isin(tasks)]
    if curves.method.isin(variant_labels).any():  # mean and 95% CI over seeds, per task
        plots.save(plots.learning_curves(curves), f"ablation_fig{number}", preset)
        if (curves.score == 0).all():  # success stays 0 until a policy finishes the task: the return shows progress
            plots.save(plots.learning_curves(curves, y="return"), f"ablation_fig{number}_returns", preset)
    else:
        print("no curves yet: no finished run of", " / ".join(variant_labels))
