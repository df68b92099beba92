"""Fine-tuning on one task (method §5, paper Alg. 1): ``gsa finetune --task dmc-walker-run --method gsa``.

This module sets a run up, then hands it to the online loop (``gsa.train.online``). For the world-model
agent (``gsa.agents.dreamer``) there are three switches (``FinetuneConfig``): ``pretrained`` (P: start from
the pre-trained world model), ``rehearsal`` (ER: retrieved offline sequences in every batch) and
``guidance`` (G: the BC prior steers early episodes). All off is DreamerV3 from scratch: no retrieval
database is opened and no BC prior trained. ``METHODS`` names the paper's variants, and ``BASELINES`` the
other agents (``drqv2``, ``jsrl-bc``, ``uds-rlpd``, ``explore``, ``diffusion-policy``, ``r3m``).

Outputs: ``results/runs/<experiment>/<method>/<task>/seed<k>/`` with ``config.json``,
``eval.csv`` (frame, episode return, success, success_any, normalised score), ``train.csv``, ``retrieval.json`` and,
once finished, ``done.json`` (small files, meant to be committed); the checkpoint (world model,
actor-critic, optimisers, BC prior, replay, RNG and loop state) goes to ``checkpoints/runs/...`` at episode
ends every ``checkpoint_every`` frames, next to ``events.jsonl`` (one line per start, resume and finish).
Calling again resumes an interrupted run and skips a finished one (by ``done.json``, so a clone with the
committed results and no checkpoints skips it too).
"""
from __future__ import annotations

import copy
import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import torch

from gsa.agents.diffusion import DiffusionPolicy
from gsa.agents.dreamer import DreamerAgent
from gsa.agents.drqv2 import DrQv2
from gsa.agents.explore import ExPLORe
from gsa.agents.r3m import FrameEncoder, load_r3m
from gsa.agents.rlpd import RLPD
from gsa.bc import BCPolicy, BCSampler, train_bc
from gsa.config import Config, to_dict
from gsa.envs import get_spec, mask, pad
from gsa.guidance import Guidance, JumpStart
from gsa.models.world_model import WorldModel
from gsa.paths import resolve, results_dir
from gsa.retrieval import RetrievalDatabase, build_database, fingerprint
from gsa.train import checkpoint
from gsa.train.online import is_done, online, task_env
from gsa.train.pretrain import load_world_model, open_dataset, world_model_path

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


def prerequisites(cfg: Config, task: str, method: str) -> dict[str, Path]:
    """What a run of ``method`` on ``task`` reads from disk before its first step (Alg. 1 lines 1–3), by the rules
    :func:`finetune` follows: ``{"world model": its benchmark's pre-trained checkpoint, "dataset": the offline
    data}``, each only where the method uses it (DreamerV3 and DrQ-v2: nothing; R3M-style: the data its
    encoder trains on)."""
    f = (with_method(cfg, method) if method in METHODS else cfg).finetune
    world = method in METHODS
    needs = {}
    if (world and f.pretrained) or method in OFFLINE_BASELINES:
        needs["world model"] = world_model_path(cfg, get_spec(task).benchmark)
    if (world and (f.rehearsal or f.guidance)) or method in OFFLINE_BASELINES or method == "r3m":
        needs["dataset"] = resolve(cfg.data.root)
    return needs


def run_paths(cfg: Config, task: str, method: str, experiment: str) -> tuple[Path, Path]:
    tail = Path(experiment) / method / task / f"seed{cfg.finetune.seed}"
    return results_dir() / "runs" / tail, resolve("checkpoints/runs") / tail / "checkpoint.pt"


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
    env = task_env(cfg, task, seed=cfg.finetune.seed + 20_000)
    resets = np.stack([env.reset(seed=cfg.finetune.seed + 20_000 + i)[0] for i in range(cfg.finetune.retrieval_queries)])
    env.close()
    ids = db.retrieve(lambda: encode(resets), spec.domain, cfg.finetune.retrieval_k)
    retrieved = dataset.subset(ids)
    info = {"k": len(ids), "embodiment": spec.domain,
            "precision_at_k": db.precision_at_k(ids, task) if spec.benchmark == "metaworld" else None,
            "embodiment_precision": float(np.mean(retrieved.manifest["embodiment"] == spec.domain)), "ids": ids,
            "retrieved_sha256": content_digest(retrieved.manifest["sha256"]), "encoder": encoder_hash}
    return retrieved, info


def content_digest(file_hashes) -> str:
    """One sha256 over the retrieved episodes' file hashes, in retrieval order: what a run replays, by content.
    Episode files of a re-collection with the same recipe and seeds hash the same, while their ids carry the
    time they were written, so this says whether two runs (or a run and its resumption) saw the same data."""
    return hashlib.sha256("".join(file_hashes).encode()).hexdigest()


