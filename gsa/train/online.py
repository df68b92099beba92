"""The online loop every agent runs through (method §5.7–5.8): interaction, warm-up, updates, evaluation,
checkpoints and resume, logs (paper Alg. 1 lines 4–end).

    run = online(cfg, task, agent, run_dir, ckpt_path, sources=[(retrieved, 0.25)], prior=prior, guidance=g)

- The agent follows the protocol of ``gsa/agents/__init__.py``: it declares its sampled ``window``,
  ``batch_size``, ``update_every`` (agent steps) and ``warmup_frames``, and acts through ``reset`` /
  ``observe`` / ``policy`` / ``executed``.
- Warm-up: the first ``agent.warmup_frames`` frames are collected before any update, by the prior if
  there is one and ``guidance.warmup_prior`` (GSA), by uniform random actions otherwise. An optional
  ``prior`` acts where ``guidance`` says (execution guidance, method §5.6; JSRL's first h steps), and the
  agent acts elsewhere.
- Each batch mixes the online replay with the offline ``sources`` ([(source, share)], e.g. retrieved data);
  the online replay gets the remaining share.
- Every ``eval_every`` frames: ``eval_episodes`` episodes with the agent's mean action on a separate env.
  Every ``checkpoint_every`` frames (at an episode end) a checkpoint holds everything needed to continue
  exactly: agent, prior, replay, the RNG states and the loop counters. ``done.json`` marks a finished run.

Outputs: ``train.csv`` (one row per episode) and ``eval.csv`` (frame, episode return, success, success_any,
normalised score) in ``run_dir``; the checkpoint and ``events.jsonl`` next to ``ckpt_path``. ``success`` is
Meta-World's flag at the final step (the score, method §5.8); ``success_any`` whether it was set at any step
of the episode, a diagnostic only (a policy that reaches the goal and drifts off scores 0); NaN on DMC.
"""
from __future__ import annotations

import ctypes
import json
import os
import time
from collections import deque
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from gsa.bc import FRAMES, stack_frames
from gsa.config import Config, to_dict
from gsa.data.episodes import atomic_write
from gsa.data.sampler import MixedSampler, Replay
from gsa.envs import get_spec, make
from gsa.train import checkpoint
from gsa.train.logger import CSVLogger
from gsa.train.pretrain import to_torch


def score(task: str, episode_return: float, success: float) -> float:
    """Normalised score (method §5.8): Meta-World success × 100, DMC return / 10."""
    return 100.0 * success if get_spec(task).benchmark == "metaworld" else episode_return / 10.0


def task_env(cfg: Config, task: str, seed: int, obs: str | None = None):
    """The task's env in the run's observation mode (or ``obs``), padded to the world model's sizes. The mode
    changes only what is observed: the same seed gives the same starts and dynamics."""
    wm = cfg.world_model
    if (obs or wm.obs) == "pixels":
        return make(task, obs="pixels", size=wm.image_size, action_repeat=cfg.finetune.action_repeat,
                    seed=seed, action_size=wm.action_size)
    return make(task, obs="state", action_repeat=cfg.finetune.action_repeat, seed=seed,
                action_size=wm.action_size, state_size=wm.state_size)


def episode_success(info: dict, reached: bool) -> dict:
    """An episode's Meta-World ``success`` (the flag of its last step ``info``: the score) and ``success_any``
    (``reached``: set at any step); NaN for both on DMC, which has no flag."""
    if "success" not in info:
        return {"success": np.nan, "success_any": np.nan}
    return {"success": float(info["success"]), "success_any": float(reached)}


def eval_env(cfg: Config, task: str, seed: int, obs: str | None = None):
    """The evaluation env of a run with ``seed``: the task's env, seeded apart from the training env."""
    return task_env(cfg, task, seed + 10_000, obs)


def eval_seed(seed: int, frames: int) -> int:
    """The first reset seed of the evaluation at ``frames`` of a run with ``seed`` (on ``eval_env``). Runs of
    every method with the same seed play the same starts there."""
    return seed * 100_000 + 50_000 + frames


def evaluate(agent, env, episodes: int, seed: int) -> dict:
    """``episodes`` episodes with the agent's mean action (method §5.8); its acting state is kept."""
    kept = agent.acting_state
    returns, outcomes = [], []
    action_mask = torch.as_tensor(env.action_mask, device=agent.device)[None]
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        agent.reset()
        total, done, info, hit = 0.0, False, {}, False
        while not done:
            agent.observe(obs)
            action = agent.policy(action_mask, explore=False)
            obs, reward, terminated, truncated, info = env.step(action)
            agent.executed(info["action"])
            total, done, hit = total + reward, terminated or truncated, hit or bool(info.get("success", False))
        returns.append(total)
        outcomes.append(episode_success(info, hit))
    agent.acting_state = kept
    return {"episode_return": float(np.mean(returns)),
            **{key: float(np.mean([o[key] for o in outcomes])) for key in ("success", "success_any")}}


