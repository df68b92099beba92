"""Generate the non-curated offline dataset (method §3): ``gsa collect --preset smoke``.

- Meta-World: every task's scripted expert (``metaworld.policies``; the paper used TD-MPC2 agents, whose
  checkpoints cannot be fetched here) with Gaussian action noise σ ∈ {0.1, 0.3, 0.5, 1.0, 2.0} in equal
  shares, clipped to [−1, 1]; 100 agent steps.
- DMControl: reward-free exploration per embodiment with the sources of ``DataConfig.dmc_sources``:
  ``p2e`` (snapshots of a Plan2Explore explorer trained first, ``gsa/explore.py``, early to late in equal
  shares, recorded as ``p2e@<frames>``), ``random`` (uniform), ``ou`` (Ornstein–Uhlenbeck, temporally
  correlated), and any ``"package.module:factory"``: ``factory(spec, rng)`` returns a policy with
  ``reset()`` and ``__call__(state) -> action`` (native size, in [−1, 1]); it must be importable because
  workers are separate processes.

Each worker runs whole episodes in state space (physics is 10–100× faster than rendering: README "Performance"),
then renders the frames from the stored physics states (re-rendering is pixel-identical to rendering
online, ``tests/test_collect.py``). Jobs are deterministic (seed from the job's key), every episode file
is written atomically, and its name carries the job's hash: an interrupted collection resumes with the
missing jobs only. Hidden task returns (and Meta-World success) go to ``analysis.csv`` for the dataset card
only — they are never read by a GSA learner.
"""
from __future__ import annotations

import hashlib
import importlib
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from gsa.config import Config, DataConfig
from gsa.data.episodes import NCRL_NAME, atomic_write, read_manifest, save_episode, sha256, write_manifest
from gsa.envs.registry import DMC_TASKS, EMBODIMENTS, get_spec
from gsa.paths import resolve, usable_cores

ANALYSIS_COLUMNS = ["id", "hidden_task", "hidden_return", "success", "success_any"]


@dataclass(frozen=True)
class Job:
    """One episode to collect."""
    benchmark: str
    task: str            # env to run; for DMC the embodiment's first task (its reward is the hidden return)
    embodiment: str
    source: str          # "expert" | "random" | "ou" | "module:factory"
    sigma: float | None  # Meta-World action noise
    index: int
    seed: int

    @property
    def key(self) -> str:
        return f"{self.task}/{self.source}/{self.sigma}/{self.index}/{self.seed}"

    @property
    def uuid(self) -> str:
        return hashlib.sha1(self.key.encode()).hexdigest()[:16]

    @property
    def folder(self) -> str:
        """NCRL layout: ``dmcontrol/<domain>`` or ``metaworld/<task>``."""
        if self.benchmark == "dmc":
            return f"dmcontrol/{self.embodiment}"
        return f"metaworld/{self.task.removeprefix('mw-')}"


def jobs(cfg: DataConfig) -> list[Job]:
    """All episodes of a dataset, in manifest order."""
    out = []
    snapshots = [max(1, round(f * cfg.explore_frames)) for f in sorted(set(cfg.explore_snapshots))]
    for embodiment in cfg.dmc_embodiments:
        task = f"dmc-{embodiment}-{DMC_TASKS[embodiment][0]}"
        for i in range(cfg.dmc_episodes):
            source = cfg.dmc_sources[i % len(cfg.dmc_sources)]
            if source == "p2e":  # cycle through the snapshots, early to late
                source = f"p2e@{snapshots[(i // len(cfg.dmc_sources)) % len(snapshots)]}"
            out.append(Job("dmc", task, embodiment, source, None, i, _seed(cfg.seed, task, i)))
    for name in cfg.mw_tasks:
        task = f"mw-{name}"
        get_spec(task)
        for i in range(cfg.mw_episodes):
            out.append(Job("metaworld", task, "sawyer", "expert", cfg.sigmas[i % len(cfg.sigmas)], i,
                           _seed(cfg.seed, task, i)))
    return out


def _seed(seed: int, task: str, index: int) -> int:
    return int.from_bytes(hashlib.sha1(f"{seed}/{task}/{index}".encode()).digest()[:4], "little")


