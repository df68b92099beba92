"""Offscreen rendering shared by both suites.

One :class:`mujoco.Renderer` per environment, with the render settings of method §2 applied to the model
*before* the GL context is created (``vis.quality.offsamples = 0``, ``vis.quality.shadowsize = 512``):
no visible change at 64×64 and 3–4× faster on a CPU. ``quality="default"`` keeps the model's own
settings (used by ``benchmarks/env_throughput.py`` as the reference).
"""
from __future__ import annotations

import atexit
import weakref

import mujoco
import numpy as np

SPEC_QUALITY = {"offsamples": 0, "shadowsize": 512}

# What `mj_getState` stores as an episode's "physics state": enough to re-render any frame later
# (positions, velocities, actuator activations, and mocap bodies that Meta-World's arm follows).
PHYSICS_STATE = (mujoco.mjtState.mjSTATE_PHYSICS | mujoco.mjtState.mjSTATE_MOCAP_POS
                 | mujoco.mjtState.mjSTATE_MOCAP_QUAT)


def get_physics_state(model: mujoco.MjModel, data: mujoco.MjData) -> np.ndarray:
    state = np.empty(mujoco.mj_stateSize(model, PHYSICS_STATE), np.float64)
    mujoco.mj_getState(model, data, state, PHYSICS_STATE)
    return state


def set_physics_state(model: mujoco.MjModel, data: mujoco.MjData, state: np.ndarray) -> None:
    expected = mujoco.mj_stateSize(model, PHYSICS_STATE)
    if state.shape != (expected,):
        raise ValueError(f"physics state has shape {state.shape}, this model expects ({expected},)")
    mujoco.mj_setState(model, data, np.asarray(state, np.float64), PHYSICS_STATE)
    mujoco.mj_forward(model, data)


class Renderer:
    """Renders ``(3, size, size)`` uint8 frames of ``camera`` (an id or a name)."""

    def __init__(self, model: mujoco.MjModel, size: int = 64, camera: int | str = 0,
                 quality: str = "spec", flip: bool = False):
        if quality == "spec":
            for key, value in SPEC_QUALITY.items():
                setattr(model.vis.quality, key, value)
        elif quality != "default":
            raise ValueError(f"quality must be 'spec' or 'default', got {quality!r}")
        self.camera, self.flip = camera, flip
        self._renderer = mujoco.Renderer(model, size, size)
        if not _LIVE:  # after the GL backend's own exit hooks exist, so ours runs before them
            atexit.register(_close_all)
        _LIVE.add(self)

    def __call__(self, data: mujoco.MjData) -> np.ndarray:
        self._renderer.update_scene(data, camera=self.camera)
        image = self._renderer.render()  # (H, W, 3)
        if self.flip:
            image = image[::-1]
        return np.ascontiguousarray(image.transpose(2, 0, 1))  # (3, H, W)

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None


# GL contexts freed by the garbage collector at interpreter exit raise noisy EGL errors; close them first.
_LIVE: "weakref.WeakSet[Renderer]" = weakref.WeakSet()


def _close_all() -> None:
    for renderer in list(_LIVE):
        renderer.close()
