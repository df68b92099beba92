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
Methods, in the order they run (every group's runs follow the previous group's):
1. DreamerV3 from scratch and GSA, 3 seeds each, side by side: the paper's main comparison (Fig. 1/3);
   every task gets its first seed of both before any task gets a second;
2. DrQ-v2, 3 seeds: the model-free baseline of Fig. 1/3;
3. the ablations P and P+ER, 1 seed (Fig. 6);
4. the offline-data baselines of Fig. 4 on the Meta-World tasks, 3 seeds: JSRL-BC, Diffusion Policy and the
   R3M-style encoder first, then UDS+RLPD and ExPLORe (RLPD updates its critics many times per agent step:
   ~1-1.5 h per run on a free CPU core even at the cpu preset's update-to-data ratio of 10).
A study cut short therefore still compares the main methods on every task.
"""
from __future__ import annotations

from dataclasses import dataclass

from gsa.envs import get_spec
from gsa.experiments.sweep import Run, expand


SEEDS = (0, 1, 2)


@dataclass(frozen=True)
class Study:
    tasks: tuple[str, ...]
    groups: tuple[tuple[tuple, ...], ...]  # groups of (method, seeds[, benchmark the method is limited to])

    @property
    def methods(self) -> list[tuple[str, tuple[int, ...]]]:
        """(method, seeds) of every group, in order."""
        return [(arm[0], arm[1]) for group in self.groups for arm in group]


OFFLINE_BASELINES = ("jsrl-bc", "diffusion-policy", "r3m", "uds-rlpd", "explore")  # cheapest first

STUDIES = {
    "smoke": Study(("dmc-cartpole-balance", "mw-reach"), ((("gsa", (0,)), ("dreamerv3", (0,))),)),
    "cpu": Study(
        ("dmc-cheetah-run", "dmc-cheetah-run-backwards", "dmc-walker-run-backwards", "dmc-quadruped-run",
         "mw-assembly", "mw-shelf-place", "mw-stick-pull", "mw-door-open"),
        ((("dreamerv3", SEEDS), ("gsa", SEEDS)),
         (("drqv2", SEEDS),),
         (("p", (0,)), ("p+er", (0,))),
         tuple((method, SEEDS, "metaworld") for method in OFFLINE_BASELINES))),
}


@dataclass(frozen=True)
class Ablation:
    """Runs of one method with one config change (a sweep variant, labelled ``<method>.<variant>``), read by
    ``notebooks/04_ablations`` against the main study's runs of the same tasks and seeds."""
    method: str
    variant: str
    overrides: tuple[tuple[str, object], ...]
    tasks: tuple[str, ...]
    seeds: tuple[int, ...] = SEEDS


# The ablation variants of the cpu preset (issue 15; paper Fig. 7 and 8), fixed on December 6, 2026 before any of
# their runs existed. GSA's own runs on these tasks are the main study's, so only the variants run here.
# - Fig. 7, uncertainty-aware reward instead of execution guidance: P+ER whose imagined rewards are labelled by
#   Optimistic Thompson Sampling over a reward ensemble, on the paper's two tasks, assembly and stick-pull (both in
#   the cpu study).
# - Fig. 8, which parts of the pre-trained world model are fine-tuned: encoder + decoder only, or dynamics only.
#   The paper uses quadruped-walk; at this scale the quadruped's scores are mostly those of its random starts (the
#   cpu study's quadruped-run: README), which would hide any difference between the variants. The two tasks are
#   therefore the cpu study's DMC tasks where GSA's seeds 0-1 had learned most by 50k frames, cheetah-run and
#   walker-run-backwards, so that freezing a part has something to take away (the comparison is between GSA
#   variants; DreamerV3 is not in it).
ABLATIONS = {
    "cpu": (
        Ablation("p+er", "ots", (("finetune.reward_uncertainty", True),), ("mw-assembly", "mw-stick-pull")),
        Ablation("gsa", "encoder_decoder", (("finetune.train_parts", "encoder_decoder"),),
                 ("dmc-cheetah-run", "dmc-walker-run-backwards")),
        Ablation("gsa", "dynamics", (("finetune.train_parts", "dynamics"),), ("dmc-cheetah-run", "dmc-walker-run-backwards")),
    ),
}


def ablation_runs(preset: str, experiment: str | None = None, seeds=None) -> list[Run]:
    """The preset's ablation variants (:data:`ABLATIONS`) as runs, seed rank by seed rank (every variant and task
    gets its first seed before any gets a second)."""
    if preset not in ABLATIONS:
        raise ValueError(f"preset {preset!r} has no ablation runs; choose from {sorted(ABLATIONS)}")
    runs = []
    for rank in range(max(len(a.seeds) for a in ABLATIONS[preset])):
        for a in ABLATIONS[preset]:
            if rank < len(a.seeds) and (seeds is None or a.seeds[rank] in seeds):
                runs += expand(experiment or preset, preset, [a.method], a.tasks, [a.seeds[rank]],
                               variants={a.variant: dict(a.overrides)})
    return runs


def study(preset: str) -> Study:
    if preset not in STUDIES:
        raise ValueError(f"preset {preset!r} has no study; choose from {sorted(STUDIES)}")
    return STUDIES[preset]


def study_runs(preset: str, experiment: str | None = None, tasks=None, methods=None,
               overrides: dict | None = None, seeds=None) -> list[Run]:
    """The study's runs (optionally restricted to ``tasks`` / ``methods`` / ``seeds``, with config ``overrides``) in the
    order to run them: group by group; inside a group, for each seed rank, task by task, the group's methods
    side by side."""
    s = study(preset)
    runs = []
    for group in s.groups:
        arms = [arm for arm in group if methods is None or arm[0] in methods]
        for rank in range(max((len(arm[1]) for arm in arms), default=0)):
            for task in tasks or s.tasks:
                for arm in arms:
                    if rank < len(arm[1]) and (len(arm) < 3 or get_spec(task).benchmark == arm[2]) \
                            and (seeds is None or arm[1][rank] in seeds):
                        runs += expand(experiment or preset, preset, [arm[0]], [task], [arm[1][rank]],
                                       overrides=overrides)
    return runs
