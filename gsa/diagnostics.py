"""Why a fine-tuning run learned what it did: how well its world model and reward head fit the online
episodes and the retrieved offline trajectories (the cpu study's investigation, docs/cpu_study.md).

    report = diagnose("results/runs/cpu/gsa/mw-door-open/seed0")   # → also writes diagnostics.json there

The offline data is reward-free (method §1), so the reward head is trained on online rows only; yet
imagination starts from every posterior state, offline ones included (method §5.5). Whether the head's
rewards on the retrieved trajectories are right is therefore what rehearsal's value depends on. Their
true rewards are recovered here, never shown to the learner: each trajectory's stored actions are replayed
in the task's environment from its stored physics states (:func:`replay_rewards`); the replayed states must
match the stored ones, and a trajectory whose replay does not, e.g. a Meta-World episode of another task,
has no reward label and counts only as "offline, other".

Per group (online episodes of the run's replay; retrieved offline trajectories of the task itself; other
retrieved ones), over every step: the reward head's mean absolute error, its mean prediction against the
mean true reward, their correlation, and the world model's reconstruction error (squared error of
symlog states, summed over dimensions, as in the training loss); and, with each state as a start of
imagination (method §5.5), the head's mean reward over the horizon of π's imagined steps and the critic's
value, also as a reward per step (value × (1 − γ)); and, from every 10th state, π imagined for 3 / (1 − γ)
steps (:func:`long_imagination`): the head's mean reward over them and the value those rewards give, which a
critic consistent with the model matches. Beside the true reward and π_RL's own return, these say whether
imagination expects more than the states and the policy give, and whether within the training horizon or
after it. On Meta-World it also decodes where imagination takes the object (:func:`imagined_objects`): the
real episodes, the model rolled with their own actions, and π imagined, from the same states. It needs the
run's checkpoint and the dataset, i.e. the session that ran it.

It also plays the run's policies on their own (``policies``, in ``diagnostics.json``): π_RL with its mean
action, as the evaluations do, and, for runs with execution guidance, the BC prior π_bc for whole episodes,
which training never does (it acts in windows). Each gets ``episodes`` episodes on fresh goals, with the
return, the success at the final step (the score) and at any step (Meta-World).

With ``priors`` (``gsa diagnose --priors``) it asks how good a prior the retrieved data can give at all:
π_bc is cloned as the run clones it from each quality slice of the retrieved trajectories (all of them; the
noisy experts at or below each noise level σ; the exploration data by source) and played alone
(:func:`priors`). It needs only the dataset and the run's ``retrieval.json``, but runs with the rest.

``still_return`` is the reference a learner is read against: what zero actions score on a task.
"""
from __future__ import annotations

import copy
import json
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from gsa.agents.dreamer import DreamerAgent
from gsa.config import from_dict
from gsa.data.episodes import atomic_write, load_episode
from gsa.envs import get_spec, make, mask, pad
from gsa.envs.render import set_physics_state
from gsa.models.distributions import symexp
from gsa.models.actor_critic import ActorCritic, imagine
from gsa.models.world_model import WorldModel
from gsa.train import checkpoint
from gsa.train.finetune import METHODS, retrieve, run_paths, saved_prior, train_prior
from gsa.train.online import eval_env, eval_seed, evaluate, score, task_env
from gsa.train.pretrain import load_world_model, open_dataset, world_model_path


