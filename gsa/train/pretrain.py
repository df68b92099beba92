"""World-model pre-training on the offline dataset (method §4, paper Eq. 1): ``gsa pretrain --preset smoke``.

- Batches (B × T) come from the packed store through a background loader; batch k is a function of
  (seed, k) alone, so prefetching, resuming and DDP ranks never change the data order.
- The step runs under bf16 autocast and ``torch.compile`` when enabled (default: on for CUDA, off on
  CPU; ``pretrain.compile`` picks the whole graph or the RSSM step, see ``runtime``); it makes no host
  synchronisation — metrics stay on the device and are read every ``log_every``.
- ``checkpoint.pt`` (model, optimiser, step, RNG states, config, dataset hash) is written atomically every
  ``checkpoint_every`` steps and at the end; calling again resumes from it and continues exactly as an
  uninterrupted run would (same batches, same losses on CPU).
- Data parallel (paper preset on several GPUs): ``torchrun --nproc_per_node N -m gsa.cli pretrain ...``.
  Each rank draws its own batches (seed offset by rank) and DDP averages gradients; rank 0 writes the
  checkpoint and the log. Only the single-process path is tested here (no GPU in CI).
"""
from __future__ import annotations

import json
import os
import shutil
import time
import warnings
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from gsa.config import Config, to_dict
from gsa.data.sampler import MixedSampler
from gsa.data.store import OfflineDataset
from gsa.models.world_model import WorldModel
from gsa.paths import resolve
from gsa.train import checkpoint
from gsa.train.logger import CSVLogger
from gsa.train.optim import make_optimizer


BENCHMARKS = ("dmc", "metaworld")


def default_out(cfg: Config, benchmark: str) -> Path:
    """``checkpoints/<preset>/world_model/<benchmark>``: one directory per pre-trained model, named after the
    data it saw ("dmc", "metaworld" or "all"), as the NCRL code's ``dmcontrol.pt`` / ``metaworld.pt``."""
    return resolve(f"checkpoints/{cfg.name}/world_model/{benchmark}")


def model_benchmarks(cfg: Config, dataset: OfflineDataset | None = None) -> list[str]:
    """The world models ``cfg`` pre-trains: one per benchmark present in the data (``pretrain.benchmark =
    "each"``, the paper's, method §4), or the one named ("all", "dmc", "metaworld")."""
    choice = cfg.pretrain.benchmark
    if choice not in (*BENCHMARKS, "all", "each"):
        raise ValueError(f"pretrain.benchmark={choice!r}: choose 'each', 'all', 'dmc' or 'metaworld'")
    if choice != "each":
        return [choice]
    present = set(dataset.manifest["benchmark"]) if dataset is not None else set(BENCHMARKS)
    return [b for b in BENCHMARKS if b in present]


def world_model_path(cfg: Config, task_benchmark: str) -> Path:
    """The checkpoint a task of ``task_benchmark`` fine-tunes from: its benchmark's model, or the single
    model of ``pretrain.benchmark`` ("all", or the task's own benchmark)."""
    choice = cfg.pretrain.benchmark
    if choice not in ("each", "all", task_benchmark):
        raise ValueError(f"pretrain.benchmark={choice!r} has no world model for a {task_benchmark!r} task")
    return default_out(cfg, task_benchmark if choice == "each" else choice) / "checkpoint.pt"


COMPILE_MODES = ("graph", "step", "off")


