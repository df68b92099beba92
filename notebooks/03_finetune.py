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
# The pre-trained world model becomes a task specialist (paper Alg. 1, SPEC §5): retrieve the offline
# trajectories nearest to the task's reset observations, replay them next to online data (experience
# rehearsal, 4 of 16 rows), and let a BC prior trained on them steer early episodes (execution guidance).
# DreamerV3 is the same agent from scratch with every technique off. Runs are idempotent: finished runs are
# skipped, interrupted ones resume.

# %% tags=["parameters"]
preset = "smoke"                                # smoke | cpu | paper
tasks = ["dmc-cartpole-balance", "mw-reach"]    # task ids (gsa tasks)
methods = ["gsa", "dreamerv3"]                  # gsa | p+er | p | dreamerv3
seeds = [0]
experiment = None                               # results/runs/<experiment>/ (default: the preset name)
workers = None                                  # parallel runs (default: one per core)

# %%
import json

import pandas as pd

from gsa import plots
from gsa.config import preset as get_preset
from gsa.experiments.sweep import expand, read_status, sweep, tidy
from gsa.paths import results_dir

experiment = experiment or preset
cfg = get_preset(preset)
settings = {k: getattr(cfg.finetune, k) for k in
            ["frames", "warmup_frames", "train_ratio", "batch_size", "seq_len", "offline_share", "retrieval_k",
             "eval_every", "eval_episodes"]}
settings.update({f"guidance ({b})": cfg.finetune.schedule(b) for b in ("dmc", "metaworld")})
pd.Series(settings, name=preset)

# %% [markdown]
# ## Runs
# The sweep runner executes methods × tasks × seeds in parallel worker processes. Finished runs
# (`done.json`, committed with the results) are skipped, interrupted ones resume from their checkpoints.

# %%
runs = expand(experiment, preset, methods, tasks, seeds)
status = sweep(runs, workers=workers)
failed = {name: s for name, s in status.items() if s != "done"}
assert not failed, failed
read_status(runs).pivot_table(index=["task", "method"], columns="seed", values="status", aggfunc="first")

# %% [markdown]
# ## Learning curves
# Normalised score: Meta-World success × 100, DMC return / 10 (SPEC §5.8).

# %%
results = pd.read_csv(tidy(experiment))  # results/<experiment>.csv: method, task, seed, frame, return, success, score
results = results[results.task.isin(tasks) & results.method.isin(methods)]
fig = plots.learning_curves(results)
plots.save(fig, f"finetune_{experiment}")

# %% [markdown]
# ## Results table (score at the last evaluation, mean over seeds)

# %%
last = results.sort_values("frame").groupby(["task", "method", "seed"]).tail(1)
table = last.pivot_table(index="task", columns="method", values="score", aggfunc="mean").round(1)
table.to_csv(results_dir() / f"finetune_{experiment}.csv")
table

# %% [markdown]
# ## Retrieval
# Share of retrieved trajectories from the task's embodiment (always 1) and, for Meta-World, from the task
# itself (precision@k, paper §4.4).

# %%
rows = []
for run in runs:
    info = json.loads((run.paths()[0] / "retrieval.json").read_text())
    if info:
        rows.append({"task": run.task, "method": run.label, "seed": run.seed, **info})
pd.DataFrame(rows)

# %%
assert set(results.method) == set(methods) and set(results.task) == set(tasks)
assert all(r["embodiment_precision"] == 1.0 for r in rows)
