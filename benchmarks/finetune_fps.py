"""Frames per second of the whole fine-tuning loop (acting, updates, evaluation) against an earlier version.

Runs ``finetune`` (DreamerV3 from scratch: no pre-training needed) in state mode with the ``cpu`` preset's
world model and fine-tuning hyper-parameters for a few thousand frames, fixed seed, once with this checkout's
code and once with the package as it was at ``--reference`` (default: the version before issue 11's speed
work), each in a fresh process with the same thread count, one after the other. The reference package is
extracted from git history into a temporary directory, so no copy of old code lives in the project. Fields
the reference config does not know (options added since) are left out of its run and listed.

    python benchmarks/finetune_fps.py [--frames 4000] [--threads 2] [--reference e607cad] [--task dmc-cartpole-balance]
    python benchmarks/finetune_fps.py --updates 10     # seconds per update only (DreamerAgent.update on a fixed
                                                       # synthetic state batch of 16 × 32), same three versions
    python benchmarks/finetune_fps.py --updates 10 --bf16   # and the compiled update under bf16 autocast
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = "e607cad"  # main before issue 11: the loop of the learning check at ~15 frames/s


def settings(frames: int) -> dict:
    """The cpu preset's model and fine-tuning fields, with a short budget."""
    from gsa.config import preset, to_dict

    cfg = to_dict(preset("cpu"))
    flat = {f"world_model.{k}": v for k, v in cfg["world_model"].items()}
    flat.update({f"finetune.{k}": v for k, v in cfg["finetune"].items() if not isinstance(v, dict)})
    flat.update({f"finetune.ac_optim.{k}": v for k, v in cfg["finetune"]["ac_optim"].items()})
    flat.update({f"pretrain.{k}": cfg["pretrain"][k] for k in ("compile", "bf16")})
    flat.update({"finetune.frames": frames, "finetune.warmup_frames": 1000, "finetune.eval_every": frames // 2,
                 "finetune.eval_episodes": 1, "finetune.checkpoint_every": 10**9, "finetune.seed": 0})
    return flat


def driver(spec: dict) -> None:
    """In a fresh process whose ``gsa`` is the version under test: run, then print the timing as JSON."""
    import gsa  # noqa: F401
    import torch

    from gsa.config import preset, set_field
    from gsa.train.finetune import finetune

    torch.set_num_threads(spec["threads"])
    cfg, skipped = preset("smoke"), []
    for key, value in spec["settings"].items():
        try:
            set_field(cfg, key, value)
        except ValueError:
            skipped.append(key)
    cfg = dataclasses.replace(cfg, name="benchmark")
    if spec.get("updates"):
        return print(json.dumps({**time_updates(cfg, spec["updates"]), "skipped": skipped, "gsa": gsa.__file__}))
    start = time.perf_counter()
    run = finetune(cfg, spec["task"], "dreamerv3", experiment="fps", progress=False)
    seconds = time.perf_counter() - start
    evals = (Path(run) / "eval.csv").read_text().strip().splitlines()
    print(json.dumps({"seconds": seconds, "fps": spec["settings"]["finetune.frames"] / seconds,
                      "skipped": skipped, "gsa": gsa.__file__, "last_eval": evals[-1]}))