def runtime(compile_: str | bool | None, bf16: bool | None, device: torch.device) -> tuple[str, bool]:
    """Resolve the ``None`` defaults: compile the whole graph and use bf16 on CUDA, neither on CPU.

    Compile modes (measured on an H100 with ``benchmarks/wm_step.py``, tiny world model, 16 × 64 pixels):
    ``"graph"`` compiles the whole unrolled training loss: fastest step (0.12 s vs 0.32 s eager) but a cold
    compile of ~9 minutes per graph (inductor's cache makes later runs start in seconds); ``"step"``
    compiles only the RSSM's one-step functions: a ~35 s compile, ~1.5× faster than eager, and imagination
    uses them too. ``True``/``False`` mean ``"graph"``/``"off"``."""
    cuda = device.type == "cuda"
    if compile_ is None or isinstance(compile_, bool):
        compile_ = "graph" if (cuda if compile_ is None else compile_) else "off"
    if compile_ not in COMPILE_MODES:
        raise ValueError(f"pretrain.compile={compile_!r}: choose one of {COMPILE_MODES}")
    if compile_ != "off" and not cuda and not (shutil.which("c++") or shutil.which("g++")):
        warnings.warn(f"pretrain.compile={compile_!r} needs a C++ compiler on the CPU and none was found: "
                      "running eagerly", stacklevel=2)
        compile_ = "off"
    return compile_, (cuda if bf16 is None else bf16)


def to_torch(batch: dict[str, np.ndarray], device: torch.device) -> dict[str, torch.Tensor]:
    """Numpy batch → tensors on ``device`` (through pinned memory on CUDA, copied without blocking)."""
    cuda = device.type == "cuda"
    out = {}
    for key, value in batch.items():
        tensor = torch.from_numpy(value)
        out[key] = tensor.pin_memory().to(device, non_blocking=True) if cuda else tensor
    return out


