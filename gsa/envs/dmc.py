"""DeepMind Control Suite tasks (stock and the custom ones of method §2)."""
from __future__ import annotations

import numpy as np
from dm_control import suite

import gsa.envs.tasks  # noqa: F401  (registers the custom tasks)
from gsa.envs.base import TaskEnv
from gsa.envs.registry import HARD_ACTION_PENALTY, TaskSpec


class DMCEnv(TaskEnv):
    """1000 control steps per episode; with action repeat 2, 500 agent steps."""

    def __init__(self, spec: TaskSpec, obs="pixels", size=64, action_repeat=2, seed=0, quality="spec"):
        super().__init__(spec, obs, size, action_repeat, quality)
        self._env = suite.load(spec.domain, spec.name, task_kwargs={"random": seed})
        self.physics = self._env.physics
        self.model, self.data = self.physics.model.ptr, self.physics.data.ptr

    def _state_obs(self) -> np.ndarray:
        return self._flat(self._env.task.get_observation(self.physics))

    @staticmethod
    def _flat(observation: dict) -> np.ndarray:
        return np.concatenate([np.asarray(v, np.float32).ravel() for v in observation.values()])

    def reset(self, *, seed: int | None = None, options=None):
        if seed is not None:
            self._env.task.random.seed(seed)
        self._env.reset()
        self._steps = 0
        return self._observe(), self._info()

    def _reward(self, reward: float, action: np.ndarray) -> float:
        """The ``-hard`` wrapper of method §2, applied per simulator step before action repeat."""
        threshold = self.task_spec.hard_threshold
        if threshold is None:
            return reward
        return (reward if reward >= threshold else 0.0) - HARD_ACTION_PENALTY * float(np.linalg.norm(action))

    def step(self, action):
        action = self._check_action(action)
        reward = 0.0
        for _ in range(self.action_repeat):
            timestep = self._env.step(action)
            reward += self._reward(timestep.reward or 0.0, action)
            if timestep.last():
                break
        self._steps += 1
        truncated = timestep.last()
        if truncated:
            self._steps = None
        return self._observe(), reward, False, truncated, self._info()
