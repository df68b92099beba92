"""Every hyper-parameter, in one place: dataclass configs and the named presets (smoke | cpu | paper).

    cfg = preset("smoke")                                   # Config(data=..., world_model=..., ...)
    cfg = preset("paper", {"world_model.deter": 4096})     # dotted overrides (dict or CLI "k=v")

Paper values are the defaults (docs/method.md §3–5); where the public NCRL code differs, the code value is a named
option documented on the field. ``smoke`` runs the whole pipeline in minutes on 2 CPU cores, ``cpu`` is a
scaled study for a laptop (hours), ``paper`` is the paper's scale (GPUs).
"""
from __future__ import annotations

import ast
import dataclasses
import json
from dataclasses import dataclass, field

from gsa.envs.registry import MW_TASKS

DMC_EMBODIMENTS = ("cartpole", "acrobot", "cheetah", "walker", "quadruped")
SIGMAS = (0.1, 0.3, 0.5, 1.0, 2.0)  # Meta-World expert action noise, equal shares (method §3)


@dataclass
class DataConfig:
    """Offline dataset generation (method §3, `gsa collect`)."""
    root: str = "data/paper"              # dataset directory (manifest.csv, episodes, card)
    dmc_embodiments: tuple[str, ...] = DMC_EMBODIMENTS
    dmc_episodes: int = 2000              # per DMC embodiment (paper: 10k over 5 embodiments)
    dmc_sources: tuple[str, ...] = ("p2e", "random", "ou")  # exploration policies, equal shares; "p2e": snapshots
                                          # of a Plan2Explore explorer (gsa/explore.py), early to late
    explore_frames: int = 100_000         # Plan2Explore training frames per DMC embodiment
    explore_snapshots: tuple[float, ...] = (0.1, 0.25, 0.5, 0.75, 1.0)  # snapshots kept, as fractions of it
    explore_train_ratio: int | None = None  # the explorer's replayed steps per agent step (None: finetune.train_ratio)
    mw_tasks: tuple[str, ...] = tuple(MW_TASKS)
    mw_episodes: int = 1000               # per Meta-World task (paper: 1k × 50)
    sigmas: tuple[float, ...] = SIGMAS
    dmc_length: int | None = None         # agent steps per DMC episode (None: the task's 500)
    obs: str = "pixels"                   # "pixels": frames + state vectors; "state": no rendering (CPU studies)
    size: int = 64
    action_repeat: int = 2
    workers: int = 2                      # rendering/collection processes
    seed: int = 0


@dataclass
class WorldModelConfig:
    """RSSM world model (method §4, paper Eq. 1). Sizes are presets; the code is the same."""
    obs: str = "pixels"                   # "pixels" (64×64 RGB) | "state" (padded proprioception)
    deter: int = 12288                    # deterministic state h
    hidden: int = 1536                    # projection/MLP width
    blocks: int = 8                       # GRU blocks (deter is split into blocks)
    stoch: int = 32                       # categorical latents
    classes: int = 96                     # classes per latent
    depth: int = 96                       # CNN channels d: [d, 2d, 4d, 8d]
    mlp_layers: int = 2                   # state-mode encoder/decoder layers (width `hidden`)
    unimix: float = 0.01                  # uniform mix in prior and posterior
    free_nats: float = 1.0                # free bits per step, on each summed KL term
    dyn_scale: float = 1.0                # KL(sg(q) || p)
    rep_scale: float = 0.1                # KL(q || sg(p))
    free_bits_after_mean: bool = False    # NCRL code option: clip after averaging over batch and time
    action_size: int = 12                 # A_max: actions are zero-padded to this size
    state_size: int = 78                  # state mode: observations zero-padded to this size
    image_size: int = 64


@dataclass
class OptimConfig:
    """Adam (method §4/5.5). ``weight_decay`` is decoupled as in the NCRL code: every step multiplies the
    weights by (1 − weight_decay), independent of the learning rate (not Adam's L2 gradient term)."""
    lr: float = 1e-4
    eps: float = 1e-5
    weight_decay: float = 1e-6
    grad_clip: float = 100.0