class BatchLoader:
    """Batches for steps ``start, start+1, …`` prepared ahead by ``workers`` threads (reads release the GIL)."""

    def __init__(self, sampler: MixedSampler, start: int, device: torch.device, workers: int = 2, ahead: int = 4):
        self.sampler, self.device, self.next_step = sampler, device, start
        self.pool = ThreadPoolExecutor(max(1, workers))
        self.pending: deque = deque()
        for _ in range(ahead):
            self._submit()

    def _submit(self) -> None:
        step = self.next_step
        self.pending.append(self.pool.submit(lambda: to_torch(self.sampler.sample(step=step), self.device)))
        self.next_step += 1

    def __next__(self) -> dict[str, torch.Tensor]:
        batch = self.pending.popleft().result()
        self._submit()
        return batch

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def make_train_step(model: torch.nn.Module, optimizer, grad_clip: float, compile_: str, bf16: bool, device):
    """One Eq. 1 update → (detached metric tensors, detached posterior states (B, T, ...)); no ``.item()``, so
    no host sync. Pre-training and fine-tuning (``DreamerAgent.update``) share it. ``compile_`` is a mode of
    :func:`runtime`."""
    loss_fn = torch.compile(model) if compile_ == "graph" else model  # model(batch) == WorldModel.loss(batch)
    if compile_ == "step":
        getattr(model, "module", model).rssm.compile_steps()  # the wrapped model under DDP
    params = [p for p in model.parameters() if p.requires_grad]

    def step(batch: dict) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss, metrics, post, _ = loss_fn(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        metrics["grad_norm"] = torch.nn.utils.clip_grad_norm_(params, grad_clip)
        optimizer.step()
        return {"loss": loss.detach(), **metrics}, {k: v.detach() for k, v in post.items()}

    return step


def open_dataset(cfg: Config, root: str | Path | None = None, benchmark: str = "all") -> OfflineDataset:
    """The preset's dataset, restricted to ``benchmark`` ("all" keeps everything; a benchmark, "dmc" or
    "metaworld", or one embodiment, e.g. "quadruped" for the continual chain, method §8), checked against
    the model's sizes."""
    dataset = OfflineDataset(resolve(root or cfg.data.root))
    if benchmark != "all":
        manifest = dataset.manifest
        keep = (manifest["benchmark"] == benchmark) | (manifest["embodiment"] == benchmark)
        if not keep.any():
            raise ValueError(f"{dataset.root} has no {benchmark!r} episodes")
        dataset = dataset.subset(list(dataset.manifest["id"][keep]))
    wm = cfg.world_model
    if dataset.action_size > wm.action_size:
        raise ValueError(f"{dataset.root} has actions of size {dataset.action_size}; the world model pads to "
                         f"world_model.action_size={wm.action_size} — raise it")
    if wm.obs == "state" and dataset.state_size > wm.state_size:
        raise ValueError(f"{dataset.root} has states of size {dataset.state_size} > world_model.state_size={wm.state_size}")
    if wm.obs == "state" and not dataset.state_size:
        raise ValueError(f"{dataset.root} has no state vectors; pre-train in pixel mode or re-collect")
    return dataset


def sampler_for(dataset, cfg: Config, batch_size: int, seq_len: int, seed: int,
                part: tuple[int, int] = (0, 1)) -> MixedSampler:
    wm = cfg.world_model
    key, shape = ("observation", (3, wm.image_size, wm.image_size)) if wm.obs == "pixels" else ("state", (wm.state_size,))
    return MixedSampler([(dataset, 1.0)], batch_size, seq_len, wm.action_size, seed=seed, obs_key=key, obs_shape=shape,
                        part=part)


def pretrain_all(cfg: Config, root: str | Path | None = None, progress: bool = True) -> dict[str, Path]:
    """Pre-train (or resume) every world model of ``cfg`` (see :func:`model_benchmarks`), one after the
    other, each into :func:`default_out`; returns {benchmark: checkpoint path}."""
    dataset = OfflineDataset(resolve(root or cfg.data.root), progress=progress)
    names = model_benchmarks(cfg, dataset)
    dataset.close()
    return {name: pretrain(cfg, root, default_out(cfg, name), progress, benchmark=name) for name in names}


def pretrain(cfg: Config, root: str | Path | None = None, out: str | Path | None = None, progress: bool = True,
             stop_at: int | None = None, benchmark: str | None = None) -> Path:
    """Pre-train (or resume pre-training) one world model on the ``benchmark`` part of the data ("dmc",
    "metaworld", "all", or one embodiment such as "quadruped"; default: ``pretrain.benchmark`` when it
    names one); returns the checkpoint path.

    ``stop_at`` ends the run early at that step after writing a checkpoint, as a kill right after a
    checkpoint would (used by the resume test).

    Under ``torchrun`` (DDP, one process per GPU, or gloo on CPUs) ``pretrain.batch_size`` is the global
    batch: each of the W processes reads its B/W rows of the batch one process would draw, and DDP averages
    the gradients, so W processes take the same steps as one (to float precision, and up to the latents'
    sampling noise, which each process draws for its own rows). Only rank 0 writes logs and checkpoints;
    the checkpoint keeps every rank's random state, so a resumed run continues as the killed one would."""
    p = cfg.pretrain
    benchmark = benchmark or p.benchmark
    if benchmark == "each":
        raise ValueError("pretrain.benchmark='each' trains one model per benchmark: call pretrain_all, or "
                         "pass benchmark='dmc' | 'metaworld' | 'all'")
    rank, world = _distributed()
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu")
    compile_, bf16 = runtime(p.compile, p.bf16, device)
    out = Path(out or default_out(cfg, benchmark))
    path = out / "checkpoint.pt"
    dataset = open_dataset(cfg, root, benchmark)

    if p.batch_size % world:
        raise ValueError(f"pretrain.batch_size={p.batch_size} (the global batch) must split evenly over {world} processes")
    checkpoint.seed_everything(p.seed + rank)
    model = WorldModel(cfg.world_model).to(device)
    optimizer = make_optimizer(model.parameters(), p.optim)
    log = CSVLogger(out / "train.csv")
    step = 0
    if path.exists():
        state = checkpoint.load(path, kind="pretrain", map_location=device)
        if state["dataset"] != dataset.manifest_sha256:  # the dataset is compared by content, not by its settings
            raise ValueError(f"{path} was trained on another dataset; use a new output directory")
        checkpoint.check_config(state["config"], to_dict(cfg), path,  # fine-tuning's and the dataset's may change
                                ignore={"data", "finetune", "drqv2", "rlpd", "diffusion", "r3m", "continual"})
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        checkpoint.set_rng_state(state["rng_ranks"][rank] if len(state.get("rng_ranks", [])) == world else state["rng"])
        step = state["step"]
        log.resume_at(step)
    elif rank == 0:
        log.reset()
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(to_dict(cfg), indent=2))
    train_model = _wrap_ddp(model, device) if world > 1 else model
    train_step = make_train_step(train_model, optimizer, p.optim.grad_clip, compile_, bf16, device)
    loader = BatchLoader(sampler_for(dataset, cfg, p.batch_size, p.seq_len, p.seed, part=(rank, world)), step, device,
                         p.loader_workers)
    end = p.steps if stop_at is None else min(stop_at, p.steps)

    def save() -> None:
        rngs = [checkpoint.rng_state()]
        if world > 1:  # every rank's random state, so that each continues its own stream after a resume
            rngs = [None] * world
            torch.distributed.all_gather_object(rngs, checkpoint.rng_state())
        if rank == 0:
            checkpoint.save(path, kind="pretrain", step=step, config=to_dict(cfg), benchmark=benchmark, model=model.state_dict(),
                            optimizer=optimizer.state_dict(), dataset=dataset.manifest_sha256, rng_ranks=rngs)

    bar = tqdm(total=p.steps, initial=step, desc="pre-training", disable=not progress or rank != 0)
    totals, window, started = None, 0, time.perf_counter()
    model.train()
    try:
        while step < end:
            metrics, _ = train_step(next(loader))
            totals = metrics if totals is None else {k: totals[k] + v for k, v in metrics.items()}
            step, window = step + 1, window + 1
            bar.update()
            if step % p.log_every == 0 or step == end:
                if world > 1:  # the global batch's metrics: the mean over ranks
                    names = sorted(totals)
                    stacked = torch.stack([totals[k].float() for k in names])
                    torch.distributed.all_reduce(stacked)
                    totals = dict(zip(names, stacked / world))
                row = {k: v.item() / window for k, v in totals.items()}  # the only host sync
                if rank == 0:
                    log.log({"step": step, **row, "seconds_per_step": (time.perf_counter() - started) / window})
                bar.set_postfix(loss=f"{row['loss']:.1f}", recon=f"{row['recon']:.1f}")
                totals, window, started = None, 0, time.perf_counter()
            if step % p.checkpoint_every == 0 or step == end:
                save()
    finally:
        loader.close()
        bar.close()
    return path