def replay_rewards(env, episode: dict, atol: float = 1e-2) -> np.ndarray | None:
    """The task rewards (T+1,) of a stored episode (0 at its first frame, as the online replay stores them),
    by replaying its actions in ``env`` from its stored physics states; None if the replay leaves the stored
    states by more than ``atol`` (the episode is not of this task's model or placement).

    DMC: each agent step is replayed from the stored state before it, so every reward is that of the stored
    transition. A chained replay from the first state alone does not stay on the stored states: the restored
    state differs by ~1e-15 (the solver's warm start is not part of it), and a contact-rich body amplifies it —
    22 of 50 quadruped trajectories left the stored states by more than 1e-2 after 190–430 of their 500 steps.
    Meta-World: chained from the first state (its stored state lacks the mocap-driven hand's), which drifts by
    up to ~1e-3 over 100 steps, while the replayed return matched the logged one to 1e-7."""
    native = env.action_space.shape[0]
    states, physics = episode["state"], episode["physics"]
    if physics.shape[1:] != env.physics_state().shape:  # another embodiment
        return None
    obs = env.restore(physics[0], episode.get("task_state"))
    if obs.shape != states[0].shape or not np.allclose(obs, states[0], atol=atol):
        return None
    resync = env.task_spec.benchmark == "dmc"
    rewards = [0.0]
    for t in range(1, len(states)):
        if resync:
            set_physics_state(env.model, env.data, physics[t - 1])
        obs, reward, _, _, _ = env.step(episode["action"][t][:native])
        if not np.allclose(obs, states[t], atol=atol):
            return None
        rewards.append(reward)
    return np.asarray(rewards, np.float32)


def posterior(wm: WorldModel, state: np.ndarray, action: np.ndarray, action_mask: torch.Tensor) -> tuple:
    """One episode (T, S) / (T, A), unpadded, filtered from its first frame → posterior states (1, T, ...) and
    the decoder's target (1, T, S)."""
    batch = {"state": torch.as_tensor(pad(state, wm.cfg.state_size), dtype=torch.float32)[None],      # (1, T, S)
             "action": torch.as_tensor(pad(action, wm.cfg.action_size), dtype=torch.float32)[None],   # (1, T, A)
             "is_first": torch.arange(len(state))[None] == 0, "action_mask": action_mask}
    return wm.observe(batch)[0], wm.target(batch["state"])


