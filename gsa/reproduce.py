"""Execute the notebooks with papermill — the way every table and figure is regenerated.

``notebooks/*.py`` (jupytext percent format) are the sources; the ``.ipynb`` beside them are built from
them, and executed copies go to ``results/notebooks/<preset>/``.
"""
from __future__ import annotations

from pathlib import Path

from gsa.paths import project_root, results_dir

# The main job, in order: tasks → dataset → pre-training → fine-tuning → ablations → theory → the paper's figures.
NOTEBOOKS = {preset: ["00_environments", "01_dataset", "02_pretrain", "03_finetune", "04_ablations", "05_theory",
                      "06_paper"]
             for preset in ("smoke", "cpu", "paper")}
# After the smoke pipeline, the cpu study's figures and tables from its committed results (no training):
# what a newcomer's `make reproduce` shows of the real result.
FROM_RESULTS = {"smoke": [("03_finetune", "cpu", {"run": False}), ("04_ablations", "cpu", {}), ("06_paper", "cpu", {})]}


def build_notebook(name: str) -> Path:
    """Write ``notebooks/<name>.ipynb`` from ``notebooks/<name>.py`` if it is missing or its cells differ
    (compared by content, not file times, so a fresh clone does not rewrite it with new cell ids)."""
    import jupytext

    source = project_root() / "notebooks" / f"{name}.py"
    if not source.exists():
        raise FileNotFoundError(f"no notebook source {source}")
    target = source.with_suffix(".ipynb")
    notebook = jupytext.read(source)
    if not target.exists() or cells(jupytext.read(target)) != cells(notebook):
        jupytext.write(notebook, target)
    return target


def cells(notebook) -> list[tuple[str, str]]:
    """What a notebook says: (cell type, source) of each cell."""
    return [(c.cell_type, c.source) for c in notebook.cells]


def run_notebook(name: str, preset: str = "smoke", **parameters) -> Path:
    """Execute one notebook under papermill with ``preset`` and extra parameters; returns the output path."""
    import papermill

    notebook = build_notebook(name)
    out_dir = results_dir() / "notebooks" / preset
    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / notebook.name
    papermill.execute_notebook(str(notebook), str(output), parameters={"preset": preset, **parameters},
                               kernel_name="python3", cwd=str(notebook.parent), progress_bar=False)
    return output


def reproduce(preset: str = "smoke", names: list[str] | None = None) -> list[Path]:
    """Execute the preset's notebooks in order (or ``names``); with all of them, then the notebooks of
    ``FROM_RESULTS`` (other presets' figures from committed results, nothing trained)."""
    if preset not in NOTEBOOKS:
        raise ValueError(f"unknown preset {preset!r}; choose from {sorted(NOTEBOOKS)}")
    jobs = [(name, preset, {}) for name in names or NOTEBOOKS[preset]]
    jobs += FROM_RESULTS.get(preset, []) if not names else []
    outputs = []
    for name, job_preset, parameters in jobs:
        print(f"[gsa reproduce] {name} (preset {job_preset}{', from committed results' if job_preset != preset else ''}) ...", flush=True)
        outputs.append(run_notebook(name, job_preset, **parameters))
        print(f"[gsa reproduce]   -> {outputs[-1]}", flush=True)
    return outputs