def check_same_retrieval(run: Path, info: dict) -> None:
    """A resumed run must replay the offline trajectories it started with (``retrieval.json``): a dataset
    that moved, or was collected again with the same content, is fine (compared by :func:`content_digest`
    where the run recorded it, by episode ids before); one that changed raises a ``ValueError`` before anything
    is written."""
    started = json.loads((run / "retrieval.json").read_text())
    if "retrieved_sha256" in started:
        if started["retrieved_sha256"] != info["retrieved_sha256"]:
            raise ValueError(f"{run} started with other retrieved offline data than the dataset gives now (their "
                             "content differs): resume with the dataset it started with, or write to a new "
                             "experiment")
        return
    started, ids = started.get("ids"), info["ids"]
    if started is not None and list(started) != list(ids):
        changed = len(set(started) ^ set(ids))
        raise ValueError(f"{run} started with other retrieved offline data than the dataset gives now ({changed} "
                         "trajectories differ): resume with the dataset it started with, or write to a new "
                         "experiment")


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


def saved_prior(cfg: Config, task: str, saved: dict, device) -> BCPolicy:
    """π_bc of a resumed run, from its checkpoint."""
    wm, native = cfg.world_model, get_spec(task).embodiment.action_size
    prior = BCPolicy(wm.action_size, mask(native, wm.action_size),
                     state_size=None if wm.obs == "pixels" else wm.state_size).to(device)
    prior.load_state_dict(saved["prior"])
    return prior


def make_guidance(cfg: Config, task: str) -> Guidance:
    """Execution guidance for ``task``: its benchmark's schedule (method §5.6, unless ``guidance_schedule`` is
    set) over episodes of the task's length in agent steps at ``finetune.action_repeat``."""
    f, embodiment = cfg.finetune, get_spec(task).embodiment
    return Guidance(f.schedule(embodiment.benchmark), embodiment.episode_length(f.action_repeat), seed=f.seed)


def finetune(cfg: Config, task: str, method: str = "gsa", world_model: str | Path | None = None,
             dataset_root: str | Path | None = None, experiment: str = "finetune", progress: bool = True,
             stop_at: int | None = None, label: str | None = None) -> Path:
    """Fine-tune on ``task`` with ``method`` (a key of ``METHODS`` or one of ``BASELINES``); returns the run directory,
    ``results/runs/<experiment>/<label>/<task>/seed<k>`` (``label`` defaults to the method's name; the sweep
    names variants with overrides ``<method>.<variant>``).

    ``stop_at`` (frames) ends the run at the first episode end past it, after a checkpoint — as a kill
    right after a checkpoint would (used by the resume test)."""
    if method not in METHODS and method not in BASELINES:
        raise ValueError(f"unknown method {method!r}; choose from {sorted(METHODS) + sorted(BASELINES)}")
    cfg = with_method(cfg, method) if method in METHODS else copy.deepcopy(cfg)
    f = cfg.finetune
    spec = get_spec(task)
    run, ckpt_path = run_paths(cfg, task, label or method, experiment)
    if world_model is not None:  # asked for explicitly: an error even if the run is done
        checkpoint.require(world_model, kind="pretrain")
    if is_done(run, f.frames):
        return run
    saved = checkpoint.load(ckpt_path, kind="finetune") if ckpt_path.exists() else None
    if saved is not None and not (run / "config.json").exists():  # results deleted, checkpoint left behind
        warnings.warn(f"{run} has no results but {ckpt_path} exists: its results were deleted, so the run starts "
                      "again from frame 0 (resuming would leave its logs without their first rows)")
        saved = None
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    checkpoint.seed_everything(f.seed)
    # -- world model, retrieved data, prior (Alg. 1 lines 1–3); baselines with offline data use GSA's -------
    world, needs = method in METHODS, prerequisites(cfg, task, method)
    wm, wm_benchmark = None, "all"
    wm_path = Path(world_model or world_model_path(cfg, spec.benchmark))
    if world and not f.pretrained and f.train_parts != "all":
        raise ValueError(f"finetune.train_parts={f.train_parts!r} freezes parts of a pre-trained world model: set pretrained")
    if "world model" in needs:
        wm, wm_ckpt_cfg, wm_state = load_world_model(wm_path, device)
        cfg.world_model = wm_ckpt_cfg.world_model
        wm_benchmark = wm_state.get("benchmark", "all")
    elif world:
        wm = WorldModel(cfg.world_model).to(device)  # DreamerV3: from scratch
    wm_cfg = cfg.world_model
    if saved is not None:  # the settings this method uses must match (the retrieved data is compared below)
        checkpoint.check_config(saved["config"], to_dict(cfg), ckpt_path, ignore=resume_ignores(method))
    retrieved, retrieval_info = None, {}
    if "dataset" in needs and method != "r3m":  # R3M-style reads the data to train its encoder, it retrieves nothing
        if world and not f.pretrained:
            raise ValueError("rehearsal and guidance retrieve with the pre-trained encoder: set pretrained")
        retrieved, retrieval_info = retrieve(cfg, task, wm, wm_path, dataset_root, device, wm_benchmark)
        if saved is not None:
            check_same_retrieval(run, retrieval_info)
    if world:
        agent = DreamerAgent(wm, cfg, device)
        sources = [(retrieved, f.offline_share)] if f.rehearsal else []
        guidance = make_guidance(cfg, task)
    else:
        obs_shape = (3, wm_cfg.image_size, wm_cfg.image_size) if wm_cfg.obs == "pixels" else (wm_cfg.state_size,)
        action_mask = mask(spec.embodiment.action_size, wm_cfg.action_size)
        if method in ("uds-rlpd", "explore"):
            learner = RLPD if method == "uds-rlpd" else ExPLORe
            agent, sources = learner(obs_shape, action_mask, cfg.rlpd, device), [(retrieved, cfg.rlpd.offline_share)]
        elif method == "diffusion-policy":  # imitation: every batch from the retrieved data
            agent, sources = DiffusionPolicy(obs_shape, action_mask, cfg.diffusion, device), [(retrieved, 1.0)]
        elif method == "r3m":  # DrQ-v2 on a frozen encoder pre-trained on the benchmark's offline data
            encoder = load_r3m(cfg, spec.benchmark, open_dataset(cfg, dataset_root, spec.benchmark), device, progress)
            agent = DrQv2(obs_shape, action_mask, cfg.drqv2, device, encoder=FrameEncoder(encoder, cfg.drqv2.frame_stack))
            sources = []
        else:
            agent, sources = DrQv2(obs_shape, action_mask, cfg.drqv2, device), []
        guidance = JumpStart(seed=f.seed) if method == "jsrl-bc" else None
    prior = None
    if (world and f.guidance) or method == "jsrl-bc":
        prior = train_prior(cfg, retrieved, device, progress) if saved is None else saved_prior(cfg, task, saved, device)

    return online(cfg, task, agent, run, ckpt_path, saved, sources, prior, guidance, retrieval_info,
                  method=method, progress=progress, stop_at=stop_at)


