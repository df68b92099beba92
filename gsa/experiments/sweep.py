"""Sweeps: methods × tasks × seeds (× variants) of fine-tuning runs, run locally or on SLURM.

    runs = expand("cpu", preset="cpu", methods=["gsa", "dreamerv3"], tasks=["dmc-walker-walk"], seeds=[0, 1, 2],
                  variants={"": {}, "k250": {"finetune.retrieval_k": 250}})
    summary = sweep(runs, workers=2)          # or gsa sweep --preset cpu --methods gsa dreamerv3 ...
    path = tidy("cpu")                        # results/cpu.csv (finished runs): method, task, seed, frame, return, success, ...

- A run is one ``finetune`` call in a worker process (``python -m gsa.experiments.worker``), with
  ``OMP_NUM_THREADS`` = cores / workers; a worker executes runs one after the other, so what
  ``torch.compile`` built for its first run serves the others. Finished runs (``done.json``) are skipped, interrupted ones resume
  from their checkpoint, so calling ``sweep`` again after any interruption continues where it stopped.
- Nothing runs twice: a worker holds an exclusive lock on its run (``checkpoints/runs/.../lock``) for as long
  as it lives. If the runner is killed (even ``kill -9``) its workers go on as orphans; a new runner finds
  their locks taken, waits for them and skips what they finished (``leave_locked=True``: leaves them to their
  process and ends when nothing else is left, for several runners sharing a machine, e.g. one per core with
  ``taskset``). A worker killed by a signal is resumed
  (``retries`` times); a run that raises is reported with its error and the others go on.
- ``executor="slurm"`` submits the pending runs through ``submitit`` (``pip install gsa[cluster]``) as one
  job array, with the same worker function and the same locks; ``"submitit-local"`` runs them through
  submitit's local executor (how the path is tested).
"""
from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from gsa.config import preset as get_preset
from gsa.data.episodes import atomic_write
from gsa.envs import get_spec
from gsa.paths import project_root, results_dir, usable_cores
from gsa.train.finetune import BASELINES, METHODS, load_results, prerequisites, run_paths
from gsa.train.online import is_done, score
from gsa.train.pretrain import pretrained_steps


@dataclass(frozen=True)
class Run:
    """One fine-tuning run of a sweep; ``overrides`` are dotted config fields (as ``gsa finetune -o``)."""
    experiment: str
    preset: str
    method: str
    task: str
    seed: int
    variant: str = ""
    overrides: tuple = field(default=(), compare=False)  # ((key, value), ...)

    @property
    def label(self) -> str:
        """The results folder's method name: ``gsa``, or ``gsa.<variant>`` for a variant."""
        return f"{self.method}.{self.variant}" if self.variant else self.method

    @property
    def name(self) -> str:
        return f"{self.label}/{self.task}/seed{self.seed}"

    def config(self):
        return get_preset(self.preset, {**dict(self.overrides), "finetune.seed": self.seed})

    def paths(self) -> tuple[Path, Path]:
        """(results directory, checkpoint path)."""
        return run_paths(self.config(), self.task, self.label, self.experiment)

    def done(self) -> bool:
        return is_done(self.paths()[0], self.config().finetune.frames)


def expand(experiment: str, preset: str, methods, tasks, seeds, variants: dict[str, dict] | None = None,
           overrides: dict | None = None) -> list[Run]:
    """Every (method, task, seed, variant) combination; unknown methods, tasks or fields fail here, early."""
    variants = variants or {"": {}}
    for method in methods:
        if method not in METHODS and method not in BASELINES:
            raise ValueError(f"unknown method {method!r}; choose from {sorted(METHODS) + sorted(BASELINES)}")
    for task in tasks:
        get_spec(task)
    runs = []
    for variant, method, task, seed in itertools.product(variants, methods, tasks, seeds):
        settings = {**(overrides or {}), **variants[variant]}
        get_preset(preset, settings)  # unknown config fields raise now, not in a worker
        runs.append(Run(experiment, preset, method, task, int(seed), variant, tuple(sorted(settings.items()))))
    return runs


