"""Where things live: the project root (found from the working directory), figures, results, data; and the
cores this process may run on."""
from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    """The nearest parent of the working directory holding ``pyproject.toml`` and ``gsa/``.

    Notebooks run from ``notebooks/`` (JupyterLab) or the root (papermill); both resolve the same.
    ``GSA_ROOT`` overrides.
    """
    if "GSA_ROOT" in os.environ:
        return Path(os.environ["GSA_ROOT"]).resolve()
    here = Path.cwd().resolve()
    for path in (here, *here.parents):
        if (path / "pyproject.toml").exists() and (path / "gsa").is_dir():
            return path
    return Path(__file__).resolve().parents[1]


def figures_dir() -> Path:
    """``figures/`` of the project (``GSA_FIGURES_DIR`` overrides, e.g. in tests)."""
    path = Path(os.environ.get("GSA_FIGURES_DIR", project_root() / "figures"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def results_dir() -> Path:
    """``results/`` of the project (``GSA_RESULTS_DIR`` overrides, e.g. in tests)."""
    path = Path(os.environ.get("GSA_RESULTS_DIR", project_root() / "results"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def resolve(path: str | Path) -> Path:
    """A configured path: absolute as given, relative to the project root otherwise (``data/smoke``)."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else project_root() / path


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity: ``taskset -c 0 gsa sweep ...`` gives one), i.e. the
    cpuset a scheduler or a shared machine grants, not the machine's total (a CPU quota is not seen)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity on this platform (macOS)
        return os.cpu_count() or 1