@dataclass
class PretrainConfig:
    """World-model pre-training (method §4, `gsa pretrain`)."""
    benchmark: str = "each"               # "each": one world model per benchmark in the data (paper, method §4);
                                          # "all": one model on all data; "dmc" | "metaworld": that one only
    steps: int = 200_000
    batch_size: int = 16
    seq_len: int = 64                     # NCRL code: 32
    optim: OptimConfig = field(default_factory=OptimConfig)
    log_every: int = 100
    checkpoint_every: int = 5_000
    compile: str | None = None            # "graph" | "step" | "off"; None: "graph" on CUDA, "off" on CPU
    bf16: bool | None = None              # None: on for CUDA, off on CPU
    loader_workers: int = 2               # background batch-loading threads
    seed: int = 0


@dataclass
class FinetuneConfig:
    """GSA fine-tuning (method §5, paper Alg. 1). All switches off = DreamerV3 from scratch."""
    pretrained: bool = True               # P: start from the pre-trained world model
    rehearsal: bool = True                # ER: mix retrieved offline sequences into every batch
    guidance: bool = True                 # G: execution guidance by the BC prior
    frames: int = 150_000                 # environment frames (agent steps × action repeat)
    warmup_frames: int = 15_000
    train_ratio: int = 256                # replayed steps per agent step
    batch_size: int = 16
    seq_len: int = 64
    offline_share: float = 0.25           # retrieved rows per batch (4 of 16)
    retrieval_k: int = 500
    retrieval_queries: int = 1            # reset observations embedded as queries (method §5.2, NCRL: 1); with
                                          # several, trajectories are ranked by the distance to the nearest
    eval_every: int = 10_000              # frames
    eval_episodes: int = 5
    horizon: int = 16
    gamma: float = 0.99
    lam: float = 0.95
    slow_critic_fraction: float = 0.02
    slow_reg: float = 0.0                 # extra critic cross-entropy toward the slow critic (DreamerV3: 1.0;
                                          # paper and NCRL: 0, the λ-returns already bootstrap from it)
    entropy: float = 1e-4
    actor_grad: str = "dynamics"          # "dynamics" (paper Eq. 4) | "reinforce" (percentile-normalised)
    train_parts: str = "all"              # world-model parts fine-tuned (paper Fig. 8): "all" | "encoder_decoder"
                                          # | "dynamics" (the RSSM); the others stay frozen at their pre-trained weights
    reward_uncertainty: bool = False      # paper Fig. 7: a reward-head ensemble labels imagined steps by Optimistic
                                          # Thompson Sampling (used instead of guidance)
    reward_ensemble: int = 5              # reward heads in that ensemble
    units: int = 512
    actor_layers: int = 3
    reward_layers: int = 2
    bins: int = 255
    min_std: float = 0.1
    max_std: float = 1.0
    ac_optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=8e-5))
    guidance_schedule: str | None = None  # None: per benchmark, GUIDANCE_SCHEDULES; NCRL: "linear(1,0.1,100000)"
    guidance_scale: float = 1.0           # multiplies the lengths of GUIDANCE_SCHEDULES (a shorter budget)
    bc_steps: int = 150_000
    bc_batch_size: int = 256
    bc_lr: float = 1e-4
    action_repeat: int = 2
    compile: bool | None = None           # torch.compile the actor-critic loss; None: with pretrain.compile="graph"
    checkpoint_every: int = 10_000        # frames
    seed: int = 0

    def schedule(self, benchmark: str) -> str:
        """The guidance schedule of a task's benchmark (its length times ``guidance_scale``); an explicit
        ``guidance_schedule`` wins."""
        if self.guidance_schedule:
            return self.guidance_schedule
        start, end, steps = GUIDANCE_SCHEDULES[benchmark]
        return f"linear({start},{end},{round(steps * self.guidance_scale)})"


