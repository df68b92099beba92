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
# # 05 · Theory: numerical checks of the paper's propositions (App. B)
# The paper backs its two techniques with three propositions. None needs training at scale to check:
# 1. **Retrieval lowers distribution shift** — the retrieved part of the offline data is closer, in total
#    variation (TV), to the online data than the whole offline dataset is.
# 2. **Rehearsal limits forgetting** — replaying earlier data while training on new data keeps the earlier
#    task's loss low.
# 3. **Guidance gains at least α·δ/(1−γ)** — a policy that takes the guide's action with probability α and
#    the explorer's otherwise beats the explorer by at least α·δ/(1−γ), where δ = min_s A_explorer(s, guide(s)).
#
# The functions live in `gsa/theory.py` (method §11); `tests/test_theory.py` asserts the same checks with
# stated tolerances.

# %% tags=["parameters"]
preset = "smoke"   # the real-data check uses this preset's dataset and pre-trained world model, if present
instances = 200    # random problems per synthetic check
real_data = True   # False: skip the real-data check of Prop. 1
seed = 0

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from gsa import plots, theory
from gsa.config import preset as get_preset
from gsa.experiments.studies import study
from gsa.train.pretrain import world_model_path
from gsa.envs import get_spec

rng = np.random.default_rng(seed)

# %% [markdown]
# ## 1 · Retrieval and total variation
# Synthetic: offline data from six Gaussian "tasks" in 2-D, online data from a blob near one of them; the
# k offline points nearest to one online query (the reset state, as in retrieval) form D_ret. TVs are
# exact on a shared grid. The mixture identity D_off = β·D_ret + (1−β)·D_rest bounds TV(D_off, D_on) by
# β·TV(D_ret, D_on) + (1−β)·TV(D_rest, D_on), so retrieval helps whenever D_rest is the farther part.

# %%
tv = pd.DataFrame([vars(theory.retrieval_tv_check(rng)) for _ in range(instances)])
summary = tv[["tv_offline", "tv_retrieved", "tv_rest"]].agg(["mean", "std"]).T
summary["share retrieval wins"] = [np.nan, (tv.tv_retrieved < tv.tv_offline).mean(), np.nan]
display(summary.round(3))
fig, ax = plt.subplots(figsize=(4, 4))
ax.scatter(tv.tv_offline, tv.tv_retrieved, s=8, alpha=0.6)
ax.plot([0, 1], [0, 1], "k--", lw=1)
ax.set_xlabel("TV(offline, online)"), ax.set_ylabel("TV(retrieved, online)")
ax.set_title(f"Prop. 1: {instances} random mixtures")
plots.save(fig, "theory_retrieval_tv", preset)

# %% [markdown]
# **On real data.** The pre-trained encoder's features of the task's online observations (random actions:
# a stand-in for the first episodes) against the whole offline dataset and against the retrieved
# trajectories, one task per benchmark of the preset's study, with one shared projection and grid.

# %%
cfg = get_preset(preset)
rows = []
for benchmark in ("dmc", "metaworld"):
    task = next((t for t in study(preset).tasks if get_spec(t).benchmark == benchmark), None)
    if not real_data or task is None or not world_model_path(cfg, benchmark).exists():
        why = "real_data=False" if not real_data else "no pre-trained world model for this preset"
        rows.append({"task": task, "result": f"not run ({why})"})
        continue
    rows.append(theory.real_retrieval_tv(cfg, task, frames_per_episode=20, seed=seed))
display(pd.DataFrame(rows))

# %% [markdown]
# ## 2 · Rehearsal and forgetting
# A small MLP fits y = sin(x) on task A (x ∈ [−π, 0]), then on task B (x ∈ [0, π]) alone or with a quarter
# of every batch replayed from A (the paper's 4 of 16 rows). Mean and spread over seeds.

# %%
forgetting = pd.DataFrame([vars(theory.rehearsal_forgetting_check(seed=s, steps=600)) for s in range(3)])
display(forgetting.agg(["mean", "std"]).T.map(lambda v: f"{v:.2e}"))
fig, ax = plt.subplots(figsize=(4.5, 3))
means = forgetting[["loss_a_before", "loss_a_plain", "loss_a_rehearsal"]].mean()
ax.bar(["after A", "after B alone", "after B + rehearsal"], means, color=["grey", "tab:red", "tab:green"])
ax.set_yscale("log"), ax.set_ylabel("task-A test MSE (log)")
ax.set_title("Prop. 2: forgetting of task A")
plots.save(fig, "theory_rehearsal", preset)

# %% [markdown]
# ## 3 · Execution guidance on exactly solved MDPs
# Random 8-state, 4-action MDPs (γ = 0.9), a random stochastic explorer and a deterministic guide —
# greedy w.r.t. the explorer's Q (δ ≥ 0) or a random one (any δ). The α-coupled policy's gain
# η(π_α) − η(π_e), computed exactly, against the bound α·δ/(1−γ).

# %%
gains = pd.DataFrame([{**vars(theory.guidance_gain_check(rng, alpha, guide=guide)), "guide": guide}
                      for guide in ("greedy", "random") for alpha in (0.1, 0.25, 0.5, 0.75, 1.0)
                      for _ in range(instances // 5)])
gains["slack"] = gains.gain - gains.bound
display(gains.groupby(["guide", "alpha"]).agg(min_slack=("slack", "min"), mean_gain=("gain", "mean"),
                                               mean_bound=("bound", "mean")).round(4))
assert (gains.slack >= -1e-9).all(), "the bound of Prop. 3 is violated"
fig, ax = plt.subplots(figsize=(4, 4))
for guide, group in gains.groupby("guide"):
    ax.scatter(group.bound, group.gain, s=6, alpha=0.5, label=f"{guide} guide")
lims = [gains[["bound", "gain"]].min().min(), gains[["bound", "gain"]].max().max()]
ax.plot(lims, lims, "k--", lw=1, label="gain = bound")
ax.set_xlabel("α·δ / (1−γ)"), ax.set_ylabel("η(π_α) − η(π_explorer)"), ax.legend(fontsize=7)
ax.set_title("Prop. 3: every point above the line")
plots.save(fig, "theory_guidance", preset)