# -- policies ---------------------------------------------------------------------------------------------
class RandomPolicy:
    """Uniform actions in [−1, 1]."""

    def __init__(self, action_size: int, rng: np.random.Generator):
        self.action_size, self.rng = action_size, rng

    def reset(self) -> None:
        pass

    def __call__(self, state: np.ndarray) -> np.ndarray:
        return self.rng.uniform(-1.0, 1.0, self.action_size)


class OUPolicy(RandomPolicy):
    """Ornstein–Uhlenbeck noise x ← x − θx + σε, clipped to [−1, 1] (stationary std ≈ 0.57)."""

    theta, sigma = 0.15, 0.3

    def reset(self) -> None:
        self.x = self.rng.uniform(-1.0, 1.0, self.action_size)

    def __call__(self, state: np.ndarray) -> np.ndarray:
        self.x = self.x - self.theta * self.x + self.sigma * self.rng.standard_normal(self.action_size)
        return np.clip(self.x, -1.0, 1.0)


class NoisyExpert:
    """Meta-World's scripted expert with Gaussian action noise σ, clipped to [−1, 1] (method §3)."""

    def __init__(self, task: str, sigma: float, rng: np.random.Generator):
        import metaworld.policies

        self.expert = getattr(metaworld.policies, expert_name(task))()
        self.sigma, self.rng = sigma, rng

    def reset(self) -> None:
        pass

    def __call__(self, state: np.ndarray) -> np.ndarray:
        action = self.expert.get_action(state.astype(np.float64))
        return np.clip(action + self.sigma * self.rng.standard_normal(action.shape), -1.0, 1.0)


def expert_name(task: str) -> str:
    """``mw-peg-insert-side`` → ``SawyerPegInsertionSideV3Policy`` (the one irregular name)."""
    name = task.removeprefix("mw-").replace("peg-insert", "peg-insertion")
    return "Sawyer" + "".join(word.capitalize() for word in name.split("-")) + "V3Policy"


def make_policy(job: Job, rng: np.random.Generator, root: str | Path | None = None):
    spec = get_spec(job.task)
    if job.source.startswith("p2e@"):
        from gsa.explore import ExplorerPolicy

        return ExplorerPolicy(explorer_dir(root, job.embodiment) / f"snapshot-{job.source[4:]}.pt", rng)
    if job.source == "expert":
        return NoisyExpert(job.task, job.sigma, rng)
    if job.source == "random":
        return RandomPolicy(spec.embodiment.action_size, rng)
    if job.source == "ou":
        return OUPolicy(spec.embodiment.action_size, rng)
    module, sep, name = job.source.partition(":")
    if not sep:
        raise ValueError(f"unknown source {job.source!r}: use p2e, random, ou, or 'package.module:factory'")
    return getattr(importlib.import_module(module), name)(spec, rng)


# -- one episode --------------------------------------------------------------------------------------------
_ENVS: dict = {}  # per worker process: one state-mode env per task, re-seeded per episode


def explorer_dir(root: str | Path, embodiment: str) -> Path:
    """Where a dataset keeps an embodiment's Plan2Explore explorer (checkpoint, log, snapshots)."""
    return Path(root) / "explorers" / embodiment


def run_job(job: Job, size: int = 64, action_repeat: int = 2, length: int | None = None,
            render: bool = True, root: str | Path | None = None) -> tuple[dict, dict]:
    """Collect one episode in state space, then render its frames (unless ``render`` is off: a state-only
    dataset); returns (episode, analysis row)."""
    from gsa.envs import make

    if job.task not in _ENVS:
        _ENVS[job.task] = make(job.task, obs="state", size=size, action_repeat=action_repeat)
    env = _ENVS[job.task]
    rng = np.random.default_rng(job.seed)
    policy = make_policy(job, rng, root)
    policy.reset()
    state, info = env.reset(seed=job.seed)
    task_state = info["task_state"]
    states, physics = [state], [info["physics"]]
    actions = [np.zeros(env.action_space.shape, np.float32)]
    hidden_return, success, success_any = 0.0, False, False
    steps = env.task_spec.embodiment.episode_length(action_repeat) if length is None else length
    for _ in range(steps):
        action = np.asarray(policy(state), np.float32)
        state, reward, _, truncated, info = env.step(action)
        states.append(state)
        physics.append(info["physics"])
        actions.append(np.clip(action, -1.0, 1.0))
        hidden_return += reward
        success = bool(info.get("success", False))
        success_any |= success
        if truncated:
            break
    episode = {"action": np.stack(actions), "physics": np.stack(physics), "task_state": task_state,
               "state": np.stack(states).astype(np.float32)}
    if render:
        episode["observation"] = np.stack([env.render_state(p, task_state) for p in physics])  # (T+1, 3, H, W)
    return episode, {"hidden_task": job.task, "hidden_return": hidden_return,
                     **({"success": success, "success_any": success_any} if job.benchmark == "metaworld"
                        else {"success": np.nan, "success_any": np.nan})}