@dataclass
class DrQv2Config:
    """DrQ-v2, the model-free baseline (method §7; Yarats et al. 2021, its DMC defaults)."""
    frame_stack: int = 3
    n_step: int = 3
    batch_size: int = 256
    lr: float = 1e-4
    feature_dim: int = 50
    hidden_dim: int = 1024
    gamma: float = 0.99
    std_schedule: str = "linear(1.0,0.1,500000)"  # exploration std over agent steps (DrQ-v2 "medium" tasks)
    std_clip: float = 0.3                 # clip of the target policy's noise
    critic_tau: float = 0.01              # target critic EMA
    update_every: int = 2                 # agent steps per update
    seed_frames: int = 4_000              # uniform random actions before learning starts
    shift_pad: int = 4                    # random-shift augmentation (pixels)


@dataclass
class RLPDConfig:
    """RLPD, the learner of the ``uds-rlpd`` and ``explore`` baselines (method §7; Ball et al. 2023, its locomotion defaults)."""
    critics: int = 10                     # Q ensemble
    target_members: int = 2               # members drawn for the target's minimum
    utd: int = 20                         # critic updates per agent step
    batch_size: int = 256                 # per critic update
    offline_share: float = 0.5            # symmetric sampling: half of every batch is retrieved offline data
    lr: float = 3e-4
    hidden_dim: int = 256
    gamma: float = 0.99
    tau: float = 0.005                    # target critic EMA
    init_temperature: float = 1.0
    backup_entropy: bool = True           # SAC's entropy term in the target
    seed_frames: int = 5_000              # uniform random actions before learning starts
    frame_stack: int = 3                  # pixels
    shift_pad: int = 4                    # random-shift augmentation (pixels)
    # ExPLORe (``explore``, Li et al. 2023): offline rows labelled optimistically, r̂(s, a) + bonus_scale · b(s, a)
    bonus_scale: float = 1.0
    novelty: str = "ensemble"             # b: "ensemble" = std of a reward ensemble, r̂ its mean (UCB; paper App. G.3
                                          # replaced ExPLORe's RND with ensembles); "rnd" = the original RND bonus
    reward_members: int = 5               # reward models in the "ensemble" variant


@dataclass
class DiffusionConfig:
    """Diffusion Policy, the imitation baseline ``diffusion-policy`` (method §7; Chi et al. 2023): a DDPM over
    actions conditioned on the observation, trained on the retrieved trajectories."""
    train_steps: int = 100                # diffusion steps K (cosine noise schedule)
    inference_steps: int = 10             # DDIM steps when acting
    hidden_dim: int = 256
    layers: int = 3                       # noise-predictor MLP layers
    batch_size: int = 256
    lr: float = 1e-4
    weight_decay: float = 1e-6            # AdamW
    update_every: int = 1                 # agent steps per update
    frame_stack: int = 3                  # pixels
    shift_pad: int = 4                    # random-shift augmentation (pixels)


@dataclass
class R3MConfig:
    """The R3M-style encoder of the ``r3m`` baseline (method §7; Nair et al. 2022): its time-contrastive and
    sparsity objective trained on the benchmark's offline data (R3M's weights cannot be downloaded here)."""
    embed_dim: int = 2048                 # R3M's ResNet-50 embedding size
    steps: int = 50_000
    batch_size: int = 32                  # episodes per batch (one window each)
    window: int = 50                      # frames per window: t0 < t1 < t2 are drawn inside it
    lr: float = 1e-4
    l1: float = 1e-5                      # sparsity penalties on the embedding
    l2: float = 1e-5
    seed: int = 0


@dataclass
class ContinualConfig:
    """Continual task adaptation (method §8, paper Fig. 5, ``gsa continual``): one chain of quadruped tasks."""
    tasks: tuple[str, ...] = tuple(f"dmc-quadruped-{t}" for t in ("stand", "walk", "run", "jump", "roll", "roll-fast"))
    frames: int = 300_000                 # per task
    earlier_share: float = 0.25           # GSA: batch rows from earlier tasks' online episodes (world model only)
    packnet_retrain_updates: int = 10_000  # PackNet: updates of the kept weights after each prune


# Execution guidance: probability of a guided episode over agent steps (method §5.6, paper App. G).
GUIDANCE_SCHEDULES = {"dmc": (1, 0, 50_000), "metaworld": (1, 0, 150_000)}  # linear(start, end, agent steps)