def pretrained_steps(state: dict) -> tuple[int, int]:
    """(steps done, steps asked) of a pre-training checkpoint's dict: a model is finished when they are equal."""
    return state["step"], state["config"]["pretrain"]["steps"]


def load_world_model(path: str | Path, device="cpu", finished: bool = True) -> tuple[WorldModel, Config, dict]:
    """A pre-trained world model, its config and the checkpoint dict.

    With ``finished`` (the default) a checkpoint whose pre-training stopped before its ``pretrain.steps`` (killed,
    or still running in another process) is refused with a clear error, instead of fine-tuning from a half-trained
    model unnoticed; ``finished=False`` loads it anyway (e.g. to look at a model while it trains)."""
    from gsa.config import from_dict

    state = checkpoint.load(path, kind="pretrain", map_location=device)
    cfg = from_dict(state["config"])
    done, asked = pretrained_steps(state)
    if finished and done < asked:
        raise ValueError(f"{path} is pre-trained for {done} of its {asked} steps: finish it first "
                         f"(`gsa pretrain` resumes it from there), or wait for the process that is training it")
    model = WorldModel(cfg.world_model).to(device)
    model.load_state_dict(state["model"])
    return model, cfg, state


def _distributed() -> tuple[int, int]:
    """(rank, world size); initialises the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", 1))
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    return int(os.environ.get("RANK", 0)), world


def _wrap_ddp(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
