"""From tidy results to the paper's aggregates, with rliable (Agarwal et al., 2021) doing the statistics.

    results = pd.read_csv("results/cpu.csv")          # method, task, seed, frame, episode_return, success, score
    final = final_scores(results)                      # the last evaluation of every run
    table = aggregates(final, ["gsa", "dreamerv3"])    # IQM / mean / median / optimality gap, 95% CIs
    by_benchmark = aggregates_by_benchmark(final, ["gsa", "dreamerv3"])  # the same per benchmark
    curve = aggregate_curve(results, ["gsa", "dreamerv3"])  # IQM over frames, 95% CIs

Scores are the normalised scores of the results (Meta-World success × 100, DMC return / 10); rliable sees
them divided by 100 so that the optimality gap is measured against a score of 100 (its γ = 1). Confidence
intervals are rliable's stratified bootstrap over runs within each task (``get_interval_estimates``).
A method × task with fewer seeds than the others enters with the seeds every task has: rliable needs a
(runs × tasks) matrix per method. Every interval is reproducible: see :func:`seeded`.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
from rliable import library as rly
from rliable import metrics

from gsa.envs import get_spec

MIN_RUNS = 2  # seeds common to every task below which a stratified-bootstrap CI is a point (one run per task)

METRICS = {  # name → rliable aggregate over a (runs, tasks) matrix of scores in [0, 1]
    "IQM": metrics.aggregate_iqm,
    "mean": metrics.aggregate_mean,
    "median": metrics.aggregate_median,
    "optimality gap": metrics.aggregate_optimality_gap,
}


@contextmanager
def seeded(seed: int):
    """Inside: numpy's global generator seeded with ``seed`` (restored after). rliable's stratified bootstrap
    draws its resamples from ``np.random`` (``StratifiedBootstrap.update_indices``) and ignores the
    ``random_state`` it is given, so without this the same results gave other CIs on every run."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def final_scores(results: pd.DataFrame, frame: int | None = None) -> pd.DataFrame:
    """One row per (method, task, seed): the evaluation at ``frame`` (default: each run's last one)."""
    if frame is not None:
        results = results[results["frame"] <= frame]
    return results.sort_values("frame").groupby(["method", "task", "seed"], as_index=False).tail(1)


def score_matrices(final: pd.DataFrame, methods: list[str], tasks: list[str] | None = None) -> dict[str, np.ndarray]:
    """{method: (runs, tasks) scores / 100} over the tasks every method has, with the seeds common to all
    of them for that method (rows = seeds, sorted)."""
    final = final[final["method"].isin(methods)]
    tasks = tasks or sorted(set.intersection(*(set(final[final["method"] == m]["task"]) for m in methods)))
    out = {}
    for method in methods:
        wide = final[(final["method"] == method) & final["task"].isin(tasks)].pivot(index="seed", columns="task", values="score")
        wide = wide.reindex(columns=tasks).dropna()
        if wide.empty:
            raise ValueError(f"{method}: no seed has results on all of {tasks}")
        out[method] = wide.to_numpy() / 100.0
    return out


def aggregates(final: pd.DataFrame, methods: list[str], reps: int = 20_000, seed: int = 0) -> pd.DataFrame:
    """Point estimate and 95% stratified-bootstrap CI of every metric of ``METRICS`` per method (scores in
    the normalised 0–100 scale)."""
    scores = score_matrices(final, methods)
    fn = lambda x: np.array([f(x) for f in METRICS.values()])  # noqa: E731
    with seeded(seed):
        point, interval = rly.get_interval_estimates(scores, fn, reps=reps)
    rows = []
    for method in methods:
        for i, name in enumerate(METRICS):
            rows.append({"method": method, "metric": name, "value": 100 * point[method][i],
                         "low": 100 * interval[method][0, i], "high": 100 * interval[method][1, i],
                         "runs": scores[method].shape[0], "tasks": scores[method].shape[1]})
    return pd.DataFrame(rows)


