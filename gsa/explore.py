"""Curiosity-driven DMC data (method §3): a Plan2Explore explorer and its snapshots as a data source.

The paper's DMC data come from reward-free unsupervised RL agents (Plan2Explore / ICM); random and OU
noise rarely show the behaviours the tasks need. Plan2Explore (Sekar et al., 2020) trains, next to the
world model, an ensemble of K one-step predictors of the next observation embedding from (s_t, a_t); where
the members disagree, the model has not seen enough. The actor-critic (the same as GSA's, in imagination)
maximises that disagreement — the standard deviation over members, averaged over embedding dims — instead
of a task reward. Task rewards are never used (they are logged for the dataset card only).

    paths = explore(cfg, "walker", root / "explorers" / "walker")   # resumable; snapshots early → late
    policy = ExplorerPolicy(paths[0], rng)                          # a collection source: "p2e@<frames>"

Snapshots (world model + actor) are written when training passes each fraction ``data.explore_snapshots``
of ``data.explore_frames``, so the collected data mix early (poor, near-random) and late exploration. The
explorer acts from proprioceptive states (cheap on a CPU); like all DMC data, its episodes' frames are
rendered afterwards from the stored physics states.
"""
from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from gsa.config import Config, to_dict
from gsa.data.sampler import MixedSampler, Replay
from gsa.envs import make, mask, pad
from gsa.envs.registry import DMC_TASKS, EMBODIMENTS
from gsa.models.actor_critic import Actor
from gsa.models.nets import MLP
from gsa.models.world_model import WorldModel
from gsa.train import checkpoint
from gsa.train.logger import CSVLogger
from gsa.train.optim import make_optimizer

MEMBERS = 5  # Plan2Explore ensemble size


