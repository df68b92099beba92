"""The ``gsa`` command.

    gsa tasks [--benchmark dmc|metaworld]     list the task registry
    gsa collect [--preset smoke] [-o k=v …]   generate the offline dataset (resumes), pack it, write its card
    gsa pretrain [--preset smoke] [-o k=v …]  pre-train the world model (resumes from its checkpoint)
    gsa finetune --task T [--method gsa|p+er|p|dreamerv3|drqv2|jsrl-bc|uds-rlpd|explore|diffusion-policy|r3m] [--preset smoke] [-o k=v …]
                                              fine-tune on one task (resumes; a finished run is skipped)
    gsa sweep --methods gsa dreamerv3 --tasks T1 T2 --seeds 0 1 2 [--preset cpu] [--workers 2]
                                              many runs in parallel processes (resumable), results/<experiment>.csv
    gsa sweep --preset cpu --study            the preset's study (gsa/experiments/studies.py)
    gsa continual --preset cpu --method gsa|packnet [--seeds 0]
                                              the continual chain stand → … → roll-fast (resumable)
    gsa diagnose RUN_DIR [RUN_DIR …]           a finished run's reward-head and world-model fit on online and
                                              retrieved rows, and its policies played alone (needs its
                                              checkpoint and the dataset); --priors[-only]: π_bc by data quality
    gsa reproduce [--preset smoke] [names…]   execute the notebooks (figures/ and results/)

Overrides are dotted config fields, e.g. ``-o data.root=/scratch/gsa -o data.workers=16``. Bad input (an
unknown task or config field, a missing dataset or checkpoint, a checkpoint made with other settings)
prints one line, ``gsa: error: ...``, and exits with code 2; ``gsa --debug ...`` shows the traceback.
"""
from __future__ import annotations

import argparse

import gsa  # noqa: F401  (headless rendering defaults before MuJoCo loads)


def _tasks(args) -> None:
    from gsa.envs import TASKS

    print(f"{'task':36s} {'embodiment':10s} {'actions':>7s} {'state':>5s} {'steps':>5s}  camera")
    for spec in TASKS.values():
        if args.benchmark in (None, spec.benchmark):
            e = spec.embodiment
            print(f"{spec.id:36s} {e.name:10s} {e.action_size:7d} {e.state_size:5d} {e.episode_length():5d}  {e.camera}")


def _collect(args) -> None:
    from gsa.config import preset
    from gsa.data.card import write_card
    from gsa.data.collect import collect
    from gsa.data.store import OfflineDataset

    from gsa.paths import resolve

    cfg = preset(args.preset, args.override)
    collect(cfg)
    OfflineDataset(resolve(cfg.data.root)).close()  # packs the episodes for sampling
    print(f"dataset card: {write_card(resolve(cfg.data.root))}")


def _pretrain(args) -> None:
    from gsa.config import preset
    from gsa.train.pretrain import pretrain, pretrain_all

    cfg = preset(args.preset, args.override)
    if args.out:  # one model: pretrain.benchmark must name it (all | dmc | metaworld)
        print(f"checkpoint: {pretrain(cfg, out=args.out)}")
    else:
        for benchmark, path in pretrain_all(cfg).items():
            print(f"checkpoint ({benchmark}): {path}")


def _finetune(args) -> None:
    from gsa.config import preset
    from gsa.train.finetune import finetune

    cfg = preset(args.preset, args.override)
    run = finetune(cfg, args.task, args.method, world_model=args.world_model, experiment=args.experiment or cfg.name)
    print(f"run: {run}")


def _continual(args) -> None:
    from gsa.config import preset
    from gsa.train.continual import continual

    cfg = preset(args.preset, args.override)
    for seed in args.seeds:
        cfg.finetune.seed = seed
        table = continual(cfg, args.method, experiment=args.experiment, world_model=args.world_model)
    print(f"chain: {table}")


