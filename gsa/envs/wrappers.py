"""Multi-embodiment padding (method §4): actions and state vectors zero-padded to a common size, with a mask.

Padded action dimensions are ignored by the environment and are exactly zero in everything returned —
the NCRL code leaves policy noise in them; we do not.
"""
from __future__ import annotations

import gymnasium
import numpy as np


def mask(native: int, size: int) -> np.ndarray:
    """(size,) float32 mask: 1 on the first ``native`` dims, 0 on the padding."""
    if native > size:
        raise ValueError(f"cannot pad {native} dims to {size}")
    return (np.arange(size) < native).astype(np.float32)


def pad(x: np.ndarray, size: int) -> np.ndarray:
    """Zero-pad the last axis of ``x`` (…, native) to (…, size)."""
    x = np.asarray(x)
    native = x.shape[-1]
    if native > size:
        raise ValueError(f"cannot pad a vector of size {native} to {size}")
    out = np.zeros(x.shape[:-1] + (size,), x.dtype if x.dtype.kind == "f" else np.float32)
    out[..., :native] = x
    return out


def unpad(x: np.ndarray, native: int) -> np.ndarray:
    """The first ``native`` dims of the last axis."""
    x = np.asarray(x)
    if x.shape[-1] < native:
        raise ValueError(f"vector of size {x.shape[-1]} is smaller than the native size {native}")
    return x[..., :native]


pad_action = pad_state = pad
unpad_action = unpad


class Pad(gymnasium.Wrapper):
    """Expose an env with actions of size ``action_size`` (and state observations of ``state_size``).

    The env acts on the real dims only; ``info['action']`` is the executed action, clipped to
    [−1, 1], padded with exact zeros; ``info['action_mask']`` marks the real dims.
    """

    def __init__(self, env, action_size: int | None = None, state_size: int | None = None):
        super().__init__(env)
        self.native_action = env.action_space.shape[0]
        self.action_size = action_size or self.native_action
        self.action_mask = mask(self.native_action, self.action_size)
        self.action_space = gymnasium.spaces.Box(-1.0, 1.0, (self.action_size,), np.float32)
        self.state_size = None
        if state_size is not None and env.obs_mode == "state":
            self.state_size = state_size
            mask(env.observation_space.shape[0], state_size)  # validates the size
            self.observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (state_size,), np.float32)

    def _obs(self, obs):
        return pad(obs, self.state_size) if self.state_size else obs

    def _info(self, info, action):
        return {**info, "action": action, "action_mask": self.action_mask}

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        return self._obs(obs), self._info(info, np.zeros(self.action_size, np.float32))

    def step(self, action):
        action = np.asarray(action, np.float32)
        if action.shape != (self.action_size,):
            raise ValueError(f"expected a padded action of shape ({self.action_size},), got {action.shape}")
        native = np.clip(unpad(action, self.native_action), -1.0, 1.0)
        obs, reward, terminated, truncated, info = self.env.step(native)
        return self._obs(obs), reward, terminated, truncated, self._info(info, pad(native, self.action_size))