def run_one(run: Run) -> str:
    """Execute one run in this process under its lock → "done", or "busy" if another process holds it.
    (The worker entry point; submitit pickles it for SLURM.)"""
    import fcntl

    from gsa.train.finetune import finetune

    _, ckpt = run.paths()
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    with open(ckpt.parent / "lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return "busy"
        if not run.done():
            path = finetune(run.config(), run.task, run.method, experiment=run.experiment, progress=False,
                            label=run.label)
            _diagnose(run, path)
    return "done"


def _diagnose(run: Run, path: Path) -> None:
    """``gsa diagnose`` of a finished state-mode world-model run while its checkpoint exists (best effort:
    without the dataset, e.g. DreamerV3 in a session that has none, it only says why on stderr)."""
    from gsa.diagnostics import diagnose
    from gsa.train.finetune import METHODS

    if run.method in METHODS and run.config().world_model.obs == "state":
        try:
            diagnose(path)
        except (OSError, ValueError, KeyError) as error:
            print(f"[sweep] {run.name}: no diagnostics.json ({error})", file=sys.stderr)


def sweep(runs: list[Run], workers: int | None = None, retries: int = 2, executor: str = "local",
          progress: bool = True, poll: float = 1.0, slurm: dict | None = None,
          leave_locked: bool = False) -> dict[str, str]:
    """Execute the runs that are not finished; returns {run name: "done" | "error: ..." | "elsewhere"} and
    writes the tidy table of every experiment involved (:func:`tidy`). "elsewhere" (``leave_locked``, local
    executor only): another process held the run's lock, so this runner left it to that process."""
    if leave_locked and executor != "local":
        raise ValueError("leave_locked is for the local executor (a SLURM array's runs wait for their locks)")
    todo = [r for r in runs if not r.done()]
    status = {r.name: "done" for r in runs if r not in todo}
    if executor == "local":
        status.update(_local(todo, workers or usable_cores(), retries, progress, poll, len(runs), leave_locked))
    elif executor in ("slurm", "submitit-local"):
        status.update(_submitit(todo, executor, slurm or {}))
    else:
        raise ValueError(f"unknown executor {executor!r}: choose local, slurm or submitit-local")
    for experiment in sorted({r.experiment for r in runs}):
        try:
            tidy(experiment)
        except FileNotFoundError:  # nothing evaluated yet
            pass
    return status


def _local(todo: list[Run], workers: int, retries: int, progress: bool, poll: float, total: int,
           leave_locked: bool = False) -> dict[str, str]:
    """Up to ``workers`` worker processes (``gsa.experiments.worker``), each fed one run at a time, so a
    worker's compiled update serves all of its runs. A run whose lock another process holds (an orphan of a
    killed runner, or another runner's) is not started: it waits in the queue until it is done or its lock is
    free, or with ``leave_locked`` leaves the queue as "elsewhere"."""
    queue, pool, status, attempts = list(todo), [], {}, {}
    threads = max(1, usable_cores() // workers)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    logs = results_dir() / "sweeps"
    logs.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=total, initial=total - len(todo), desc="sweep", unit="run", disable=not progress)
    started, finished = time.perf_counter(), 0

    def finish(run: Run, outcome: str) -> None:
        nonlocal finished
        status[run.name], finished = outcome, finished + (outcome != "elsewhere")  # the rate counts our runs
        bar.update()

    def fail(run: Run, log: Path, code: int) -> None:
        finish(run, f"error: {_last_error(log, code)}")
        bar.write(f"[sweep] {run.name} failed: {status[run.name]} (log: {log})")

    try:
        while queue or any(w.run for w in pool):
            for run in [r for r in queue if _locked(r)]:
                if run.done():  # the orphan finished it
                    queue.remove(run)
                    finish(run, "done")
                elif leave_locked:
                    queue.remove(run)
                    finish(run, "elsewhere")
            free = [r for r in queue if not _locked(r)]
            while free and len(pool) < workers:
                pool.append(_Worker(env, logs / "workers.log"))
            for worker in [w for w in pool if w.run is None][: len(free)]:
                run = free.pop(0)
                queue.remove(run)
                worker.give(run, logs / f"{run.experiment}--{run.name.replace('/', '--')}.log")
            time.sleep(poll)
            for worker in [w for w in pool if w.run is not None]:
                outcome = worker.answer()
                if outcome is None:
                    continue
                run, log = worker.run, worker.log
                worker.run = None
                if outcome == "done":
                    finish(run, "done")
                elif outcome == "busy":  # locked between our look and its start: back to the queue
                    queue.append(run)
                elif outcome == "error":
                    fail(run, log, 1)
                else:  # the process ended: killed by a signal (resume the run) or crashed
                    pool.remove(worker)
                    code = worker.process.returncode
                    if code < 0 and attempts.get(run.name, 0) < retries:
                        attempts[run.name] = attempts.get(run.name, 0) + 1
                        queue.append(run)
                    else:
                        fail(run, log, code)
            rate = finished / max(time.perf_counter() - started, 1e-9)
            left = len(queue) + sum(w.run is not None for w in pool)
            bar.set_postfix(running=left - len(queue), left=left,
                            eta=f"{left / rate / 60:.0f} min" if finished else "?", refresh=False)
    finally:
        for worker in pool:  # workers exit at the end of their input, after their current run
            worker.close()
        bar.close()
    return status


class _Worker:
    """A ``gsa.experiments.worker`` process and the run it is executing (None when idle)."""

    def __init__(self, env: dict, log: Path):
        with open(log, "ab") as err:
            self.process = subprocess.Popen([sys.executable, "-m", "gsa.experiments.worker"], env=env,
                                            cwd=project_root(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                            stderr=err)
        os.set_blocking(self.process.stdout.fileno(), False)
        self.run, self.log, self.pending = None, None, b""

    def give(self, run: Run, log: Path) -> None:
        self.run, self.log = run, log
        try:
            self.process.stdin.write((json.dumps({"run": asdict(run), "log": str(log)}) + "\n").encode())
            self.process.stdin.flush()
        except BrokenPipeError:  # it died while idle: answer() reports "ended" and the run is queued again
            pass

    def answer(self) -> str | None:
        """The current run's outcome (done | busy | error), "ended" if the process ended, None while it runs."""
        try:
            self.pending += os.read(self.process.stdout.fileno(), 4096)
        except BlockingIOError:
            pass
        if b"\n" in self.pending:
            line, self.pending = self.pending.split(b"\n", 1)
            return line.decode().strip()
        return "ended" if self.process.poll() is not None else None

    def close(self) -> None:
        try:
            self.process.stdin.close()
        except BrokenPipeError:
            pass


def _locked(run: Run) -> bool:
    """Whether another process holds the run's lock right now."""
    import fcntl

    path = run.paths()[1].parent / "lock"
    if not path.exists():
        return False
    with open(path, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(lock, fcntl.LOCK_UN)
    return False


def _last_error(log: Path, code: int) -> str:
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if "Error" in line or "Exception" in line]
    return (errors or lines or [f"exit code {code}"])[-1].strip()


def _submitit(todo: list[Run], executor: str, slurm: dict) -> dict[str, str]:
    """Submit the runs as one job array through submitit and wait for them."""
    try:
        import submitit
    except ImportError:
        raise ImportError("the SLURM executor needs submitit: pip install 'gsa[cluster]'") from None
    folder = results_dir() / "sweeps" / "submitit"
    cluster = "slurm" if executor == "slurm" else "local"
    pool = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
    pool.update_parameters(**({"timeout_min": 24 * 60, "cpus_per_task": 2} | slurm))
    jobs = pool.map_array(run_one, todo) if todo else []
    status = {}
    for run, job in zip(todo, jobs):
        try:
            result = job.result()
            status[run.name] = "done" if result == "done" else "error: busy (another process holds its lock)"
        except Exception as error:  # submitit re-raises the worker's exception
            status[run.name] = f"error: {str(error).strip().splitlines()[-1] if str(error).strip() else error!r}"
    return status


def tidy(experiment: str) -> Path:
    """Write ``results/<experiment>.csv`` (:func:`results_table` of the finished runs): what figures are made
    from, without checkpoints. Runs still training are left out, so the file is the same on the machine that
    ran the study and in a clone of its committed results."""
    table = results_table(experiment)
    path = results_dir() / f"{experiment}.csv"
    atomic_write(path, lambda out: out.write(table.to_csv(index=False).encode()))
    return path


def results_table(experiment: str, finished_only: bool = True) -> pd.DataFrame:
    """One row per evaluation (method, task, seed, frame, return, success, success_any, score) from the
    experiment's ``eval.csv`` files; ``finished_only=False`` adds the runs still training (to watch a study).
    ``success_any`` (Meta-World's success at any step, a diagnostic) is empty for runs that predate it."""
    table = load_results(experiment, finished_only).rename(columns={"episode_return": "return"})
    table["score"] = [score(t, r, s) for t, r, s in zip(table["task"], table["return"], table["success"])]
    columns = ["method", "task", "seed", "frame", "return", "success", "success_any", "score"]
    return table.reindex(columns=columns).sort_values(columns[:4]).reset_index(drop=True)  # success_any: NaN if absent


def read_status(runs: list[Run]) -> pd.DataFrame:
    """One row per run: its name; whether it is done, started (has a checkpoint) or new; the frames of its
    last evaluation and of its budget; for a finished run the hours of its online phase in CPU time
    (``cpu_seconds`` of ``done.json``; wall time for runs that predate it, on a shared machine more)."""
    rows = []
    for run in runs:
        results, ckpt = run.paths()
        state = "done" if run.done() else "started" if ckpt.exists() else "new"
        evals = results / "eval.csv"
        frames = int(pd.read_csv(evals)["frame"].max()) if state != "new" and evals.exists() else 0
        hours = np.nan
        if state == "done":
            done = json.loads((results / "done.json").read_text())
            hours = (done.get("cpu_seconds") or done.get("seconds") or np.nan) / 3600
        rows.append({"method": run.label, "task": run.task, "seed": run.seed, "status": state, "frames": frames,
                     "budget": run.config().finetune.frames, "hours": hours})
    return pd.DataFrame(rows)


def read_prerequisites(runs: list[Run]) -> pd.DataFrame:
    """What the unfinished runs read before their first step (:func:`gsa.train.finetune.prerequisites`: a benchmark's
    pre-trained world model, the offline data), one row per input and benchmark: its path, how many runs wait for
    it, and whether it is ready — or what to run first (a fresh machine has neither; a world model still being
    pre-trained is not ready: fine-tuning refuses it)."""
    waiting: dict[tuple, int] = {}
    for run in runs:
        if run.done():
            continue
        cfg = run.config()
        for what, path in prerequisites(cfg, run.task, run.method).items():
            key = (what, get_spec(run.task).benchmark, str(path), cfg.name)
            waiting[key] = waiting.get(key, 0) + 1
    rows = [{"input": what, "benchmark": benchmark, "path": _shown(Path(path)), "runs": n,
             "state": _readiness(what, benchmark, Path(path), name)} for (what, benchmark, path, name), n in waiting.items()]
    return pd.DataFrame(rows, columns=["input", "benchmark", "path", "runs", "state"])


def _shown(path: Path) -> str:
    return str(path.relative_to(project_root())) if path.is_relative_to(project_root()) else str(path)


def _readiness(what: str, benchmark: str, path: Path, preset: str) -> str:
    if what == "world model":
        if not path.exists():
            return f"missing: gsa pretrain --preset {preset} -o pretrain.benchmark={benchmark}"
        try:
            state = _checkpoint_meta(path)
        except Exception as error:  # torch raises several types for truncated files
            return f"unreadable ({type(error).__name__}): pre-train it again"
        done, asked = pretrained_steps(state)
        return "ready" if done >= asked else f"not ready: pre-trained {done} of {asked} steps"
    manifest = path / "manifest.csv"
    episodes = int((pd.read_csv(manifest, usecols=["benchmark"])["benchmark"] == benchmark).sum()) if manifest.exists() else 0
    if episodes:
        return f"ready ({episodes} {benchmark} episodes)"
    only = {"dmc": "data.mw_tasks=[]", "metaworld": "data.dmc_embodiments=[]"}  # collect one benchmark's part alone
    return (f"{'missing' if not manifest.exists() else f'no {benchmark} episodes'}: gsa collect --preset {preset}"
            + (f" (its {benchmark} part alone: -o {only[benchmark]})" if benchmark in only else ""))


def _checkpoint_meta(path: Path) -> dict:
    """A checkpoint's small entries (step, config), its tensors memory-mapped rather than read."""
    import torch

    return torch.load(path, map_location="cpu", weights_only=False, mmap=True)


def remaining_hours(status: pd.DataFrame, reference: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per method: runs done / started / new and the core-hours left, estimated from the median hours of
    its finished runs on the same benchmark, or of its base method's for a variant (``gsa.dynamics``: ``gsa``'s),
    each unfinished run counted for its frames still to go; NaN where neither has a finished run there).
    ``reference``: more :func:`read_status` rows that only inform the estimate (the ablations' base-method runs,
    which belong to the main study)."""
    def with_benchmark(table):
        return table.assign(benchmark=table["task"].map(lambda t: get_spec(t).benchmark))

    status = with_benchmark(status)
    finished = pd.concat([status, with_benchmark(reference)]) if reference is not None and len(reference) else status
    typical = finished[finished["status"] == "done"].groupby(["method", "benchmark"])["hours"].median()
    left = status[status["status"] != "done"]
    left = left.assign(hours=[typical.get((m, b), typical.get((m.split(".")[0], b), np.nan)) * (1 - f / n) for m, b, f, n in
                              zip(left["method"], left["benchmark"], left["frames"], left["budget"])])
    table = status.pivot_table(index="method", columns="status", values="seed", aggfunc="count", fill_value=0)
    table = table.reindex(index=list(dict.fromkeys(status["method"])), columns=["done", "started", "new"], fill_value=0)
    per_method = left.groupby("method")["hours"].agg(lambda h: h.sum() if h.notna().all() else np.nan)
    table["core-hours left"] = per_method.reindex(table.index, fill_value=0.0)
    return table
