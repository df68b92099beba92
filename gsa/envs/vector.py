"""Step N environments in parallel worker processes.

Rendering dominates the cost of an env step on a CPU (~5–30 ms per 64×64 frame), so collection scales
with processes. Workers are started with ``spawn`` (a GL context must not cross a ``fork``), each owns
one env built by :func:`gsa.envs.make`, and every failure is re-raised here naming the task and worker.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import traceback

import numpy as np


def _worker(conn, kwargs: dict, cpu: int | None) -> None:
    from gsa.envs import make

    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    try:
        env = make(**kwargs)
        conn.send(("ok", None))
        while True:
            command, args = conn.recv()
            if command == "close":
                env.close()
                conn.send(("ok", None))
                return
            try:
                conn.send(("ok", getattr(env, command)(*args[0], **args[1])))
            except Exception:  # reported to the parent, which raises; the worker stays usable
                conn.send(("error", traceback.format_exc()))
    except (EOFError, KeyboardInterrupt):
        return
    except Exception:
        conn.send(("error", traceback.format_exc()))


class WorkerError(RuntimeError):
    pass


class VectorEnv:
    """``VectorEnv([dict(task="dmc-walker-walk", seed=0), ...])`` — one worker process per env.

    ``reset()`` and ``step(actions)`` return stacked observations/rewards/flags and a list of infos
    (all envs must share an observation shape: pad state vectors across embodiments). With no more
    workers than cores, worker i is pinned to core i (``pin_cpus``), which avoids migrations while
    the workers run in lockstep. Use it as a context manager or call :meth:`close`.
    """

    def __init__(self, env_kwargs: list[dict], start_method: str = "spawn", pin_cpus: bool = True):
        if not env_kwargs:
            raise ValueError("VectorEnv needs at least one env")
        ctx = mp.get_context(start_method)
        cpus = sorted(os.sched_getaffinity(0))
        pin = pin_cpus and len(env_kwargs) <= len(cpus)  # one core per worker when there are enough
        self.env_kwargs = [dict(k) for k in env_kwargs]
        self._conns, self._procs = [], []
        for i, kwargs in enumerate(self.env_kwargs):
            parent, child = ctx.Pipe()
            cpu = cpus[i] if pin else None
            proc = ctx.Process(target=_worker, args=(child, kwargs, cpu), daemon=True, name=f"gsa-env-{i}")
            proc.start()
            child.close()
            self._conns.append(parent)
            self._procs.append(proc)
        self.closed = False
        try:
            for i in range(len(self)):
                self._receive(i)
        except Exception:
            self.close()
            raise

    def __len__(self) -> int:
        return len(self._conns)

    def _name(self, i: int) -> str:
        return f"worker {i} (task {self.env_kwargs[i].get('task')!r}, seed {self.env_kwargs[i].get('seed', 0)})"

    def _receive(self, i: int):
        try:
            status, payload = self._conns[i].recv()
        except (EOFError, ConnectionResetError):
            self._procs[i].join(timeout=1)
            raise WorkerError(f"{self._name(i)} died (exit code {self._procs[i].exitcode})") from None
        if status == "error":
            raise WorkerError(f"{self._name(i)} failed: {payload.strip().splitlines()[-1]}\n{payload}")
        return payload

    def _run(self, calls: list[tuple[int, str, tuple, dict]]) -> list:
        """Send every ``(worker, method, args, kwargs)`` first, then gather the results in order."""
        if self.closed:
            raise RuntimeError("VectorEnv is closed")
        for i, method, args, kwargs in calls:
            self._conns[i].send((method, (args, kwargs)))
        return [self._receive(i) for i, *_ in calls]

    def reset(self, seeds: list[int] | None = None, indices=None):
        indices = list(range(len(self)) if indices is None else indices)
        seeds = [None] * len(indices) if seeds is None else seeds
        obs, infos = zip(*self._run([(i, "reset", (), {"seed": s}) for i, s in zip(indices, seeds)]))
        return np.stack(obs), list(infos)

    def step(self, actions):
        if len(actions) != len(self):
            raise ValueError(f"got {len(actions)} actions for {len(self)} envs")
        results = self._run([(i, "step", (np.asarray(a),), {}) for i, a in enumerate(actions)])
        obs, reward, terminated, truncated, infos = zip(*results)
        return (np.stack(obs), np.asarray(reward, np.float64), np.asarray(terminated),
                np.asarray(truncated), list(infos))

    def close(self) -> None:
        if getattr(self, "closed", True):
            return
        self.closed = True
        for conn, proc in zip(self._conns, self._procs):
            try:
                if proc.is_alive():
                    conn.send(("close", None))
                    conn.poll(5) and conn.recv()
            except (BrokenPipeError, EOFError, ConnectionResetError, OSError):
                pass
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=1)
            conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()