@dataclass
class Config:
    name: str = "paper"
    data: DataConfig = field(default_factory=DataConfig)
    world_model: WorldModelConfig = field(default_factory=WorldModelConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    drqv2: DrQv2Config = field(default_factory=DrQv2Config)
    rlpd: RLPDConfig = field(default_factory=RLPDConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    r3m: R3MConfig = field(default_factory=R3MConfig)
    continual: ContinualConfig = field(default_factory=ContinualConfig)


SECTIONS = ("data", "world_model", "pretrain", "finetune", "drqv2", "rlpd", "diffusion", "r3m", "continual")

TINY = dict(deter=128, hidden=64, blocks=2, stoch=8, classes=8, depth=8)
SMALL = dict(deter=1024, hidden=512, blocks=8, stoch=32, classes=32, depth=32)  # NCRL "small"
CPU = dict(deter=256, hidden=128, blocks=2, stoch=16, classes=8, depth=8)     # cpu preset (state mode)

PRESETS: dict[str, dict] = {
    "paper": {},
    # A study for 2 CPU cores (hours per task, method §2 "state mode"): proprioceptive states, a small world
    # model and actor-critic, one third of the paper's budget (50k frames) with the guidance schedules scaled
    # to match, and a dataset that is cheap to collect without rendering (Meta-World noisy experts, DMC
    # Plan2Explore snapshots + random + OU exploration). Measured times: README "The cpu preset".
    "cpu": {
        "data.root": "data/cpu", "data.obs": "state", "data.dmc_embodiments": ("cheetah", "walker", "quadruped"),
        "data.dmc_episodes": 150, "data.mw_episodes": 50, "data.explore_frames": 20_000,
        # explorers update as often as fine-tuning (train ratio 128; the three take ~1.4 h of the 2 cores). At
        # ratio 32 (~560 updates in 20k frames) a cartpole explorer collapsed and covered less of the state space
        # than random actions (125 vs 1,258 cells); at 128, 2,284 vs 1,258 (README "Curiosity data")
        **{f"world_model.{k}": v for k, v in CPU.items()}, "world_model.obs": "state",
        "pretrain.steps": 10_000, "pretrain.checkpoint_every": 1_000, "pretrain.optim.lr": 3e-4,
        "pretrain.compile": "graph",  # world-model loss and actor-critic loss compiled (a C++ compiler is needed)
        "finetune.frames": 50_000, "finetune.warmup_frames": 5_000, "finetune.train_ratio": 128,
        "finetune.seq_len": 32, "finetune.units": 128, "finetune.ac_optim.lr": 3e-4,
        "finetune.retrieval_k": 50, "finetune.bc_steps": 5_000, "finetune.guidance_scale": 1 / 3,
        "finetune.checkpoint_every": 5_000, "r3m.embed_dim": 128, "r3m.steps": 5_000,
        "continual.frames": 30_000, "continual.packnet_retrain_updates": 1_000,
        # model-free baselines scaled like the actor-critic (units 128): DrQ-v2's 1024-unit MLPs cost ~0.2 s per
        # update on one of these cores
        "drqv2.hidden_dim": 256,
        # RLPD (uds-rlpd, explore) at its paper size (UTD 20, 10 critics of 256 units, batch 256) costs ~1 s per
        # agent step on one of these cores (arithmetic-bound), ~6-8 h per 50k-frame run: units and batch halved
        # like the world model's (units 128, sequences 32) and UTD 10, still an update-heavy RLPD (docs/deviations.md)
        "rlpd.hidden_dim": 128, "rlpd.batch_size": 128, "rlpd.utd": 10,
    },
    "smoke": {
        "data.root": "data/smoke", "data.dmc_episodes": 6, "data.dmc_length": 100, "data.explore_frames": 2_000,
        "data.explore_snapshots": (0.5, 1.0),
        "data.mw_tasks": ("reach", "door-open", "drawer-close"), "data.mw_episodes": 5,
        **{f"world_model.{k}": v for k, v in TINY.items()},
        "pretrain.steps": 600, "pretrain.optim.lr": 3e-4, "pretrain.batch_size": 8, "pretrain.seq_len": 32, "pretrain.log_every": 10,
        "pretrain.checkpoint_every": 100,
        "finetune.frames": 4_000, "finetune.warmup_frames": 1_000, "finetune.train_ratio": 32,
        "finetune.batch_size": 8, "finetune.seq_len": 32, "finetune.retrieval_k": 8, "finetune.eval_every": 1_000,
        "finetune.eval_episodes": 2, "finetune.units": 64, "finetune.bc_steps": 200, "finetune.bc_batch_size": 32,
        "finetune.guidance_schedule": "linear(1,0,2000)", "finetune.checkpoint_every": 1_000,
        "r3m.embed_dim": 16, "r3m.steps": 50, "r3m.batch_size": 8, "r3m.window": 16,
    },
}


def preset(name: str, overrides: dict | list[str] | None = None) -> Config:
    """The named preset with dotted overrides applied (``{"pretrain.steps": 10}`` or ``["pretrain.steps=10"]``)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
    cfg = Config(name=name)
    for key, value in {**PRESETS[name], **parse_overrides(overrides)}.items():
        set_field(cfg, key, value)
    return cfg


def parse_overrides(overrides) -> dict:
    if overrides is None:
        return {}
    if isinstance(overrides, dict):
        return overrides
    pairs = {}
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep:
            raise ValueError(f"override {item!r} must look like section.field=value")
        try:
            pairs[key.strip()] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            pairs[key.strip()] = text  # a bare string
    return pairs


def set_field(cfg, key: str, value) -> None:
    """Set ``cfg.<a>.<b>`` from ``"a.b"``; unknown names raise with the valid ones."""
    *path, last = key.split(".")
    target = cfg
    for part in path:
        target = _get(target, part, key)
    current = _get(target, last, key)
    if isinstance(current, tuple) and isinstance(value, list):
        value = tuple(value)
    setattr(target, last, value)


def _get(obj, name: str, key: str):
    if not dataclasses.is_dataclass(obj) or name not in {f.name for f in dataclasses.fields(obj)}:
        names = [f.name for f in dataclasses.fields(obj)] if dataclasses.is_dataclass(obj) else []
        raise ValueError(f"unknown config field {key!r}: {type(obj).__name__} has {names}")
    return getattr(obj, name)


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def from_dict(data: dict) -> Config:
    """Inverse of :func:`to_dict` (tuples restored), e.g. for a checkpoint's config."""
    cfg = Config(name=data.get("name", "paper"))
    for section in SECTIONS:
        for key, value in data.get(section, {}).items():
            if isinstance(value, dict):
                for sub, v in value.items():
                    set_field(cfg, f"{section}.{key}.{sub}", v)
            else:
                set_field(cfg, f"{section}.{key}", value)
    return cfg


def dumps(cfg) -> str:
    return json.dumps(to_dict(cfg), indent=2, sort_keys=True)


def hyperparameter_table(cfg: Config) -> "pd.DataFrame":
    """Every field of ``cfg`` as rows (section, name, value, note): the paper's hyper-parameter table
    generated from the config itself (notebook ``06_paper``); notes are the comments beside the fields."""
    import inspect

    import pandas as pd

    def notes(cls) -> dict[str, str]:
        out, last = {}, None
        for line in inspect.getsource(cls).splitlines():
            text, indent = line.strip(), len(line) - len(line.lstrip())
            name, sep, rest = text.partition(":")
            if sep and name.isidentifier() and "#" in rest:
                out[name], last = rest.split("#", 1)[1].strip(), (name, indent)
            elif last and text.startswith("#") and indent > last[1]:  # a comment continued under the first line
                out[last[0]] += " " + text[1:].strip()
            else:
                last = None
        return out

    rows = []

    def walk(obj, section: str) -> None:
        comments = notes(type(obj))
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(value):
                walk(value, f"{section}.{f.name}")
            else:
                shown = f"{len(value)} tasks" if f.name == "mw_tasks" and len(value) > 8 else value
                rows.append({"section": section, "name": f.name, "value": shown, "note": comments.get(f.name, "")})

    for section in SECTIONS:
        walk(getattr(cfg, section), section)
    return pd.DataFrame(rows)
