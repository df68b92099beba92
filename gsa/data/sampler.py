"""Sequence batches (B, T) mixed from several sources: offline dataset, retrieved subset, online replay.

Sequences never cross an episode boundary: a window is drawn uniformly among all windows of T frames that
fit inside one episode (so every transition is equally likely), and ``is_first[t]`` is true only where the
window starts at the episode's first frame. Episodes shorter than T frames are never sampled. The world
model starts each sequence from its initial state, so no hidden state is carried between batches.

A batch is a dict of numpy arrays:
    observation  uint8   (B, T, 3, H, W)    frames (pixel sources)
    state        float32 (B, T, S)          padded state vectors (state sources)
    action       float32 (B, T, A)          action[t] led to frame t (0 at episode starts), zero-padded to A
    action_mask  float32 (B, A)             1 on the embodiment's real action dims
    is_first     bool    (B, T)
    reward       float32 (B, T)             online replay only (0 for offline rows)
    source       int64   (B,)               index of the row's source in the sampler
    embodiment   int64   (B,)               gsa.data.store.EMBODIMENT_IDS
"""
from __future__ import annotations

import numpy as np

from gsa.data.store import EMBODIMENT_IDS
from gsa.envs.registry import EMBODIMENTS
from gsa.envs.wrappers import mask


class Replay:
    """Online experience of one task, in memory, growing step by step (the current episode is sampled too)."""

    def __init__(self, embodiment: str, obs_shape: tuple, obs_key: str = "observation"):
        self.embodiment_id = EMBODIMENT_IDS[embodiment]
        self.native_action = EMBODIMENTS[embodiment].action_size
        self.obs_key, self.obs_shape = obs_key, tuple(obs_shape)
        self.episodes: list[dict[str, list]] = []

    def add(self, obs: np.ndarray, action: np.ndarray, reward: float, is_first: bool) -> None:
        """One frame: its observation, the native action that led to it (zeros at reset), its reward."""
        if is_first or not self.episodes:
            self.episodes.append({self.obs_key: [], "action": [], "reward": []})
        episode = self.episodes[-1]
        episode[self.obs_key].append(np.asarray(obs))
        episode["action"].append(np.asarray(action, np.float32)[: self.native_action])
        episode["reward"].append(np.float32(reward))

    @property
    def lengths(self) -> np.ndarray:
        return np.array([len(e["action"]) for e in self.episodes], np.int64)

    def embodiment_of(self, episode: int) -> int:
        return self.embodiment_id

    def native_action_of(self, episode: int) -> int:
        return self.native_action

    def read(self, episode: int, start: int, out: dict, row: int) -> None:
        T = out["action"].shape[1]
        e = self.episodes[episode]
        if self.obs_key == "state":
            out["state"][row] = 0.0
        out[self.obs_key][row, :, : self.obs_shape[-1]] = np.stack(e[self.obs_key][start: start + T])
        out["action"][row] = 0.0
        out["action"][row, :, : self.native_action] = np.stack(e["action"][start: start + T])
        out["reward"][row] = e["reward"][start: start + T]


class MixedSampler:
    """Batches of ``batch_size`` sequences of ``seq_len`` frames; ``sources`` = [(source, share), ...].

    Each batch takes round(share × B) rows from each source (shares sum to 1; the remainder left by
    rounding goes to a source drawn by share, so the expected mix is exact) — e.g. the paper's offline
    share 0.25 of 16 rows is exactly 4 retrieved + 12 online rows (method §5.3).

    ``part = (i, n)``: this process reads only rows i·B/n … (i+1)·B/n − 1 of each batch; every process draws
    the same windows, so n processes together read exactly the batch one process would (data-parallel
    pre-training).
    """

    def __init__(self, sources: list, batch_size: int, seq_len: int, action_size: int, seed: int = 0,
                 obs_key: str = "observation", obs_shape: tuple = (3, 64, 64), part: tuple[int, int] = (0, 1)):
        shares = np.array([share for _, share in sources], np.float64)
        if len(sources) == 0 or np.any(shares < 0) or not np.isclose(shares.sum(), 1.0):
            raise ValueError(f"source shares must be ≥ 0 and sum to 1, got {shares.tolist()}")
        self.sources = [source for source, _ in sources]
        self.shares = shares
        self.batch_size, self.seq_len, self.action_size = batch_size, seq_len, action_size
        self.obs_key, self.obs_shape = obs_key, tuple(obs_shape)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        index, parts = part
        if batch_size % parts or not 0 <= index < parts:
            raise ValueError(f"part {part}: the batch of {batch_size} rows must split evenly into {parts} parts")
        self.rows = range(index * batch_size // parts, (index + 1) * batch_size // parts)  # rows this process reads

    def counts(self, rng: np.random.Generator | None = None) -> np.ndarray:
        """Rows per source for the next batch."""
        rng = self.rng if rng is None else rng
        exact = self.shares * self.batch_size
        counts = np.floor(exact).astype(np.int64)
        for _ in range(self.batch_size - counts.sum()):
            remainder = exact - counts
            counts[rng.choice(len(counts), p=remainder / remainder.sum())] += 1
        return counts

    def _empty(self) -> dict[str, np.ndarray]:
        B, T = len(self.rows), self.seq_len
        return {self.obs_key: np.zeros((B, T, *self.obs_shape), np.uint8 if self.obs_key == "observation" else np.float32),
                "action": np.zeros((B, T, self.action_size), np.float32),
                "action_mask": np.zeros((B, self.action_size), np.float32),
                "is_first": np.zeros((B, T), bool),
                "reward": np.zeros((B, T), np.float32),
                "source": np.zeros(B, np.int64),
                "embodiment": np.zeros(B, np.int64)}

    def sample(self, out: dict | None = None, step: int | None = None) -> dict[str, np.ndarray]:
        """One batch (written into ``out`` if given, e.g. a pinned buffer). With ``step``, the batch is a
        function of (seed, step) alone — what a resumed or prefetching training loop needs."""
        rng = self.rng if step is None else np.random.default_rng([self.seed, step])
        out = self._empty() if out is None else out
        windows = [(index, episode, start) for index, count in enumerate(self.counts(rng))
                   for episode, start in self._windows(self.sources[index], count, index, rng)]
        for row, (index, episode, start) in enumerate(windows[self.rows.start:self.rows.stop]):
            self.sources[index].read(episode, start, out, row)
            out["is_first"][row] = False
            out["is_first"][row, 0] = start == 0
            out["source"][row] = index
            out["embodiment"][row] = self.sources[index].embodiment_of(episode)
            out["action_mask"][row] = mask(self.sources[index].native_action_of(episode), self.action_size)
        return out

    def _windows(self, source, count: int, index: int, rng: np.random.Generator):
        """``count`` (episode, start) pairs, uniform over all windows of ``seq_len`` frames."""
        if count == 0:
            return []
        starts = np.maximum(source.lengths - self.seq_len + 1, 0)  # windows per episode
        total = starts.sum()
        if total == 0:
            raise ValueError(f"source {index} ({type(source).__name__}) has no episode of ≥ {self.seq_len} frames")
        draws = rng.integers(0, total, size=count)
        episodes = np.searchsorted(np.cumsum(starts), draws, side="right")
        first = np.concatenate([[0], np.cumsum(starts)[:-1]])
        return list(zip(episodes.tolist(), (draws - first[episodes]).tolist()))

