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
# # 02 · Pre-training the generalist world models
# An RSSM world model learns the dynamics of every embodiment of a benchmark from the reward-free offline
# data (paper Eq. 1): pixel (or state) reconstruction + KL(sg(q)‖p) + 0.1·KL(q‖sg(p)), free bits 1 nat,
# zero-padded actions with a mask. No reward or continue head. As in the paper, there is one model per
# benchmark (DMControl's five embodiments, Meta-World's arm); `pretrain.benchmark="all"` trains a single
# model on everything instead. Each run resumes from its checkpoint.

# %% tags=["parameters"]
preset = "smoke"      # smoke | cpu | paper
steps = None          # pre-training steps (default: the preset's)
root = None           # dataset directory (default: the preset's data.root; run 01_dataset first)
context = 5           # open-loop figure: frames observed before imagining
seed = 0

# %%
import pandas as pd
import torch

from gsa import plots
from gsa.config import preset as get_preset
from gsa.models.world_model import WorldModel, parameter_counts
from gsa.train.pretrain import load_world_model, open_dataset, pretrain_all

overrides = {"pretrain.seed": seed}
if steps is not None:
    overrides["pretrain.steps"] = steps
cfg = get_preset(preset, overrides)
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
checkpoints = pretrain_all(cfg, root=root)
logs = {name: pd.read_csv(path.parent / "train.csv") for name, path in checkpoints.items()}
pd.concat({name: log.tail(1) for name, log in logs.items()})

# %%
for name, log in logs.items():
    fig = plots.loss_curves(log)
    fig.suptitle(f"world model: {name}")
    plots.save(fig, f"pretrain_losses_{name}", preset)

# %% [markdown]
# ## Reconstructions and open-loop predictions
# One episode per embodiment: the model filters the first `context` frames, then imagines the rest from
# the recorded (padded) actions alone. A generalist model keeps each embodiment's look and motion.

# %%
wm = cfg.world_model
key = "observation" if wm.obs == "pixels" else "state"
dataset = open_dataset(cfg, root)
first = dataset.manifest.drop_duplicates("embodiment")
length = int(dataset.lengths[first.index].min())
episodes = [dataset.episode(int(i)) for i in first.index]
batch = {
    key: torch.stack([torch.from_numpy(e[key][:length]) for e in episodes]),
    "action": torch.zeros(len(episodes), length, wm.action_size),
    "action_mask": torch.zeros(len(episodes), wm.action_size),
    "is_first": torch.zeros(len(episodes), length, dtype=torch.bool),
}
if key == "state":
    batch[key] = torch.nn.functional.pad(batch[key], (0, wm.state_size - batch[key].shape[-1]))
batch["is_first"][:, 0] = True
for i, (e, native) in enumerate(zip(episodes, first["action_size"])):
    batch["action"][i, :, :dataset.action_size] = torch.from_numpy(e["action"][:length])
    batch["action_mask"][i, :native] = 1
preds, states = [], {}
for i, benchmark in enumerate(first["benchmark"]):  # each episode through its benchmark's model
    name = benchmark if benchmark in checkpoints else "all"
    model, _, states[name] = load_world_model(checkpoints[name])
    model.eval()
    torch.manual_seed(seed)
    preds.append(model.openloop({k: v[i:i + 1] for k, v in batch.items()}, context=context)[0])
pred = torch.stack(preds)
if key == "observation":
    fig = plots.openloop_grid(batch[key].numpy(), pred.numpy(), list(first["embodiment"]), context)
    plots.save(fig, "pretrain_openloop", preset)

# %%
target = batch[key].float()
error = (pred.float() - target).square().flatten(2).mean(-1)  # (N, T)
pd.DataFrame({"embodiment": first["embodiment"].values,
              "context MSE": error[:, :context].mean(1).numpy(),
              "imagined MSE": error[:, context:].mean(1).numpy()})

# %%
assert all(state["step"] == cfg.pretrain.steps for state in states.values())
assert all(log["recon"].iloc[-1] < log["recon"].iloc[0] for log in logs.values())
