"""Seconds per fine-tuning update of every agent, as a ratio to the world-model-only step measured in the same run.

A fine-tuning update (``DreamerAgent.update`` of ``gsa/agents/dreamer.py``, method §5) is one world-model step
(paper Eq. 1) + the reward head on the online rows + actor-critic imagination (horizon 16 from all
16 × 64 posterior states) and its update. The reference is the pre-training step (``make_train_step``) on
the same random batches (16 × 64 pixels, 4 retrieved rows). Presets: ``tiny`` = ``preset("smoke")`` (its
actor-critic has 64 units), ``small`` = the paper preset with NCRL's "small" world model (512 units, as in the paper), and on CUDA ``paper``;
batch 16 × 64 for all rather than the smoke preset's 8 × 32. Eager fp32 on CPU; on CUDA bf16 autocast and
compile mode ``step`` (``runtime``; ``--compile graph`` for the training default, minutes of compile), the
same on both sides of the ratio.

The baselines (method §7) are timed on the same pixels at their own batch shapes (``agent.batch_size`` windows
of ``agent.window`` frames: DrQ-v2 and JSRL-BC's learner 256 × 4, RLPD / ExPLORe 20 minibatches of 256 × 4 per
update, Diffusion Policy 256 × 4, R3M = DrQ-v2 on a frozen encoder), eager; the ratio is to the same
world-model step. Their networks do not depend on the world-model preset, so they are timed once.

    python benchmarks/finetune_step.py [--presets tiny small paper] [--agents dreamer drqv2 ...] [--steps N]
                                       [--compile off|step|graph] [--device cpu] [--project]

``--project`` also measures acting (one filtering step + the actor, ``DreamerAgent.observe`` + ``policy``, on
the device) and the environment step with 64×64 rendering on the host (``dmc-walker-walk``, ``mw-assembly``),
and projects the hours of one 150k-frame fine-tuning run of the paper's schedule (method §5.7–5.8):

    S = F / R agent steps, U = (F − W) / (R · K) updates, E = F / V evaluations of N episodes of L steps
    hours = [U · t_update + S · (t_act + t_env) + E · N · L · (t_act + t_env)] / 3600

with F = 150k frames, R = 2, W = 15k warm-up frames, K = 4 agent steps per update (train ratio 256 at
16 × 64), V = 10k, N = 5, L = 500 (DMC) or 100 (Meta-World). Acting, the environment and updates run one
after the other, as in ``gsa.train.online``.
"""
from __future__ import annotations

import argparse
import os
import time

# benchmarks/wm_step.py, imported first (it imports gsa, which sets OMP_WAIT_POLICY before torch loads)
from wm_step import B, DEFAULT_STEPS, PRESETS, T, load_note, sync, synthetic_batch, time_step, world_model_step

import numpy as np  # noqa: E402
import torch  # noqa: E402

from gsa.agents.diffusion import DiffusionPolicy
from gsa.agents.dreamer import DreamerAgent
from gsa.agents.drqv2 import DrQv2
from gsa.agents.explore import ExPLORe
from gsa.agents.r3m import FrameEncoder, R3MEncoder
from gsa.agents.rlpd import RLPD
from gsa.config import preset
from gsa.envs import make
from gsa.models.world_model import WorldModel
from gsa.train.pretrain import COMPILE_MODES, runtime

OFFLINE_ROWS = 4  # method §5.3: offline share 0.25 of 16


def finetune_batch(cfg, device: torch.device, seed: int) -> dict:
    """A pixel batch plus rewards (B, T) and sources (B,): the last rows are retrieved (source 1)."""
    batch = synthetic_batch(cfg.world_model, device, seed)
    g = torch.Generator().manual_seed(seed)
    batch["reward"] = torch.rand(B, T, generator=g).to(device)
    batch["source"] = (torch.arange(B) >= B - OFFLINE_ROWS).long().to(device)
    return batch


def baseline(name: str, cfg, device: torch.device):
    """The baseline agent ``name`` on 64×64 pixels with 6 real action dims of the world model's A_max."""
    shape, mask = (3, 64, 64), (np.arange(cfg.world_model.action_size) < 6).astype(np.float32)
    if name == "drqv2":
        return DrQv2(shape, mask, cfg.drqv2, device)
    if name == "r3m":
        encoder = FrameEncoder(R3MEncoder(shape, cfg.r3m.embed_dim), cfg.drqv2.frame_stack)
        return DrQv2(shape, mask, cfg.drqv2, device, encoder=encoder)
    if name in ("uds-rlpd", "explore"):
        return (RLPD if name == "uds-rlpd" else ExPLORe)(shape, mask, cfg.rlpd, device)
    return DiffusionPolicy(shape, mask, cfg.diffusion, device)


def baseline_batch(agent, cfg, device: torch.device, seed: int) -> dict:
    """(agent.batch_size, agent.window) windows of random frames, actions, rewards; half of the rows offline."""
    g = torch.Generator().manual_seed(seed)
    N, L, A = agent.batch_size, agent.window, cfg.world_model.action_size
    action = torch.rand(N, L, A, generator=g) * 2 - 1
    action[..., 6:] = 0
    return {"observation": torch.randint(0, 256, (N, L, 3, 64, 64), generator=g, dtype=torch.uint8).to(device),
            "action": action.to(device), "reward": torch.rand(N, L, generator=g).to(device),
            "source": (torch.arange(N) % 2).to(device)}


