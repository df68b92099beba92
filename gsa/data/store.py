"""The offline store: a dataset directory's episodes packed into flat files, read with ``pread``.

Why packed files (measured in ``benchmarks/sampler_throughput.py``): the paper's dataset is ~60k episodes
/ 10M transitions / ~123 GB of 64×64 frames (method §3). Decompressing a ``.npz`` per sampled sequence costs
~10–20 ms, so a (16 × 64) batch would take a third of a second per core. Instead every frame is written once,
uncompressed, into ``packed/frames.u8`` (N, 3, H, W), and the padded actions (and state vectors) into
``packed/actions.f32`` / ``packed/state.f32``; a sequence is then one contiguous ``os.preadv`` straight into
the batch buffer. Nothing is memory-mapped or cached by us: resident memory is the batch buffers, whatever
the dataset size (the OS page cache does the caching). The ``.npz`` episodes stay the source of truth
(NCRL-compatible); the packed files are a derived cache (same size as the raw frames) that is rebuilt or
extended when ``manifest.csv`` changes, and packing verifies every file's checksum.

Packing is resumable: ``packed/index.json`` is rewritten atomically after each chunk of episodes and names
how many frames are valid; a pack interrupted mid-chunk is truncated back to the index and continued. One
process packs at a time (``packed/lock``), and the index records the hash of the very manifest it packed, so a
collection rewriting ``manifest.csv`` meanwhile (it does so every few episodes) leads to another pack, never
to an index that claims episodes it lacks. Readers keep the files they opened: a re-pack writes new ones.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from gsa.data.episodes import EpisodeError, atomic_write, load_episode, manifest_path, read_manifest
from gsa.envs.registry import EMBODIMENTS

EMBODIMENT_IDS = {name: i for i, name in enumerate(EMBODIMENTS)}  # embodiment → integer id in batches
PACK_VERSION = 1


def manifest_hash(root: str | Path) -> str:
    """sha256 of ``manifest.csv`` — identifies a dataset's content (episodes and their checksums)."""
    return hashlib.sha256(manifest_path(root).read_bytes()).hexdigest()


def read_snapshot(root: Path) -> tuple[pd.DataFrame, str]:
    """The manifest and the sha256 of the very bytes it was read from (it is replaced atomically, so a hash
    equal before and after the read is the read one's)."""
    while True:
        digest = manifest_hash(root)
        manifest = read_manifest(root)
        if manifest_hash(root) == digest:
            return manifest, digest


@contextmanager
def _locked(packed: Path):
    try:
        packed.mkdir(exist_ok=True)
        f = open(packed / "lock", "a")
    except OSError:  # a read-only copy of a packed dataset (nobody packs it), or no dataset (said when read)
        yield
        return
    with f:
        fcntl.flock(f, fcntl.LOCK_EX)  # released when the file closes, or when the process dies
        yield


def pack(root: str | Path, chunk: int = 64, progress: bool = True) -> dict:
    """Pack (or extend the packing of) the dataset at ``root``; returns the pack index."""
    with _locked(Path(root) / "packed"):
        return _current(Path(root), chunk, progress)[0]


def _current(root: Path, chunk: int = 64, progress: bool = True) -> tuple[dict, pd.DataFrame]:
    """The pack index, packed first if the manifest changed, and the manifest it packs (under the lock)."""
    manifest, digest = read_snapshot(root)
    index = _read_index(root / "packed")
    if index is None or index.get("manifest_sha256") != digest:
        index = _pack(root, root / "packed", manifest, digest, index, chunk, progress)
    return index, manifest


