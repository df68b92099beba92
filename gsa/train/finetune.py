"""GSA fine-tuning, the online loop of paper Alg. 1 (method §5): ``gsa finetune --task dmc-walker-run``.

One code path, three switches (``FinetuneConfig``): ``pretrained`` (P: start from the pre-trained world
model), ``rehearsal`` (ER: retrieved offline sequences in every batch) and ``guidance`` (G: the BC prior
steers early episodes). All off is DreamerV3 from scratch: no retrieval database is opened and no BC prior
trained. ``METHODS`` names the paper's variants.

Outputs: ``results/runs/<experiment>/<method>/<task>/seed<k>/`` with ``config.json``,
``eval.csv`` (frame, episode return, success, normalised score), ``train.csv``, ``retrieval.json`` and,
once finished, ``done.json`` (small files, meant to be committed); the checkpoint (world model,
actor-critic, optimisers, BC prior, replay, RNG and loop state) goes to ``checkpoints/runs/...`` at episode
ends every ``checkpoint_every`` frames, next to ``events.jsonl`` (one line per start, resume and finish).
Calling again resumes an interrupted run and skips a finished one (by ``done.json``, so a clone with the
committed results and no checkpoints skips it too).
"""
from __future__ import annotations

import copy
import json
import os
import time
from collections import deque
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from gsa.bc import FRAMES, BCPolicy, BCSampler, stack_frames, train_bc
from gsa.config import Config, to_dict
from gsa.data.episodes import atomic_write
from gsa.data.sampler import MixedSampler, Replay
from gsa.envs import get_spec, make, mask, pad
from gsa.guidance import Guidance
from gsa.models.actor_critic import ActorCritic, make_optimizers
from gsa.models.world_model import WorldModel
from gsa.paths import resolve, results_dir
from gsa.retrieval import RetrievalDatabase, build_database, fingerprint
from gsa.train import checkpoint
from gsa.train.logger import CSVLogger
from gsa.train.optim import make_optimizer
from gsa.train.pretrain import load_world_model, make_train_step, open_dataset, runtime, to_torch, world_model_path

METHODS = {  # paper Fig. 6: components added one by one
    "dreamerv3": dict(pretrained=False, rehearsal=False, guidance=False),
    "p": dict(pretrained=True, rehearsal=False, guidance=False),
    "p+er": dict(pretrained=True, rehearsal=True, guidance=False),
    "gsa": dict(pretrained=True, rehearsal=True, guidance=True),
}


def with_method(cfg: Config, method: str) -> Config:
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {sorted(METHODS)}")
    cfg = copy.deepcopy(cfg)
    for key, value in METHODS[method].items():
        setattr(cfg.finetune, key, value)
    return cfg


def score(task: str, episode_return: float, success: float) -> float:
    """Normalised score (method §5.8): Meta-World success × 100, DMC return / 10."""
    return 100.0 * success if get_spec(task).benchmark == "metaworld" else episode_return / 10.0


def run_paths(cfg: Config, task: str, method: str, experiment: str) -> tuple[Path, Path]:
    tail = Path(experiment) / method / task / f"seed{cfg.finetune.seed}"
    return results_dir() / "runs" / tail, resolve("checkpoints/runs") / tail / "checkpoint.pt"


