"""Seconds per world-model training step (paper Eq. 1, batch 16 × 64, pixels) with and without torch.compile.

Times ``make_train_step`` of ``gsa/train/pretrain.py`` on random synthetic batches (uint8 frames, padded
actions + mask, ``is_first``) for the ``tiny`` (``preset("smoke")``) and ``small`` (the paper preset at NCRL's
"small") world models. The first step of each run is timed apart: for compiled runs it is the compile time.
Prints a table and, measured in the same run, the ratios compiled vs eager and small vs tiny. On CUDA the
``paper`` preset is timed too, and every run uses bf16 autocast. Compiled runs are on by default only on
CUDA (as in ``runtime``): on CPU a cold compile alone takes longer than the rest of the run (COMPILE_NOTE).

    python benchmarks/wm_step.py [--presets tiny small] [--steps N] [--compile/--no-compile] [--device cpu]
"""
from __future__ import annotations

import argparse
import os
import time

import gsa  # noqa: F401  (before torch: OMP_WAIT_POLICY=PASSIVE keeps timings meaningful on shared cores)
import torch

from gsa.config import SMALL, WorldModelConfig, preset
from gsa.models.world_model import WorldModel
from gsa.train.optim import make_optimizer
from gsa.train.pretrain import COMPILE_MODES, make_train_step, runtime

B, T = 16, 64
PRESETS = {"tiny": ("smoke", None), "small": ("paper", {f"world_model.{k}": v for k, v in SMALL.items()}),
           "paper": ("paper", None)}
DEFAULT_STEPS = {"tiny": 10, "small": 3, "paper": 20}  # small: ~5 s a step on 2 CPU threads
COMPILE_NOTE = ("pass --compile graph step to time torch.compile too; with a cold inductor cache the 64-step "
                "unrolled graph compiles for ~20 min per preset on 2 CPU threads (~9 min on the H100 machine; "
                "~20 s warm), the RSSM step for ~1 min (35 s)")


def synthetic_batch(cfg: WorldModelConfig, device: torch.device, seed: int, real_dims: int = 6) -> dict:
    """A random pixel batch in the sampler's format: frames (B, T, 3, 64, 64) uint8, actions (B, T, A)
    zero beyond `real_dims`, mask (B, A), is_first (B, T) at t = 0."""
    g = torch.Generator().manual_seed(seed)
    mask = (torch.arange(cfg.action_size) < real_dims).float().expand(B, -1)
    batch = {
        "observation": torch.randint(0, 256, (B, T, 3, cfg.image_size, cfg.image_size), dtype=torch.uint8, generator=g),
        "action": (torch.rand(B, T, cfg.action_size, generator=g) * 2 - 1) * mask[:, None],
        "action_mask": mask,
        "is_first": torch.zeros(B, T, dtype=torch.bool).index_fill(1, torch.tensor([0]), True),
    }
    return {k: v.to(device) for k, v in batch.items()}


def load_note() -> str:
    """Other processes on these cores distort the timings (OpenMP threads wait on preempted peers)."""
    load = os.getloadavg()[0]
    busy = f": other jobs share the {os.cpu_count()} cores, compare only ratios within this run" if load > 0.5 else ""
    return f"load average {load:.2f}{busy}"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_step(step, batches: list[dict], steps: int, device: torch.device) -> tuple[float, float]:
    """(seconds of the first step, mean seconds of the next `steps` steps)."""
    sync(device)
    start = time.perf_counter()
    step(batches[0])
    sync(device)
    first = time.perf_counter() - start
    start = time.perf_counter()
    for i in range(steps):
        step(batches[(i + 1) % len(batches)])
    sync(device)
    return first, (time.perf_counter() - start) / steps


def world_model_step(name: str, compile_: str, device: torch.device):
    """A fresh world model of preset `name`, its optimiser and the Eq. 1 train step → (step, cfg, params)."""
    cfg = preset(*PRESETS[name])
    torch.manual_seed(0)
    model = WorldModel(cfg.world_model).to(device)
    _, bf16 = runtime(compile_, None, device)
    optimizer = make_optimizer(model.parameters(), cfg.pretrain.optim)
    step = make_train_step(model, optimizer, cfg.pretrain.optim.grad_clip, compile_, bf16, device)
    return step, cfg, sum(p.numel() for p in model.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", choices=sorted(PRESETS), default=None,
                        help="default: tiny small (+ paper on CUDA)")
    parser.add_argument("--steps", type=int, default=None, help=f"timed steps per run (default {DEFAULT_STEPS})")
    parser.add_argument("--compile", nargs="*", choices=[m for m in COMPILE_MODES if m != "off"], default=None,
                        help="compile modes to time besides eager (default: step on CUDA, none on CPU)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    names = args.presets or (["tiny", "small"] + (["paper"] if device.type == "cuda" else []))
    _, bf16 = runtime(None, None, device)
    modes = ["off", *(args.compile if args.compile is not None else (["step"] if device.type == "cuda" else []))]
    print(f"world-model step, batch {B} x {T} pixels, {device}, {args.threads} threads "
          f"(OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}), bf16={bf16}; "
          f"{load_note()}")
    print(f"steps per run: {', '.join(f'{n} {args.steps or DEFAULT_STEPS[n]}' for n in names)} (first step excluded)")
    if "graph" not in modes:
        print(COMPILE_NOTE)

    results = {}
    for name in names:
        steps = args.steps or DEFAULT_STEPS[name]
        for compile_ in modes:
            step, cfg, params = world_model_step(name, compile_, device)
            batches = [synthetic_batch(cfg.world_model, device, seed) for seed in range(2)]
            first, per_step = time_step(step, batches, steps, device)
            results[name, compile_] = per_step
            print(f"  {name:6s} {params / 1e6:7.2f}M  {compile_:5s}  "
                  f"first step {first:7.2f} s  {per_step:7.3f} s/step  ({steps} steps)", flush=True)

    print("ratios (same run):")
    for name in names:
        for mode in modes[1:]:
            print(f"  {name}: compile {mode} is {results[name, 'off'] / results[name, mode]:.2f}x faster than eager")
    for compile_ in modes:
        if ("tiny", compile_) in results and ("small", compile_) in results:
            print(f"  small / tiny (compile {compile_}): "
                  f"{results['small', compile_] / results['tiny', compile_]:.1f}x the time per step")


if __name__ == "__main__":
    main()
