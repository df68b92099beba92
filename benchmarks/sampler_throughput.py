"""Sequence-batch throughput of the offline store (issue 3): (16 × 64) batches/s and resident memory.

Writes synthetic datasets in the real format (``gsa.data.synthetic``; default 500 and 2,000 episodes of
100 steps), then samples batches from each with the packed store, and — as the reference in the same
run — from the ``.npz`` files directly (decompressing one episode per sequence). Prints batches/s, the
speed-up of the packed store, and resident memory (VmRSS) after sampling from each dataset size.

    python benchmarks/sampler_throughput.py [--episodes 500 2000] [--batches 200] [--root /tmp/gsa-bench]
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

import gsa  # noqa: F401
from gsa.data.episodes import load_episode
from gsa.data.sampler import MixedSampler
from gsa.data.store import OfflineDataset
from gsa.data.synthetic import write_synthetic

B, T, A = 16, 64, 12


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def packed_rate(ds: OfflineDataset, batches: int) -> float:
    sampler = MixedSampler([(ds, 1.0)], B, T, A, seed=0)
    out = sampler.sample()  # reuse one buffer, as the training loader does
    start = time.perf_counter()
    for _ in range(batches):
        sampler.sample(out)
    return batches / (time.perf_counter() - start)


def npz_rate(ds: OfflineDataset, batches: int) -> float:
    """Reference: read each sequence by loading its episode file."""
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for _ in range(batches):
        for e in rng.integers(0, len(ds), B):
            episode = load_episode(ds.root / ds.manifest.path[e])
            t = rng.integers(0, len(episode["action"]) - T + 1)
            episode["observation"][t:t + T].copy()
    return batches / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, nargs="+", default=[500, 2000])
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--root", default=None, help="where to write the datasets (default: a temp dir)")
    args = parser.parse_args()
    root = Path(args.root or tempfile.mkdtemp(prefix="gsa-bench-"))
    try:
        for n in args.episodes:
            path = root / f"synthetic-{n}"
            if not (path / "manifest.csv").exists():
                write_synthetic(path, n, length=100, progress=True)
            ds = OfflineDataset(path)
            size_gb = ds.index["n_frames"] * np.prod(ds.frame_shape) / 1e9
            packed_rate(ds, 20)  # warm the page cache once
            packed = packed_rate(ds, args.batches)
            reference = npz_rate(ds, max(5, args.batches // 20))
            print(f"{n:6d} episodes ({size_gb:.2f} GB of frames): packed {packed:7.1f} batches/s "
                  f"({packed * B:7.0f} sequences/s), npz files {reference:5.1f} batches/s -> "
                  f"{packed / reference:5.1f}x; RSS {rss_mb():6.0f} MB", flush=True)
            ds.close()
    finally:
        if args.root is None:
            shutil.rmtree(root)


if __name__ == "__main__":
    main()
