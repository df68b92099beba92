"""Continual task adaptation (method §8, paper Fig. 5): ``gsa continual --method gsa|packnet``.

The quadruped solves a chain of tasks, stand → walk → run → jump → roll → roll-fast
(``continual.tasks``), ``continual.frames`` frames each, every task starting from the previous task's
weights:

- **GSA**: the world model is first pre-trained on the quadruped's offline data only (``pretrain`` with
  benchmark "quadruped", ``checkpoints/<preset>/world_model/quadruped``). Task 1 fine-tunes it as GSA does;
  each later task starts from the whole agent the previous task ended with (world model, actor-critic,
  optimisers). It may use all earlier experience: besides the task's retrieved offline trajectories
  (``finetune.offline_share`` of every batch) the online episodes of every earlier task are replayed as a
  second offline source (``continual.earlier_share``). Their rewards belong to other tasks, so, like the
  retrieved rows, they train the world model and start imagination but never the reward head. Retrieval
  and the BC prior use the pre-trained encoder for every task.
- **PackNet** (``gsa.agents.packnet``): DrQ-v2 with PackNet's task masks. After each task the free weights
  are pruned to a 1 / (tasks left) share, those are re-trained for ``continual.packnet_retrain_updates``
  updates on the task's replay, then fixed; the task's score is evaluated with its mask afterwards.

Each task is an ordinary run of the online loop under ``results/runs/<experiment>/<method>/<task>/seed<k>``
(checkpoints under ``checkpoints/runs/...``), so a killed chain resumes inside the task it was in, and
finished tasks are skipped. The chain's table, ``results/<experiment>_chain.csv`` (method, seed, position,
task, final score), and the tidy curves, ``results/<experiment>.csv``, are rewritten at every call.

    continual(preset("cpu"), "gsa")            # or: gsa continual --preset cpu --method gsa
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from gsa.agents.dreamer import DreamerAgent
from gsa.agents.packnet import PackNetDrQv2
from gsa.config import Config, to_dict
from gsa.data.episodes import atomic_write
from gsa.data.sampler import MixedSampler, Replay
from gsa.envs import get_spec, mask
from gsa.paths import results_dir
from gsa.train import checkpoint
from gsa.train.finetune import (check_same_retrieval, make_guidance, resume_ignores, retrieve, run_paths, saved_prior,
                                train_prior)
from gsa.train.online import eval_env, evaluate, is_done, online, score
from gsa.train.pretrain import default_out, load_world_model, pretrain, to_torch

CONTINUAL_METHODS = ("gsa", "packnet")
EMBODIMENT = "quadruped"


def chain_world_model(cfg: Config, dataset_root=None, progress: bool = True) -> Path:
    """The quadruped-only world model (pre-trained, or resumed, on the quadruped's offline data)."""
    path = default_out(cfg, EMBODIMENT) / "checkpoint.pt"
    if path.exists() and checkpoint.load(path, kind="pretrain")["step"] >= cfg.pretrain.steps:  # steps asked now
        return path
    return pretrain(cfg, dataset_root, path.parent, progress, benchmark=EMBODIMENT)


def continual(cfg: Config, method: str = "gsa", experiment: str | None = None, world_model: str | Path | None = None,
              dataset_root=None, progress: bool = True, stop_at: tuple[int, int] | None = None) -> Path:
    """Run (or resume) the chain with ``method``; returns the chain table's path. ``stop_at = (position,
    frames)`` ends the run of the chain's task ``position`` early, as a kill right after a checkpoint would."""
    if method not in CONTINUAL_METHODS:
        raise ValueError(f"unknown continual method {method!r}; choose from {CONTINUAL_METHODS}")
    c = cfg.continual
    for task in c.tasks:
        if get_spec(task).domain != EMBODIMENT:
            raise ValueError(f"continual.tasks must be {EMBODIMENT} tasks; {task!r} is not")
    cfg = copy.deepcopy(cfg)
    cfg.finetune.frames = c.frames
    experiment = experiment or f"continual-{cfg.name}"
    wm_path = None
    if method == "gsa":
        cfg.finetune.pretrained = cfg.finetune.rehearsal = cfg.finetune.guidance = True
        wm_path = Path(world_model) if world_model else chain_world_model(cfg, dataset_root, progress)
    table = None
    for position, task in enumerate(c.tasks):
        run, ckpt = run_paths(cfg, task, method, experiment)
        finished = is_done(run, c.frames) and (method == "gsa" or (run / "packnet.json").exists())
        if finished:
            continue
        stop = stop_at[1] if stop_at is not None and stop_at[0] == position else None
        if method == "gsa":
            _gsa_task(cfg, task, position, experiment, wm_path, dataset_root, progress, stop)
        else:
            _packnet_task(cfg, task, position, experiment, progress, stop)
        if stop is not None:
            break
        table = chain_table(cfg, experiment)  # the table grows task by task
    return table or chain_table(cfg, experiment)


def _previous(cfg: Config, method: str, experiment: str, position: int) -> list[dict]:
    """The final checkpoints of the chain's tasks before ``position``, in order."""
    return [checkpoint.load(run_paths(cfg, task, method, experiment)[1], kind="finetune")
            for task in cfg.continual.tasks[:position]]


def _gsa_task(cfg, task, position, experiment, wm_path, dataset_root, progress, stop) -> None:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    run, ckpt = run_paths(cfg, task, "gsa", experiment)
    saved = checkpoint.load(ckpt, kind="finetune") if ckpt.exists() else None
    checkpoint.seed_everything(cfg.finetune.seed)
    wm, wm_cfg, _ = load_world_model(wm_path, device)
    cfg.world_model = wm_cfg.world_model
    if saved is not None:
        checkpoint.check_config(saved["config"], to_dict(cfg), ckpt, ignore=resume_ignores("gsa") - {"continual"})
    retrieved, info = retrieve(cfg, task, wm, wm_path, dataset_root, device, EMBODIMENT)  # pre-trained encoder
    if saved is not None:
        check_same_retrieval(run, info)
    agent = DreamerAgent(wm, cfg, device)
    previous = _previous(cfg, "gsa", experiment, position)
    if saved is None and previous:
        agent.load_state_dict(previous[-1]["agent"])                    # weight hand-over
    sources = [(retrieved, cfg.finetune.offline_share)]
    if previous:
        wm_c = cfg.world_model
        earlier = Replay(EMBODIMENT, (wm_c.state_size,) if wm_c.obs == "state" else (3, wm_c.image_size, wm_c.image_size),
                         "state" if wm_c.obs == "state" else "observation")
        earlier.episodes = [episode for state in previous for episode in state["replay"]]
        sources.append((earlier, cfg.continual.earlier_share))
    prior = train_prior(cfg, retrieved, device, progress) if saved is None else saved_prior(cfg, task, saved, device)
    info = {**info, "position": position, "earlier_episodes": sum(len(s["replay"]) for s in previous)}
    online(cfg, task, agent, run, ckpt, saved, sources, prior, make_guidance(cfg, task), info, method="gsa",
           progress=progress, stop_at=stop)


def _packnet_task(cfg, task, position, experiment, progress, stop) -> None:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    c, wm = cfg.continual, cfg.world_model
    run, ckpt = run_paths(cfg, task, "packnet", experiment)
    obs_shape = (3, wm.image_size, wm.image_size) if wm.obs == "pixels" else (wm.state_size,)
    agent = PackNetDrQv2(obs_shape, mask(get_spec(task).embodiment.action_size, wm.action_size), cfg.drqv2, device)
    if not is_done(run, c.frames):
        saved = checkpoint.load(ckpt, kind="finetune") if ckpt.exists() else None
        checkpoint.seed_everything(cfg.finetune.seed)
        if saved is not None:
            checkpoint.check_config(saved["config"], to_dict(cfg), ckpt, ignore=resume_ignores("drqv2") - {"continual"})
        elif position > 0:                                              # weight hand-over (after the last prune)
            before = run_paths(cfg, c.tasks[position - 1], "packnet", experiment)[1].parent / "packnet.pt"
            agent.load_state_dict(torch.load(before, map_location=device, weights_only=False))
        online(cfg, task, agent, run, ckpt, saved, [], None, None, {"position": position}, method="packnet",
               progress=progress, stop_at=stop)
        if not is_done(run, c.frames):
            return
    # prune to this task's share, re-train the kept weights on the task's replay, fix them, evaluate with the mask
    final = checkpoint.load(ckpt, kind="finetune")
    agent.load_state_dict(final["agent"])
    agent.packnet.prune(keep=1.0 / (len(c.tasks) - position))
    replay = Replay(EMBODIMENT, obs_shape, "observation" if wm.obs == "pixels" else "state")
    replay.episodes = final["replay"]
    sampler = MixedSampler([(replay, 1.0)], agent.batch_size, agent.window, wm.action_size, seed=cfg.finetune.seed,
                           obs_key=replay.obs_key, obs_shape=obs_shape)
    for i in range(c.packnet_retrain_updates):
        agent.update(to_torch(sampler.sample(step=i), device), step=final["loop"]["steps"])
    agent.packnet.next_task()
    env = eval_env(cfg, task, cfg.finetune.seed)
    with agent.packnet.masked(position + 1):
        result = evaluate(agent, env, cfg.finetune.eval_episodes, seed=pruned_eval_seed(cfg.finetune.seed))
    env.close()
    atomic_write(ckpt.parent / "packnet.pt", lambda out: torch.save(agent.state_dict(), out))
    result["score"] = score(task, result["episode_return"], result["success"])
    (run / "packnet.json").write_text(json.dumps({"retrain_updates": c.packnet_retrain_updates, **result}, indent=2))


def pruned_eval_seed(seed: int) -> int:
    """The first reset seed of PackNet's evaluation with its task mask after pruning (``score_masked``), on the
    evaluation env of a run with ``seed``."""
    return seed * 100_000 + 90_000


def chain_table(cfg: Config, experiment: str) -> Path:
    """``results/<experiment>_chain.csv``: one row per finished (method, seed, task) of the experiment, with
    the last evaluation's score (PackNet: also the score with its task mask after pruning); and, through
    :func:`~gsa.experiments.sweep.tidy`, ``results/<experiment>.csv`` with every evaluation."""
    from gsa.experiments.sweep import tidy

    rows = []
    for method_dir in sorted((results_dir() / "runs" / experiment).glob("*")):
        for position, task in enumerate(cfg.continual.tasks):
            for seed_dir in sorted((method_dir / task).glob("seed*")):
                if not is_done(seed_dir, cfg.continual.frames):
                    continue
                last = pd.read_csv(seed_dir / "eval.csv").iloc[-1]
                pruned = seed_dir / "packnet.json"
                rows.append({"method": method_dir.name, "seed": int(seed_dir.name.removeprefix("seed")),
                             "position": position + 1, "task": task, "frames": int(last["frame"]),
                             "score": score(task, last["episode_return"], last["success"]),
                             "score_masked": json.loads(pruned.read_text())["score"] if pruned.exists() else np.nan})
    path = results_dir() / f"{experiment}_chain.csv"
    table = pd.DataFrame(rows, columns=["method", "seed", "position", "task", "frames", "score", "score_masked"])
    atomic_write(path, lambda out: out.write(table.to_csv(index=False).encode()))
    if rows:
        tidy(experiment)
    return path
