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
# # 01 · The non-curated offline dataset
# GSA pre-trains on reward-free, mixed-quality trajectories of many embodiments (paper §3, method §3):
# DMControl exploration data (5 embodiments: Plan2Explore snapshots from early to late in its reward-free
# training, uniform random and OU noise) and noisy Meta-World experts (σ ∈ {0.1, 0.3, 0.5, 1, 2}).
# This notebook generates the preset's dataset (or finishes an interrupted collection), packs it for fast
# sampling, and shows its card: what is in it, what it looks like, and how good it is.

# %% tags=["parameters"]
preset = "smoke"      # smoke | cpu | paper (sizes in gsa/config.py)
root = None           # dataset directory (default: the preset's data.root)
workers = None        # collection processes (default: the preset's)
seed = 0

# %%
from IPython.display import Markdown, display
import pandas as pd

from gsa.config import preset as get_preset
from gsa.data.card import tables, write_card
from gsa.data.collect import collect
from gsa.data.store import OfflineDataset
from gsa.paths import resolve
from gsa import plots

overrides = {"data.seed": seed}
if root is not None:
    overrides["data.root"] = root
if workers is not None:
    overrides["data.workers"] = workers
cfg = get_preset(preset, overrides)
cfg.data

# %% [markdown]
# ## Collect
# First, one Plan2Explore explorer per DMC embodiment learns to explore without rewards (resumable;
# `data/<preset>/explorers/<embodiment>/train.csv`). Then workers run whole episodes in state space and
# render the frames from the stored physics states (a state-only dataset, `data.obs="state"`, skips
# rendering). Episodes already on disk are kept (the collection resumes where it stopped).

# %%
manifest = collect(cfg)
dataset = OfflineDataset(resolve(cfg.data.root))
print(f"{len(dataset)} episodes, {dataset.index['n_frames']} frames, padded action size {dataset.action_size}")

# %% [markdown]
# ## Dataset card

# %%
parts = tables(dataset.root)  # the card's statistics, computed once
card = write_card(dataset.root, parts)
display(Markdown(card.read_text()))

# %% [markdown]
# ## What the embodiments see
# One episode per embodiment (the policy that collected it on the left).

# %%
if dataset.frame_shape:  # a state-only dataset has no frames
    fig = plots.frame_grid(dataset, seed=seed)
    plots.save(fig, "dataset_frames", preset)

# %% [markdown]
# ## Actions
# Real action dims only — padded dims are exactly zero. Uniform random actions are flat; OU noise
# piles up at the bounds ±1 (clipping); noisy experts concentrate where the expert acts.

# %%
fig = plots.action_histograms(dataset, seed=seed)
plots.save(fig, "dataset_actions", preset)

# %% [markdown]
# ## Quality (analysis only — GSA never sees these rewards)
# Hidden task returns spread from poor to good — Plan2Explore's later snapshots reach returns that random
# and OU actions do not — and Meta-World success falls as σ grows: the data is mixed-quality, as in the paper.

# %%
analysis = pd.read_csv(dataset.root / "analysis.csv", dtype={"id": str})
fig = plots.data_quality(dataset.manifest, analysis)
plots.save(fig, "dataset_quality", preset)

# %%
success = parts.get("success")
success

# %%
assert len(dataset) == len(manifest) and dataset.index["n_frames"] == int((manifest["length"] + 1).sum())
if success is not None and len(success) > 1:  # the noisiest experts succeed less often than the cleanest
    assert success["success_final"].iloc[-1] <= success["success_final"].iloc[0]
