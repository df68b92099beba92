"""One checkpoint format for every run: a ``torch.save`` dict written atomically.

Contents: ``format``, ``kind`` ("pretrain" | "finetune"), ``step``, ``config`` (``gsa.config.to_dict``),
``model`` / ``optimizer`` state dicts (and whatever else the loop needs to resume), ``rng`` (torch, numpy
states) — enough for an interrupted run to continue exactly where it stopped.
"""
from __future__ import annotations

import functools
import io
import random
import subprocess
from pathlib import Path

import numpy as np
import torch

from gsa.data.episodes import atomic_write

FORMAT = 1


def save(path: str | Path, **state) -> Path:
    """Write ``state`` (+ format and RNG states) to ``path`` atomically: a kill leaves the old file intact."""
    state = {"format": FORMAT, "rng": rng_state(), **state}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write(Path(path), lambda f: f.write(buffer.getbuffer()))
    return Path(path)


def require(path: str | Path, kind: str | None = None) -> Path:
    """``path`` if it exists; else a clear error (for a world model: how to make one)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}" + (" — run `gsa pretrain` first" if kind == "pretrain" else ""))
    return path


def load(path: str | Path, kind: str | None = None, map_location="cpu") -> dict:
    """Read a checkpoint; a missing file, another format or the wrong kind raise a clear error."""
    path = require(path, kind)
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as error:  # torch raises several types for truncated files
        raise ValueError(f"checkpoint {path} is corrupt or truncated: {error}") from None
    if state.get("format") != FORMAT:
        raise ValueError(f"checkpoint {path} has format {state.get('format')}, this code reads {FORMAT}")
    if kind is not None and state.get("kind") != kind:
        raise ValueError(f"checkpoint {path} is a {state.get('kind')!r} checkpoint, expected {kind!r}")
    return state


PACKAGE = Path(__file__).resolve().parents[1]


@functools.cache
def code_version(package: Path = PACKAGE) -> str:
    """The code this process runs: the commit of the checkout ``package`` (``gsa/``) lives in, ``"<sha>+dirty"``
    if its tracked files have uncommitted changes, or ``"gsa <version>"`` outside a git checkout. Taken once per
    process (at its first call), so a run resumed after a ``git pull`` records the new code as a second version."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(package), *args], capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()
    try:
        sha = git("rev-parse", "--short=10", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", ".")
    except (OSError, subprocess.SubprocessError):
        from gsa import __version__
        return f"gsa {__version__}"
    return sha + ("+dirty" if dirty else "")


# Config fields a resumed run may change: a longer run, another logging / checkpoint cadence or compile mode (the
# dataset's settings are not compared at all: the dataset is compared by content, finetune.resume_ignores).
RESUMABLE = {"name", "pretrain.steps", "pretrain.log_every", "pretrain.checkpoint_every",
             "pretrain.compile", "pretrain.bf16", "pretrain.loader_workers", "finetune.frames",
             "finetune.checkpoint_every", "finetune.compile"}


def check_config(saved: dict, current: dict, path: str | Path, ignore: set[str] = frozenset()) -> None:
    """Resuming needs the settings the checkpoint was made with (except :data:`RESUMABLE`): a mismatch
    raises a ``ValueError`` that names every differing field with both values. Fields the checkpoint does
    not have were added to the config after it was made, with defaults that keep the old behaviour. Sections
    in ``ignore`` (e.g. another agent's hyper-parameters) are not compared."""
    def flat(d: dict, prefix: str = "") -> dict:
        out = {}
        for key, value in d.items():
            if isinstance(value, dict):
                out.update(flat(value, f"{prefix}{key}."))
            else:
                out[f"{prefix}{key}"] = tuple(value) if isinstance(value, list) else value
        return out

    a, b = flat(saved), flat(current)
    differ = sorted(k for k in a if k not in RESUMABLE and k.split(".")[0] not in ignore and a[k] != b.get(k))
    if differ:
        fields = "; ".join(f"{k}: {a.get(k)!r} in the checkpoint, {b.get(k)!r} now" for k in differ)
        raise ValueError(f"{path} was made with other settings ({fields}): resume with the same settings, "
                         "or write to a new output directory")


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
