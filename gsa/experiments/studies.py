"""The fine-tuning study of each preset: which tasks, methods and seeds, fixed before any result was seen.

    runs = study_runs("cpu")                 # gsa.experiments.sweep.Run list, in the order they are run
    sweep(runs)                              # or: gsa sweep --preset cpu --study

The ``cpu`` study (issue 12) tests the paper's central claim (Fig. 1/3) at CPU scale, in state mode.
Tasks, chosen before any fine-tuning result existed:
- DMC (one world model pre-trained on cheetah, walker and quadruped data): ``cheetah-run`` (a stock task),
  ``cheetah-run-backwards`` and ``walker-run-backwards`` (custom rewards of the paper: behaviours that
  random and curiosity data rarely contain), ``quadruped-run`` (the quadruped task of the paper's
  retrieval-precision table).
- Meta-World (one world model on noisy-expert data of all 50 tasks): ``assembly``, ``shelf-place`` and
  ``stick-pull`` (hard tasks of the paper; assembly and shelf-place are also in its retrieval table and
  shelf-place is its t-SNE figure) and ``door-open`` (the retrieval table's task with imperfect precision).
Methods: DreamerV3 from scratch and GSA with 3 seeds each, and the ablations P and P+ER with 1 seed. Runs are
ordered so that every task gets its first seed of the two main methods first, then the other seeds, then
the ablations: a study cut short still compares the main methods on every task.
"""
from __future__ import annotations

from dataclasses import dataclass

from gsa.experiments.sweep import Run, expand


@dataclass(frozen=True)
class Study:
    tasks: tuple[str, ...]
    methods: tuple[tuple[str, tuple[int, ...]], ...]   # (method, seeds), in order of priority


STUDIES = {
    "smoke": Study(("dmc-cartpole-balance", "mw-reach"), (("gsa", (0,)), ("dreamerv3", (0,)))),
    "cpu": Study(
        ("dmc-cheetah-run", "dmc-cheetah-run-backwards", "dmc-walker-run-backwards", "dmc-quadruped-run",
         "mw-assembly", "mw-shelf-place", "mw-stick-pull", "mw-door-open"),
        (("dreamerv3", (0, 1, 2)), ("gsa", (0, 1, 2)), ("p", (0,)), ("p+er", (0,)))),
}


def study(preset: str) -> Study:
    if preset not in STUDIES:
        raise ValueError(f"preset {preset!r} has no study; choose from {sorted(STUDIES)}")
    return STUDIES[preset]


def study_runs(preset: str, experiment: str | None = None, tasks=None, methods=None,
               overrides: dict | None = None) -> list[Run]:
    """The study's runs (optionally restricted to ``tasks`` / ``methods``, with config ``overrides``) in the
    order to run them: for each seed rank, task by task, the two main methods side by side; the ablations
    after them."""
    s = study(preset)
    chosen = [(m, seeds) for m, seeds in s.methods if methods is None or m in methods]
    main = {m for m, _ in s.methods[:2]}
    runs = []
    for group in ([c for c in chosen if c[0] in main], [c for c in chosen if c[0] not in main]):
        for rank in range(max((len(seeds) for _, seeds in group), default=0)):
            for task in tasks or s.tasks:
                for method, seeds in group:
                    if rank < len(seeds):
                        runs += expand(experiment or preset, preset, [method], [task], [seeds[rank]], overrides=overrides)
    return runs