def _work(job: Job, root: str, size: int, action_repeat: int, length: int | None, render: bool) -> tuple[dict, dict]:
    """Worker: collect, save atomically, return the manifest and analysis rows."""
    episode, analysis = run_job(job, size, action_repeat, length, render, root)
    T = len(episode["action"]) - 1
    stamp = time.strftime("%Y%m%dT%H%M%S")
    path = Path(root) / job.folder / f"{stamp}-{job.uuid}-{job.index}-{T}.npz"
    digest = save_episode(path, episode)
    return _row(job, path.relative_to(root), T, digest), {"id": path.stem, **analysis}


def _row(job: Job, path: Path, length: int, digest: str) -> dict:
    return dict(id=path.stem, path=str(path), benchmark=job.benchmark, embodiment=job.embodiment,
                task=job.task if job.benchmark == "metaworld" else None, source=job.source, sigma=job.sigma,
                length=length, action_size=EMBODIMENTS[job.embodiment].action_size, sha256=digest)


# -- a whole dataset ----------------------------------------------------------------------------------------
def collect(cfg: DataConfig | Config, progress: bool = True, save_every: int = 20) -> pd.DataFrame:
    """Collect (or finish collecting) the dataset of ``cfg`` under ``cfg.root``; returns its manifest.

    With ``p2e`` among the DMC sources, ``cfg`` must be the whole :class:`Config` (the explorer uses its
    world-model and actor-critic settings); explorers are trained (or resumed) first, one embodiment after
    the other. Episodes already on disk (found by their job hash in the file name) are kept, not redone;
    the manifest and ``analysis.csv`` are rewritten atomically every ``save_every`` episodes and at the end.
    Episodes of parts the config leaves out (another embodiment or Meta-World task, e.g. the Meta-World part
    when ``data.mw_tasks=[]`` collects the DMC part alone) stay in the manifest as they were.
    """
    full, cfg = (cfg, cfg.data) if isinstance(cfg, Config) else (None, cfg)
    root = resolve(cfg.root)
    if "p2e" in cfg.dmc_sources and cfg.dmc_episodes and cfg.dmc_embodiments:
        if full is None:
            raise ValueError("data.dmc_sources has 'p2e': pass the whole Config to collect (the explorer needs "
                             "its world-model and actor-critic settings)")
        train_explorers(full, root, progress)
    todo = jobs(cfg)
    done = _existing(root, todo)
    previous = _previous_analysis(root)
    kept = _outside(root, cfg)
    analysis = {row["id"]: _analysis_row(previous, row["id"], row["task"]) for row in kept}
    manifest: dict[Job, dict] = {}
    for job, path in done.items():
        T = int(NCRL_NAME.match(path.name)["len"])
        manifest[job] = _row(job, path.relative_to(root), T, sha256(path))
        analysis[path.stem] = _analysis_row(previous, path.stem, job.task)
    pending = [job for job in todo if job not in done]
    bar = tqdm(total=len(todo), initial=len(done), desc=f"collecting {root.name}", disable=not progress)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max(1, cfg.workers), mp_context=context, initializer=_init_worker) as pool:
        if cfg.obs not in ("pixels", "state"):
            raise ValueError(f"data.obs={cfg.obs!r}: choose 'pixels' or 'state'")
        futures = {pool.submit(_work, job, str(root), cfg.size, cfg.action_repeat,
                               cfg.dmc_length if job.benchmark == "dmc" else None, cfg.obs == "pixels"): job
                   for job in pending}
        for n, future in enumerate(as_completed(futures), 1):
            manifest[futures[future]], row = future.result()
            analysis[row["id"]] = row
            bar.update()
            if n % save_every == 0:
                _save(root, todo, manifest, analysis, kept)
    bar.close()
    _save(root, todo, manifest, analysis, kept)
    return read_manifest(root)


