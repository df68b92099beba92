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
# # 00 · The 73 tasks
# One pre-trained world model per benchmark is fine-tuned on each of these tasks (paper §4, method §2):
# 23 DeepMind Control tasks over 5 embodiments (including the custom backwards / backflip / jump / roll
# tasks and the `-hard` variants) and the 50 Meta-World MT50 tasks on one Sawyer arm.
# Observations are 64×64 RGB frames with the render settings of method §2; this notebook shows one frame of
# every task after a few random actions and lists what each embodiment looks like.

# %% tags=["parameters"]
preset = "smoke"      # smoke | cpu | paper (all show every task)
seed = 0              # env seed of every task
random_steps = 5      # random agent steps before the frame is taken
size = 64             # image side in pixels
columns = 10          # frames per row of the grid

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from gsa.envs import EMBODIMENTS, TASKS, make
from gsa import plots

# %% [markdown]
# ## Embodiments
# Action sizes differ (1 to 12): multi-embodiment batches zero-pad actions to the largest size, with a mask.

# %%
embodiments = pd.DataFrame([vars(e) for e in EMBODIMENTS.values()]).set_index("name")
embodiments["tasks"] = [sum(s.domain == name for s in TASKS.values()) for name in embodiments.index]
embodiments

# %%
frames = {}
rng = np.random.default_rng(seed)
for task in tqdm(TASKS, desc="rendering"):
    env = make(task, size=size, seed=seed)
    frame, _ = env.reset()
    for _ in range(random_steps):
        frame, *_ = env.step(rng.uniform(-1, 1, env.action_space.shape))
    frames[task] = frame
    env.close()

# %%
rows = int(np.ceil(len(frames) / columns))
fig, axes = plt.subplots(rows, columns, figsize=(1.6 * columns, 1.75 * rows))
for ax in axes.flat:
    ax.axis("off")
for ax, (task, frame) in zip(axes.flat, frames.items()):
    ax.imshow(frame.transpose(1, 2, 0))
    ax.set_title(task.removeprefix("dmc-").removeprefix("mw-"), fontsize=7)
fig.suptitle(f"All {len(frames)} tasks, {size}×{size} observations (seed {seed})")
fig.tight_layout(rect=(0, 0, 1, 0.97))
plots.save(fig, "environments", preset)
plt.show()

# %% [markdown]
# Every frame should show its embodiment upright in view; Meta-World frames come from the `corner2`
# camera moved to (0.75, 0.075, 0.7), flipped the right way up.

# %%
assert len(frames) == 73 and all(f.shape == (3, size, size) for f in frames.values())
