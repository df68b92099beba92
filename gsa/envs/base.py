"""The interface both suites share (gymnasium style)."""
from __future__ import annotations

import gymnasium
import mujoco
import numpy as np

from gsa.envs.registry import TaskSpec
from gsa.envs.render import Renderer, get_physics_state, set_physics_state


class TaskEnv(gymnasium.Env):
    """One task of method §2 with 64×64 pixel (uint8, (3, H, W)) or state (float32) observations.

    ``step`` returns ``(obs, reward, terminated, truncated, info)``; there are no terminal states, only
    the time limit (``truncated``). ``info`` carries ``embodiment``, ``task``, ``physics`` (the raw
    MuJoCo state, enough to re-render the frame with :meth:`render_state`) and ``task_state`` (per-episode
    parameters that live in the model, e.g. Meta-World's goal); Meta-World adds ``success``.
    Rewards are summed over ``action_repeat`` simulator steps.
    """

    def __init__(self, spec: TaskSpec, obs: str, size: int, action_repeat: int, quality: str):
        if obs not in ("pixels", "state"):
            raise ValueError(f"obs must be 'pixels' or 'state', got {obs!r}")
        if action_repeat < 1:
            raise ValueError(f"action_repeat must be >= 1, got {action_repeat}")
        self.task_spec, self.obs_mode, self.size = spec, obs, size
        self.action_repeat, self.quality = action_repeat, quality
        emb = spec.embodiment
        self.action_space = gymnasium.spaces.Box(-1.0, 1.0, (emb.action_size,), np.float32)
        self.observation_space = (
            gymnasium.spaces.Box(0, 255, (3, size, size), np.uint8) if obs == "pixels"
            else gymnasium.spaces.Box(-np.inf, np.inf, (emb.state_size,), np.float32))
        self._renderer: Renderer | None = None
        self._steps = None  # agent steps since reset; None before the first reset

    # -- what each suite provides ---------------------------------------------------------------------
    model: mujoco.MjModel
    data: mujoco.MjData
    flip_image = False

    def _state_obs(self) -> np.ndarray:
        raise NotImplementedError

    # -- shared -------------------------------------------------------------------------------------------
    def render(self) -> np.ndarray:
        """The current frame, (3, size, size) uint8, with the method §2 camera and render settings."""
        if self._renderer is None:
            camera = self.task_spec.embodiment.camera
            self._renderer = Renderer(self.model, self.size, camera, self.quality, self.flip_image)
        return self._renderer(self.data)

    def physics_state(self) -> np.ndarray:
        return get_physics_state(self.model, self.data)

    def render_state(self, state: np.ndarray, task_state: np.ndarray | None = None) -> np.ndarray:
        """Render the frame of a stored physics state (the env's own state is restored afterwards).
        ``task_state`` (an episode's ``info['task_state']``) matters only where the task keeps per-episode
        parameters in the model (Meta-World)."""
        current = self.physics_state()
        set_physics_state(self.model, self.data, state)
        try:
            return self.render()
        finally:
            set_physics_state(self.model, self.data, current)

    def restore(self, state: np.ndarray, task_state: np.ndarray | None = None) -> np.ndarray:
        """Start an episode from a stored physics state (and, in Meta-World, the episode's ``task_state``);
        returns its observation. Stepping the stored actions from there replays the episode, which recovers
        the rewards of any task of the same model: to float precision at first (the solver's warm start is not
        part of the stored state, so the restored one differs by ~1e-15), and a contact-rich body such as the
        quadruped amplifies that over hundreds of steps (``gsa.diagnostics.replay_rewards`` re-syncs every step)."""
        self.reset(seed=0)
        set_physics_state(self.model, self.data, state)
        return self._observe()

    def _observe(self) -> np.ndarray:
        return self.render() if self.obs_mode == "pixels" else self._state_obs()

    def task_state(self) -> np.ndarray:
        """Per-episode task parameters outside the physics state (Meta-World: goal/object placement)."""
        return np.zeros(0)

    def _info(self, **extra) -> dict:
        return {"task": self.task_spec.id, "embodiment": self.task_spec.domain,
                "physics": self.physics_state(), "task_state": self.task_state(), **extra}

    def _check_action(self, action) -> np.ndarray:
        if self._steps is None:
            raise RuntimeError(f"{self.task_spec.id}: call reset() first (before the first step and after an episode ends)")
        action = np.asarray(action, np.float64)
        if action.shape != self.action_space.shape:
            raise ValueError(f"{self.task_spec.id} takes actions of shape {self.action_space.shape}, "
                             f"got {action.shape}; pad/unpad multi-embodiment actions with "
                             "gsa.envs.unpad_action or make(..., action_size=...)")
        if not np.all(np.isfinite(action)):
            raise ValueError(f"{self.task_spec.id}: action contains NaN or inf: {action}")
        return np.clip(action, -1.0, 1.0)

    def close(self):
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
