"""The dataset card (``card.md`` next to the data): what is in a dataset and how good it is.

Counts per embodiment / task / source / σ come from the manifest. Hidden task returns and Meta-World
success come from ``analysis.csv`` and are shown for analysis only (they show the data's mixed quality);
no GSA learner reads them. State-space coverage of the DMC sources (``coverage``) is read from the episodes'
simulator states.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from gsa.data.episodes import atomic_write, read_manifest

NOTE = ("Meta-World episodes come from Meta-World's scripted experts (`metaworld.policies`) with Gaussian "
        "action noise, not from the TD-MPC2 agents of the paper, whose checkpoints cannot be fetched here. "
        "DMControl episodes come from reward-free exploration: snapshots of a Plan2Explore explorer (`p2e@<frames>`, "
        "early to late in training, so quality is mixed), uniform random and Ornstein-Uhlenbeck actions. Hidden returns "
        "are the embodiment's first task (DMC) or the episode's task (Meta-World); they are for analysis "
        "only and never used by GSA.")


def tables(root: str | Path) -> dict[str, pd.DataFrame]:
    """The card's tables: ``counts``, ``returns`` (hidden return by source/σ), ``success`` (Meta-World by σ)."""
    root = Path(root)
    manifest = read_manifest(root, check_files=False)
    frame = manifest.assign(sigma=manifest["sigma"].fillna(-1), task=manifest["task"].fillna("(reward-free)"))
    counts = (frame.groupby(["benchmark", "embodiment", "source", "sigma"])
              .agg(episodes=("id", "size"), transitions=("length", "sum")).reset_index())
    out = {"counts": counts.replace({"sigma": {-1: None}})}
    analysis_path = root / "analysis.csv"
    if analysis_path.exists():
        merged = frame.merge(pd.read_csv(analysis_path, dtype={"id": str}), on="id")
        out["returns"] = (merged.groupby(["embodiment", "hidden_task", "source", "sigma"])["hidden_return"]
                          .describe()[["count", "mean", "std", "min", "max"]].reset_index()
                          .replace({"sigma": {-1: None}}))
        mw = merged[merged["benchmark"] == "metaworld"]
        if len(mw):
            out["success"] = (mw.groupby("sigma")
                              .agg(episodes=("id", "size"), success_final=("success", "mean"),
                                   success_any=("success_any", "mean")).reset_index())
    coverage_table = coverage(root, manifest)
    if len(coverage_table):
        out["coverage"] = coverage_table
    return out


def coverage(root: str | Path, manifest: pd.DataFrame, bins: int = 10, components: int = 4) -> pd.DataFrame:
    """How much of each DMC embodiment's state space each exploration source visits.

    Per embodiment, the simulator states (``physics``: positions and velocities; ``state`` where an episode
    has none) of every source are standardised with the pooled mean and std, projected on the pooled data's
    first ``components`` principal axes (each scaled to unit std) and binned into ``bins`` cells per axis
    over ±3 std; a source's coverage is the number of distinct cells its states occupy, out of
    ``bins ** components``. Snapshots of one explorer (``p2e@<frames>``) count as one source, and every source
    is cut to the same number of states (the smallest source's), so counts compare like with like.
    Embodiments with a single source, or episodes without states, are left out.
    """
    root, rows = Path(root), []
    for embodiment, episodes in manifest[manifest["benchmark"] == "dmc"].groupby("embodiment", sort=True):
        group = episodes["source"].str.replace(r"@\d+$", "", regex=True)
        loaded = [_states(root / path) for path in episodes["path"]]
        key = "physics" if all("physics" in e for e in loaded) else "state"
        if group.nunique() < 2 or not all(key in e for e in loaded):
            continue
        sources = {g: np.concatenate([e[key] for e, h in zip(loaded, group) if h == g]) for g in sorted(set(group))}
        n = min(len(x) for x in sources.values())
        sources = {g: x[:n] for g, x in sources.items()}  # (n, S) each
        pooled = np.concatenate(list(sources.values()))
        mean, std = pooled.mean(0), pooled.std(0) + 1e-8
        standard = (pooled - mean) / std
        axes = np.linalg.svd(standard, full_matrices=False)[2][:components]  # (C, S)
        scale = (standard @ axes.T).std(0) + 1e-8
        for source, x in sources.items():
            z = ((x - mean) / std) @ axes.T / scale  # (n, C), unit std over the pooled data
            cells = np.clip(np.floor((z + 3) / 6 * bins), 0, bins - 1).astype(int)
            rows.append({"embodiment": embodiment, "source": source, "states": n,
                         "cells": len(np.unique(cells, axis=0)), "of": bins ** len(axes)})
    return pd.DataFrame(rows, columns=["embodiment", "source", "states", "cells", "of"])


def _states(path: Path) -> dict[str, np.ndarray]:
    """An episode's ``physics`` and ``state`` arrays, whichever it has, without reading its frames."""
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in ("physics", "state") if key in data.files}


def write_card(root: str | Path, parts: dict[str, pd.DataFrame] | None = None) -> Path:
    """Write ``<root>/card.md`` from ``parts`` (default: ``tables(root)``, computed here) and return its path."""
    root = Path(root)
    parts = tables(root) if parts is None else parts
    manifest = read_manifest(root, check_files=False)
    lines = [f"# Dataset card: {root.name}", "",
             f"{len(manifest)} episodes, {int(manifest['length'].sum())} transitions, "
             f"{manifest['embodiment'].nunique()} embodiment(s), {manifest['task'].nunique()} Meta-World task(s).",
             "", NOTE, ""]
    titles = {"counts": "Episodes per embodiment / source / σ",
              "success": ("Meta-World success rate by noise σ (`success_final`: the final step's flag, the score "
                          "of this project's evaluations; `success_any`: at any step, as Meta-World's own evaluation "
                          "counts it — some scripted experts succeed, then drift off)"),
              "returns": "Hidden task return by source / σ (analysis only)",
              "coverage": ("State-space coverage of the DMC sources (cells of a 10-bin grid over the first 4 "
                           "principal axes of the embodiment's simulator states, ±3 std, visited by an equal "
                           "number of states per source; Plan2Explore snapshots pooled)")}
    for key, title in titles.items():
        if key in parts:
            lines += [f"## {title}", "", markdown(parts[key]), ""]
    target = root / "card.md"
    atomic_write(target, lambda f: f.write("\n".join(lines).encode()))
    return target


def markdown(table: pd.DataFrame) -> str:
    """A pipe table (numbers to 3 significant digits, empty cells for missing values)."""
    def cell(value) -> str:
        if value is None or (isinstance(value, float) and value != value):
            return ""
        return f"{value:.3g}" if isinstance(value, float) else str(value)

    header = "| " + " | ".join(map(str, table.columns)) + " |"
    rule = "|" + "---|" * len(table.columns)
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *rows])