def aggregates_by_benchmark(final: pd.DataFrame, methods: list[str], reps: int = 20_000, seed: int = 0) -> pd.DataFrame:
    """:func:`aggregates` per benchmark of ``final``'s tasks, one after the other (column ``benchmark``: dmc,
    metaworld); the paper's Fig. 3 reports the two apart."""
    benchmark = final["task"].map(lambda t: get_spec(t).benchmark)
    return pd.concat([aggregates(final[benchmark == b], methods, reps, seed).assign(benchmark=b)
                      for b in sorted(set(benchmark))], ignore_index=True)


def claim_verdict(table: pd.DataFrame, x: str = "gsa", y: str = "dreamerv3", ratio: float = 1.3,
                  min_runs: int = MIN_RUNS) -> str:
    """The study's target on :func:`aggregates` ``table``: "met" if x's IQM ≥ ``ratio`` × y's and x's 95% CI lies
    above y's, else "NOT met". With fewer than ``min_runs`` seeds on every task the stratified bootstrap
    resamples each task's single run, so its CI is the point estimate and cannot separate anything: such a
    table is "not judged"."""
    iqm = table[table["metric"] == "IQM"].set_index("method")
    runs = int(min(iqm.loc[x, "runs"], iqm.loc[y, "runs"]))
    if runs < min_runs:
        return (f"not judged: {runs} seed(s) common to every task, at least {min_runs} needed (one run per task "
                "gives the stratified bootstrap nothing to resample: the CIs are points)")
    a, b = iqm.loc[x], iqm.loc[y]
    met = a["value"] >= ratio * b["value"] and a["low"] > b["high"]
    return "met" if met else "NOT met"


def leave_one_task_out(final: pd.DataFrame, x: str = "gsa", y: str = "dreamerv3", ratio: float = 1.3,
                       reps: int = 5_000, seed: int = 0) -> pd.DataFrame:
    """The claim's IQM comparison again with each task left out in turn: one row per left-out task (IQM and 95%
    CI of x and y, their ratio and :func:`claim_verdict`), so a verdict that hangs on one task shows. Every
    task is left out once; none is chosen by hand. Empty with fewer than two tasks."""
    tasks = sorted(set(final[final["method"] == x]["task"]) & set(final[final["method"] == y]["task"]))
    rows = []
    for task in tasks if len(tasks) > 1 else []:
        table = aggregates(final[final["task"] != task], [x, y], reps=reps, seed=seed)
        iqm = table[table["metric"] == "IQM"].set_index("method")
        rows.append({"left out": task, f"{x} IQM": iqm.loc[x, "value"], f"{x} low": iqm.loc[x, "low"],
                     f"{x} high": iqm.loc[x, "high"], f"{y} IQM": iqm.loc[y, "value"], f"{y} low": iqm.loc[y, "low"],
                     f"{y} high": iqm.loc[y, "high"],
                     "ratio": iqm.loc[x, "value"] / iqm.loc[y, "value"] if iqm.loc[y, "value"] > 0 else np.inf,
                     "verdict": claim_verdict(table, x, y, ratio)})
    return pd.DataFrame(rows)


def aggregate_curve(results: pd.DataFrame, methods: list[str], metric: str = "IQM", reps: int = 5_000,
                    seed: int = 0) -> pd.DataFrame:
    """``metric`` with its 95% CI at every evaluated frame that all methods reached; ``runs``: the seeds
    common to every task (below :data:`MIN_RUNS` the CI is the point estimate)."""
    frames = sorted(set.intersection(*(set(results[results["method"] == m]["frame"]) for m in methods)))
    fn = METRICS[metric]
    rows = []
    for frame in frames:
        scores = score_matrices(results[results["frame"] == frame], methods)
        with seeded(seed):
            point, interval = rly.get_interval_estimates(scores, lambda x: np.array([fn(x)]), reps=reps)
        rows += [{"method": m, "frame": frame, metric: 100 * point[m][0], "low": 100 * interval[m][0, 0],
                  "high": 100 * interval[m][1, 0], "runs": scores[m].shape[0]} for m in methods]
    return pd.DataFrame(rows)


