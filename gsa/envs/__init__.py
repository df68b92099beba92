"""Environments: ``make(task, obs="pixels" | "state", ...)`` for all 73 tasks of method §2."""
from __future__ import annotations

from gsa.envs.registry import EMBODIMENTS, TASKS, Embodiment, TaskSpec, get_spec, tasks
from gsa.envs.wrappers import Pad, mask, pad, pad_action, pad_state, unpad, unpad_action

__all__ = ["make", "TASKS", "EMBODIMENTS", "Embodiment", "TaskSpec", "get_spec", "tasks", "Pad", "mask",
           "pad", "pad_action", "pad_state", "unpad", "unpad_action"]


def make(task: str, obs: str = "pixels", size: int = 64, action_repeat: int = 2, seed: int = 0,
         action_size: int | None = None, state_size: int | None = None, quality: str = "spec"):
    """Build one task env.

    Args:
        task: an id of :data:`TASKS`, e.g. ``"dmc-walker-backflip"`` or ``"mw-shelf-place"``.
        obs: ``"pixels"`` (uint8 (3, size, size)) or ``"state"`` (float32 vector).
        size: image side in pixels.
        action_repeat: simulator steps per agent step (rewards are summed).
        seed: seeds the task's initial states (and Meta-World goals).
        action_size / state_size: pad actions / state observations to this size (multi-embodiment).
        quality: ``"spec"`` render settings of method §2, or ``"default"`` (the model's own, slower).
    """
    spec = get_spec(task)
    if spec.benchmark == "dmc":
        from gsa.envs.dmc import DMCEnv as cls
    else:
        from gsa.envs.metaworld import MetaWorldEnv as cls
    env = cls(spec, obs=obs, size=size, action_repeat=action_repeat, seed=seed, quality=quality)
    if action_size is not None or state_size is not None:
        env = Pad(env, action_size, state_size)
    return env
