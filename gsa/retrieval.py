"""Experience retrieval (method §5.2, paper Eq. 5): the offline trajectories nearest to the online task.

The database maps every offline trajectory to the embedding of its *first frame* by the pre-trained world
model's encoder. A task's reset observation is embedded the same way, and the k nearest trajectories (exact
L2, faiss ``IndexFlatL2``) *of the same embodiment* are retrieved:

    db = build_database(dataset.first_frames(), encode, ids=dataset.manifest["id"],
                        embodiments=dataset.manifest["embodiment"], tasks=dataset.manifest["task"],
                        manifest_hash=dataset.manifest_sha256, encoder_hash=fingerprint(wm.encoder))
    db.save("index.npz");  db = RetrievalDatabase.load("index.npz", expected_manifest_hash=..., expected_encoder_hash=...)
    ids = db.retrieve(lambda: encode(env.reset()[None]), "quadruped", k=500)

Each embodiment has its own sub-index, so one query already yields the k nearest distinct trajectories of
that embodiment (or all of them, if fewer): the re-query loop of method §5.2, needed when one global index is
filtered by embodiment afterwards, is unnecessary here, and nothing can loop forever.
"""
from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import faiss
import numpy as np
import torch
from tqdm.auto import tqdm

from gsa.data.episodes import atomic_write


@dataclass(eq=False)
class RetrievalDatabase:
    """First-frame features (N, D) float32 and, aligned with them, episode ids, embodiments and task labels
    ('' where unknown, e.g. reward-free DMC data), plus what they were computed from: the hash of the dataset
    manifest and the fingerprint of the encoder's weights (:func:`fingerprint`)."""
    features: np.ndarray
    ids: np.ndarray
    embodiments: np.ndarray
    tasks: np.ndarray
    manifest_hash: str
    encoder_hash: str = ""
    _indices: dict = field(default_factory=dict, init=False, repr=False)  # embodiment → (rows, faiss index)

    def save(self, path: str | Path) -> None:
        """Write an ``.npz`` atomically (temporary file + rename)."""
        arrays = dict(features=self.features, ids=self.ids, embodiments=self.embodiments, tasks=self.tasks,
                      manifest_hash=np.array(self.manifest_hash), encoder_hash=np.array(self.encoder_hash))
        atomic_write(Path(path), lambda f: np.savez(f, **arrays))

    @classmethod
    def load(cls, path: str | Path, expected_manifest_hash: str | None = None,
             expected_encoder_hash: str | None = None) -> RetrievalDatabase:
        """Read a saved database. A different ``expected_manifest_hash`` means the dataset changed since, a
        different ``expected_encoder_hash`` that the encoder did (e.g. pre-training went on): both raise a
        ``ValueError`` — the features are stale."""
        with np.load(path, allow_pickle=False) as data:
            db = cls(**{key: data[key] for key in ("features", "ids", "embodiments", "tasks")},
                     manifest_hash=str(data["manifest_hash"]),
                     encoder_hash=str(data["encoder_hash"]) if "encoder_hash" in data.files else "")
        for what, built, expected in (("dataset manifest", db.manifest_hash, expected_manifest_hash),
                                      ("encoder", db.encoder_hash, expected_encoder_hash)):
            if expected is not None and built != expected:
                raise ValueError(f"retrieval database {path} was built for {what} {built[:12] or '(unknown)'}…, "
                                 f"but it is now {expected[:12]}…: rebuild the database with build_database")
        return db

    def search(self, queries: np.ndarray, embodiment: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact L2: squared distances and database rows of the k nearest trajectories of ``embodiment``
        for each query (Q, D), both (Q, min(k, n)), nearest first."""
        if embodiment not in self._indices:
            rows = np.flatnonzero(self.embodiments == embodiment)
            if len(rows) == 0:
                raise ValueError(f"no trajectories of embodiment {embodiment!r}; the database has "
                                 f"{sorted(set(self.embodiments))}")
            index = faiss.IndexFlatL2(self.features.shape[1])
            index.add(self.features[rows])
            self._indices[embodiment] = rows, index
        rows, index = self._indices[embodiment]
        distances, nearest = index.search(np.ascontiguousarray(queries, np.float32), min(k, len(rows)))
        return distances, rows[nearest]

    def retrieve(self, query_fn: Callable[[], np.ndarray], embodiment: str, k: int) -> list[str]:
        """Ids of the k trajectories of ``embodiment`` nearest to the embedding(s) ``query_fn()`` of a fresh
        reset observation, (D,) or (Q, D); with several, ranked by the distance to the nearest query.
        Fewer than k trajectories of that embodiment: all of them, with a warning."""
        queries = np.atleast_2d(query_fn())  # (Q, D)
        distances, rows = self.search(queries, embodiment, k)  # (Q, k')
        order = np.argsort(distances, axis=None, kind="stable")
        unique, first = np.unique(rows.ravel()[order], return_index=True)
        chosen = unique[np.argsort(first)][:k]  # distinct rows, nearest first
        if len(chosen) < k:
            warnings.warn(f"only {len(chosen)} trajectories of {embodiment!r} in the database; retrieving all "
                          f"of them instead of k = {k}", stacklevel=2)
        return [str(i) for i in self.ids[chosen]]

    def precision_at_k(self, retrieved_ids: list[str], task: str) -> float:
        """Share of the retrieved trajectories whose manifest task label is ``task`` (method §6)."""
        labels = dict(zip(self.ids, self.tasks))
        return float(np.mean([labels[i] == task for i in retrieved_ids]))


def fingerprint(module: torch.nn.Module) -> str:
    """sha256 of a module's weights (names, shapes, dtypes and values): what the features were computed with."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}{tuple(t.shape)}{t.dtype}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def build_database(first_frames: Iterable[np.ndarray], encode: Callable[[np.ndarray], np.ndarray],
                   ids: Iterable[str], embodiments: Iterable[str], tasks: Iterable | None = None,
                   manifest_hash: str = "", progress: bool = True, encoder_hash: str = "") -> RetrievalDatabase:
    """Embed the first frame of every offline trajectory.

    ``first_frames`` yields uint8 chunks (n, 3, H, W) in the order of ``ids``/``embodiments``/``tasks``;
    ``encode`` maps a chunk to float32 features (n, D). Missing task labels (None/NaN) become ''."""
    ids = np.array([str(i) for i in ids])
    embodiments = np.array([str(e) for e in embodiments])
    labels = [None] * len(ids) if tasks is None else list(tasks)
    tasks = np.array([t if isinstance(t, str) else "" for t in labels])
    chunks = []
    with tqdm(total=len(ids), desc="retrieval database", unit="frame", disable=not progress) as bar:
        for frames in first_frames:
            chunks.append(np.asarray(encode(frames), np.float32).reshape(len(frames), -1))  # (n, D)
            bar.update(len(frames))
    features = np.concatenate(chunks)  # (N, D)
    if not len(features) == len(ids) == len(embodiments) == len(tasks):
        raise ValueError(f"{len(features)} first frames, {len(ids)} ids, {len(embodiments)} embodiments and "
                         f"{len(tasks)} task labels: they must be aligned")
    return RetrievalDatabase(features, ids, embodiments, tasks, manifest_hash, encoder_hash)