def train_explorers(cfg: Config, root: Path, progress: bool = True) -> None:
    """Train (or resume) the Plan2Explore explorer of every DMC embodiment, all at once in separate processes
    (threads split between them; with more explorers than cores they share the cores rather than leave one
    idle while a last explorer trains alone), or one after the other with ``data.workers <= 1``."""
    from gsa.explore import explore

    embodiments = [e for e in cfg.data.dmc_embodiments if not _explored(cfg, root, e)]
    if cfg.data.workers <= 1 or len(embodiments) <= 1:
        for embodiment in embodiments:
            explore(cfg, embodiment, explorer_dir(root, embodiment), progress=progress)
        return
    context = multiprocessing.get_context("spawn")
    workers = len(embodiments)
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_explorer,
                             initargs=(max(1, usable_cores() // workers),)) as pool:
        futures = [pool.submit(explore, cfg, e, explorer_dir(root, e), False) for e in embodiments]
        for future in tqdm(as_completed(futures), total=len(futures), desc="plan2explore", disable=not progress):
            future.result()


def _explored(cfg: Config, root: Path, embodiment: str) -> bool:
    from gsa.explore import snapshot_frames

    return all((explorer_dir(root, embodiment) / f"snapshot-{n}.pt").exists() for n in snapshot_frames(cfg))


def _init_explorer(threads: int) -> None:
    _init_worker()
    import torch

    torch.set_num_threads(threads)


def _init_worker() -> None:
    import gsa  # noqa: F401  (headless rendering defaults)
    import warnings

    warnings.filterwarnings("ignore", message="Constant")  # Meta-World policies' noisy warning


def _existing(root: Path, todo: list[Job]) -> dict[Job, Path]:
    by_uuid = {job.uuid: job for job in todo}
    found = {}
    for path in root.glob("*/*/*.npz"):
        match = NCRL_NAME.match(path.name)
        if match and match["uuid"] in by_uuid:
            found[by_uuid[match["uuid"]]] = path
    return found


def _previous_analysis(root: Path) -> dict[str, dict]:
    path = root / "analysis.csv"
    if not path.exists():
        return {}
    return {row["id"]: row for row in pd.read_csv(path, dtype={"id": str}).to_dict("records")}


def _analysis_row(previous: dict[str, dict], episode_id: str, task: str) -> dict:
    """An episode's row of ``analysis.csv`` as it was written before, or unknowns if it was not."""
    return previous.get(episode_id, {"id": episode_id, "hidden_task": task, "hidden_return": np.nan, "success": np.nan,
                                     "success_any": np.nan})


def _outside(root: Path, cfg: DataConfig) -> list[dict]:
    """The rows of ``root``'s manifest that belong to no part of ``cfg``'s dataset: DMC embodiments and
    Meta-World tasks it does not list (collected before with another config)."""
    if not (root / "manifest.csv").exists():
        return []
    manifest = read_manifest(root, check_files=False)
    covered = (manifest["benchmark"].eq("dmc") & manifest["embodiment"].isin(cfg.dmc_embodiments)
               | manifest["benchmark"].eq("metaworld") & manifest["task"].isin([f"mw-{n}" for n in cfg.mw_tasks]))
    return manifest[~covered].to_dict("records")


def _save(root: Path, todo: list[Job], manifest: dict, analysis: dict, kept: list[dict]) -> None:
    rows = [manifest[job] for job in todo if job in manifest] + kept
    rows.sort(key=lambda row: row["benchmark"] != "dmc")  # stable: DMC before Meta-World, as jobs() orders them
    write_manifest(root, rows)
    table = pd.DataFrame([analysis[row["id"]] for row in rows], columns=ANALYSIS_COLUMNS)
    atomic_write(root / "analysis.csv", lambda f: f.write(table.to_csv(index=False).encode()))
