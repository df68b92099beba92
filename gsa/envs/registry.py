"""The 73 tasks of the paper (method §2) and what each embodiment looks like.

Task ids follow the NCRL code: ``dmc-<domain>-<task>`` and ``mw-<task>`` (Meta-World v3 names without
``-v3``). ``tests/test_envs.py`` checks every entry against a constructed environment.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass


@dataclass(frozen=True)
class Embodiment:
    name: str
    benchmark: str      # "dmc" | "metaworld"
    action_size: int    # native action size
    state_size: int     # state-mode observation size
    frames: int         # simulator steps per episode (DMC 1000, Meta-World 200)
    camera: int | str

    def episode_length(self, action_repeat: int = 2) -> int:
        """Agent steps per episode: the last one may repeat its action fewer times (500 at action repeat 2)."""
        return -(-self.frames // action_repeat)


EMBODIMENTS = {e.name: e for e in [
    Embodiment("cartpole", "dmc", 1, 5, 1000, 0),
    Embodiment("acrobot", "dmc", 1, 6, 1000, 0),
    Embodiment("cheetah", "dmc", 6, 17, 1000, 0),
    Embodiment("walker", "dmc", 6, 24, 1000, 0),
    Embodiment("quadruped", "dmc", 12, 78, 1000, 2),
    Embodiment("sawyer", "metaworld", 4, 39, 200, "corner2"),
]}

HARD_THRESHOLD = {"cheetah": 0.2}  # `-hard` tasks: reward threshold per domain, default 0.6 (method §2)
HARD_ACTION_PENALTY = 0.1


@dataclass(frozen=True)
class TaskSpec:
    id: str                     # e.g. "dmc-walker-backflip", "mw-shelf-place"
    embodiment: Embodiment
    name: str                   # dm_control task name ("walk_backwards") or Meta-World env name ("shelf-place-v3")
    hard_threshold: float | None = None  # set for `-hard` tasks

    @property
    def benchmark(self) -> str:
        return self.embodiment.benchmark

    @property
    def domain(self) -> str:
        return self.embodiment.name


DMC_TASKS = {
    "cartpole": ["balance"],
    "acrobot": ["swingup", "swingup-sparse", "swingup-hard"],
    "cheetah": ["run", "run-backwards", "run-front", "run-back", "jump", "run-hard"],
    "walker": ["stand", "walk", "run", "backflip", "walk-backwards", "run-backwards", "walk-hard"],
    "quadruped": ["stand", "walk", "run", "jump", "roll", "roll-fast"],
}

MW_TASKS = [
    "assembly", "basketball", "bin-picking", "box-close", "button-press-topdown",
    "button-press-topdown-wall", "button-press", "button-press-wall", "coffee-button", "coffee-pull",
    "coffee-push", "dial-turn", "disassemble", "door-close", "door-lock", "door-open", "door-unlock",
    "hand-insert", "drawer-close", "drawer-open", "faucet-open", "faucet-close", "hammer",
    "handle-press-side", "handle-press", "handle-pull-side", "handle-pull", "lever-pull",
    "peg-insert-side", "pick-place-wall", "pick-out-of-hole", "reach", "push-back", "push", "pick-place",
    "plate-slide", "plate-slide-side", "plate-slide-back", "plate-slide-back-side", "peg-unplug-side",
    "soccer", "stick-push", "stick-pull", "push-wall", "reach-wall", "shelf-place", "sweep-into", "sweep",
    "window-open", "window-close",
]


def _dmc_spec(domain: str, task: str) -> TaskSpec:
    threshold = None
    if task.endswith("-hard"):
        task, threshold = task[: -len("-hard")], HARD_THRESHOLD.get(domain, 0.6)
    return TaskSpec(f"dmc-{domain}-{task}" + ("-hard" if threshold is not None else ""),
                    EMBODIMENTS[domain], task.replace("-", "_"), threshold)


TASKS: dict[str, TaskSpec] = {
    **{s.id: s for s in (_dmc_spec(d, t) for d, ts in DMC_TASKS.items() for t in ts)},
    **{f"mw-{t}": TaskSpec(f"mw-{t}", EMBODIMENTS["sawyer"], f"{t}-v3") for t in MW_TASKS},
}


def get_spec(task: str) -> TaskSpec:
    """The :class:`TaskSpec` of ``task``; unknown ids raise a ``KeyError`` that suggests close names."""
    try:
        return TASKS[task]
    except KeyError:
        close = difflib.get_close_matches(task, TASKS, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown task {task!r}.{hint} See gsa.envs.TASKS for all {len(TASKS)} ids.") from None


def tasks(benchmark: str | None = None, embodiment: str | None = None) -> list[str]:
    """Task ids, optionally restricted to one benchmark ("dmc" | "metaworld") or embodiment."""
    return [t for t, s in TASKS.items()
            if benchmark in (None, s.benchmark) and embodiment in (None, s.domain)]
