"""Continual adaptation (method §8): the chain's order and weight hand-over, resume inside a task after a
kill, PackNet masks through a real chain, the quadruped-only world model."""
import copy
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from gsa.config import preset
from gsa.train import checkpoint
from gsa.train.continual import continual

TASKS = ("dmc-quadruped-stand", "dmc-quadruped-walk")
SETTINGS = {"world_model.obs": "state", "pretrain.steps": 20, "pretrain.seq_len": 16, "pretrain.batch_size": 4,
            "continual.tasks": TASKS, "continual.frames": 2000, "continual.packnet_retrain_updates": 5,
            "finetune.warmup_frames": 1000, "finetune.batch_size": 4, "finetune.seq_len": 16, "finetune.train_ratio": 8,
            "finetune.bc_steps": 20, "finetune.bc_batch_size": 8, "finetune.retrieval_k": 2, "finetune.eval_every": 2000,
            "finetune.eval_episodes": 1, "finetune.checkpoint_every": 1000, "finetune.units": 32,
            "drqv2.batch_size": 8, "drqv2.hidden_dim": 32, "drqv2.feature_dim": 8, "drqv2.seed_frames": 1000}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Quadruped-only offline data (state mode, no rendering) and a results/checkpoint root."""
    from gsa.data.collect import collect

    root = tmp_path_factory.mktemp("continual")
    cfg = preset("smoke", {**SETTINGS, "data.root": str(root / "data"), "data.obs": "state",
                           "data.dmc_embodiments": ("quadruped",), "data.dmc_episodes": 4, "data.dmc_length": 40,
                           "data.dmc_sources": ("random", "ou"), "data.mw_tasks": ()})
    collect(cfg.data, progress=False)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GSA_RESULTS_DIR", str(root / "results"))
        patch.setenv("GSA_ROOT", str(root))
        yield cfg, root


def test_gsa_chain_hands_weights_over_and_resumes_inside_a_task(setup, monkeypatch):
    from gsa.agents.dreamer import DreamerAgent

    cfg, root = setup
    loaded = []
    original = DreamerAgent.load_state_dict
    monkeypatch.setattr(DreamerAgent, "load_state_dict", lambda self, s: loaded.append(s) or original(self, s))
    table = pd.read_csv(continual(cfg, "gsa", experiment="straight", progress=False))
    assert table["task"].tolist() == list(TASKS) and table["position"].tolist() == [1, 2]
    wm_state = checkpoint.load(root / "checkpoints/smoke/world_model/quadruped/checkpoint.pt", kind="pretrain")
    assert wm_state["benchmark"] == "quadruped"
    runs = root / "results/runs/straight/gsa"
    first = checkpoint.load(root / f"checkpoints/runs/straight/gsa/{TASKS[0]}/seed0/checkpoint.pt", kind="finetune")
    assert len(loaded) == 1                                       # task 2 started from task 1's final agent
    assert all(torch.equal(v, first["agent"]["wm"][k]) for k, v in loaded[0]["wm"].items())
    info = pd.read_json(runs / TASKS[1] / "seed0/retrieval.json", typ="series")
    assert info["position"] == 1 and info["earlier_episodes"] == len(first["replay"]) and info["embodiment_precision"] == 1.0
    start_2 = pd.read_json(root / f"checkpoints/runs/straight/gsa/{TASKS[1]}/seed0/events.jsonl", lines=True)
    done_1 = pd.read_json(root / f"checkpoints/runs/straight/gsa/{TASKS[0]}/seed0/events.jsonl", lines=True)
    assert start_2["time"].min() > done_1[done_1.event == "done"]["time"].max()

    # the same chain killed in task 2 after a checkpoint, then resumed: the same task-2 run
    for kind in ("results/runs", "checkpoints/runs"):
        shutil.copytree(root / kind / "straight/gsa" / TASKS[0], root / kind / "killed/gsa" / TASKS[0])
    continual(cfg, "gsa", experiment="killed", progress=False, stop_at=(1, 1000))
    assert not (root / "results/runs/killed/gsa" / TASKS[1] / "seed0/done.json").exists()
    continual(cfg, "gsa", experiment="killed", progress=False)
    a = pd.read_csv(runs / TASKS[1] / "seed0/train.csv")
    b = pd.read_csv(root / "results/runs/killed/gsa" / TASKS[1] / "seed0/train.csv")
    numeric = a.select_dtypes("number").columns.drop("fps")
    np.testing.assert_allclose(b[numeric].to_numpy(float), a[numeric].to_numpy(float), rtol=1e-5, atol=1e-6)
    events = pd.read_json(root / f"checkpoints/runs/killed/gsa/{TASKS[1]}/seed0/events.jsonl", lines=True)
    assert events["event"].tolist() == ["start", "resume", "done"]


def test_packnet_chain_keeps_task_one_weights_and_scores_each_task_with_its_mask(setup):
    cfg, root = setup
    table = pd.read_csv(continual(cfg, "packnet", experiment="pack", progress=False))
    rows = table[table.method == "packnet"]
    assert rows["task"].tolist() == list(TASKS) and rows["score_masked"].notna().all()
    one = torch.load(root / f"checkpoints/runs/pack/packnet/{TASKS[0]}/seed0/packnet.pt", weights_only=False)
    two = torch.load(root / f"checkpoints/runs/pack/packnet/{TASKS[1]}/seed0/packnet.pt", weights_only=False)
    assert two["packnet"]["task"] == 3
    for owner_1, owner_2, kept_1, kept_2 in zip(one["packnet"]["owner"], two["packnet"]["owner"],
                                                one["packnet"]["kept"], two["packnet"]["kept"]):
        mine = owner_1 == 1
        assert torch.equal(owner_2[mine], owner_1[mine]) and torch.equal(kept_2[mine], kept_1[mine])
    assert any((o == 2).any() for o in two["packnet"]["owner"])


def test_chain_refuses_other_embodiments_and_methods(setup):
    cfg, _ = setup
    other = copy.deepcopy(cfg)
    other.continual.tasks = ("dmc-walker-walk",)
    with pytest.raises(ValueError, match="quadruped"):
        continual(other, "gsa", progress=False)
    with pytest.raises(ValueError, match="continual method"):
        continual(cfg, "drqv2", progress=False)