def time_updates(cfg, updates: int) -> dict:
    """Seconds of the first update (with a compile, its compile time) and the mean of the next ``updates``
    (after two more warm-up updates), on one fixed synthetic batch: 12 online + 4 retrieved rows."""
    import torch

    import gsa
    from gsa.models.world_model import WorldModel

    if (Path(gsa.__file__).parent / "agents").is_dir():
        from gsa.agents.dreamer import DreamerAgent
    else:  # versions before the agents refactor of December 2, 2026 (the reference e607cad among them)
        from gsa.train.finetune import Agent as DreamerAgent

    torch.manual_seed(0)
    B, T, A, S = cfg.finetune.batch_size, cfg.finetune.seq_len, cfg.world_model.action_size, cfg.world_model.state_size
    g = torch.Generator().manual_seed(0)
    mask = (torch.arange(A) < 6).float().expand(B, -1)
    batch = {"state": torch.randn(B, T, S, generator=g), "action": (torch.rand(B, T, A, generator=g) * 2 - 1) * mask[:, None],
             "action_mask": mask, "is_first": torch.zeros(B, T, dtype=torch.bool).index_fill(1, torch.tensor([0]), True),
             "reward": torch.rand(B, T, generator=g), "source": (torch.arange(B) >= B - B // 4).long()}
    agent = DreamerAgent(WorldModel(cfg.world_model), cfg, torch.device("cpu"))
    start = time.perf_counter()
    agent.update(batch)
    first = time.perf_counter() - start
    agent.update(batch), agent.update(batch)
    start = time.perf_counter()
    for _ in range(updates):
        agent.update(batch)
    return {"first": first, "update": (time.perf_counter() - start) / updates}


def measure(package_root: Path, spec: dict) -> dict:
    with tempfile.TemporaryDirectory() as work:
        env = {**os.environ, "PYTHONPATH": str(package_root), "GSA_ROOT": work,
               "GSA_RESULTS_DIR": str(Path(work) / "results"), "OMP_NUM_THREADS": str(spec["threads"])}
        out = subprocess.run([sys.executable, __file__, "--driver", json.dumps(spec)], env=env, cwd=work,
                             capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"run with {package_root} failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert Path(result["gsa"]).is_relative_to(package_root), result["gsa"]
    return result


def extract(revision: str, target: Path) -> Path:
    """``gsa/`` (and pyproject.toml, which locates the project root) as of ``revision``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision, "gsa", "pyproject.toml"],
                             capture_output=True, check=True).stdout
    with tarfile.open(fileobj=__import__("io").BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=4000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reference", default=REFERENCE, help="git revision of the reference version")
    parser.add_argument("--task", default="dmc-cartpole-balance")
    parser.add_argument("--updates", type=int, default=0, help="time this many updates instead of the loop")
    parser.add_argument("--eager-only", action="store_true", help="skip the compiled run (its compile takes minutes)")
    parser.add_argument("--bf16", action="store_true", help="also the compiled run under bf16 autocast (this CPU's AMX)")
    parser.add_argument("--driver", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.driver:
        return driver(json.loads(args.driver))
    sys.path.insert(0, str(ROOT))
    spec = {"settings": settings(args.frames), "task": args.task, "threads": args.threads, "updates": args.updates}
    eager = {**spec, "settings": {**spec["settings"], "pretrain.compile": "off", "finetune.compile": False}}
    with tempfile.TemporaryDirectory() as old:
        reference = measure(extract(args.reference, Path(old)), eager)
    current = measure(ROOT, eager)
    compiled = measure(ROOT, spec) if spec["settings"].get("pretrain.compile") == "graph" and not args.eager_only else None
    bf16 = measure(ROOT, {**spec, "settings": {**spec["settings"], "pretrain.compile": "graph", "pretrain.bf16": True}}) \
        if args.bf16 else None
    runs = (("this checkout, eager", current), ("this checkout, compiled (cpu preset)", compiled),
            ("this checkout, compiled, bf16 autocast", bf16))
    if args.updates:
        print(f"fine-tuning update (DreamerAgent.update), cpu preset model, state batch 16 x 32, {args.threads} threads, "
              f"mean of {args.updates}")
        print("| code | first update (s) | s / update | vs reference |\n| --- | ---: | ---: | ---: |")
        print(f"| reference {args.reference} (eager) | {reference['first']:.1f} | {reference['update']:.3f} | 1 |")
        for name, result in runs:
            if result is not None:
                print(f"| {name} | {result['first']:.1f} | {result['update']:.3f} | "
                      f"{reference['update'] / result['update']:.2f}x |")
    else:
        print(f"fine-tuning loop, {args.task}, state mode, cpu preset model, {args.frames} frames "
              f"(1000 warm-up), {args.threads} threads, seed 0")
        print(f"| code | seconds | frames/s | vs reference |\n| --- | ---: | ---: | ---: |")
        print(f"| reference {args.reference} (eager) | {reference['seconds']:.0f} | {reference['fps']:.1f} | 1 |")
        for name, result in runs:
            if result is not None:
                print(f"| {name} | {result['seconds']:.0f} | {result['fps']:.1f} | {result['fps'] / reference['fps']:.2f}x |")
        print("The compiled run includes its compile (11-13 min per process on this 2-core machine, cache or not).")
    if reference["skipped"]:
        print(f"fields unknown to the reference (left at its defaults): {', '.join(reference['skipped'])}")


if __name__ == "__main__":
    main()
