"""gsa.analysis: rliable aggregates over synthetic results whose answer is known."""
import numpy as np
import pandas as pd
import pytest

from gsa.analysis import (aggregate_curve, aggregates, aggregates_by_benchmark, claim_verdict, final_scores, leave_one_task_out, per_task_table,
                          performance_profiles, probability_of_improvement)


def results(gap: float = 30.0, seeds: int = 5, tasks: int = 6, seed: int = 0) -> pd.DataFrame:
    """Two methods on `tasks` tasks, scores rising with frames; "good" is `gap` points above "base"."""
    rng = np.random.default_rng(seed)
    rows = []
    for t in range(tasks):
        level = rng.uniform(10, 50)
        for method, offset in (("base", 0.0), ("good", gap)):
            for s in range(seeds):
                for frame in (10_000, 20_000):
                    score = (level + offset) * frame / 20_000 + rng.normal(0, 2)
                    rows.append(dict(method=method, task=f"task{t}", seed=s, frame=frame, score=score))
    return pd.DataFrame(rows)


def test_final_scores_take_each_runs_last_evaluation():
    data = results()
    final = final_scores(data)
    assert len(final) == 2 * 5 * 6 and (final["frame"] == 20_000).all()
    assert (final_scores(data, frame=15_000)["frame"] == 10_000).all()


def test_aggregates_find_the_better_method_with_separated_intervals():
    table = aggregates(final_scores(results()), ["good", "base"], reps=2_000).set_index(["method", "metric"])
    for metric in ("IQM", "mean", "median"):
        good, base = table.loc[("good", metric)], table.loc[("base", metric)]
        assert good["low"] > base["high"], (metric, good, base)
        assert good["low"] <= good["value"] <= good["high"]
    assert table.loc[("good", "optimality gap"), "value"] < table.loc[("base", "optimality gap"), "value"]
    mean = final_scores(results()).groupby("method")["score"].mean()
    assert table.loc[("good", "mean"), "value"] == pytest.approx(mean["good"])


def test_aggregates_by_benchmark_score_each_benchmarks_tasks_alone():
    final = final_scores(results(tasks=4))
    real = {"task0": "dmc-cheetah-run", "task1": "dmc-walker-walk", "task2": "mw-reach", "task3": "mw-door-open"}
    final = final.assign(task=final["task"].map(real))
    table = aggregates_by_benchmark(final, ["good", "base"], reps=500)
    assert list(table["benchmark"].unique()) == ["dmc", "metaworld"] and (table["tasks"] == 2).all()
    dmc = aggregates(final[final["task"].str.startswith("dmc-")], ["good", "base"], reps=500)
    pd.testing.assert_frame_equal(table[table["benchmark"] == "dmc"].drop(columns="benchmark").reset_index(drop=True), dmc)


def test_the_claim_is_judged_only_with_more_than_one_seed_per_task():
    """One seed per task: the stratified bootstrap's CIs are points, so even a 3× gap is "not judged"."""
    one = aggregates(final_scores(results(gap=60.0, seeds=1)), ["good", "base"], reps=500)
    iqm = one[one.metric == "IQM"].set_index("method")
    assert iqm.loc["good", "low"] == iqm.loc["good", "high"] == iqm.loc["good", "value"]  # degenerate
    assert claim_verdict(one, "good", "base").startswith("not judged: 1 seed(s)")
    three = aggregates(final_scores(results(gap=60.0, seeds=3)), ["good", "base"], reps=500)
    assert claim_verdict(three, "good", "base") == "met"
    assert claim_verdict(three, "base", "good") == "NOT met"
    same = aggregates(final_scores(results(gap=0.0, seeds=3)), ["good", "base"], reps=500)
    assert claim_verdict(same, "good", "base") == "NOT met"