def _sweep(args) -> None:
    from gsa.config import parse_overrides
    from gsa.experiments.sweep import expand, sweep

    variants: dict[str, dict] = {}
    for text in args.variant:
        name, sep, setting = text.partition(":")
        if not sep:
            raise SystemExit(f"--variant {text!r} must look like NAME:section.field=value")
        variants.setdefault(name, {}).update(parse_overrides([setting]))
    if args.study and args.ablations:
        raise SystemExit("gsa sweep: choose --study or --ablations")
    if args.ablations:  # the preset's ablation variants (gsa/experiments/studies.py), narrowed by --methods/--tasks/--seeds
        from gsa.experiments.studies import ablation_runs

        if variants or args.override:
            raise SystemExit("gsa sweep: --ablations are fixed variants; --variant / -o do not combine with them")
        runs = [r for r in ablation_runs(args.preset, args.experiment, args.seeds)
                if (args.methods is None or {r.method, r.label} & set(args.methods))
                and (args.tasks is None or r.task in args.tasks)]
    elif args.study:  # the preset's study (gsa/experiments/studies.py), optionally narrowed by --methods/--tasks/--seeds
        from gsa.experiments.studies import study_runs

        if variants:
            raise SystemExit("gsa sweep: --variant does not combine with --study")
        runs = study_runs(args.preset, args.experiment, args.tasks, args.methods, parse_overrides(args.override),
                          args.seeds)
    else:
        if not args.tasks:
            raise SystemExit("gsa sweep: give --tasks (or --study for the preset's study)")
        runs = expand(args.experiment or args.preset, args.preset, args.methods or ["gsa", "dreamerv3"], args.tasks,
                      args.seeds or [0, 1, 2], variants or None, parse_overrides(args.override))
    if args.status:  # what is done and what is left, without running anything
        import pandas as pd

        from gsa.experiments.sweep import read_prerequisites, read_status, remaining_hours

        if not runs:
            print("no runs match")
            return
        reference = None
        if args.ablations:  # a variant's estimate falls back to its base method's runs, which are the study's
            from gsa.experiments.studies import study_runs

            reference = read_status(study_runs(args.preset, args.experiment, sorted({r.task for r in runs}),
                                               sorted({r.method for r in runs})))
        table = remaining_hours(read_status(runs), reference)
        with pd.option_context("display.width", 200, "display.precision", 1):
            print(table.to_string())
        left = table["core-hours left"]
        hours = f"~{left.sum():.0f} core-hours left" if left.notna().any() else "no estimate of the core-hours left yet"
        print(f"{int(table['done'].sum())} of {len(runs)} runs done; {hours}"
              + (" for the methods with an estimate (NaN: no finished run of the method, or of its base method, on "
                 "that benchmark)" if left.isna().any() and left.notna().any() else ""))
        needs = read_prerequisites(runs)
        if len(needs):
            print("\nwhat the unfinished runs read first:")
            with pd.option_context("display.width", 250, "display.max_colwidth", 80):
                print(needs.to_string(index=False))
        return
    status = sweep(runs, workers=args.workers, executor=args.executor, leave_locked=args.leave_locked)
    failed = {name: s for name, s in status.items() if s.startswith("error")}
    elsewhere = sum(s == "elsewhere" for s in status.values())
    print(f"{sum(s == 'done' for s in status.values())} of {len(status)} runs done"
          + (f", {elsewhere} left to the process that holds them" if elsewhere else "")
          + "".join(f"\n  {n}: {s}" for n, s in failed.items()))
    if failed:
        raise SystemExit(1)


def _diagnose(args) -> None:
    import pandas as pd

    from gsa.diagnostics import diagnose, diagnose_priors

    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.precision", 3):
        for run in args.runs:
            if args.priors_only:
                by_quality = diagnose_priors(run, episodes=args.episodes)
            else:
                fit = diagnose(run, episodes=args.episodes, with_priors=args.priors)
                print(f"{run}:\n{fit.to_string(index=False)}\n{fit.attrs['policies'].to_string(index=False)}")
                if "objects" in fit.attrs:
                    print(f"{run}: where imagination takes the object\n{fit.attrs['objects'].to_string(index=False)}")
                by_quality = fit.attrs.get("priors")
            if by_quality is not None:
                print(f"{run}: π_bc by the quality of its data\n{by_quality.to_string(index=False)}")


def _reproduce(args) -> None:
    from gsa.reproduce import reproduce

    reproduce(args.preset, args.notebooks or None)