def _pack(root: Path, packed: Path, manifest: pd.DataFrame, digest: str, index: dict | None, chunk: int,
          progress: bool) -> dict:
    has_state = _all_have_state(root, manifest)
    action_size = int(manifest["action_size"].max())  # padded sizes: the largest in the dataset
    state_size = max(EMBODIMENTS[e].state_size for e in manifest["embodiment"]) if has_state else 0
    if (index is None or index["episodes"] != list(manifest["id"][: len(index["episodes"])])
            or (index["action_size"], index["state_size"]) != (action_size, state_size)):
        index = dict(version=PACK_VERSION, action_size=action_size, has_state=has_state, state_size=state_size,
                     frame_shape=None, n_frames=0, episodes=[], offsets=[], lengths=[])
        for name in ("frames.u8", "actions.f32", "state.f32"):
            (packed / name).unlink(missing_ok=True)
    todo = manifest.iloc[len(index["episodes"]):]
    files = {name: open(packed / name, "ab") for name in ("frames.u8", "actions.f32", "state.f32")}
    try:
        for name, f in files.items():  # drop anything written after the last index (interrupted chunk)
            f.truncate(index["n_frames"] * _row_bytes(index, name))
        bar = tqdm(total=len(todo), desc="packing episodes", disable=not progress or len(todo) == 0)
        for i, row in enumerate(todo.itertuples(index=False)):
            _append(index, files, load_episode(root / row.path, row.sha256), row.id)
            bar.update()
            if (i + 1) % chunk == 0 or i + 1 == len(todo):
                _commit(packed, index, files)
        bar.close()
    finally:
        for f in files.values():
            f.close()
    index["manifest_sha256"] = digest
    _write_index(packed, index)
    return index


def _all_have_state(root: Path, manifest: pd.DataFrame) -> bool:
    """Whether episodes carry ``state`` vectors (checked on the first file; all must agree at pack time)."""
    if manifest.empty:
        raise EpisodeError(f"{root}/manifest.csv lists no episodes")
    with np.load(root / manifest["path"].iloc[0]) as data:
        return "state" in data.files


def _row_bytes(index: dict, name: str) -> int:
    if name == "frames.u8":
        return int(np.prod(index["frame_shape"])) if index["frame_shape"] else 0
    return 4 * (index["action_size"] if name == "actions.f32" else index["state_size"])


def _append(index: dict, files: dict, episode: dict, episode_id: str) -> None:
    obs = episode.get("observation")  # (T+1, 3, H, W) uint8, or None in a state-only dataset
    shape = [] if obs is None else list(obs.shape[1:])
    if index["frame_shape"] is None:
        index["frame_shape"] = shape
    if shape != index["frame_shape"]:
        raise EpisodeError(f"episode {episode_id}: frames {shape or 'none'}, dataset has {index['frame_shape'] or 'none'}")
    if index["has_state"] != ("state" in episode):
        raise EpisodeError(f"episode {episode_id}: every episode must have state vectors, or none")
    if obs is not None:
        files["frames.u8"].write(np.ascontiguousarray(obs).tobytes())
    files["actions.f32"].write(_pad(episode["action"], index["action_size"]).tobytes())
    length = len(episode["action"])
    if index["has_state"]:
        files["state.f32"].write(_pad(episode["state"].astype(np.float32), index["state_size"]).tobytes())
    index["episodes"].append(episode_id)
    index["offsets"].append(index["n_frames"])
    index["lengths"].append(length)
    index["n_frames"] += length


def _pad(x: np.ndarray, size: int) -> np.ndarray:
    out = np.zeros((len(x), size), np.float32)
    out[:, : x.shape[1]] = x
    return out


def _commit(packed: Path, index: dict, files: dict) -> None:
    for f in files.values():
        f.flush()
        os.fsync(f.fileno())
    _write_index(packed, index)


def _read_index(packed: Path) -> dict | None:
    path = packed / "index.json"
    if not path.exists():
        return None
    index = json.loads(path.read_text())
    return index if index.get("version") == PACK_VERSION else None


def _write_index(packed: Path, index: dict) -> None:
    atomic_write(packed / "index.json", lambda f: f.write(json.dumps(index).encode()))