# Agents other than the world-model agent (method §7): DrQ-v2 from scratch; JSRL-BC = DrQ-v2 with the BC
# prior trained on GSA's retrieved data as its guide for the first h steps of each episode; UDS+RLPD = RLPD
# with GSA's retrieved data as its offline half, rewards 0; ExPLORe = RLPD with that half labelled by a
# reward ensemble's UCB (or RND); Diffusion Policy = imitation of the retrieved data; R3M = DrQ-v2 on a
# frozen encoder trained with R3M's objective on the benchmark's offline data.
BASELINES = ("drqv2", "jsrl-bc", "uds-rlpd", "explore", "diffusion-policy", "r3m")
OFFLINE_BASELINES = ("jsrl-bc", "uds-rlpd", "explore", "diffusion-policy")  # GSA's retrieved data, same k


AGENT_SECTIONS = {"drqv2": ("drqv2",), "jsrl-bc": ("drqv2",), "uds-rlpd": ("rlpd",), "explore": ("rlpd",),
                  "diffusion-policy": ("diffusion",), "r3m": ("drqv2", "r3m")}


def resume_ignores(method: str) -> set[str]:
    """Config sections a resumed ``method`` run does not compare with its checkpoint's: other agents' (and the
    continual chain's), and the dataset's settings, since the dataset is compared by content instead (a moved
    dataset resumes; :func:`check_same_retrieval`)."""
    return {"data", "drqv2", "rlpd", "diffusion", "r3m", "continual"} - set(AGENT_SECTIONS.get(method, ()))


def load_results(experiment: str, finished_only: bool = False) -> "pd.DataFrame":
    """Every ``eval.csv`` of an experiment as one tidy table (method, task, seed, frame, return, score...);
    ``finished_only``: only the runs with a ``done.json`` (what a clone of the committed results has too)."""
    import pandas as pd

    frames = []
    for path in sorted((results_dir() / "runs" / experiment).glob("*/*/seed*/eval.csv")):
        seed_dir = path.parent
        if finished_only and not (seed_dir / "done.json").exists():
            continue
        table = pd.read_csv(path)
        if len(table):
            frames.append(table.assign(method=seed_dir.parent.parent.name, task=seed_dir.parent.name,
                                       seed=int(seed_dir.name.removeprefix("seed"))))
    if not frames:
        finished = " of a finished run" if finished_only else ""
        raise FileNotFoundError(f"no eval.csv{finished} under {results_dir() / 'runs' / experiment}")
    return pd.concat(frames, ignore_index=True)