BASELINES = ("drqv2", "uds-rlpd", "explore", "diffusion-policy", "r3m")


def acting_seconds(agent: DreamerAgent, cfg, device: torch.device, steps: int = 20) -> float:
    """Seconds per agent step of acting: filter one 64×64 frame, then the actor's sample."""
    frame = torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8).numpy()
    action_mask = torch.ones(1, cfg.world_model.action_size, device=device)
    agent.reset()
    for i in range(steps + 2):
        if i == 2:
            sync(device)
            start = time.perf_counter()
        agent.observe(frame)
        agent.executed(agent.policy(action_mask, explore=True))
    sync(device)
    return (time.perf_counter() - start) / steps


def env_seconds(task: str, steps: int = 50) -> float:
    """Seconds per agent step (action repeat 2) of the task's env with 64×64 rendering."""
    env = make(task, obs="pixels", size=64, action_repeat=2, seed=0)
    env.reset(seed=0)
    start = time.perf_counter()
    for _ in range(steps):
        env.step(env.action_space.sample())
    env.close()
    return (time.perf_counter() - start) / steps


def projected_hours(t_update: float, t_act: float, t_env: float, length: int, frames: int = 150_000,
                    repeat: int = 2, warmup: int = 15_000, every: int = 4, eval_every: int = 10_000,
                    episodes: int = 5) -> float:
    """The projection of the module docstring: hours of one fine-tuning run."""
    steps, updates = frames / repeat, (frames - warmup) / (repeat * every)
    evaluation = frames / eval_every * episodes * length
    return (updates * t_update + (steps + evaluation) * (t_act + t_env)) / 3600


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", choices=sorted(PRESETS), default=None,
                        help="default: tiny small (+ paper on CUDA)")
    parser.add_argument("--agents", nargs="+", choices=["dreamer", *BASELINES], default=["dreamer", *BASELINES],
                        help="dreamer = GSA / DreamerV3's update; the others at the first preset's world-model step")
    parser.add_argument("--steps", type=int, default=None, help=f"timed steps per run (default {DEFAULT_STEPS})")
    parser.add_argument("--compile", choices=COMPILE_MODES, default=None,
                        help="compile mode (default: step on CUDA, off on CPU)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--project", action="store_true", help="also project the hours of a 150k-frame run")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    names = args.presets or (["tiny", "small"] + (["paper"] if device.type == "cuda" else []))
    compile_, bf16 = runtime(args.compile or ("step" if device.type == "cuda" else "off"), None, device)
    print(f"fine-tuning update vs world-model step, batch {B} x {T} pixels ({OFFLINE_ROWS} retrieved rows), "
          f"{device}, {args.threads} threads (OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}), "
          f"compile {compile_}, bf16={bf16}; {load_note()}")
    for name in names:
        steps = args.steps or DEFAULT_STEPS[name]
        cfg = preset(*PRESETS[name])
        cfg.pretrain.compile = compile_
        batches = [finetune_batch(cfg, device, seed) for seed in range(2)]
        wm_step, _, _ = world_model_step(name, compile_, device)
        _, wm_seconds = time_step(wm_step, batches, steps, device)
        if "dreamer" in args.agents:
            torch.manual_seed(0)
            agent = DreamerAgent(WorldModel(cfg.world_model).to(device), cfg, device)
            _, ft_seconds = time_step(agent.update, batches, steps, device)
            f = cfg.finetune
            print(f"  {name:6s} world model {wm_seconds:7.3f} s/step   fine-tuning update {ft_seconds:7.3f} s/step   "
                  f"ratio {ft_seconds / wm_seconds:5.2f}x   (actor-critic share {1 - wm_seconds / ft_seconds:4.0%}; "
                  f"horizon {f.horizon}, units {f.units}; {steps} steps)", flush=True)
            if args.project:
                t_act = acting_seconds(agent, cfg, device)
                for task, length in (("dmc-walker-walk", 500), ("mw-assembly", 100)):
                    t_env = env_seconds(task)
                    hours = projected_hours(ft_seconds, t_act, t_env, length)
                    print(f"         projection {task}: update {ft_seconds:.3f} s, acting {t_act * 1e3:.1f} ms, env "
                          f"{t_env * 1e3:.1f} ms per agent step -> {hours:.2f} h per 150k-frame run", flush=True)
        if name != names[0]:
            continue
        for agent_name in (a for a in args.agents if a != "dreamer"):
            torch.manual_seed(0)
            agent = baseline(agent_name, preset("paper"), device)
            agent_batches = [baseline_batch(agent, cfg, device, seed) for seed in range(2)]
            _, seconds = time_step(agent.update, agent_batches, max(1, steps // 2), device)
            print(f"  {agent_name:16s} update {seconds:7.3f} s   ratio to the {name} world-model step "
                  f"{seconds / wm_seconds:6.2f}x   ({agent.batch_size} x {agent.window} windows)", flush=True)


if __name__ == "__main__":
    main()
