"""Episode files and manifests (method §3), compatible with the public NCRL layout.

An episode is one compressed ``.npz``: ``observation`` uint8 (T+1, 3, 64, 64) and ``action`` float32
(T+1, native action size, row 0 zeros) as in NCRL, plus our optional fields ``physics`` (T+1, P) float64
(raw MuJoCo state, for re-rendering and hidden-return analysis), ``task_state`` (Meta-World goal) and
``state`` (T+1, S) float32 state observations. A state-only dataset (our extension for CPU studies,
``data.obs = "state"``) stores ``state`` instead of ``observation``; its frames can be rendered later from
``physics``. No rewards are stored for GSA's use.

A manifest (CSV, one row per episode) indexes a dataset directory. Files are written atomically
(temporary file + ``os.replace``), so an interrupted writer leaves only complete episodes.
"""
from __future__ import annotations

import hashlib
import os
import re
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

MANIFEST_COLUMNS = ["id", "path", "benchmark", "embodiment", "task", "source", "sigma", "length",
                    "action_size", "sha256"]
NCRL_NAME = re.compile(r"^(?P<ts>\d{8}T\d{6})-(?P<uuid>[0-9a-f]+)-(?P<idx>\d+)-(?P<len>\d+)\.npz$")


class EpisodeError(ValueError):
    """A missing, corrupt, truncated or inconsistent episode file (the message names the file)."""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def atomic_write(path: Path, write) -> None:
    """Call ``write(file)`` on a temporary file next to ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def validate(episode: dict, name: str = "episode") -> int:
    """Check shapes/dtypes; returns T (agent steps). An episode has ``action`` and ``observation`` frames,
    ``state`` vectors, or both."""
    if "action" not in episode:
        raise EpisodeError(f"{name}: missing field 'action'")
    if "observation" not in episode and "state" not in episode:
        raise EpisodeError(f"{name}: missing field 'observation' (or 'state' in a state-only dataset)")
    obs, action = episode.get("observation", episode.get("state")), episode["action"]
    if "observation" in episode and (obs.dtype != np.uint8 or obs.ndim != 4 or obs.shape[1] != 3):
        raise EpisodeError(f"{name}: observation must be uint8 (T+1, 3, H, W), got {obs.dtype} {obs.shape}")
    if action.dtype != np.float32 or action.ndim != 2 or len(action) != len(obs):
        raise EpisodeError(f"{name}: action must be float32 (T+1, A) with T+1 = {len(obs)}, "
                           f"got {action.dtype} {action.shape}")
    if np.any(action[0] != 0):
        raise EpisodeError(f"{name}: action row 0 must be zeros (NCRL layout)")
    for key in ("physics", "state"):
        if key in episode and len(episode[key]) != len(obs):
            raise EpisodeError(f"{name}: {key} has {len(episode[key])} rows, expected {len(obs)}")
    return len(obs) - 1


def save_episode(path: str | Path, episode: dict) -> str:
    """Validate and write one episode atomically; returns its sha256."""
    path = Path(path)
    validate(episode, str(path))
    atomic_write(path, lambda f: np.savez_compressed(f, **episode))
    return sha256(path)


def load_episode(path: str | Path, expected_sha256: str | None = None) -> dict[str, np.ndarray]:
    """Read one episode; missing, corrupt or mismatching files raise :class:`EpisodeError` naming the file."""
    path = Path(path)
    if not path.exists():
        raise EpisodeError(f"episode file missing: {path}")
    if expected_sha256 is not None and sha256(path) != expected_sha256:
        raise EpisodeError(f"checksum mismatch for {path}: the file changed since the manifest was written")
    try:
        with np.load(path, allow_pickle=False) as data:
            episode = {key: data[key] for key in data.files}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as error:
        raise EpisodeError(f"corrupt or truncated episode file {path}: {error}") from None
    validate(episode, str(path))
    return episode


def write_manifest(root: str | Path, rows: list[dict] | pd.DataFrame) -> Path:
    """Write ``<root>/manifest.csv`` atomically (paths relative to ``root``)."""
    frame = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    target = Path(root) / "manifest.csv"
    atomic_write(target, lambda f: f.write(frame.to_csv(index=False).encode()))
    return target


def manifest_path(root: str | Path) -> Path:
    """``<root>/manifest.csv``, which must exist."""
    target = Path(root) / "manifest.csv"
    if not target.exists():
        raise FileNotFoundError(f"no manifest.csv in {root}: write one, or import an NCRL layout "
                                "with gsa.data.import_ncrl")
    return target


def read_manifest(root: str | Path, check_files: bool = True) -> pd.DataFrame:
    """The manifest of a dataset directory; with ``check_files``, every listed file must exist."""
    root = Path(root)
    target = manifest_path(root)
    frame = pd.read_csv(target, dtype={"id": str, "path": str, "task": str, "sha256": str})
    missing_columns = set(MANIFEST_COLUMNS) - set(frame.columns)
    if missing_columns:
        raise ValueError(f"{target} lacks columns {sorted(missing_columns)}")
    if check_files:
        missing = [p for p in frame["path"] if not (root / p).exists()]
        if missing:
            raise EpisodeError(f"{target} lists {len(missing)} missing file(s), e.g. {root / missing[0]}")
    return frame


def import_ncrl(root: str | Path) -> pd.DataFrame:
    """Build ``manifest.csv`` for episodes in the NCRL layout.

    ``dmcontrol/<domain>/*.npz`` (task unknown: reward-free exploration) and ``metaworld/<task>/*.npz``,
    names ``{ts}-{uuid}-{idx}-{len}.npz``. Source and σ are unknown in that layout and left empty.
    """
    root = Path(root)
    rows = []
    for benchmark, folder in (("dmc", "dmcontrol"), ("metaworld", "metaworld")):
        for path in sorted((root / folder).glob("*/*.npz")):
            match = NCRL_NAME.match(path.name)
            if match is None:
                raise EpisodeError(f"{path}: name does not follow {{ts}}-{{uuid}}-{{idx}}-{{len}}.npz")
            episode = load_episode(path)
            length = validate(episode, str(path))
            if length != int(match["len"]):
                raise EpisodeError(f"{path}: name says length {match['len']}, file holds {length} steps")
            group = path.parent.name
            rows.append(dict(id=path.stem, path=str(path.relative_to(root)), benchmark=benchmark,
                             embodiment=group if benchmark == "dmc" else "sawyer",
                             task=None if benchmark == "dmc" else f"mw-{group}", source=None, sigma=None,
                             length=length, action_size=episode["action"].shape[1], sha256=sha256(path)))
    if not rows:
        raise EpisodeError(f"no NCRL episodes under {root}/dmcontrol/*/ or {root}/metaworld/*/")
    write_manifest(root, rows)
    return read_manifest(root)
