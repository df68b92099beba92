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
# # 02 · Pre-training the generalist world model
# One RSSM world model learns the dynamics of every embodiment from the reward-free offline data
# (paper Eq. 1, SPEC §4): pixel reconstruction + KL(sg(q)‖p) + 0.1·KL(q‖sg(p)), free bits 1 nat,
# zero-padded actions with a mask. No reward or continue head. The run resumes from its checkpoint.

# %% tags=["parameters"]
preset = "smoke"      # smoke | cpu | paper
steps = None          # pre-training steps (default: the preset's)
root = None           # dataset directory (default: the preset's data.root; run 01_dataset first)
out = None            # checkpoint directory (default: checkpoints/<preset>/world_model)
context = 5           # open-loop figure: frames observed before imagining
seed = 0

# %%
import pandas as pd
import torch

from gsa import plots
from gsa.config import preset as get_preset
from gsa.models.world_model import WorldModel, parameter_counts
from gsa.train.pretrain import default_out, load_world_model, open_dataset, pretrain, to_torch

overrides = {"pretrain.seed": seed}
if steps is not None:
    overrides["pretrain.steps"] = steps
cfg = get_preset(preset, overrides)
out = out or default_out(cfg)
cfg.world_model

# %% [markdown]
# ## Model size
# Parameters per part for this preset, and for the paper's model (built on the `meta` device, no memory):
# the paper preset counts ≈ 281M without heads, as in the public code.

# %%
with torch.device("meta"):
    paper_model = WorldModel(get_preset("paper").world_model)
sizes = pd.DataFrame({preset: parameter_counts(WorldModel(cfg.world_model)),
                      "paper": parameter_counts(paper_model)}) / 1e6
sizes.round(3).rename(columns=lambda c: f"{c} (M)")

# %% [markdown]
# ## Train

# %%
checkpoint = pretrain(cfg, root=root, out=out)
log = pd.read_csv(out / "train.csv")
log.tail()

# %%
fig = plots.loss_curves(log)
plots.save(fig, "pretrain_losses")

# %% [markdown]
# ## Reconstructions and open-loop predictions
# One episode per embodiment: the model filters the first `context` frames, then imagines the rest from
# the recorded (padded) actions alone. A generalist model keeps each embodiment's look and motion.

# %%
model, _, state = load_world_model(checkpoint)
model.eval()
dataset = open_dataset(cfg, root)
first = dataset.manifest.drop_duplicates("embodiment")
length = int(dataset.lengths[first.index].min())
wm = cfg.world_model
episodes = [dataset.episode(int(i)) for i in first.index]
batch = {
    "observation": torch.stack([torch.from_numpy(e["observation"][:length]) for e in episodes]),
    "action": torch.zeros(len(episodes), length, wm.action_size),
    "action_mask": torch.zeros(len(episodes), wm.action_size),
    "is_first": torch.zeros(len(episodes), length, dtype=torch.bool),
}
batch["is_first"][:, 0] = True
for i, (e, native) in enumerate(zip(episodes, first["action_size"])):
    batch["action"][i, :, :dataset.action_size] = torch.from_numpy(e["action"][:length])
    batch["action_mask"][i, :native] = 1
torch.manual_seed(seed)
pred = model.openloop(batch, context=context)
fig = plots.openloop_grid(batch["observation"].numpy(), pred.numpy(), list(first["embodiment"]), context)
plots.save(fig, "pretrain_openloop")

# %%
error = (pred.float() - batch["observation"].float()).square().mean(dim=(2, 3, 4))  # (N, T)
pd.DataFrame({"embodiment": first["embodiment"].values,
              "context MSE": error[:, :context].mean(1).numpy(),
              "imagined MSE": error[:, context:].mean(1).numpy()})

# %%
assert state["step"] == cfg.pretrain.steps
assert log["recon"].iloc[-1] < log["recon"].iloc[0]
