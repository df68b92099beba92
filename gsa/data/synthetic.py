"""Synthetic datasets in the real on-disk format, for tests and the sampler benchmark (no rendering).

Every frame is stamped with where it came from — pixel (0, 0) holds the episode number (channels 0–1,
base 256) and the frame index (channel 2) — so a test can check that a sampled sequence is one
contiguous piece of one episode.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from gsa.data.episodes import save_episode, write_manifest
from gsa.envs.registry import EMBODIMENTS


def stamp(episode: int, length: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """(length, 3, size, size) uint8 frames: a smooth random image per episode, stamped per frame."""
    base = rng.integers(0, 256, (3, 1, size), dtype=np.uint8).repeat(size, axis=1)  # (3, H, W) stripes
    frames = np.repeat(base[None], length, axis=0)
    frames[:, 0, 0, 0] = episode % 256
    frames[:, 1, 0, 0] = episode // 256
    frames[:, 2, 0, 0] = np.arange(length) % 256
    return frames


def read_stamp(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(episode, frame index) of each frame of (..., 3, H, W)."""
    pixel = frames[..., :, 0, 0].astype(np.int64)
    return pixel[..., 0] + 256 * pixel[..., 1], pixel[..., 2]


def write_synthetic(root: str | Path, episodes: int, length: int = 100,
                    embodiments: tuple[str, ...] = ("walker", "sawyer"), size: int = 64, state: bool = False,
                    seed: int = 0, progress: bool = False) -> Path:
    """Write ``episodes`` episodes of ``length`` steps (T+1 frames), embodiments in turn; returns ``root``."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    rows = []
    for i in tqdm(range(episodes), desc="synthetic episodes", disable=not progress):
        embodiment = EMBODIMENTS[embodiments[i % len(embodiments)]]
        action = rng.uniform(-1, 1, (length + 1, embodiment.action_size)).astype(np.float32)
        action[0] = 0.0
        episode = {"observation": stamp(i, length + 1, size, rng), "action": action}
        if state:
            episode["state"] = rng.standard_normal((length + 1, embodiment.state_size)).astype(np.float32)
        benchmark = embodiment.benchmark
        folder = f"dmcontrol/{embodiment.name}" if benchmark == "dmc" else "metaworld/reach"
        path = Path(folder) / f"20260101T000000-{i:08x}-{i}-{length}.npz"
        digest = save_episode(root / path, episode)
        rows.append(dict(id=path.stem, path=str(path), benchmark=benchmark, embodiment=embodiment.name,
                         task="mw-reach" if benchmark == "metaworld" else None, source="synthetic", sigma=None,
                         length=length, action_size=embodiment.action_size, sha256=digest))
    write_manifest(root, rows)
    return root
