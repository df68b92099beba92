"""Plan2Explore (method §3 curiosity data): disagreement as novelty, a resumable explorer, snapshots as a
collection source, and (slow) more state-space coverage than random actions."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from gsa.config import preset
from gsa.data.collect import collect, explorer_dir
from gsa.explore import Ensemble, ExplorerPolicy, explore, snapshot_frames

SMALL = {"data.explore_frames": 3_000, "data.explore_snapshots": (0.5, 1.0), "finetune.warmup_frames": 400,
         "finetune.batch_size": 4, "finetune.seq_len": 16, "finetune.train_ratio": 16, "finetune.units": 32,
         "finetune.horizon": 5, "finetune.checkpoint_every": 400, "data.dmc_length": 20}


pytestmark = pytest.mark.usefixtures("one_thread")


def test_disagreement_is_higher_on_novel_than_on_repeated_transitions():
    torch.manual_seed(0)
    ensemble = Ensemble(feat_size=16, action_size=2, embed_size=8, units=32)
    optimizer = torch.optim.Adam(ensemble.parameters(), lr=3e-3)
    seen_feat, seen_action = torch.randn(64, 16), torch.rand(64, 2) * 2 - 1
    target = torch.tanh(seen_feat[:, :8] + seen_action.sum(-1, keepdim=True))  # some dynamics
    before = ensemble.disagreement(seen_feat, seen_action).mean().item()
    for _ in range(300):  # the repeated transitions, over and over
        optimizer.zero_grad()
        ensemble.loss(seen_feat, seen_action, target).backward()
        optimizer.step()
    repeated = ensemble.disagreement(seen_feat, seen_action).mean().item()
    novel = ensemble.disagreement(3 * torch.randn(64, 16), torch.rand(64, 2) * 2 - 1).mean().item()
    assert repeated < 0.5 * before and novel > 3 * repeated, (before, repeated, novel)


def test_explorer_resumes_keeps_snapshots_and_feeds_collection(tmp_path):
    cfg = preset("smoke", {**SMALL, "data.root": str(tmp_path / "data"), "data.dmc_embodiments": ("cartpole",),
                           "data.dmc_episodes": 4, "data.mw_tasks": (), "data.workers": 1,
                           "data.explore_train_ratio": 8})  # an update every 4 × 16 / 8 = 8 agent steps
    out = explorer_dir(tmp_path / "data", "cartpole")
    explore(cfg, "cartpole", out, progress=False, stop_at=1000)  # one 1000-frame episode, then a "kill"
    assert (out / "checkpoint.pt").exists() and not list(out.glob("snapshot-*"))
    paths = explore(cfg, "cartpole", out, progress=False)  # resumes from frame 1000
    assert [p.name for p in paths] == ["snapshot-1500.pt", "snapshot-3000.pt"] and all(p.exists() for p in paths)
    log = pd.read_csv(out / "train.csv")
    assert log["frame"].tolist() == [1000, 2000, 3000]
    assert abs(log["updates"].iloc[-1] - (3000 - 400) / 2 / 8) <= 1  # 1,300 agent steps after the warm-up
    assert log["imag_reward"].iloc[-1] > 0 and log["ensemble_loss"].notna().all()  # imagined disagreement
    policy = ExplorerPolicy(paths[-1], np.random.default_rng(0))
    policy.reset()
    action = policy(np.zeros(5, np.float32))
    assert action.shape == (1,) and np.all(np.abs(action) <= 1)
    manifest = collect(cfg, progress=False)  # explorers exist: collection goes straight to the episodes
    assert manifest["source"].tolist() == ["p2e@1500", "random", "ou", "p2e@3000"]
    assert snapshot_frames(cfg) == [1500, 3000]


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_explorer_covers_more_of_cartpoles_state_space_than_random(tmp_path):
    """Coverage = occupied cells of a 10⁴ grid over cartpole's (cart position, pole angle, cart velocity,
    pole angular velocity) in 20 episodes; the explorer's last snapshot after 20k frames at train ratio 128
    (the cpu preset's) against uniform random actions. Measured in December 2026: explorer 2,284 vs random
    1,258 cells. At train ratio 32 (~560 updates) the explorer pinned the cart to a wall: 125 vs 1,258. (A
    first version counted a 20 × 20 grid over position and angle only; random actions fill all 400 of its
    cells, since the unactuated pole swings through every angle, so no explorer could pass it.)"""
    cfg = preset("smoke", {"data.root": str(tmp_path / "data"), "data.dmc_embodiments": ("cartpole",),
                           "world_model.obs": "state", "data.explore_frames": 20_000, "data.explore_snapshots": (1.0,),
                           "data.dmc_episodes": 40, "data.dmc_sources": ("p2e", "random"), "data.dmc_length": None,
                           "data.mw_tasks": (), "finetune.batch_size": 16, "finetune.units": 128,
                           "data.explore_train_ratio": 128})
    manifest = collect(cfg, progress=False)
    from gsa.data import load_episode

    def coverage(source: str) -> int:
        cells = set()
        for path in manifest[manifest["source"].str.startswith(source)]["path"]:
            state = load_episode(tmp_path / "data" / path)["state"]  # x, cos θ, sin θ, ẋ, θ̇
            angle = np.arctan2(state[:, 2], state[:, 1])
            bins = [np.clip(((v - low) / (high - low) * 10).astype(int), 0, 9) for v, low, high in
                    ((state[:, 0], -2, 2), (angle, -np.pi, np.pi), (state[:, 3], -5, 5), (state[:, 4], -15, 15))]
            cells |= set(zip(*(b.tolist() for b in bins)))
        return len(cells)

    explorer, random = coverage("p2e"), coverage("random")
    print(f"cells covered: explorer {explorer}, random {random}")
    assert explorer > 1.5 * random