def probability_of_improvement(final: pd.DataFrame, x: str, y: str, reps: int = 20_000, seed: int = 0) -> dict:
    """P(X > Y) (rliable, Mann–Whitney per task averaged over tasks) with its 95% CI."""
    scores = score_matrices(final, [x, y])
    pair = {f"{x},{y}": (scores[x], scores[y])}
    with seeded(seed):
        point, interval = rly.get_interval_estimates(pair, metrics.probability_of_improvement, reps=reps)
    key = f"{x},{y}"
    low, high = np.ravel(interval[key])
    return {"p": float(np.ravel(point[key])[0]), "low": float(low), "high": float(high)}


def performance_profiles(final: pd.DataFrame, methods: list[str], taus: np.ndarray | None = None,
                         reps: int = 2_000, seed: int = 0) -> pd.DataFrame:
    """rliable's score distributions: the fraction of runs with a normalised score > τ, for τ over
    ``taus`` (default 0–100), with 95% stratified-bootstrap CIs; rows (method, tau, fraction, low, high)."""
    taus = np.linspace(0, 100, 41) if taus is None else np.asarray(taus, float)
    scores = score_matrices(final, methods)
    with seeded(seed):
        point, interval = rly.create_performance_profile(scores, taus / 100, reps=reps)
    return pd.DataFrame([{"method": m, "tau": t, "fraction": point[m][i], "low": interval[m][0][i],
                          "high": interval[m][1][i]} for m in methods for i, t in enumerate(taus)])


def per_task_table(final: pd.DataFrame, value: str = "score") -> pd.DataFrame:
    """task × method: mean and 95% t-interval half-width over seeds of ``value`` at the final evaluation."""
    from scipy import stats

    def summary(x: pd.Series) -> pd.Series:
        n = len(x)
        half = stats.t.ppf(0.975, n - 1) * x.std(ddof=1) / np.sqrt(n) if n > 1 else np.nan
        return pd.Series({"mean": x.mean(), "ci": half, "seeds": n})

    return final.groupby(["task", "method"])[value].apply(summary).unstack()


def paper_scores(budget: str = "150k") -> pd.DataFrame:
    """The paper's per-task scores (``results/reference/paper_scores.csv``: its appendix Tables 2–4, pixels,
    3 seeds) at ``budget`` as task_id × method of normalised scores (Meta-World success × 100, DMC return
    / 10), methods named as ours ("gsa", "dreamerv3", "drqv2")."""
    from gsa.paths import project_root

    ref = pd.read_csv(project_root() / "results" / "reference" / "paper_scores.csv")
    ref = ref[ref["budget"] == budget]
    ref = ref.assign(method=ref["method"].str.lower(),
                     score=np.where(ref["benchmark"] == "metaworld", 100 * ref["score"], ref["score"] / 10))
    return ref.pivot_table(index="task_id", columns="method", values="score")


UNITS = {"metaworld": ("success rate", 0.01, 2), "dmc": ("return", 10.0, 1)}  # normalised score → paper unit


def comparison_table(final: pd.DataFrame, methods: list[str], tasks: list[str], benchmark: str,
                     budget: str = "150k") -> pd.DataFrame:
    """The paper's per-task table for one benchmark, ours beside the paper's: task × "<method>" (ours: mean ±
    95% CI over seeds at the final evaluation, or "not run") and "<method> (paper @<budget>)" (from
    :func:`paper_scores`, "–" where the paper has no number), in the benchmark's unit (Meta-World success
    rate, DMC return)."""
    _, scale, digits = UNITS[benchmark]
    ours = per_task_table(final) if len(final) else pd.DataFrame(columns=["mean", "ci", "seeds"])
    paper = paper_scores(budget)
    rows = []
    for task in tasks:
        row = {"task": task}
        for method in methods:
            if (task, method) in ours.index:
                r = ours.loc[(task, method)]
                ci = f" ± {r['ci'] * scale:.{digits}f}" if r["seeds"] > 1 else ""
                row[method] = f"{r['mean'] * scale:.{digits}f}{ci} (n={int(r['seeds'])})"
            else:
                row[method] = "not run"
            value = paper.loc[task, method] if task in paper.index and method in paper.columns else np.nan
            row[f"{method} (paper @{budget})"] = "–" if pd.isna(value) else f"{value * scale:.{digits}f}"
        rows.append(row)
    return pd.DataFrame(rows).set_index("task")