class Ensemble(nn.Module):
    """K one-step predictors ê_{t+1} = f_k(s_t, a_t) of the next observation embedding (Plan2Explore)."""

    def __init__(self, feat_size: int, action_size: int, embed_size: int, units: int, members: int = MEMBERS):
        super().__init__()
        self.members = nn.ModuleList(
            nn.Sequential(MLP(feat_size + action_size, units, 2), nn.Linear(units, embed_size)) for _ in range(members))

    def forward(self, feat: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        x = torch.cat([feat, action], -1)
        return torch.stack([m(x) for m in self.members])            # (K, ..., E)

    def loss(self, feat: torch.Tensor, action: torch.Tensor, target: torch.Tensor,
             keep: torch.Tensor | None = None) -> torch.Tensor:
        """Mean squared error of every member: feat (..., F) of s_t, action (..., A) taken there, target
        (..., E) the embedding of o_{t+1}; ``keep`` (...) weights the rows (e.g. 0 across episode starts)."""
        error = (self(feat.detach(), action) - target.detach()).square().mean((0, -1))  # (...)
        if keep is None:
            return error.mean()
        return (error * keep).sum() / keep.sum().clamp(min=1)

    def disagreement(self, feat: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Intrinsic reward of taking ``action`` in s_t: std over members, mean over dims → (...)."""
        return self(feat, action).std(0).mean(-1)


def explorer_task(embodiment: str) -> str:
    """The env an explorer runs in: the embodiment's first task (its reward is logged, never used)."""
    return f"dmc-{embodiment}-{DMC_TASKS[embodiment][0]}"


def explorer_config(cfg: Config) -> Config:
    """The preset's world model and actor-critic in state mode (the explorer acts from states), eager on the
    CPU: an explorer makes few updates (~1.9k for the cpu preset's 20k frames), and compiling the update
    costs about what it saves there (11–13 minutes per process on 2 cores, measured; README)."""
    cfg = copy.deepcopy(cfg)
    cfg.world_model.obs = "state"
    if not torch.cuda.is_available():
        cfg.pretrain.compile = "off"
    return cfg


def snapshot_frames(cfg: Config) -> list[int]:
    """Frames at which snapshots are kept: the fractions ``data.explore_snapshots`` of the budget."""
    return sorted({max(1, round(f * cfg.data.explore_frames)) for f in cfg.data.explore_snapshots})


def explore(cfg: Config, embodiment: str, out: str | Path, progress: bool = True, stop_at: int | None = None) -> list[Path]:
    """Train (or resume) a Plan2Explore explorer for ``embodiment``; returns its snapshot paths, early first.

    ``out`` gets ``checkpoint.pt`` (everything needed to resume, written atomically every
    ``finetune.checkpoint_every`` frames), ``train.csv`` (per episode: hidden return, intrinsic reward,
    losses) and ``snapshot-<frames>.pt``. ``stop_at`` ends early after a checkpoint (tests)."""
    from gsa.agents.dreamer import DreamerAgent  # the acting + update code of fine-tuning
    from gsa.train.pretrain import to_torch

    cfg = explorer_config(cfg)
    f, wm_cfg, frames_total = cfg.finetune, cfg.world_model, cfg.data.explore_frames
    out = Path(out)
    path, snapshots = out / "checkpoint.pt", [out / f"snapshot-{n}.pt" for n in snapshot_frames(cfg)]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    checkpoint.seed_everything(cfg.data.seed)
    agent = DreamerAgent(WorldModel(wm_cfg).to(device), cfg, device)
    ensemble = Ensemble(agent.wm.rssm.feat_size, wm_cfg.action_size, agent.wm.encoder.size, f.units).to(device)
    ensemble_opt = make_optimizer(ensemble.parameters(), cfg.pretrain.optim)
    replay = Replay(embodiment, (wm_cfg.state_size,), "state")
    sampler = MixedSampler([(replay, 1.0)], f.batch_size, f.seq_len, wm_cfg.action_size, seed=cfg.data.seed,
                           obs_key="state", obs_shape=(wm_cfg.state_size,))
    rng = np.random.default_rng(cfg.data.seed)
    loop = {"frames": 0, "steps": 0, "updates": 0, "episodes": 0}
    log = CSVLogger(out / "train.csv", "frame")
    if path.exists():
        saved = checkpoint.load(path, kind="explore")
        agent.load_state_dict(saved["agent"])
        ensemble.load_state_dict(saved["ensemble"])
        ensemble_opt.load_state_dict(saved["ensemble_opt"])
        replay.episodes, loop = saved["replay"], saved["loop"]
        rng.bit_generator.state = saved["rng_numpy"]
        checkpoint.set_rng_state(saved["rng"])
        log.resume_at(loop["frames"])
    else:
        log.reset()
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps({"embodiment": embodiment, **to_dict(cfg)}, indent=2))

    def intrinsic(feat: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return ensemble.disagreement(feat, action)                 # ensemble weights frozen by the caller

    env = make(explorer_task(embodiment), obs="state", action_repeat=f.action_repeat, seed=cfg.data.seed,
               action_size=wm_cfg.action_size, state_size=wm_cfg.state_size)
    action_mask = torch.as_tensor(env.action_mask, device=device)[None]
    update_every = max(1, f.batch_size * f.seq_len // (cfg.data.explore_train_ratio or f.train_ratio))
    end = frames_total if stop_at is None else min(stop_at, frames_total)
    next_checkpoint = (loop["frames"] // f.checkpoint_every + 1) * f.checkpoint_every
    bar = tqdm(total=frames_total, initial=loop["frames"], desc=f"plan2explore {embodiment}", unit="frame",
               disable=not progress)
    while loop["frames"] < end:
        obs, _ = env.reset(seed=cfg.data.seed * 100_000 + loop["episodes"])
        agent.reset()
        replay.add(obs, np.zeros(wm_cfg.action_size, np.float32), 0.0, is_first=True)
        hidden_return, done, started, totals, count, t = 0.0, False, time.perf_counter(), None, 0, 0
        while not done:
            warm = loop["frames"] < f.warmup_frames
            if warm:
                action = rng.uniform(-1, 1, wm_cfg.action_size).astype(np.float32) * env.action_mask
            else:
                agent.observe(obs)
                action = agent.policy(action_mask, explore=True)
            obs, reward, _, truncated, info = env.step(action)
            agent.executed(info["action"])
            replay.add(obs, info["action"], 0.0, is_first=False)  # reward-free: the task reward is not stored
            hidden_return, done, t = hidden_return + reward, truncated, t + 1
            loop["frames"] += f.action_repeat
            loop["steps"] += 1
            bar.update(f.action_repeat)
            if not warm and loop["steps"] % update_every == 0:
                batch = to_torch(sampler.sample(step=loop["updates"]), device)
                metrics = _update(agent, ensemble, ensemble_opt, batch, intrinsic, cfg.pretrain.optim.grad_clip)
                totals = metrics if totals is None else {k: totals[k] + v for k, v in metrics.items()}
                count, loop["updates"] = count + 1, loop["updates"] + 1
        loop["episodes"] += 1
        row = {"frame": loop["frames"], "episode": loop["episodes"], "hidden_return": hidden_return,
               "updates": loop["updates"], "fps": t * f.action_repeat / (time.perf_counter() - started)}
        if totals is not None:
            row.update({k: v.item() / count for k, v in totals.items()})
        log.log(row)
        for snapshot, n in zip(snapshots, snapshot_frames(cfg)):
            if loop["frames"] >= n and not snapshot.exists():
                checkpoint.save(snapshot, kind="explorer-snapshot", config=to_dict(cfg), frames=loop["frames"],
                                embodiment=embodiment, wm=agent.wm.state_dict(), actor=agent.ac.actor.state_dict())
        if loop["frames"] >= next_checkpoint or loop["frames"] >= end:
            checkpoint.save(path, kind="explore", agent=agent.state_dict(), ensemble=ensemble.state_dict(),
                            ensemble_opt=ensemble_opt.state_dict(), replay=replay.episodes, loop=dict(loop),
                            rng_numpy=rng.bit_generator.state)
            next_checkpoint = (loop["frames"] // f.checkpoint_every + 1) * f.checkpoint_every
        bar.set_postfix(hidden_return=f"{hidden_return:.0f}")
    bar.close()
    env.close()
    return snapshots


def _update(agent, ensemble: Ensemble, optimizer, batch: dict, intrinsic, grad_clip: float) -> dict:
    """World model + actor-critic on the disagreement (ensemble frozen while imagining), then the ensemble
    on the batch: from s_t and the next action a_{t+1}, predict the embedding of o_{t+1}."""
    from gsa.models.actor_critic import frozen

    with frozen(ensemble):
        metrics = agent.update(batch, intrinsic=intrinsic)
    feat = agent.wm.rssm.feat(agent.post)                           # (B, T, F)
    action = batch["action"] * batch["action_mask"][:, None]        # action[t] led to o_t
    with torch.no_grad():
        embed = agent.wm.encoder(agent.wm.observation(batch))       # (B, T, E)
    keep = (~batch["is_first"][:, 1:]).float()                      # never predict across an episode start
    loss = ensemble.loss(feat[:, :-1], action[:, 1:], embed[:, 1:], keep)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(ensemble.parameters(), grad_clip)
    optimizer.step()
    return {**metrics, "ensemble_loss": loss.detach()}


class ExplorerPolicy:
    """A snapshot of an explorer as a collection source (``gsa.data.collect``): ``reset()``, then
    ``policy(state) → action`` (native size, in [−1, 1]), sampling from its actor with a generator seeded
    from the episode's ``rng``. Runs on the CPU with one thread (collection workers are processes)."""

    def __init__(self, path: str | Path, rng: np.random.Generator):
        from gsa.config import from_dict

        torch.set_num_threads(1)
        saved = checkpoint.load(path, kind="explorer-snapshot")
        cfg = from_dict(saved["config"])
        self.wm = WorldModel(cfg.world_model).eval()
        self.wm.load_state_dict(saved["wm"])
        f = cfg.finetune
        self.actor = Actor(self.wm.rssm.feat_size, cfg.world_model.action_size, f.units, f.actor_layers,
                           f.min_std, f.max_std).eval()
        self.actor.load_state_dict(saved["actor"])
        self.native = EMBODIMENTS[saved["embodiment"]].action_size
        self.mask = torch.as_tensor(mask(self.native, cfg.world_model.action_size))[None]
        self.state_size = cfg.world_model.state_size
        self.rng = rng

    def reset(self) -> None:
        torch.manual_seed(int(self.rng.integers(2**31)))
        self.state, self.prev = None, torch.zeros_like(self.mask)

    @torch.no_grad()
    def __call__(self, state: np.ndarray) -> np.ndarray:
        x = torch.as_tensor(pad(np.asarray(state, np.float32), self.state_size))[None]
        first = torch.tensor([self.state is None])
        current = self.wm.rssm.initial(1) if self.state is None else self.state
        self.state, _ = self.wm.rssm.obs_step(current, self.prev, self.wm.encoder(x), first)
        action = self.actor(self.wm.rssm.feat(self.state), self.mask).sample()  # (1, A), padded dims 0
        self.prev = action
        return action[0, : self.native].numpy().astype(np.float64)
