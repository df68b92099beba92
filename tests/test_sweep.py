"""The sweep runner: expansion, skipping finished runs, surviving kill -9 of the runner and of a worker,
reporting a failing run while the others finish, the submitit path, and the tidy table."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gsa.experiments.sweep import expand, read_prerequisites, read_status, remaining_hours, results_table, sweep, tidy

TINY = {"world_model.obs": "state", "finetune.frames": 600, "finetune.warmup_frames": 200,
        "finetune.eval_every": 600, "finetune.eval_episodes": 1, "finetune.batch_size": 4, "finetune.seq_len": 16,
        "finetune.train_ratio": 16, "finetune.units": 32, "finetune.checkpoint_every": 200}
TASK = "mw-reach"  # 100 agent steps (200 frames) per episode


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("GSA_ROOT", str(tmp_path))
    monkeypatch.setenv("GSA_RESULTS_DIR", str(tmp_path / "results"))
    return tmp_path


def events(run) -> list[str]:
    path = run.paths()[1].parent / "events.jsonl"
    return [json.loads(line)["event"] for line in path.read_text().splitlines()] if path.exists() else []


def test_expansion_names_and_early_errors():
    runs = expand("x", "smoke", ["gsa", "dreamerv3"], ["mw-reach", "dmc-walker-walk"], [0, 1, 2],
                  variants={"": {}, "k4": {"finetune.retrieval_k": 4}})
    assert len(runs) == 2 * 2 * 3 * 2 and len({r.name for r in runs}) == len(runs)
    k4 = [r for r in runs if r.variant == "k4"]
    assert {r.label for r in k4} == {"gsa.k4", "dreamerv3.k4"}
    assert all(r.config().finetune.retrieval_k == 4 for r in k4)
    assert {r.config().finetune.seed for r in runs} == {0, 1, 2}
    with pytest.raises(ValueError, match="unknown method"):
        expand("x", "smoke", ["dreamer"], ["mw-reach"], [0])
    with pytest.raises(ValueError, match="unknown task"):
        expand("x", "smoke", ["gsa"], ["mw-reachh"], [0])
    with pytest.raises(ValueError, match="unknown config field"):
        expand("x", "smoke", ["gsa"], ["mw-reach"], [0], overrides={"finetune.nope": 1})


def test_status_says_which_inputs_the_unfinished_runs_wait_for(root):
    from gsa.config import to_dict
    from gsa.train import checkpoint

    runs = expand("x", "smoke", ["gsa", "dreamerv3", "r3m", "drqv2"], [TASK], [0])
    def states():
        return read_prerequisites(runs).set_index("input")[["path", "runs", "state"]].to_dict("index")
    assert states() == {  # DreamerV3 and DrQ-v2 read nothing; R3M-style only the data its encoder trains on
        "world model": {"path": "checkpoints/smoke/world_model/metaworld/checkpoint.pt", "runs": 1,
                        "state": "missing: gsa pretrain --preset smoke -o pretrain.benchmark=metaworld"},
        "dataset": {"path": "data/smoke", "runs": 2, "state": "missing: gsa collect --preset smoke (its metaworld part "
                                                              "alone: -o data.dmc_embodiments=[])"}}
    cfg = runs[0].config()
    wm = root / "checkpoints/smoke/world_model/metaworld/checkpoint.pt"
    wm.parent.mkdir(parents=True)
    checkpoint.save(wm, kind="pretrain", step=3, config=to_dict(cfg))
    (root / "data/smoke").mkdir(parents=True)
    pd.DataFrame({"benchmark": ["dmc"]}).to_csv(root / "data/smoke/manifest.csv", index=False)
    assert states()["world model"]["state"] == f"not ready: pre-trained 3 of {cfg.pretrain.steps} steps"
    assert states()["dataset"]["state"].startswith("no metaworld episodes: gsa collect --preset smoke")
    checkpoint.save(wm, kind="pretrain", step=cfg.pretrain.steps, config=to_dict(cfg))
    pd.DataFrame({"benchmark": ["dmc", "metaworld", "metaworld"]}).to_csv(root / "data/smoke/manifest.csv", index=False)
    assert states()["world model"]["state"] == "ready" and states()["dataset"]["state"] == "ready (2 metaworld episodes)"


def test_the_tidy_table_holds_finished_runs_only_so_a_clone_of_the_results_draws_the_same(root):
    """Runs still training have an ``eval.csv`` but no ``done.json``; committed results hold only finished runs,
    so ``results/<experiment>.csv`` (and every figure drawn from it) leaves them out unless asked."""
    for seed, done in ((0, True), (1, False)):
        run = root / "results/runs/ex/gsa/mw-reach" / f"seed{seed}"
        run.mkdir(parents=True)
        pd.DataFrame({"frame": [300, 600][:2 - seed], "episode_return": [1.0, 2.0][:2 - seed],
                      "success": [0.0, 1.0][:2 - seed]}).to_csv(run / "eval.csv", index=False)
        if done:
            (run / "done.json").write_text(json.dumps({"frames": 600}))
    table = pd.read_csv(tidy("ex"))
    assert table[["seed", "frame"]].values.tolist() == [[0, 300], [0, 600]]
    assert table["score"].tolist() == [0.0, 100.0]
    watched = results_table("ex", finished_only=False)
    assert watched[["seed", "frame"]].values.tolist() == [[0, 300], [0, 600], [1, 300]]
    (root / "results/runs/ex/gsa/mw-reach/seed0/done.json").unlink()
    with pytest.raises(FileNotFoundError, match="finished run"):
        tidy("ex")


def test_runs_finish_failures_are_reported_and_finished_runs_are_skipped(root, capsys):
    runs = expand("sw", "smoke", ["dreamerv3", "gsa"], [TASK], [0], overrides=TINY)  # gsa: no world model
    runs.append(expand("sw", "smoke", ["dreamerv3"], [TASK], [1], overrides=TINY)[0])
    status = sweep(runs, workers=1, progress=False, poll=0.2)
    assert status["dreamerv3/mw-reach/seed0"] == status["dreamerv3/mw-reach/seed1"] == "done"
    assert status["gsa/mw-reach/seed0"].startswith("error:") and "gsa pretrain" in status["gsa/mw-reach/seed0"]
    pids = [json.loads(line)["pid"] for r in (runs[0], runs[2])
            for line in (r.paths()[1].parent / "events.jsonl").read_text().splitlines()]
    assert len(set(pids)) == 1  # one worker process ran both, and went on after the failing run
    table = pd.read_csv(root / "results" / "sw.csv")
    assert list(table.columns) == ["method", "task", "seed", "frame", "return", "success", "success_any", "score"]
    assert table[["method", "seed", "frame"]].values.tolist() == [["dreamerv3", 0, 600], ["dreamerv3", 1, 600]]
    assert table["score"].iloc[0] == 100 * table["success"].iloc[0]
    done = runs[0]
    assert events(done) == ["start", "done"]
    assert sweep([done], progress=False) == {done.name: "done"} and events(done) == ["start", "done"]  # skipped
    status = read_status(runs)
    assert status["status"].tolist() == ["done", "new", "done"] and status["frames"].tolist() == [600, 0, 600]
    assert (status["budget"] == 600).all() and (status["hours"].dropna() > 0).sum() == 2
    plan = remaining_hours(status)  # dreamerv3: all done; gsa: nothing finished to estimate from
    assert plan.loc["dreamerv3", ["done", "started", "new"]].tolist() == [2, 0, 0]
    assert plan.loc["dreamerv3", "core-hours left"] == 0 and np.isnan(plan.loc["gsa", "core-hours left"])
    halfway = pd.concat([status, status.iloc[[0]].assign(seed=2, status="started", frames=300, hours=np.nan)])
    assert remaining_hours(halfway).loc["dreamerv3", "core-hours left"] == pytest.approx(status["hours"].iloc[[0, 2]].median() / 2)
    variant = pd.concat([status, status.iloc[[0]].assign(method="dreamerv3.k4", status="new", frames=0, hours=np.nan)])
    assert remaining_hours(variant).loc["dreamerv3.k4", "core-hours left"] == pytest.approx(status["hours"].iloc[[0, 2]].median())
    alone = remaining_hours(variant[variant["method"] == "dreamerv3.k4"], reference=status)  # base runs elsewhere
    assert alone.index.tolist() == ["dreamerv3.k4"]
    assert alone.loc["dreamerv3.k4", "core-hours left"] == pytest.approx(status["hours"].iloc[[0, 2]].median())
    from gsa.cli import main

    capsys.readouterr()
    main(["sweep", "--preset", "smoke", "--experiment", "sw", "--methods", "dreamerv3", "gsa", "--tasks", TASK, "--seeds", "0",
          "--status", *[arg for k, v in TINY.items() for arg in ("-o", f"{k}={v}")]])  # runs nothing
    assert "1 of 2 runs done" in capsys.readouterr().out and read_status(runs)["status"].tolist() == ["done", "new", "done"]
    main(["sweep", "--preset", "smoke", "--study", "--seeds", "7", "--status"])  # the study has no seed 7
    assert capsys.readouterr().out.strip() == "no runs match"


def _wait(condition, timeout=300.0):
    end = time.time() + timeout
    while not condition():
        assert time.time() < end, "timed out"
        time.sleep(0.2)


def test_kill_9_of_a_worker_and_of_the_runner_loses_nothing_and_runs_nothing_twice(root):
    runs = expand("kill", "smoke", ["dreamerv3"], [TASK], [0, 1], overrides=TINY)
    first = runs[0]
    command = [sys.executable, "-c", "import sys; from gsa.cli import main; main(sys.argv[1:])", "sweep",
               "--preset", "smoke", "--experiment", "kill", "--methods", "dreamerv3", "--tasks", TASK,
               "--seeds", "0", "1", "--workers", "1", *[arg for k, v in TINY.items() for arg in ("-o", f"{k}={v}")]]
    runner = subprocess.Popen(command, env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        _wait(lambda: first.paths()[1].exists())  # first checkpoint written (frame 200)
        worker = [json.loads(line) for line in (first.paths()[1].parent / "events.jsonl").read_text().splitlines()][0]["pid"]
        os.kill(worker, signal.SIGKILL)  # the runner resumes the killed run
        _wait(lambda: "resume" in events(first))
        runner.send_signal(signal.SIGKILL)  # its worker goes on as an orphan
        runner.wait()
        assert not first.done()
        status = sweep(runs, workers=1, progress=False, poll=0.2)  # waits for the orphan, runs the other
    finally:
        runner.kill()
    assert status == {r.name: "done" for r in runs}
    assert events(first) == ["start", "resume", "done"] and events(runs[1]) == ["start", "done"]
    for run in runs:
        assert pd.read_csv(run.paths()[0] / "eval.csv")["frame"].tolist() == [600]
        assert pd.read_csv(run.paths()[0] / "train.csv")["frame"].tolist() == [200, 400, 600]


def test_a_runner_that_leaves_locked_runs_ends_instead_of_waiting_for_another_runner(root, capsys):
    import fcntl

    from gsa.cli import main

    runs = expand("share", "smoke", ["dreamerv3"], [TASK], [0], overrides=TINY)
    lock_path = runs[0].paths()[1].parent / "lock"
    lock_path.parent.mkdir(parents=True)
    with open(lock_path, "w") as lock:  # another runner's worker holds the run
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        start = time.perf_counter()
        assert sweep(runs, workers=1, progress=False, poll=0.1, leave_locked=True) == {runs[0].name: "elsewhere"}
        main(["sweep", "--preset", "smoke", "--experiment", "share", "--methods", "dreamerv3", "--tasks", TASK,
              "--seeds", "0", "--workers", "1", "--leave-locked", *[a for k, v in TINY.items() for a in ("-o", f"{k}={v}")]])
        assert time.perf_counter() - start < 30 and not runs[0].done() and events(runs[0]) == []  # nothing ran
    assert "0 of 1 runs done, 1 left to the process that holds them" in capsys.readouterr().out
    with pytest.raises(ValueError, match="local executor"):
        sweep(runs, executor="slurm", leave_locked=True)


def test_submitit_local_executor(root):
    pytest.importorskip("submitit")
    runs = expand("sub", "smoke", ["dreamerv3"], [TASK], [0], overrides=TINY)
    assert sweep(runs, executor="submitit-local", progress=False) == {runs[0].name: "done"}
    assert runs[0].done() and Path(root / "results" / "sub.csv").exists()


def test_the_cpu_study_is_fixed_and_puts_the_main_comparison_first():
    from gsa.experiments.studies import OFFLINE_BASELINES, study, study_runs

    runs = study_runs("cpu")
    s = study("cpu")
    dmc = [t for t in s.tasks if t.startswith("dmc-")]
    mw = [t for t in s.tasks if t.startswith("mw-")]
    assert len(dmc) >= 4 and len(mw) >= 4 and any("quadruped" in t for t in dmc)
    assert len(runs) == len(s.tasks) * (3 + 3 + 3 + 1 + 1) + len(mw) * 3 * len(OFFLINE_BASELINES) == len(set(runs))
    first = runs[: 2 * len(s.tasks)]  # seed 0 of DreamerV3 and GSA on every task, side by side
    assert {(r.method, r.seed) for r in first} == {("dreamerv3", 0), ("gsa", 0)}
    assert [r.task for r in first[::2]] == list(s.tasks)
    order = [r.method for r in runs]
    groups = [{"dreamerv3", "gsa"}, {"drqv2"}, {"p", "p+er"}, set(OFFLINE_BASELINES)]
    spans = [(order.index(next(m for m in order if m in g)), max(i for i, m in enumerate(order) if m in g))
             for g in groups]                               # (first, last) position of each group's runs
    assert all(spans[k][0] > spans[k - 1][1] for k in range(1, len(groups)))  # group after group
    offline = [r for r in runs if r.method in OFFLINE_BASELINES]
    assert {r.task for r in offline} == set(mw)  # the Fig. 4 baselines run on the Meta-World tasks only
    assert {r.method for r in study_runs("cpu", methods=["p"])} == {"p"}
    assert study_runs("cpu", methods=["p"], overrides={"finetune.frames": 1000})[0].config().finetune.frames == 1000
    assert {r.seed for r in study_runs("cpu", seeds=[2])} == {2} and len(study_runs("cpu", seeds=[2])) < len(runs)


def test_the_cpu_ablations_are_variants_of_study_tasks_seed_rank_by_seed_rank(capsys):
    from gsa.cli import main
    from gsa.experiments.studies import ablation_runs, study
    from gsa.train.finetune import with_method

    runs = ablation_runs("cpu")
    assert len(runs) == 3 * 2 * 3 == len(set(runs))
    assert {r.label for r in runs} == {"p+er.ots", "gsa.encoder_decoder", "gsa.dynamics"}  # notebook 04's labels
    assert {r.task for r in runs} <= set(study("cpu").tasks)  # GSA's own runs there come from the main study
    assert [r.seed for r in runs] == sorted(r.seed for r in runs)  # every variant's seed 0 before any seed 1
    ots = [r for r in runs if r.label == "p+er.ots"]
    assert {r.task for r in ots} == {"mw-assembly", "mw-stick-pull"}  # the paper's Fig. 7 tasks
    assert all(with_method(r.config(), r.method).finetune.reward_uncertainty and
               not with_method(r.config(), r.method).finetune.guidance for r in ots)  # OTS instead of guidance
    assert {r.config().finetune.train_parts for r in runs if r.method == "gsa"} == {"encoder_decoder", "dynamics"}
    capsys.readouterr()
    main(["sweep", "--preset", "cpu", "--ablations", "--methods", "p+er", "--seeds", "0", "--status"])
    out = capsys.readouterr().out
    assert "p+er.ots" in out and "gsa.dynamics" not in out and "of 2 runs done" in out
    main(["sweep", "--preset", "cpu", "--ablations", "--methods", "gsa.dynamics", "--status"])  # a variant by its label
    out = capsys.readouterr().out
    assert "gsa.dynamics" in out and "gsa.encoder_decoder" not in out and "of 6 runs done" in out
    with pytest.raises(SystemExit, match="--study or --ablations"):
        main(["sweep", "--preset", "cpu", "--ablations", "--study", "--status"])


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity on this platform")
def test_usable_cores_is_the_affinity_taskset_grants_not_the_machine():
    core = min(os.sched_getaffinity(0))
    pinned = subprocess.run([sys.executable, "-c", f"import os; os.sched_setaffinity(0, {{{core}}}); "
                             "from gsa.paths import usable_cores; print(usable_cores())"],
                            capture_output=True, text=True, check=True)
    assert pinned.stdout.strip() == "1"