def run_table(runs) -> pd.DataFrame:
    """One row per finished run of ``runs`` (sweep ``Run``s with a ``done.json``): its score at every evaluation,
    what its training episodes did (Meta-World: how many earned reward, how many succeeded and how many of those
    the BC prior guided, how many reached the goal at some step; DMC: the mean return of the last 10), the
    evaluations' success at any step (:func:`reached`), and its wall and CPU minutes (the online phase; CPU time,
    like ``success_any``, is recorded from December 2026 on), the code that ran it (commits, ``done.json``'s
    ``code``; "?" for a part that predates the record, empty for older runs), and for runs that retrieved offline
    data the day that data was collected (the stamp of its episode ids) and, for runs from December 5, 2026 on,
    the first 8 hex digits of its content digest (``retrieved_sha256``): runs with the same digest replayed the
    same trajectories, whenever their data was collected."""
    import json

    def minutes(seconds: float | None) -> int | None:
        return None if seconds is None else round(seconds / 60)

    rows = []
    for run in runs:
        path = run.paths()[0]
        if not (path / "done.json").exists():
            continue
        done = json.loads((path / "done.json").read_text())
        evals, train = pd.read_csv(path / "eval.csv"), pd.read_csv(path / "train.csv")
        if run.task.startswith("mw-"):
            succeeded = train["success"] > 0
            episodes = f"{len(train)}: {int((train['episode_return'] > 0).sum())} with reward, {int(succeeded.sum())} successes"
            if "guided" in train and train["guided"].any():
                episodes += f" ({int((succeeded & train['guided']).sum())} guided)"
            if "success_any" in train and train["success_any"].notna().any():  # recorded from December 2026 on
                episodes += f"; {int((train['success_any'] > 0).sum())} reached the goal at some step"
        else:
            episodes = f"{len(train)}: return {train['episode_return'].tail(10).mean():.0f} (last 10)"
        rows.append({"task": run.task, "method": run.label, "seed": run.seed,
                     "scores": " / ".join(f"{s:.0f}" for s in evals["score"]), "goal reached": reached(evals),
                     "training episodes": episodes,
                     "minutes": minutes(done.get("seconds")), "CPU minutes": minutes(done.get("cpu_seconds")),
                     "code": ", ".join(version or "?" for version in done.get("code", [])),
                     "data collected": collected(path / "retrieval.json")})
    return pd.DataFrame(rows, columns=["task", "method", "seed", "scores", "goal reached", "training episodes",
                                       "minutes", "CPU minutes", "code", "data collected"])


def collected(retrieval: Path) -> str | None:
    """The day (YYYY-MM-DD) the earliest of a run's retrieved episodes was collected, from the ``{ts}-…`` stamp
    of their ids in ``retrieval.json``, followed by `` · `` and the first 8 hex digits of their content digest
    where the run recorded it; None without retrieved ids or stamps."""
    import json

    from gsa.data.episodes import NCRL_NAME  # an id is its episode file's name without ".npz"

    info = json.loads(retrieval.read_text()) if retrieval.exists() else {}
    stamps = sorted(m["ts"][:8] for m in (NCRL_NAME.match(f"{i}.npz") for i in info.get("ids") or []) if m)
    if not stamps:
        return None
    digest = f" · {info['retrieved_sha256'][:8]}" if info.get("retrieved_sha256") else ""
    return f"{stamps[0][:4]}-{stamps[0][4:6]}-{stamps[0][6:]}{digest}"


def reached(evals: pd.DataFrame) -> str:
    """Meta-World evaluations' success at any step × 100 (``success_any``, a diagnostic beside the final-step
    score), "" where the run predates it or on DMC."""
    if "success_any" not in evals or evals["success_any"].isna().all():
        return ""
    return " / ".join("–" if np.isnan(v) else f"{100 * v:.0f}" for v in evals["success_any"])
