"""Seconds per GSA fine-tuning update, as a ratio to the world-model-only step measured in the same run.

A fine-tuning update (``DreamerAgent.update`` of ``gsa/agents/dreamer.py``, method §5) is one world-model step
(paper Eq. 1) + the reward head on the online rows + actor-critic imagination (horizon 16 from all
16 × 64 posterior states) and its update. The reference is the pre-training step (``make_train_step``) on
the same random batches (16 × 64 pixels, 4 retrieved rows). Presets: ``tiny`` = ``preset("smoke")`` (its
actor-critic has 64 units), ``small`` = the paper preset with NCRL's "small" world model (512 units, as in the paper), and on CUDA ``paper``;
batch 16 × 64 for all rather than the smoke preset's 8 × 32. Eager fp32 on CPU; on CUDA bf16 autocast and
compile mode ``step`` (``runtime``; ``--compile graph`` for the training default, minutes of compile), the
same on both sides of the ratio.

    python benchmarks/finetune_step.py [--presets tiny small paper] [--steps N] [--compile off|step|graph] [--device cpu]
"""
from __future__ import annotations

import argparse
import os

# benchmarks/wm_step.py, imported first (it imports gsa, which sets OMP_WAIT_POLICY before torch loads)
from wm_step import B, DEFAULT_STEPS, PRESETS, T, load_note, synthetic_batch, time_step, world_model_step

import torch  # noqa: E402

from gsa.config import preset
from gsa.models.world_model import WorldModel
from gsa.agents.dreamer import DreamerAgent
from gsa.train.pretrain import COMPILE_MODES, runtime

OFFLINE_ROWS = 4  # method §5.3: offline share 0.25 of 16


def finetune_batch(cfg, device: torch.device, seed: int) -> dict:
    """A pixel batch plus rewards (B, T) and sources (B,): the last rows are retrieved (source 1)."""
    batch = synthetic_batch(cfg.world_model, device, seed)
    g = torch.Generator().manual_seed(seed)
    batch["reward"] = torch.rand(B, T, generator=g).to(device)
    batch["source"] = (torch.arange(B) >= B - OFFLINE_ROWS).long().to(device)
    return batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", choices=sorted(PRESETS), default=None,
                        help="default: tiny small (+ paper on CUDA)")
    parser.add_argument("--steps", type=int, default=None, help=f"timed steps per run (default {DEFAULT_STEPS})")
    parser.add_argument("--compile", choices=COMPILE_MODES, default=None,
                        help="compile mode (default: step on CUDA, off on CPU)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=2)
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
        torch.manual_seed(0)
        agent = DreamerAgent(WorldModel(cfg.world_model).to(device), cfg, device)
        _, ft_seconds = time_step(agent.update, batches, steps, device)
        f = cfg.finetune
        print(f"  {name:6s} world model {wm_seconds:7.3f} s/step   fine-tuning update {ft_seconds:7.3f} s/step   "
              f"ratio {ft_seconds / wm_seconds:5.2f}x   (actor-critic share {1 - wm_seconds / ft_seconds:4.0%}; "
              f"horizon {f.horizon}, units {f.units}; {steps} steps)", flush=True)


if __name__ == "__main__":
    main()