def test_leaving_out_the_one_task_that_carries_the_claim_flips_the_verdict():
    data = results(gap=0.0, seeds=3, tasks=4)
    data.loc[(data.method == "good") & (data.task == "task2"), "score"] += 200  # only task2 separates them
    table = leave_one_task_out(final_scores(data), "good", "base", reps=1_000).set_index("left out")
    assert list(table.index) == ["task0", "task1", "task2", "task3"]
    assert table.loc["task2", "verdict"] == "NOT met" and table.loc["task2", "ratio"] == pytest.approx(1, abs=0.2)
    assert (table.drop("task2")["verdict"] == "met").all()


def test_equal_methods_have_overlapping_intervals_and_even_odds():
    data = results(gap=0.0)
    table = aggregates(final_scores(data), ["good", "base"], reps=2_000).set_index(["method", "metric"])
    assert table.loc[("good", "IQM"), "low"] < table.loc[("base", "IQM"), "high"]
    p = probability_of_improvement(final_scores(data), "good", "base", reps=200)
    assert 0.2 < p["p"] < 0.8 and p["low"] < 0.5 < p["high"]


def test_curve_and_per_task_table():
    data = results()
    curve = aggregate_curve(data, ["good", "base"], reps=500)
    assert sorted(curve["frame"].unique()) == [10_000, 20_000]
    iqm = curve.set_index(["method", "frame"])["IQM"]
    assert iqm[("good", 20_000)] > iqm[("good", 10_000)] > 0
    table = per_task_table(final_scores(data))
    assert table.loc[("task0", "good"), "seeds"] == 5 and table.loc[("task0", "good"), "ci"] > 0