def release_memory() -> bool:
    """Hand the heap's free pages back to the OS (glibc's ``malloc_trim``); False where glibc is absent.

    glibc keeps memory that Python and torch have freed, and the loop's mix of small acting tensors and large
    update batches leaves it scattered over the heap: a 50k-frame cpu-preset run grew to 17 GB resident, and
    one at 9.3 GB dropped to 0.8 GB after a trim (two such runs nearly exhausted a 24 GB machine). The loop
    trims after every episode."""
    try:
        return bool(ctypes.CDLL("libc.so.6").malloc_trim(0))
    except (OSError, AttributeError):
        return False


def is_done(run: Path, frames: int) -> bool:
    """Whether the run in ``run`` finished ``frames`` frames (its ``done.json``)."""
    path = run / "done.json"
    return path.exists() and json.loads(path.read_text())["frames"] >= frames


def event(ckpt_path: Path, name: str, frames: int) -> None:
    """Append one line to the run's ``events.jsonl`` (start / resume / done), next to its checkpoint."""
    ckpt_path.parent.mkdir(parents=True, exist_ok=True)
    with open(ckpt_path.parent / "events.jsonl", "a") as out:
        out.write(json.dumps({"event": name, "frames": frames, "pid": os.getpid(), "time": time.time(),
                              "code": checkpoint.code_version()}) + "\n")


