"""Meta-World v3 single tasks as in the NCRL code (method §2)."""
from __future__ import annotations

from contextlib import contextmanager

import metaworld
import mujoco
import numpy as np

from gsa.envs.base import TaskEnv
from gsa.envs.render import set_physics_state
from gsa.envs.registry import TaskSpec

CAMERA_POSITION = (0.75, 0.075, 0.7)  # `corner2` moved here (NCRL); must be set before reset()


class MetaWorldEnv(TaskEnv):
    """Sawyer arm, goal-observable env, 200 simulator steps (100 agent steps) per episode.

    - Seeding is through the constructor (Meta-World ignores ``reset(seed)``); ``reset(seed=s)`` here
      re-seeds the env's generator, so a new goal is drawn from seed ``s``.
    - The goal is re-sampled at every reset (``_freeze_rand_vec = False``) from the seeded generator.
    - The ``corner2`` image comes out upside-down from MuJoCo and is flipped the right way up.
    - ``info['success']`` is Meta-World's success flag at the last simulator step; the episode's
      success is the flag of its final step.
    """

    flip_image = True

    def __init__(self, spec: TaskSpec, obs="pixels", size=64, action_repeat=2, seed=0, quality="spec"):
        super().__init__(spec, obs, size, action_repeat, quality)
        env_cls = metaworld.ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE[f"{spec.name}-goal-observable"]
        self._env = env_cls(seed=seed)
        self._env._freeze_rand_vec = False
        self._env.seeded_rand_vec = True
        self._env.max_path_length = spec.embodiment.frames
        self.model, self.data = self._env.model, self._env.data
        camera = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_CAMERA, spec.embodiment.camera)
        self.model.cam_pos[camera] = CAMERA_POSITION
        self._last_obs = None

    def _state_obs(self) -> np.ndarray:
        return self._last_obs.astype(np.float32)

    def task_state(self) -> np.ndarray:
        return np.array(self._env._last_rand_vec, np.float64)

    @contextmanager
    def _placed(self, task_state: np.ndarray):
        """Inside: resets of the model place the goal and objects of ``task_state`` (an episode's
        ``info['task_state']``) instead of drawing new ones."""
        env = self._env
        env._last_rand_vec, env._freeze_rand_vec = np.array(task_state, np.float64), True
        try:
            yield
        finally:
            env._freeze_rand_vec = False

    def render_state(self, state: np.ndarray, task_state: np.ndarray | None = None) -> np.ndarray:
        """Render a stored physics state; ``task_state`` (an episode's ``info['task_state']``) first
        places that episode's goal and objects, which live in the model, not in the physics state.
        Placing another episode's task ends the current episode (call ``reset`` before stepping)."""
        if task_state is not None and not np.array_equal(task_state, self.task_state()):
            with self._placed(task_state):
                self._env.reset_model()
            for site in self._env._target_site_config:
                self._env._set_pos_site(*site)
            self._steps = None
        return super().render_state(state)

    def restore(self, state: np.ndarray, task_state: np.ndarray | None = None) -> np.ndarray:
        if task_state is None:
            self.reset()
        else:
            with self._placed(task_state):  # reset places this episode's goal and objects
                self.reset()
        set_physics_state(self.model, self.data, state)
        self._last_obs = self._env._get_obs()
        return self._observe()

    def reset(self, *, seed: int | None = None, options=None):
        if seed is not None:
            self._env.seed(seed)
        self._last_obs, _ = self._env.reset()
        mujoco.mj_forward(self.model, self.data)  # reset moves goal sites after its last forward pass
        self._steps = 0
        return self._observe(), self._info(success=False)

    def step(self, action):
        action = self._check_action(action)
        reward, success = 0.0, False
        for _ in range(self.action_repeat):
            if self._env.curr_path_length >= self._env.max_path_length:
                break  # the last agent step of an episode whose length is not a multiple of action_repeat
            self._last_obs, r, _, _, info = self._env.step(action)
            reward += float(r)
            success = bool(info["success"])
        self._steps += 1
        truncated = self._steps >= self.task_spec.embodiment.episode_length(self.action_repeat)
        if truncated:
            self._steps = None
        return self._observe(), reward, False, truncated, self._info(success=success)