@contextmanager
def own_rng(seed: int):
    """Inside: torch's generator seeded with ``seed``; outside, its stream as it was, so π's samples in a
    report neither depend on nor change what was drawn before them."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        yield


@torch.no_grad()
def fit(wm: WorldModel, ac: ActorCritic, state: np.ndarray, action: np.ndarray, action_mask: torch.Tensor,
        stride: int = 10) -> tuple[dict, dict]:
    """One episode, filtered from its first frame → per step (T,): the reward head's prediction ``pred``, the
    reconstruction error ``recon``, and what the actor-critic makes of each posterior state as a start of
    imagination (method §5.5): ``imag_reward``, the head's mean reward over ``horizon`` steps of π imagined
    from it, and ``value``, the critic's value there. Set against the true rewards, these say whether
    imagination expects more reward than the states (and the policy) give. Also returns every ``stride``-th
    posterior state (T // stride, ...), starts for :func:`long_imagination`."""
    post, target = posterior(wm, state, action, action_mask)
    feat = wm.rssm.feat(post)
    recon = (wm.decode(post) - target).square().sum(-1)                    # (1, T)
    start = {k: v[0] for k, v in post.items()}                              # (T, ...)
    with own_rng(len(state)):
        states, _, _ = imagine(wm.rssm, ac.actor, start, action_mask.expand(len(state), -1), ac.cfg.horizon)
    out = {"pred": reward_of(ac, feat), "recon": recon, "value": ac.critic(feat).mean(),
           "imag_reward": reward_of(ac, wm.rssm.feat(states)[1:]).mean(0)}  # (H, T) → (T,)
    return {k: v.reshape(-1).numpy() for k, v in out.items()}, {k: v[::stride] for k, v in start.items()}


@torch.no_grad()
def long_imagination(wm: WorldModel, ac: ActorCritic, start: dict, action_mask: torch.Tensor, gamma: float,
                     chunk: int = 2048) -> dict:
    """π imagined far beyond the training horizon from start states (N, ...): L = round(3 / (1 − γ)) steps,
    so that γ^L ≈ e⁻³ of the value lies beyond → per start (N,): ``imag_reward_long``, the head's mean reward
    over the L steps, and ``value_imagined``, Σ_t γ^t r̂_{t+1} + γ^L v(s_L), the value that the model's own
    rewards give π. The critic is trained on λ-returns that bootstrap after ``horizon`` steps (method §5.5),
    so a critic consistent with the model has ``value`` ≈ ``value_imagined``; a value above the true returns
    then comes from what the model imagines after the horizon, not from the bootstrap itself."""
    horizon = round(3 / (1 - gamma))
    n = len(next(iter(start.values())))
    out = {"imag_reward_long": [], "value_imagined": []}
    with own_rng(n):
        for i in range(0, n, chunk):
            state = {k: v[i:i + chunk] for k, v in start.items()}            # (C, ...)
            mask_ = action_mask.expand(len(state["deter"]), -1)
            total = value = torch.zeros(len(state["deter"]))
            for t in range(horizon):
                state = wm.rssm.img_step(state, ac.actor(wm.rssm.feat(state), mask_).sample())
                reward = reward_of(ac, wm.rssm.feat(state))                  # (C,) = r̂(s_{t+1})
                total, value = total + reward, value + gamma ** t * reward
            out["imag_reward_long"].append(total / horizon)
            out["value_imagined"].append(value + gamma ** horizon * ac.critic(wm.rssm.feat(state)).mean())
    return {k: torch.cat(v).numpy() for k, v in out.items()}


def cat(states: list[dict]) -> dict:
    """States (N_i, ...) of several episodes → one state (ΣN_i, ...)."""
    return {k: torch.cat([s_[k] for s_ in states]) for k in states[0]}


def geometry(obs: np.ndarray) -> dict:
    """Meta-World observations (..., ≥ 39), its layout (hand xyz 0:3, gripper 3, first object xyz 4:7, goal
    xyz 36:39) → per observation: hand–object and object–goal distances and the object's height."""
    hand, obj, goal = obs[..., 0:3], obs[..., 4:7], obs[..., 36:39]
    return {"hand_to_object": np.linalg.norm(hand - obj, axis=-1), "object_to_goal": np.linalg.norm(obj - goal, axis=-1),
            "object_height": obj[..., 2]}


@torch.no_grad()
def imagined_objects(wm: WorldModel, ac: ActorCritic, episodes: list[dict], action_mask: torch.Tensor, gamma: float,
                     open_loop: int = 50, stride: int = 10) -> pd.DataFrame:
    """Where a Meta-World run's imagination takes the object, decoded: from every ``stride``-th state of
    ``episodes`` (online ones, with ``state``, ``action`` and ``reward`` lists) that has ``open_loop`` more
    steps, (1) the real episode, (2) the model rolled open loop with the episode's own actions and (3) π
    imagined (method §5.5) for up to 3 / (1 − γ) steps, the horizon its value stands for. One row per source
    and step: mean :func:`geometry` and reward (true, or the head's). If (2) follows (1) and (3) goes where
    (1) never does, π is optimised against dynamics that are right for the actions the run took and wrong for
    the ones it imagines: model exploitation, not a reward-head or bootstrap error."""
    long = round(3 / (1 - gamma))
    starts, real, actions, rewards = [], [], [], []
    for e in episodes:
        state, action = np.stack(e["state"]), np.stack(e["action"])
        idx = np.arange(0, len(state) - open_loop, stride)
        if not len(idx):
            continue
        post, _ = posterior(wm, state, action, action_mask)
        starts.append({k: v[0, idx] for k, v in post.items()})
        window = idx[:, None] + np.arange(open_loop + 1)                   # (n, L+1)
        real.append(state[window])
        actions.append(pad(action, wm.cfg.action_size)[window[:, 1:]])     # a_{s+1} … a_{s+L} lead to s+1 … s+L
        rewards.append(np.asarray(e["reward"], np.float32)[window])
    if not starts:
        return pd.DataFrame()
    start = cat(starts)                                                     # (N, ...)
    real, rewards = np.concatenate(real).swapaxes(0, 1), np.concatenate(rewards).swapaxes(0, 1)  # (L+1, N, ...)
    actions = torch.as_tensor(np.concatenate(actions).swapaxes(0, 1)) * action_mask  # (L, N, A)

    def decoded(states: dict) -> tuple[np.ndarray, np.ndarray]:                # states (L+1, N, ...)
        return symexp(wm.decode(states)).numpy(), reward_of(ac, wm.rssm.feat(states)).numpy()

    rolled = [start]
    for a in actions:
        rolled.append(wm.rssm.img_step(rolled[-1], a))
    model_obs, model_reward = decoded({k: torch.stack([s_[k] for s_ in rolled]) for k in start})
    with own_rng(len(real[0])):
        imagined, _, _ = imagine(wm.rssm, ac.actor, start, action_mask.expand(len(real[0]), -1), long)
    pi_obs, pi_reward = decoded(imagined)
    rows = []
    for source, obs, reward, steps in (("real episode", real, rewards, open_loop),
                                       ("model, the episode's actions", model_obs, model_reward, open_loop),
                                       ("model, π imagined", pi_obs, pi_reward, long)):
        for t in sorted({0, ac.cfg.horizon, open_loop, 100, steps} & set(range(steps + 1))):
            rows.append({"source": source, "step": t, "starts": obs.shape[1], "reward": float(reward[t].mean()),
                         **{k: float(v.mean()) for k, v in geometry(obs[t]).items()}})
    return pd.DataFrame(rows)


def reward_of(ac: ActorCritic, feat: torch.Tensor) -> torch.Tensor:
    """The reward head's mean prediction at ``feat`` (..., F) → (...); an ensemble's members averaged."""
    head = ac.reward(feat)                                              # TwoHot, or (M, ...) for an ensemble
    return head.mean(0) if isinstance(head, torch.Tensor) else head.mean()


def summarise(group: str, rows: list[dict], gamma: float, long: dict | None = None) -> dict:
    """One group's statistics over all its steps; ``rows``: one :func:`fit` per episode, with its true
    rewards ``true`` (T,) or None; ``long``: :func:`long_imagination` from the group's starts, if any.
    ``value_per_step`` is the value times (1 − ``gamma``): the reward per step that a value of this size
    stands for, comparable with ``reward_true``, ``imag_reward`` and ``imag_reward_long``."""
    stats = {k: np.concatenate([r[k] for r in rows]) if rows else np.zeros(0)
             for k in ("pred", "recon", "imag_reward", "value")}
    mean = {k: float(v.mean()) if len(v) else None for k, v in stats.items()}
    out = {"group": group, "episodes": len(rows), "steps": len(stats["pred"]), "reward_pred": mean["pred"],
           "recon": mean["recon"], "reward_true": None, "reward_mae": None, "reward_corr": None,
           "imag_reward": mean["imag_reward"], "value": mean["value"],
           "value_per_step": None if mean["value"] is None else mean["value"] * (1 - gamma),
           **{k: float(long[k].mean()) if long is not None and len(long[k]) else None
              for k in ("imag_reward_long", "value_imagined")}}
    if rows and all(r["true"] is not None for r in rows):
        pred, true = stats["pred"], np.concatenate([r["true"] for r in rows])
        out.update(reward_true=float(true.mean()), reward_mae=float(np.abs(pred - true).mean()),
                   reward_corr=float(np.corrcoef(pred, true)[0, 1]) if true.std() > 0 and pred.std() > 0 else None)
    return out


class StateActor:
    """A function of the current observation (π_bc's ``act``, or zero actions) behind the agent protocol of
    :func:`gsa.train.online.evaluate` (state mode: one observation, no recurrent state)."""
    device, acting_state = "cpu", None

    def __init__(self, act):
        self.act, self.obs = act, None

    def reset(self) -> None: pass
    def executed(self, action) -> None: pass

    def observe(self, obs: np.ndarray) -> None:
        self.obs = obs

    def policy(self, action_mask, explore: bool) -> np.ndarray:
        return self.act(self.obs)


def _play(cfg, task: str, actor, episodes: int) -> dict:
    """``actor`` alone for ``episodes`` episodes of ``task``, on an env and goals of its own (seeds apart from
    training's and the evaluations'), as :func:`policies` and :func:`priors` play every policy."""
    seed = cfg.finetune.seed + 30_000
    env = task_env(cfg, task, seed)
    try:
        return evaluate(actor, env, episodes, seed=seed * 100)
    finally:
        env.close()


def zero_actions(env) -> StateActor:
    """A policy that does nothing on ``env`` (zero actions, its padded size)."""
    zeros = np.zeros(len(env.action_mask), np.float32)
    return StateActor(lambda obs: zeros)


def still_return(cfg, task: str, episodes: int = 20) -> dict:
    """What doing nothing earns on ``task``: zero actions evaluated as the runs evaluate (state observations,
    the run's action repeat, ``episodes`` fresh starts). A reference for tasks whose reward a motionless body
    collects, e.g. quadruped: it starts in a random orientation and, left alone, stands when it lands upright."""
    seed = cfg.finetune.seed + 40_000
    env = task_env(cfg, task, seed, obs="state")
    try:
        return evaluate(zero_actions(env), env, episodes, seed=seed * 100)
    finally:
        env.close()


def still_curve(cfg, task: str, seed: int, frames: list[int]) -> list[float]:
    """Zero actions' mean return at each evaluation (``frames``) of a run with ``seed``, on that run's
    evaluation env and starts (``eval_seed``). On quadruped tasks the random initial orientation decides much
    of an evaluation's score, so a run's curve is read against this one, point by point."""
    return still_on_starts(cfg, task, seed, [eval_seed(seed, n) for n in frames])


def still_curves(cfg, evaluations: pd.DataFrame) -> pd.DataFrame:
    """:func:`still_curve` for every (task, seed) of ``evaluations`` (rows with task, seed, frame, e.g. a tidy
    results table): one row per (task, seed, frame) with zero actions' ``episode_return`` and ``score`` there."""
    rows = []
    for (task, seed), group in evaluations.groupby(["task", "seed"]):
        frames = sorted(group.frame.unique())
        rows += [{"task": task, "seed": seed, "frame": frame, "episode_return": ret, "score": score(task, ret, np.nan)}
                 for frame, ret in zip(frames, still_curve(cfg, task, int(seed), frames))]
    return pd.DataFrame(rows, columns=["task", "seed", "frame", "episode_return", "score"])


def still_on_starts(cfg, task: str, seed: int, reset_seeds: list[int]) -> list[float]:
    """Zero actions' mean return over ``finetune.eval_episodes`` episodes from each of ``reset_seeds`` (the first
    reset seed of an evaluation) on the evaluation env of a run with ``seed``. Zero actions ignore what they
    observe, so they play in state mode (no rendering) on the same starts whatever the run's mode."""
    env = eval_env(cfg, task, seed, obs="state")
    try:
        return [evaluate(zero_actions(env), env, cfg.finetune.eval_episodes, seed=first)["episode_return"]
                for first in reset_seeds]
    finally:
        env.close()


def policies(cfg, task: str, wm: WorldModel, saved: dict, episodes: int = 20) -> pd.DataFrame:
    """π_RL (mean action) and, if the run has one, π_bc, each played alone for ``episodes`` episodes of
    ``task`` on an env and goals of their own (seeds apart from training's and the evaluations'): one row
    per policy with its mean return, success at the final step and success at any step."""
    quiet = copy.deepcopy(cfg)
    quiet.pretrain.compile, quiet.finetune.compile = "off", False  # acting only: nothing to compile
    agent = DreamerAgent(wm, quiet, torch.device("cpu"))
    agent.load_state_dict(saved["agent"])
    actors = {"π_RL (mean action)": agent}
    if saved.get("prior") is not None:
        actors["π_bc (whole episodes)"] = StateActor(saved_prior(cfg, task, saved, torch.device("cpu")).act)
    checkpoint.seed_everything(cfg.finetune.seed + 30_000)  # π_RL filters with sampled latents: same seed, same table
    return pd.DataFrame([{"policy": name, "episodes": episodes, **_play(cfg, task, actor, episodes)}
                         for name, actor in actors.items()])


def quality_slices(manifest: pd.DataFrame) -> dict[str, list[str]]:
    """The retrieved trajectories (``manifest`` rows indexed by id) by data quality: all of them; the noisy
    experts with σ at or below each of their noise levels but the largest; the exploration data of each
    source family (random, ou, p2e: Plan2Explore's snapshots together) when there are several."""
    slices = {"all retrieved": list(manifest.index)}
    sigma = manifest["sigma"]
    for level in sorted(sigma.dropna().unique())[:-1]:
        slices[f"σ ≤ {level:g}"] = list(manifest.index[sigma <= level])
    family = manifest["source"].astype(str).str.split("@").str[0][sigma.isna()]
    if family.nunique() > 1:
        for name in sorted(family.unique()):
            slices[f"source {name}"] = list(family.index[family == name])
    return slices


def priors(cfg, task: str, dataset, ids: list[str], episodes: int = 20) -> pd.DataFrame:
    """π_bc cloned from each quality slice of the retrieved trajectories ``ids`` (:func:`quality_slices`),
    with the run's settings and seed, each played alone for ``episodes`` episodes of ``task`` (as
    :func:`policies` plays the run's own): one row per slice with its size, how many of its trajectories
    are of ``task`` itself, the return and the success at the final and at any step."""
    manifest = dataset.manifest.set_index("id").loc[ids]
    rows = []
    for name, keep in quality_slices(manifest).items():
        checkpoint.seed_everything(cfg.finetune.seed)
        prior = train_prior(cfg, dataset.subset(keep), torch.device("cpu"), progress=False)
        played = _play(cfg, task, StateActor(prior.act), episodes)
        rows.append({"data": name, "trajectories": len(keep), "of_task": int((manifest.loc[keep, "task"] == task).sum()),
                     "episodes": episodes, **played})
    return pd.DataFrame(rows)


def retrieved_ids(cfg, run: Path, task: str, dataset_root) -> list[str]:
    """The run's retrieved trajectories: from its retrieval.json, else GSA's of the same experiment, task
    and seed, else retrieved again with the pre-trained model (DreamerV3 retrieves nothing itself). GSA's
    ids stand in for a DreamerV3 run only while they are in the dataset (a re-collected dataset has new ids);
    the run's own ids must be."""
    known = set(open_dataset(cfg, dataset_root).manifest["id"])
    own, gsa = run / "retrieval.json", run.parent.parent.parent / "gsa" / task / run.name / "retrieval.json"
    for path in (own, gsa):
        if path.exists() and (ids := json.loads(path.read_text()).get("ids")):
            if set(ids) <= known:
                return ids
            if path == own:
                missing = sorted(set(ids) - known)
                raise FileNotFoundError(f"{run}: {len(missing)} of its {len(ids)} retrieved trajectories are not in "
                                        f"the dataset (e.g. {missing[0]}); it ran on data collected before this "
                                        "dataset, which its diagnostics need")
    wm_path = world_model_path(cfg, get_spec(task).benchmark)
    wm, _, state = load_world_model(wm_path)
    return retrieve(cfg, task, wm, wm_path, dataset_root, torch.device("cpu"), state.get("benchmark", "all"))[1]["ids"]


def _run_config(run: Path) -> tuple:
    """(task, method, config) of a finished state-mode world-model run."""
    meta = json.loads((run / "config.json").read_text())
    task, method = meta.pop("task"), meta.pop("method")
    cfg = from_dict(meta)
    if method not in METHODS:
        raise ValueError(f"{run}: {method} has no world model to diagnose (world-model methods: {sorted(METHODS)})")
    if cfg.world_model.obs != "state":
        raise ValueError(f"{run}: diagnostics replay state-mode runs only (this one is {cfg.world_model.obs})")
    return task, method, cfg


def _update_report(run: Path, fields: dict) -> None:
    """Write ``fields`` into ``<run>/diagnostics.json``, keeping what an earlier call wrote and these do not
    replace (the priors table depends on the retrieved data only and is costly)."""
    path = run / "diagnostics.json"
    report = json.loads(path.read_text()) if path.exists() else {}
    report.update(fields)
    atomic_write(path, lambda out: out.write(json.dumps(report, indent=2).encode()))


def _records(table: pd.DataFrame) -> list[dict]:
    return table.replace({np.nan: None}).to_dict("records")


def diagnose_priors(run: str | Path, dataset_root: str | Path | None = None, write: bool = True,
                    episodes: int = 20) -> pd.DataFrame:
    """:func:`priors` of a run (``gsa diagnose --priors-only``), into ``<run>/diagnostics.json`` unless
    ``write`` is off. It needs the dataset and the run's ``retrieval.json``, not its checkpoint."""
    run = Path(run)
    task, method, cfg = _run_config(run)
    dataset = open_dataset(cfg, dataset_root)
    table = priors(cfg, task, dataset, retrieved_ids(cfg, run, task, dataset_root), episodes)
    if write:
        _update_report(run, {"method": method, "task": task, "priors": _records(table)})
    return table


def diagnose(run: str | Path, dataset_root: str | Path | None = None, write: bool = True,
             episodes: int = 20, with_priors: bool = False) -> pd.DataFrame:
    """The fit table of a world-model run (GSA, its ablations or DreamerV3) at its last checkpoint; written
    to ``<run>/diagnostics.json`` (with the checkpoint's frame and the policies' own evaluation over
    ``episodes`` episodes, :func:`policies`, also in the table's ``attrs["policies"]``) unless ``write`` is off.
    ``with_priors`` adds :func:`priors` (``attrs["priors"]``; the report keeps an earlier one otherwise)."""
    run = Path(run)
    task, method, cfg = _run_config(run)
    experiment, label = run.parent.parent.parent.name, run.parent.parent.name
    _, ckpt_path = run_paths(cfg, task, label, experiment)
    if not ckpt_path.exists():
        raise FileNotFoundError(f"{run}: its checkpoint {ckpt_path} is gone (checkpoints are not committed; "
                                "diagnose a run in the session that ran it, or only its priors: --priors-only)")
    dataset = open_dataset(cfg, dataset_root)  # what is missing fails first
    ids = retrieved_ids(cfg, run, task, dataset_root)
    saved = checkpoint.load(ckpt_path, kind="finetune")
    checkpoint.seed_everything(cfg.finetune.seed)  # the posterior samples its latents: same seed, same table
    spec = get_spec(task)
    wm = WorldModel(cfg.world_model)
    ac = ActorCritic(wm.rssm.feat_size, cfg.world_model.action_size, cfg.finetune)
    wm.load_state_dict(saved["agent"]["wm"])
    ac.load_state_dict(saved["agent"]["ac"])
    wm.eval()
    ac.eval()
    action_mask = torch.as_tensor(mask(spec.embodiment.action_size, cfg.world_model.action_size))[None]

    groups = {"online": [], "offline, task": [], "offline, other": []}  # one fit per episode, with "true" rewards
    starts = {g: [] for g in groups}                                       # every 10th state, for long imagination
    online = [e for e in saved["replay"] if len(e["action"]) > 1]
    for e in online:
        stats, start = fit(wm, ac, np.stack(e["state"]), np.stack(e["action"]), action_mask)
        groups["online"].append({**stats, "true": np.asarray(e["reward"])})
        starts["online"].append(start)
    manifest = dataset.manifest.set_index("id")
    env = make(task, obs="state", action_repeat=cfg.finetune.action_repeat)
    for episode_id in ids:
        episode = load_episode(dataset.root / manifest.loc[episode_id, "path"])
        true = replay_rewards(env, episode)
        stats, start = fit(wm, ac, episode["state"], episode["action"], action_mask)
        group = "offline, task" if true is not None else "offline, other"
        groups[group].append({**stats, "true": true})
        starts[group].append(start)
    long = {g: long_imagination(wm, ac, cat(starts[g]), action_mask, cfg.finetune.gamma) for g in groups if starts[g]}
    table = pd.DataFrame([summarise(g, rows, cfg.finetune.gamma, long.get(g)) for g, rows in groups.items()])
    if spec.benchmark == "metaworld":  # from the run's last 40 online episodes
        if len(objects := imagined_objects(wm, ac, online[-40:], action_mask, cfg.finetune.gamma)):
            table.attrs["objects"] = objects
    if with_priors:
        table.attrs["priors"] = priors(cfg, task, dataset, ids, episodes)
    if write:
        played = table.attrs["policies"] = policies(cfg, task, wm, saved, episodes)
        report = {"method": method, "task": task, "frame": int(saved["loop"]["frames"]),
                  "groups": _records(table), "policies": _records(played)}
        if with_priors:
            report["priors"] = _records(table.attrs["priors"])
        if "objects" in table.attrs:
            report["objects"] = _records(table.attrs["objects"])
        _update_report(run, report)
    return table