def online(cfg: Config, task: str, agent, run: Path, ckpt_path: Path, saved: dict | None = None,
           sources: list | None = None, prior=None, guidance=None, info: dict | None = None,
           method: str = "", progress: bool = True, stop_at: int | None = None) -> Path:
    """Run (or continue, from ``saved``) the online phase of ``agent`` on ``task``; returns ``run``.

    ``sources`` are offline [(dataset, share)] mixed into every batch; ``prior`` (with ``guidance``) acts
    in the warm-up and in guided windows; ``info`` goes to ``retrieval.json``. ``stop_at`` (frames) ends
    the run at the first episode end past it, after a checkpoint — as a kill right after it would."""
    f, wm_cfg = cfg.finetune, cfg.world_model
    spec = get_spec(task)
    obs_key, obs_shape = (("observation", (3, wm_cfg.image_size, wm_cfg.image_size)) if wm_cfg.obs == "pixels"
                          else ("state", (wm_cfg.state_size,)))
    replay = Replay(spec.domain, obs_shape, obs_key)
    offline = list(sources or [])
    mixed = [(replay, 1.0 - sum(share for _, share in offline)), *offline]
    sampler = MixedSampler(mixed, agent.batch_size, agent.window, wm_cfg.action_size, seed=f.seed, obs_key=obs_key,
                           obs_shape=obs_shape)
    rng = np.random.default_rng(f.seed)
    # seconds: wall time of the online phase; cpu_seconds: this process's CPU time (one core per run in a study,
    # so it says what the run costs without the other jobs sharing the machine; None for a run resumed from a
    # checkpoint written before it was counted); code: the code versions that ran it, one per change (a run
    # resumed after a code change lists both; null for the part before a checkpoint that predates the field)
    loop = {"frames": 0, "steps": 0, "updates": 0, "episodes": 0, "seconds": 0.0, "cpu_seconds": 0.0, "code": []}
    train_log, eval_log = CSVLogger(run / "train.csv", "frame"), CSVLogger(run / "eval.csv", "frame")
    if saved is not None:
        agent.load_state_dict(saved["agent"])
        replay.episodes = saved["replay"]
        if guidance is not None:
            guidance.rng.bit_generator.state = saved["guidance_rng"]
        rng.bit_generator.state = saved["rng_numpy"]
        checkpoint.set_rng_state(saved["rng"])
        loop = {"seconds": 0.0, "cpu_seconds": None, "code": [None], **saved["loop"]}
        train_log.resume_at(loop["frames"])
        eval_log.resume_at(loop["frames"])
    else:
        train_log.reset()
        eval_log.reset()
        run.mkdir(parents=True, exist_ok=True)
        (run / "config.json").write_text(json.dumps({"task": task, "method": method, **to_dict(cfg)}, indent=2))
        (run / "retrieval.json").write_text(json.dumps(info or {}, indent=2))
    event(ckpt_path, "resume" if saved is not None else "start", loop["frames"])
    version = checkpoint.code_version()
    if loop["code"][-1:] != [version]:
        loop["code"] = [*loop["code"], version]

    def save() -> None:
        loop["seconds"] += time.perf_counter() - clock[0]
        if loop["cpu_seconds"] is not None:
            loop["cpu_seconds"] += time.process_time() - clock[1]
        clock[:] = time.perf_counter(), time.process_time()
        checkpoint.save(ckpt_path, kind="finetune", config=to_dict(cfg), agent=agent.state_dict(),
                        prior=None if prior is None else prior.state_dict(), replay=replay.episodes,
                        guidance_rng=None if guidance is None else guidance.rng.bit_generator.state,
                        rng_numpy=rng.bit_generator.state, loop=dict(loop))

    env, evaluation_env = task_env(cfg, task, f.seed), eval_env(cfg, task, f.seed)
    action_mask = torch.as_tensor(env.action_mask, device=agent.device)[None]
    next_checkpoint = (loop["frames"] // f.checkpoint_every + 1) * f.checkpoint_every
    end = f.frames if stop_at is None else min(stop_at, f.frames)
    bar = tqdm(total=f.frames, initial=loop["frames"], desc=f"{method} {task}", unit="frame", disable=not progress)
    totals, count, started = None, 0, time.perf_counter()
    clock = [started, time.process_time()]  # wall and CPU time at the last checkpoint
    while loop["frames"] < end:
        obs, _ = env.reset(seed=f.seed * 100_000 + loop["episodes"])
        agent.reset()
        warm = loop["frames"] < agent.warmup_frames
        guided = prior is not None and ((warm and guidance.warmup_prior) or guidance.start_episode(loop["steps"]))
        frames = deque([obs] * FRAMES, maxlen=FRAMES)
        replay.add(obs, np.zeros(wm_cfg.action_size, np.float32), 0.0, is_first=True)
        episode_return, prior_steps, done, t, step_info, hit = 0.0, 0, False, 0, {}, False
        while not done:
            warm = loop["frames"] < agent.warmup_frames
            if not warm:
                agent.observe(obs)
            if prior is not None and ((warm and guidance.warmup_prior) or guidance.uses_prior(t)):
                x = stack_frames(np.stack(frames))[-1] if wm_cfg.obs == "pixels" else obs
                action, prior_steps = prior.act(x), prior_steps + 1
            elif warm:
                action = rng.uniform(-1, 1, wm_cfg.action_size).astype(np.float32) * env.action_mask
            else:
                action = agent.policy(action_mask, explore=True, step=loop["steps"])
            obs, reward, terminated, truncated, step_info = env.step(action)
            agent.executed(step_info["action"])
            hit = hit or bool(step_info.get("success", False))
            replay.add(obs, step_info["action"], reward, is_first=False)
            frames.append(obs)
            episode_return, done, t = episode_return + reward, terminated or truncated, t + 1
            loop["frames"] += f.action_repeat
            loop["steps"] += 1
            bar.update(f.action_repeat)
            if loop["frames"] > agent.warmup_frames and loop["steps"] % agent.update_every == 0:
                batch = to_torch(sampler.sample(step=loop["updates"]), agent.device)
                metrics = agent.update(batch, step=loop["steps"])
                totals = metrics if totals is None else {k: totals[k] + v for k, v in metrics.items()}
                count, loop["updates"] = count + 1, loop["updates"] + 1
            if loop["frames"] % f.eval_every == 0:
                result = evaluate(agent, evaluation_env, f.eval_episodes, seed=eval_seed(f.seed, loop["frames"]))
                eval_log.log({"frame": loop["frames"], **result,
                              "score": score(task, result["episode_return"], result["success"])})
                bar.set_postfix(eval_return=f"{result['episode_return']:.1f}")
        loop["episodes"] += 1
        row = {"frame": loop["frames"], "episode": loop["episodes"], "episode_return": episode_return,
               **episode_success(step_info, hit), "guided": guided, "prior_steps": prior_steps,
               "updates": loop["updates"], "fps": t * f.action_repeat / (time.perf_counter() - started)}
        if totals is not None:
            row.update({k: v.item() / count for k, v in totals.items()})
        train_log.log(row)
        bar.set_postfix(train_return=f"{episode_return:.1f}")
        totals, count, started = None, 0, time.perf_counter()
        release_memory()
        if loop["frames"] >= next_checkpoint or loop["frames"] >= end:
            save()
            next_checkpoint = (loop["frames"] // f.checkpoint_every + 1) * f.checkpoint_every
    bar.close()
    env.close()
    evaluation_env.close()
    if loop["frames"] >= f.frames:
        summary = {k: loop[k] for k in ("frames", "updates", "episodes")}
        cpu = None if loop["cpu_seconds"] is None else round(loop["cpu_seconds"], 1)
        atomic_write(run / "done.json", lambda out: out.write(json.dumps(
            {**summary, "seconds": round(loop["seconds"], 1), "cpu_seconds": cpu, "code": loop["code"]}).encode()))
        event(ckpt_path, "done", loop["frames"])
    return run