def test_the_aggregate_curve_shades_a_ci_only_with_two_seeds_on_every_task():
    """One seed per task: the curve's CI is the line itself, so the figure draws no band and says so."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gsa.plots import aggregate_curves
    for seeds, bands in ((1, 0), (3, 2)):
        curve = aggregate_curve(results(seeds=seeds), ["good", "base"], reps=200)
        assert (curve["runs"] == seeds).all()
        fig, ax = plt.subplots()
        aggregate_curves(ax, curve)
        assert len(ax.collections) == bands  # fill_between: one PolyCollection per method
        assert [line.get_label() for line in ax.lines] == [f"good (n={seeds})", f"base (n={seeds})"]
        assert any("no CI" in t.get_text() for t in ax.texts) == (seeds == 1)
        plt.close(fig)


def test_the_metric_bars_draw_a_ci_only_for_methods_with_two_seeds_on_every_task():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gsa.plots import aggregate_bars
    for seeds, whiskers in ((1, 0), (3, 2)):
        table = aggregates(final_scores(results(seeds=seeds)), ["good", "base"], reps=200)
        fig = aggregate_bars(table, ["IQM", "mean"])
        for ax in fig.axes:
            bars = ax.containers[-1]  # the errorbar container: one whisker segment per method shown
            assert len(bars.lines[2][0].get_segments()) == whiskers
            assert [t.get_text() for t in ax.get_yticklabels()] == [f"good (n={seeds})", f"base (n={seeds})"]
        assert any("no CI" in t.get_text() for t in fig.texts) == (seeds == 1)
        plt.close(fig)


def test_a_task_one_method_lacks_is_left_out_not_scored_zero():
    data = results()
    data = data[~((data["method"] == "good") & (data["task"] == "task0"))]
    table = aggregates(final_scores(data), ["good", "base"], reps=500)
    assert set(table["tasks"]) == {5}  # only the tasks both methods have


def test_paper_scores_are_the_appendix_tables_normalised():
    from gsa.analysis import paper_scores

    paper = paper_scores("150k")
    assert len(paper) == 72 and set(paper.columns) == {"gsa", "dreamerv3", "drqv2"}
    assert paper.loc["mw-assembly", "gsa"] == pytest.approx(20.0)         # success 0.2 × 100
    assert paper.loc["mw-shelf-place", "gsa"] == pytest.approx(87.0)
    assert paper.loc["dmc-cheetah-run", "dreamerv3"] == pytest.approx(62.14)  # return 621.4 / 10
    assert paper.loc["dmc-walker-run-backwards", "gsa"] == pytest.approx(34.93)


def test_performance_profiles_fall_from_one_and_rank_the_methods():
    """Fraction of runs above τ: 1 at τ = 0 (scores ≥ 0 here are > 0), non-increasing in τ, and the better
    method's profile lies above the worse one's; CIs bracket the point."""
    final = final_scores(results(gap=30.0))
    prof = performance_profiles(final, ["good", "base"], taus=np.linspace(0, 100, 11), reps=200)
    for method, group in prof.groupby("method"):
        assert np.all(np.diff(group.fraction.to_numpy()) <= 1e-12)
        assert np.all((group.low <= group.fraction + 1e-12) & (group.fraction <= group.high + 1e-12))
    wide = prof.pivot(index="tau", columns="method", values="fraction")
    assert (wide.good >= wide.base).all() and (wide.good > wide.base).any()


def test_intervals_are_the_same_on_every_run_and_leave_numpys_generator_alone():
    """rliable's stratified bootstrap resamples with np.random, not the random_state it is passed: each
    function seeds it (and restores it), so the same results give the same CIs (they differed before)."""
    final = final_scores(results(seeds=3))
    np.random.seed(123)
    expected_next = np.random.rand()
    np.random.seed(123)
    first = aggregates(final, ["good", "base"], reps=500)
    np.random.rand(7)  # another state of the global generator: no effect on the intervals
    pd.testing.assert_frame_equal(first, aggregates(final, ["good", "base"], reps=500))
    pd.testing.assert_frame_equal(aggregate_curve(results(seeds=3), ["good", "base"], reps=200),
                                  aggregate_curve(results(seeds=3), ["good", "base"], reps=200))
    assert probability_of_improvement(final, "good", "base", reps=200) == \
        probability_of_improvement(final, "good", "base", reps=200)
    pd.testing.assert_frame_equal(performance_profiles(final, ["good", "base"], reps=200),
                                  performance_profiles(final, ["good", "base"], reps=200))
    other = aggregates(final, ["good", "base"], reps=500, seed=1)
    assert not np.allclose(other["low"], first["low"])  # the seed is what fixes them
    np.random.seed(123)
    aggregates(final, ["good", "base"], reps=500)
    assert np.random.rand() == expected_next


def test_a_figure_redrawn_from_the_same_results_is_byte_identical(tmp_path, monkeypatch):
    """Learning curves (seaborn's bootstrapped bands, seeded) saved twice: the same PNG and PDF bytes, so a
    redraw of the committed figures changes only those whose results changed."""
    from gsa import plots

    monkeypatch.setenv("GSA_FIGURES_DIR", str(tmp_path))
    data = results(seeds=3)
    saved = []
    for _ in range(2):
        plots.save(plots.learning_curves(data), "curves", "test")
        saved.append([(tmp_path / "test" / f"curves.{ext}").read_bytes() for ext in ("png", "pdf")])
    assert saved[0] == saved[1]


def test_same_starts_figure_has_a_panel_per_task_and_seed_and_draws_zero_actions_dashed():
    """Notebook 03's same-starts figure: one panel per (seed, task), each with every method that ran that seed and
    the zero-action curve on its starts, dashed; a method absent from a seed draws nothing there."""
    from gsa import plots

    rows = [{"task": task, "seed": seed, "method": method, "frame": frame, "score": frame / 10_000 + seed - 0.5 * (method == "zero actions")}
            for task in ("dmc-quadruped-run", "dmc-walker-run-backwards") for seed in (0, 1)
            for method in ("zero actions", "dreamerv3", "gsa") if not (method == "gsa" and seed == 1)
            for frame in (10_000, 20_000, 30_000)]
    fig = plots.same_starts_curves(pd.DataFrame(rows))
    axes = [ax for ax in fig.axes if ax.get_title()]
    assert sorted(ax.get_title() for ax in axes) == sorted(
        f"{t}, seed {s}" for t in ("dmc-quadruped-run", "dmc-walker-run-backwards") for s in (0, 1))
    for ax in axes:
        lines = [line for line in ax.get_lines() if len(line.get_xdata()) == 3]
        assert len(lines) == (3 if ax.get_title().endswith("seed 0") else 2)
        dashed = [line for line in lines if line.get_linestyle() != "-"]
        assert len(dashed) == 1 and dashed[0].get_ydata()[0] == 0.5 + int(ax.get_title()[-1])


def test_run_table_reports_goal_reached_at_any_step_only_where_it_was_recorded(tmp_path):
    import json
    from types import SimpleNamespace

    from gsa.analysis import run_table

    def run(name, task, evals, train):
        path = tmp_path / name
        path.mkdir()
        pd.DataFrame(evals).to_csv(path / "eval.csv", index=False)
        pd.DataFrame(train).to_csv(path / "train.csv", index=False)
        (path / "done.json").write_text(json.dumps({"seconds": 600}))
        return SimpleNamespace(task=task, label="gsa", seed=0, paths=lambda: (path, None))

    new = run("new", "mw-door-open", {"score": [0.0, 20.0], "success_any": [0.4, 1.0]},
              {"episode_return": [5.0, 9.0], "success": [0.0, 0.0], "success_any": [1.0, 0.0]})
    old = run("old", "mw-door-open", {"score": [0.0, 0.0]}, {"episode_return": [5.0, 0.0], "success": [0.0, 1.0]})
    table = run_table([new, old]).set_index(pd.Index(["new", "old"]))
    assert table.loc["new", "goal reached"] == "40 / 100" and table.loc["old", "goal reached"] == ""
    assert table.loc["new", "training episodes"] == "2: 2 with reward, 0 successes; 1 reached the goal at some step"
    assert table.loc["old", "training episodes"] == "2: 1 with reward, 1 successes"
    assert table["data collected"].isna().all()  # neither retrieved offline data


def test_run_table_dates_the_retrieved_data_by_its_earliest_episode_stamp(tmp_path):
    import json
    from types import SimpleNamespace

    from gsa.analysis import run_table

    (tmp_path / "eval.csv").write_text("score\n0.0\n")
    (tmp_path / "train.csv").write_text("episode_return\n1.0\n")
    (tmp_path / "done.json").write_text("{}")
    ids = ["20261204T152503-1cdacb6025de4e5c-0-500", "20261203T100010-1293b77ced3dcfed-129-500", "custom-episode"]
    (tmp_path / "retrieval.json").write_text(json.dumps({"k": 3, "ids": ids}))
    run = SimpleNamespace(task="dmc-cheetah-run", label="gsa", seed=0, paths=lambda: (tmp_path, None))
    assert run_table([run]).loc[0, "data collected"] == "2026-12-03"
    (tmp_path / "retrieval.json").write_text(json.dumps({"k": 3, "ids": ids, "retrieved_sha256": "9f86d081" + "0" * 56}))
    assert run_table([run]).loc[0, "data collected"] == "2026-12-03 · 9f86d081"


def test_a_variant_gets_a_colour_of_its_own_beside_its_base_method():
    """Fig. 7 shows p+er and p+er.ots side by side: they must not share a colour; fixed colours stay fixed."""
    from gsa.plots import METHOD_COLORS, palette

    colours = palette(iter(["p+er", "p+er.ots", "gsa", "gsa.dynamics", "gsa.encoder_decoder"]))
    assert len(set(colours.values())) == 5
    assert colours["gsa"] == METHOD_COLORS["gsa"] and colours["p+er"] == METHOD_COLORS["p+er"]
    assert not {colours[m] for m in ("p+er.ots", "gsa.dynamics", "gsa.encoder_decoder")} & set(METHOD_COLORS.values())