class OfflineDataset:
    """Episodes of a dataset directory, read sequence by sequence from the packed files.

    ``OfflineDataset(root)`` packs on first use (and whenever the manifest changed). ``subset(ids)`` gives
    a view on some episodes (e.g. the retrieved ones) sharing the same files. Rows of ``manifest`` and
    the arrays ``lengths`` (frames per episode, T+1), ``embodiment`` and ``action_size`` are aligned.
    """

    def __init__(self, root: str | Path, progress: bool = True):
        self.root = Path(root)
        packed = self.root / "packed"
        with _locked(packed):  # the files opened are the ones the index describes
            index, manifest = _current(self.root, progress=progress)
            self._fds = {name: os.open(packed / name, os.O_RDONLY) for name in ("frames.u8", "actions.f32", "state.f32")}
        self.index = index
        self.manifest_sha256 = index["manifest_sha256"]
        self.frame_shape = tuple(index["frame_shape"])
        self.action_size = index["action_size"]
        self.state_size = index["state_size"]
        self._full_manifest = manifest.reset_index(drop=True)
        self._select(np.arange(len(manifest)))

    def _select(self, rows: np.ndarray) -> None:
        """Restrict to ``rows`` of the full manifest/pack index."""
        self.rows = rows
        self.manifest = self._full_manifest.iloc[rows].reset_index(drop=True)
        self.offsets = np.asarray(self.index["offsets"], np.int64)[rows]
        self.lengths = np.asarray(self.index["lengths"], np.int64)[rows]
        self.embodiment = np.array([EMBODIMENT_IDS[e] for e in self.manifest["embodiment"]], np.int64)
        self.native_action = self.manifest["action_size"].to_numpy(np.int64)

    def embodiment_of(self, episode: int) -> int:
        return int(self.embodiment[episode])

    def native_action_of(self, episode: int) -> int:
        return int(self.native_action[episode])

    def __len__(self) -> int:
        return len(self.manifest)

    def subset(self, ids) -> OfflineDataset:
        """A view on the episodes ``ids`` (manifest ``id`` values), in that order; it shares the open files."""
        position = {episode_id: i for i, episode_id in enumerate(self.manifest["id"])}
        missing = [i for i in ids if i not in position]
        if missing:
            raise KeyError(f"{len(missing)} episode id(s) not in {self.root}, e.g. {missing[0]!r}")
        view = object.__new__(OfflineDataset)
        view.__dict__.update(self.__dict__)
        view._select(self.rows[[position[i] for i in ids]])
        return view

    def read(self, episode: int, start: int, out: dict, row: int) -> None:
        """Copy frames/actions/state ``[start, start + T)`` of ``episode`` into ``out[...][row]`` (T = out's).

        Offline rows carry no reward (method §1): ``out["reward"]`` is zeroed if present."""
        T = out["action"].shape[1]
        first = int(self.offsets[episode]) + start
        if "observation" in out:
            if not self.frame_shape:
                raise ValueError(f"{self.root} is a state-only dataset (no frames): use world_model.obs='state'")
            frames = out["observation"][row]  # (T, 3, H, W) uint8, contiguous
            os.preadv(self._fds["frames.u8"], [memoryview(frames).cast("B")], first * frames[0].nbytes)
        if "reward" in out:
            out["reward"][row] = 0.0
        actions = np.empty((T, self.action_size), np.float32)
        os.preadv(self._fds["actions.f32"], [memoryview(actions).cast("B")], first * actions[0].nbytes)
        out["action"][row, :, : self.action_size] = actions
        out["action"][row, :, self.action_size:] = 0.0
        if "state" in out:
            state = np.empty((T, self.state_size), np.float32)
            os.preadv(self._fds["state.f32"], [memoryview(state).cast("B")], first * state[0].nbytes)
            out["state"][row, :, : self.state_size] = state
            out["state"][row, :, self.state_size:] = 0.0

    def episode(self, episode: int) -> dict[str, np.ndarray]:
        """All frames/actions of one episode (for figures and BC), from the packed files."""
        T = int(self.lengths[episode])
        out = {"action": np.empty((1, T, self.action_size), np.float32)}
        if self.frame_shape:
            out["observation"] = np.empty((1, T, *self.frame_shape), np.uint8)
        if self.state_size:
            out["state"] = np.empty((1, T, self.state_size), np.float32)
        self.read(episode, 0, out, 0)
        return {k: v[0] for k, v in out.items()}

    def first_frames(self, batch: int = 256, key: str = "observation"):
        """Yield the first frame of every episode in (n, 3, H, W) uint8 chunks — or with ``key="state"``
        the first padded state vectors (n, S) — the retrieval database's input."""
        if key == "observation" and not self.frame_shape:
            raise ValueError(f"{self.root} is a state-only dataset (no frames): use world_model.obs='state'")
        for lo in range(0, len(self), batch):
            rows = range(lo, min(lo + batch, len(self)))
            if key == "observation":
                out = np.empty((len(rows), *self.frame_shape), np.uint8)
            else:
                out = np.empty((len(rows), self.state_size), np.float32)
            name = "frames.u8" if key == "observation" else "state.f32"
            for i, e in enumerate(rows):
                os.preadv(self._fds[name], [memoryview(out[i]).cast("B")], int(self.offsets[e]) * out[i].nbytes)
            yield out

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds = {}