def _preset_arguments(p) -> None:
    p.add_argument("--preset", default="smoke", choices=["smoke", "cpu", "paper"])
    p.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                   help="dotted config field, e.g. data.workers=8 (repeatable)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="gsa", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("tasks", help="list the 73 tasks")
    p.add_argument("--benchmark", choices=["dmc", "metaworld"])
    p.set_defaults(func=_tasks)
    p = sub.add_parser("collect", help="generate the offline dataset of a preset")
    _preset_arguments(p)
    p.set_defaults(func=_collect)
    p = sub.add_parser("pretrain", help="pre-train the world model on the preset's dataset")
    _preset_arguments(p)
    p.add_argument("--out", default=None, help="checkpoint directory of a single model (default: one model per "
                   "benchmark in checkpoints/<preset>/world_model/<benchmark>)")
    p.set_defaults(func=_pretrain)
    p = sub.add_parser("finetune", help="fine-tune on one task (GSA or an ablation / DreamerV3)")
    _preset_arguments(p)
    p.add_argument("--task", required=True, help="a task id, e.g. dmc-walker-run or mw-reach (see gsa tasks)")
    p.add_argument("--method", default="gsa", choices=["gsa", "p+er", "p", "dreamerv3", "drqv2", "jsrl-bc",
                                                           "uds-rlpd", "explore", "diffusion-policy", "r3m"])
    p.add_argument("--world-model", default=None, help="pre-trained checkpoint (default: the preset's)")
    p.add_argument("--experiment", default=None, help="results/runs/<experiment>/... (default: the preset name)")
    p.set_defaults(func=_finetune)
    p = sub.add_parser("continual", help="the continual chain of quadruped tasks (method §8, resumable)")
    _preset_arguments(p)
    p.add_argument("--method", default="gsa", choices=["gsa", "packnet"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--world-model", default=None, help="quadruped-only pre-trained checkpoint (default: trained "
                   "on the preset's quadruped data into checkpoints/<preset>/world_model/quadruped)")
    p.add_argument("--experiment", default=None, help="results/runs/<experiment>/... (default: continual-<preset>)")
    p.set_defaults(func=_continual)
    p = sub.add_parser("sweep", help="methods × tasks × seeds of fine-tuning runs (resumable)")
    _preset_arguments(p)
    p.add_argument("--study", action="store_true", help="the preset's study: its tasks, methods and seeds "
                   "(gsa/experiments/studies.py); --methods / --tasks / --seeds narrow it")
    p.add_argument("--ablations", action="store_true", help="the preset's ablation variants (paper Fig. 7 / 8, fixed "
                   "in gsa/experiments/studies.py); --methods / --tasks / --seeds narrow them")
    p.add_argument("--methods", nargs="+", default=None, help="default: gsa dreamerv3 (--ablations: a base method "
                   "or a variant, e.g. p+er.ots)")
    p.add_argument("--tasks", nargs="+", default=None)
    p.add_argument("--seeds", nargs="+", type=int, default=None, help="default: 0 1 2 (--study: the study's)")
    p.add_argument("--variant", action="append", default=[], metavar="NAME:KEY=VALUE",
                   help="a variant with an override, e.g. k250:finetune.retrieval_k=250 (repeatable)")
    p.add_argument("--experiment", default=None, help="results/runs/<experiment>/... (default: the preset name)")
    p.add_argument("--status", action="store_true", help="print what is done and the core-hours left (estimated "
                   "from finished runs), run nothing")
    p.add_argument("--workers", type=int, default=None, help="parallel runs (default: one per core)")
    p.add_argument("--executor", default="local", choices=["local", "slurm", "submitit-local"])
    p.add_argument("--leave-locked", action="store_true", help="leave runs another process holds to it and end "
                   "when nothing else is left (several runners on one machine, e.g. one per core with taskset)")
    p.set_defaults(func=_sweep)
    p = sub.add_parser("diagnose", help="reward-head and world-model fit of finished runs, their policies played "
                       "alone (diagnostics.json)")
    p.add_argument("runs", nargs="+", help="results/runs/<experiment>/<method>/<task>/seed<k>")
    p.add_argument("--episodes", type=int, default=20, help="episodes per policy played alone (π_RL, π_bc)")
    p.add_argument("--priors", action="store_true", help="also clone π_bc from each quality slice of the "
                   "retrieved data (all, σ ≤ each noise level, each exploration source) and play it alone")
    p.add_argument("--priors-only", action="store_true", help="only the priors (needs the dataset and the run's "
                   "retrieval.json, not its checkpoint)")
    p.set_defaults(func=_diagnose)
    p = sub.add_parser("reproduce", help="execute the notebooks with papermill")
    p.add_argument("--preset", default="smoke", choices=["smoke", "cpu", "paper"])
    p.add_argument("notebooks", nargs="*", help="notebook names (default: all of the preset)")
    p.set_defaults(func=_reproduce)
    args = parser.parse_args(argv)
    if args.debug:
        return args.func(args)
    try:
        args.func(args)
    except (ValueError, KeyError, FileNotFoundError) as error:  # bad input: EpisodeError is a ValueError
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        parser.exit(2, f"gsa: error: {message} (gsa --debug {args.command} ... shows the traceback)\n")


if __name__ == "__main__":
    main()