class Agent:
    """World model + actor-critic: acting in the env (one posterior step per frame) and the update."""

    def __init__(self, wm: WorldModel, cfg: Config, device: torch.device):
        f = cfg.finetune
        self.wm, self.cfg, self.device = wm, cfg, device
        self.ac = ActorCritic(wm.rssm.feat_size, cfg.world_model.action_size, f).to(device)
        self.wm_opt = make_optimizer(wm.parameters(), cfg.pretrain.optim)
        self.actor_opt, self.critic_opt = make_optimizers(self.ac, f.ac_optim)
        compile_, self.bf16 = runtime(cfg.pretrain.compile, cfg.pretrain.bf16, device)
        self.wm_step = make_train_step(wm, self.wm_opt, cfg.pretrain.optim.grad_clip, compile_, self.bf16, device)
        # the actor-critic loss (imagination + heads) as one compiled graph: on with the world model's "graph"
        # mode unless finetune.compile says otherwise (measured on 2 CPU cores, cpu preset: README)
        self.ac_loss = self.ac.loss
        if f.compile if f.compile is not None else compile_ == "graph":
            self.ac_loss = torch.compile(self.ac.loss)
        self.state, self.prev_action = None, None

    def reset(self) -> None:
        self.state = None
        self.prev_action = torch.zeros(1, self.cfg.world_model.action_size, device=self.device)

    @torch.no_grad()
    def observe(self, obs: np.ndarray) -> None:
        """Filter the new observation with the previously executed action."""
        x = torch.as_tensor(obs, device=self.device)[None]  # (1, ...)
        first = torch.tensor([self.state is None], device=self.device)
        state = self.wm.rssm.initial(1) if self.state is None else self.state
        self.state, _ = self.wm.rssm.obs_step(state, self.prev_action, self.wm.encoder(x), first)

    @torch.no_grad()
    def policy(self, action_mask: torch.Tensor, explore: bool) -> np.ndarray:
        """π_RL's padded action for the current state (padded dims exactly 0)."""
        dist = self.ac.actor(self.wm.rssm.feat(self.state), action_mask)
        return (dist.sample() if explore else dist.mode()).squeeze(0).cpu().numpy()

    def executed(self, action: np.ndarray) -> None:
        self.prev_action = torch.as_tensor(action, device=self.device, dtype=torch.float32)[None]

    def update(self, batch: dict, intrinsic=None) -> dict[str, torch.Tensor]:
        """World model on every row (Eq. 1), reward head on online rows only, actor-critic in imagination
        from every posterior state (method §5.1, 5.3–5.5). Returns detached metrics (no host sync); the
        batch's posterior states stay in ``self.post``. ``intrinsic`` replaces the reward head in
        imagination (the Plan2Explore explorer, see ``ActorCritic.loss``)."""
        f = self.cfg.finetune
        metrics, post = self.wm_step(batch)
        self.post = post
        metrics["wm_loss"] = metrics.pop("loss")
        online = batch["source"] == 0
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            reward_loss, actor_loss, critic_loss, ac_metrics = self.ac_loss(
                self.wm, post, batch["action_mask"], batch["reward"], online, intrinsic)
        self.actor_opt.zero_grad(set_to_none=True)
        self.critic_opt.zero_grad(set_to_none=True)
        (reward_loss + actor_loss + critic_loss).backward()
        torch.nn.utils.clip_grad_norm_(self.ac.actor.parameters(), f.ac_optim.grad_clip)
        torch.nn.utils.clip_grad_norm_([*self.ac.critic.parameters(), *self.ac.reward.parameters()], f.ac_optim.grad_clip)
        self.actor_opt.step()
        self.critic_opt.step()
        self.ac.update_slow(f.slow_critic_fraction)
        return {**metrics, "reward_loss": reward_loss.detach(),
                "actor_loss": actor_loss.detach(), "critic_loss": critic_loss.detach(), **ac_metrics}

    def state_dict(self) -> dict:
        return {"wm": self.wm.state_dict(), "ac": self.ac.state_dict(), "wm_opt": self.wm_opt.state_dict(),
                "actor_opt": self.actor_opt.state_dict(), "critic_opt": self.critic_opt.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.wm.load_state_dict(state["wm"])
        self.ac.load_state_dict(state["ac"])
        self.wm_opt.load_state_dict(state["wm_opt"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])


def retrieve(cfg: Config, task: str, wm: WorldModel, wm_path: Path, dataset_root, device,
             benchmark: str = "all") -> tuple:
    """Experience retrieval (method §5.2): the k offline trajectories of the task's embodiment whose first
    frame is nearest to the task's reset observation(s) (``finetune.retrieval_queries``, NCRL: one), by the
    pre-trained encoder, among the ``benchmark`` part of the data the world model was trained on. The feature
    database is cached next to the world-model checkpoint, keyed by the dataset's manifest hash and the
    encoder's weights (a longer pre-training rebuilds it)."""
    spec, wm_cfg = get_spec(task), cfg.world_model
    dataset = open_dataset(cfg, dataset_root, benchmark)
    key = "observation" if wm_cfg.obs == "pixels" else "state"

    @torch.no_grad()
    def encode(x: np.ndarray) -> np.ndarray:  # frames (n, 3, H, W) or states (n, S) padded to the model's size
        x = x if key == "observation" else pad(x, wm_cfg.state_size)
        return wm.encoder(torch.as_tensor(x, device=device)).float().cpu().numpy()

    path = wm_path.parent / f"retrieval-{wm_path.stem}-{wm_cfg.obs}.npz"
    encoder_hash = fingerprint(wm.encoder)
    try:
        db = RetrievalDatabase.load(path, dataset.manifest_sha256, encoder_hash)
    except (FileNotFoundError, ValueError):
        db = build_database(dataset.first_frames(key=key), encode, dataset.manifest["id"],
                            dataset.manifest["embodiment"], dataset.manifest["task"], dataset.manifest_sha256,
                            encoder_hash=encoder_hash)
        db.save(path)
    env = _env(cfg, task, seed=cfg.finetune.seed + 20_000)
    resets = np.stack([env.reset(seed=cfg.finetune.seed + 20_000 + i)[0] for i in range(cfg.finetune.retrieval_queries)])
    env.close()
    ids = db.retrieve(lambda: encode(resets), spec.domain, cfg.finetune.retrieval_k)
    retrieved = dataset.subset(ids)
    info = {"k": len(ids), "embodiment": spec.domain,
            "precision_at_k": db.precision_at_k(ids, task) if spec.benchmark == "metaworld" else None,
            "embodiment_precision": float(np.mean(retrieved.manifest["embodiment"] == spec.domain))}
    return retrieved, info


def train_prior(cfg: Config, retrieved, device, progress: bool = True) -> BCPolicy:
    """π_bc by behaviour cloning on the retrieved trajectories (method §5.6), trained on ``device``."""
    f, wm_cfg = cfg.finetune, cfg.world_model
    episodes = [retrieved.episode(i) for i in range(len(retrieved))]
    for episode in episodes:
        if "state" in episode:
            episode["state"] = pad(episode["state"], wm_cfg.state_size)
    native = int(retrieved.native_action[0])
    action_mask = mask(native, retrieved.action_size)
    pixels = wm_cfg.obs == "pixels"
    sampler = BCSampler(episodes, action_mask, f.bc_batch_size, "observation" if pixels else "state", f.seed)
    prior = BCPolicy(wm_cfg.action_size, mask(native, wm_cfg.action_size),
                     state_size=None if pixels else wm_cfg.state_size).to(device)

    def batch() -> dict:  # pad the dataset's action size to the world model's
        b = sampler()
        b["action"] = np.pad(b["action"], ((0, 0), (0, wm_cfg.action_size - b["action"].shape[1])))
        b["action_mask"] = prior.action_mask.numpy()
        return b

    train_bc(prior, batch, f.bc_steps, f.bc_lr, progress)
    return prior


def make_guidance(cfg: Config, task: str) -> Guidance:
    """Execution guidance for ``task``: its benchmark's schedule (method §5.6, unless ``guidance_schedule`` is
    set) over episodes of the task's length in agent steps at ``finetune.action_repeat``."""
    f, embodiment = cfg.finetune, get_spec(task).embodiment
    return Guidance(f.schedule(embodiment.benchmark), embodiment.episode_length(f.action_repeat), seed=f.seed)


def _env(cfg: Config, task: str, seed: int):
    wm = cfg.world_model
    if wm.obs == "pixels":
        return make(task, obs="pixels", size=wm.image_size, action_repeat=cfg.finetune.action_repeat,
                    seed=seed, action_size=wm.action_size)
    return make(task, obs="state", action_repeat=cfg.finetune.action_repeat, seed=seed,
                action_size=wm.action_size, state_size=wm.state_size)


def evaluate(agent: Agent, env, episodes: int, seed: int) -> dict:
    """``episodes`` episodes with π_RL's mean action (method §5.8); the agent's acting state is kept."""
    kept = agent.state, agent.prev_action
    returns, successes = [], []
    action_mask = torch.as_tensor(env.action_mask, device=agent.device)[None]
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        agent.reset()
        total, done, info = 0.0, False, {}
        while not done:
            agent.observe(obs)
            action = agent.policy(action_mask, explore=False)
            obs, reward, terminated, truncated, info = env.step(action)
            agent.executed(info["action"])
            total, done = total + reward, terminated or truncated
        returns.append(total)
        successes.append(float(info.get("success", np.nan)))
    agent.state, agent.prev_action = kept
    return {"episode_return": float(np.mean(returns)), "success": float(np.mean(successes))}


def finetune(cfg: Config, task: str, method: str = "gsa", world_model: str | Path | None = None,
             dataset_root: str | Path | None = None, experiment: str = "finetune", progress: bool = True,
             stop_at: int | None = None, label: str | None = None) -> Path:
    """Fine-tune on ``task`` with ``method`` (a key of ``METHODS``); returns the run directory,
    ``results/runs/<experiment>/<label>/<task>/seed<k>`` (``label`` defaults to the method's name; the sweep
    names variants with overrides ``<method>.<variant>``).

    ``stop_at`` (frames) ends the run at the first episode end past it, after a checkpoint — as a kill
    right after a checkpoint would (used by the resume test)."""
    cfg = with_method(cfg, method)
    f, wm_cfg = cfg.finetune, cfg.world_model
    spec = get_spec(task)
    run, ckpt_path = run_paths(cfg, task, label or method, experiment)
    if is_done(run, f.frames):
        return run
    saved = checkpoint.load(ckpt_path, kind="finetune") if ckpt_path.exists() else None
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    checkpoint.seed_everything(f.seed)

    # -- world model, retrieved data, prior (Alg. 1 lines 1–3) ---------------------------------------------
    wm_path = Path(world_model or world_model_path(cfg, spec.benchmark))
    wm_benchmark = "all"
    if f.pretrained:
        wm, wm_ckpt_cfg, wm_state = load_world_model(wm_path, device)
        cfg.world_model = wm_cfg = wm_ckpt_cfg.world_model
        wm_benchmark = wm_state.get("benchmark", "all")
    else:
        wm = WorldModel(wm_cfg).to(device)
    if saved is not None:
        checkpoint.check_config(saved["config"], to_dict(cfg), ckpt_path)
    retrieved, retrieval_info = None, {}
    if f.rehearsal or f.guidance:
        if not f.pretrained:
            raise ValueError("rehearsal and guidance retrieve with the pre-trained encoder: set pretrained")
        retrieved, retrieval_info = retrieve(cfg, task, wm, wm_path, dataset_root, device, wm_benchmark)
    agent = Agent(wm, cfg, device)
    prior = None
    if f.guidance:
        prior = BCPolicy(wm_cfg.action_size, mask(spec.embodiment.action_size, wm_cfg.action_size),
                         state_size=None if wm_cfg.obs == "pixels" else wm_cfg.state_size).to(device)
        if saved is not None:
            prior.load_state_dict(saved["prior"])
        else:
            prior = train_prior(cfg, retrieved, device, progress)

    # -- online data -----------------------------------------------------------------------------------
    obs_key, obs_shape = (("observation", (3, wm_cfg.image_size, wm_cfg.image_size)) if wm_cfg.obs == "pixels"
                          else ("state", (wm_cfg.state_size,)))
    replay = Replay(spec.domain, obs_shape, obs_key)
    sources = [(replay, 1.0)] if not f.rehearsal else [(replay, 1 - f.offline_share), (retrieved, f.offline_share)]
    sampler = MixedSampler(sources, f.batch_size, f.seq_len, wm_cfg.action_size, seed=f.seed, obs_key=obs_key,
                           obs_shape=obs_shape)
    guidance = make_guidance(cfg, task)
    rng = np.random.default_rng(f.seed)
    loop = {"frames": 0, "steps": 0, "updates": 0, "episodes": 0, "seconds": 0.0}
    train_log, eval_log = CSVLogger(run / "train.csv", "frame"), CSVLogger(run / "eval.csv", "frame")
    if saved is not None:
        agent.load_state_dict(saved["agent"])
        replay.episodes = saved["replay"]
        guidance.rng.bit_generator.state = saved["guidance_rng"]
        rng.bit_generator.state = saved["rng_numpy"]
        checkpoint.set_rng_state(saved["rng"])
        loop = {"seconds": 0.0, **saved["loop"]}
        train_log.resume_at(loop["frames"])
        eval_log.resume_at(loop["frames"])
    else:
        train_log.reset()
        eval_log.reset()
        run.mkdir(parents=True, exist_ok=True)
        (run / "config.json").write_text(json.dumps({"task": task, "method": method, **to_dict(cfg)}, indent=2))
        (run / "retrieval.json").write_text(json.dumps(retrieval_info, indent=2))
    _event(ckpt_path, "resume" if saved is not None else "start", loop["frames"])

    def save() -> None:
        loop["seconds"] += time.perf_counter() - clock[0]
        clock[0] = time.perf_counter()
        checkpoint.save(ckpt_path, kind="finetune", config=to_dict(cfg), agent=agent.state_dict(),
                        prior=None if prior is None else prior.state_dict(), replay=replay.episodes,
                        guidance_rng=guidance.rng.bit_generator.state, rng_numpy=rng.bit_generator.state,
                        loop=dict(loop))

    # -- the loop (Alg. 1 lines 4–end) ------------------------------------------------------------------
    env, eval_env = _env(cfg, task, f.seed), _env(cfg, task, f.seed + 10_000)
    action_mask = torch.as_tensor(env.action_mask, device=device)[None]
    update_every = max(1, f.batch_size * f.seq_len // f.train_ratio)  # train ratio 256: every 4 agent steps
    next_checkpoint = (loop["frames"] // f.checkpoint_every + 1) * f.checkpoint_every
    end = f.frames if stop_at is None else min(stop_at, f.frames)
    bar = tqdm(total=f.frames, initial=loop["frames"], desc=f"{method} {task}", unit="frame", disable=not progress)
    totals, count, started = None, 0, time.perf_counter()
    clock = [started]  # wall time since the last checkpoint
    while loop["frames"] < end:
        obs, _ = env.reset(seed=f.seed * 100_000 + loop["episodes"])
        agent.reset()
        warm = loop["frames"] < f.warmup_frames
        guided = prior is not None and (warm or guidance.start_episode(loop["steps"]))
        frames = deque([obs] * FRAMES, maxlen=FRAMES)
        replay.add(obs, np.zeros(wm_cfg.action_size, np.float32), 0.0, is_first=True)
        episode_return, prior_steps, done, t, info = 0.0, 0, False, 0, {}
        while not done:
            warm = loop["frames"] < f.warmup_frames
            if not warm:
                agent.observe(obs)
            if prior is not None and (warm or guidance.uses_prior(t)):
                x = stack_frames(np.stack(frames))[-1] if wm_cfg.obs == "pixels" else obs
                action, prior_steps = prior.act(x), prior_steps + 1
            elif warm:
                action = rng.uniform(-1, 1, wm_cfg.action_size).astype(np.float32) * env.action_mask
            else:
                action = agent.policy(action_mask, explore=True)
            obs, reward, terminated, truncated, info = env.step(action)
            agent.executed(info["action"])
            replay.add(obs, info["action"], reward, is_first=False)
            frames.append(obs)
            episode_return, done, t = episode_return + reward, terminated or truncated, t + 1
            loop["frames"] += f.action_repeat
            loop["steps"] += 1
            bar.update(f.action_repeat)
            if loop["frames"] > f.warmup_frames and loop["steps"] % update_every == 0:
                batch = to_torch(sampler.sample(step=loop["updates"]), device)
                metrics = agent.update(batch)
                totals = metrics if totals is None else {k: totals[k] + v for k, v in metrics.items()}
                count, loop["updates"] = count + 1, loop["updates"] + 1
            if loop["frames"] % f.eval_every == 0:
                result = evaluate(agent, eval_env, f.eval_episodes, seed=f.seed * 100_000 + 50_000 + loop["frames"])
                eval_log.log({"frame": loop["frames"], **result,
                              "score": score(task, result["episode_return"], result["success"])})
                bar.set_postfix(eval_return=f"{result['episode_return']:.1f}")
        loop["episodes"] += 1
        row = {"frame": loop["frames"], "episode": loop["episodes"], "episode_return": episode_return,
               "success": float(info.get("success", np.nan)), "guided": guided, "prior_steps": prior_steps,
               "updates": loop["updates"], "fps": t * f.action_repeat / (time.perf_counter() - started)}
        if totals is not None:
            row.update({k: v.item() / count for k, v in totals.items()})
        train_log.log(row)
        bar.set_postfix(train_return=f"{episode_return:.1f}")
        totals, count, started = None, 0, time.perf_counter()
        if loop["frames"] >= next_checkpoint or loop["frames"] >= end:
            save()
            next_checkpoint = (loop["frames"] // f.checkpoint_every + 1) * f.checkpoint_every
    bar.close()
    env.close()
    eval_env.close()
    if loop["frames"] >= f.frames:
        done = {k: loop[k] for k in ("frames", "updates", "episodes")}
        atomic_write(run / "done.json", lambda out: out.write(json.dumps({**done, "seconds": round(loop["seconds"], 1)}).encode()))
        _event(ckpt_path, "done", loop["frames"])
    return run


def is_done(run: Path, frames: int) -> bool:
    """Whether the run in ``run`` finished ``frames`` frames (its ``done.json``)."""
    path = run / "done.json"
    return path.exists() and json.loads(path.read_text())["frames"] >= frames


def _event(ckpt_path: Path, event: str, frames: int) -> None:
    """Append one line to the run's ``events.jsonl`` (start / resume / done), next to its checkpoint."""
    ckpt_path.parent.mkdir(parents=True, exist_ok=True)
    with open(ckpt_path.parent / "events.jsonl", "a") as out:
        out.write(json.dumps({"event": event, "frames": frames, "pid": os.getpid(), "time": time.time()}) + "\n")


def load_results(experiment: str) -> "pd.DataFrame":
    """Every ``eval.csv`` of an experiment as one tidy table (method, task, seed, frame, return, score...)."""
    import pandas as pd

    frames = []
    for path in sorted((results_dir() / "runs" / experiment).glob("*/*/seed*/eval.csv")):
        seed_dir = path.parent
        table = pd.read_csv(path)
        if len(table):
            frames.append(table.assign(method=seed_dir.parent.parent.name, task=seed_dir.parent.name,
                                       seed=int(seed_dir.name.removeprefix("seed"))))
    if not frames:
        raise FileNotFoundError(f"no eval.csv under {results_dir() / 'runs' / experiment}")
    return pd.concat(frames, ignore_index=True)
