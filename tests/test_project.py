"""Project-level checks: pins agree, the first notebook runs under papermill and draws its figure."""
import re
import tomllib
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_environment_yml_and_pyproject_pin_the_same_versions():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pyproject = set(project["dependencies"]) | set(project["optional-dependencies"]["dev"])
    conda_pip = set(re.findall(r"^\s+- ([A-Za-z0-9_.-]+==[^\s]+)\s*$", (ROOT / "environment.yml").read_text(), re.M))
    assert pyproject == conda_pip
    assert all("==" in pin for pin in pyproject)


def test_readme_starts_with_the_two_commands_and_ci_runs_the_second():
    commands = re.findall(r"```(?:bash|sh)\n(.+?)\n```", (ROOT / "README.md").read_text(), re.S)[:2]
    assert len(commands) == 2 and "reproduce" in commands[0] and "test" in commands[1]
    assert commands[1].strip() in (ROOT / ".ci" / "run").read_text()


def test_environments_notebook_runs_under_papermill(tmp_path, monkeypatch):
    import nbformat

    from gsa.reproduce import run_notebook

    monkeypatch.setenv("GSA_FIGURES_DIR", str(tmp_path / "figures"))
    monkeypatch.setenv("GSA_RESULTS_DIR", str(tmp_path / "results"))
    output = run_notebook("00_environments", "smoke", random_steps=0)
    assert output == tmp_path / "results" / "notebooks" / "smoke" / "00_environments.ipynb"
    assert (tmp_path / "figures" / "smoke" / "environments.png").stat().st_size > 50_000
    assert (tmp_path / "figures" / "smoke" / "environments.pdf").exists()
    cells = nbformat.read(output, as_version=4).cells
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in cells)


def test_built_notebooks_match_their_jupytext_sources():
    import jupytext

    from gsa.reproduce import cells

    for source in sorted((ROOT / "notebooks").glob("[0-9]*.py")):
        built = source.with_suffix(".ipynb")
        assert built.exists(), f"{built.name} missing: run `make notebooks`"
        assert cells(jupytext.read(built)) == cells(jupytext.read(source)), f"{built.name} is stale: `make notebooks`"


def write_synthetic_study(preset: str, extra_methods: tuple[str, ...] = (), variants: dict | None = None) -> None:
    """eval.csv / train.csv / retrieval.json / done.json of every run of the preset's study (and of
    ``extra_methods`` on its tasks, seed 0, under each of ``variants`` if given), as a finished sweep writes
    them, with GSA better by construction (under ``GSA_RESULTS_DIR``)."""
    import json

    import numpy as np

    from gsa.experiments.studies import study, study_runs
    from gsa.experiments.sweep import expand

    rng = np.random.default_rng(0)
    extra = expand(preset, preset, list(extra_methods), list(study(preset).tasks), [0], variants) if extra_methods else []
    for run in study_runs(preset) + extra:
        path = run.paths()[0]
        path.mkdir(parents=True)
        good = run.method == "gsa"
        retrieves = run.method in ("gsa", "p+er")
        rows = ["frame,episode_return,success,score" + (",success_any" if good else "")]  # GSA's: newer runs
        for frame in (1000, 2000, 3000, 4000):
            success = float(good and frame >= 2000)
            ret = (300 if good else 100) * frame / 4000 + rng.normal(0, 5)
            rows.append(f"{frame},{ret},{success},{100 * success if run.task.startswith('mw-') else ret / 10}"
                        + (f",{1.0 if run.task.startswith('mw-') else ''}" if good else ""))
        (path / "eval.csv").write_text("\n".join(rows) + "\n")
        (path / "train.csv").write_text("frame,episode,episode_return,success,guided,prior_steps,recon,reward_loss\n"
                                        f"200,1,5.0,0.0,{retrieves},100,,\n400,2,0.0,1.0,False,50,0.5,1.0\n")
        (path / "retrieval.json").write_text(json.dumps({"k": 8, "embodiment": "x", "precision_at_k": 0.5,
                                                         "embodiment_precision": 1.0} if retrieves else {}))
        code = {"code": [None, "abc1234567"]} if good else {}  # GSA's: resumed after the code was recorded
        (path / "done.json").write_text(json.dumps({"frames": 4000, "seconds": 600.0, "cpu_seconds": 540.0, **code}))
        if good:  # `gsa diagnose`'s report: the fit per group and the policies played alone
            group = {"group": "online", "episodes": 2, "reward_pred": 1.0, "reward_true": 1.1, "imag_reward": 1.5,
                     "value": 400.0, "value_per_step": 1.2,
                     **({"imag_reward_long": 2.0, "value_imagined": 500.0} if run.task.startswith("mw-") else {})}
            policies = [{"policy": name, "episodes": 10, "episode_return": ret, "success": 0.0, "success_any": 1.0}
                        for name, ret in (("π_RL (mean action)", 50.0), ("π_bc (whole episodes)", 900.0))]
            objects = [{"source": source, "step": 50, "starts": 6, "reward": 1.0, "hand_to_object": 0.1,
                        "object_to_goal": goal, "object_height": 0.03} for source, goal in
                       (("real episode", 0.4), ("model, π imagined", 0.1))] if run.task.startswith("mw-") else []
            (path / "diagnostics.json").write_text(json.dumps({"method": "gsa", "task": run.task, "frame": 4000,
                                                               "groups": [group], "policies": policies,
                                                               **({"objects": objects} if objects else {})}))


def test_finetune_notebook_makes_the_study_figures_from_results_on_disk_without_training(tmp_path, monkeypatch):
    """notebooks/03_finetune with run=False: figures, aggregates and the claim check from eval.csv files alone
    (synthetic ones here, where GSA is better by construction), no checkpoint, no world model."""
    import nbformat
    import pandas as pd

    from gsa.reproduce import run_notebook

    monkeypatch.setenv("GSA_FIGURES_DIR", str(tmp_path / "figures"))
    monkeypatch.setenv("GSA_RESULTS_DIR", str(tmp_path / "results"))
    write_synthetic_study("smoke")
    output = run_notebook("03_finetune", "smoke", run=False, bootstrap_reps=400)
    text = "\n".join(o.get("text", "") for c in nbformat.read(output, as_version=4).cells for o in c.get("outputs", []))
    assert "ratio" in text and "target (ratio >= 1.3 and separated CIs):" in text
    for name in ("finetune_smoke", "finetune_smoke_aggregate", "finetune_smoke_metrics", "finetune_smoke_guidance",
                 "finetune_smoke_world_model_fit", "finetune_smoke_mw_returns", "finetune_smoke_mw_goal_reached"):
        assert (tmp_path / "figures" / "smoke" / f"{name}.png").exists(), name
    ratio = re.search(r"-> ratio ([0-9.]+|inf),", text)
    assert ratio and float(ratio.group(1)) >= 1.3, ratio  # GSA is better by construction, but with one seed per task …
    assert "target (ratio >= 1.3 and separated CIs): not judged: 1 seed(s)" in text  # … the CIs are points
    assert "CIs are points (one seed)" in text
    tidy = pd.read_csv(tmp_path / "results" / "smoke.csv")  # success_any where the runs recorded it, else empty
    mw = tidy[tidy.task.str.startswith("mw-")]
    assert (mw[mw.method == "gsa"].success_any == 1.0).all() and mw[mw.method != "gsa"].success_any.isna().all()
    split = pd.read_csv(tmp_path / "results" / "finetune_smoke_guided_split.csv")
    gsa = split[split.method == "gsa"]  # each run (one per task): a guided episode (5.0), an unguided success
    assert len(gsa) == 4 and (gsa[gsa.guided].mean_return == 5.0).all() and (gsa[gsa.guided].rewarded == 1).all()
    assert (gsa[~gsa.guided].successes == 1).all()
    assert not split[split.method == "dreamerv3"].guided.any()
    runs = pd.read_csv(tmp_path / "results" / "finetune_smoke_runs.csv").set_index(["method", "task", "seed"])
    assert len(runs) == 4 and (runs["minutes"] == 10).all() and (runs["CPU minutes"] == 9).all()
    assert (runs.loc["gsa", "code"] == "?, abc1234567").all() and runs.loc["dreamerv3", "code"].isna().all()
    assert runs.loc[("gsa", "mw-reach", 0), "training episodes"] == "2: 1 with reward, 1 successes (0 guided)"
    assert runs.loc[("dreamerv3", "mw-reach", 0), "training episodes"] == "2: 1 with reward, 1 successes"
    assert runs.loc[("gsa", "mw-reach", 0), "scores"] == "0 / 100 / 100 / 100"
    played = pd.read_csv(tmp_path / "results" / "finetune_smoke_policies.csv")
    assert len(played) == 2 * len(runs.loc["gsa"]) and (played["method"] == "gsa").all() and (played["success_any"] == 1.0).all()
    runs_md = (tmp_path / "results" / "tables" / "smoke" / "finetune_runs.md").read_text().splitlines()
    assert runs_md[0].startswith("| task | method | seed | scores |") and len(runs_md) == 2 + len(runs)
    final_md = (tmp_path / "results" / "tables" / "smoke" / "finetune_final.md").read_text()
    assert final_md.startswith("| task | gsa | dreamerv3 |") and "| mw-reach |" in final_md
    imagined = pd.read_csv(tmp_path / "results" / "finetune_smoke_imagination.csv").set_index("task")
    assert imagined.loc["dmc-cartpole-balance", "π_RL alone"] == 50.0 / 500  # the return over 500 agent steps
    assert imagined.loc["mw-reach", "imagined / π_RL alone"] == 1.5 / (50.0 / 100)  # Meta-World: 100 agent steps
    assert imagined.loc["mw-reach", "value / imagined"] == 0.8 and np.isnan(imagined.loc["dmc-cartpole-balance", "value / imagined"])
    imagined_md = (tmp_path / "results" / "tables" / "smoke" / "finetune_imagination.md").read_text()
    objects = pd.read_csv(tmp_path / "results" / "finetune_smoke_objects.csv").set_index(["task", "source"])
    assert objects.loc[("mw-reach", "model, π imagined"), "object_to_goal"] == 0.1 and len(objects) == 2
    assert "| value / imagined |" in imagined_md.splitlines()[0] and "| mw-reach | gsa |" in imagined_md


def test_theory_notebook_runs_and_writes_its_figures(tmp_path, monkeypatch):
    """notebooks/05_theory under papermill with few instances: the synthetic checks and their figures (the
    real-data check, which needs a pre-trained model, is switched off and says so)."""
    import nbformat

    from gsa.reproduce import run_notebook

    monkeypatch.setenv("GSA_FIGURES_DIR", str(tmp_path / "figures"))
    monkeypatch.setenv("GSA_RESULTS_DIR", str(tmp_path / "results"))
    output = run_notebook("05_theory", "smoke", instances=20, real_data=False)
    for name in ("theory_retrieval_tv", "theory_rehearsal", "theory_guidance"):
        assert (tmp_path / "figures" / "smoke" / f"{name}.png").exists(), name
    text = "\n".join(str(o.get("data", {}).get("text/plain", o.get("text", "")))
                     for c in nbformat.read(output, as_version=4).cells for o in c.get("outputs", []))
    assert "not run (real_data=False)" in text


def test_paper_notebook_writes_figures_and_tables_with_the_papers_numbers_beside(tmp_path, monkeypatch):
    """notebooks/06_paper on synthetic smoke results (with ExPLORe on the study's tasks and a continual
    chain): its figures and tables exist, Fig. 4's offline-baseline panels and Fig. 5's chain among them;
    DrQ-v2 (never run) shows as "not run"; every paper-value cell is the reference file's number; the
    hyper-parameter table is the paper preset's config."""
    import numpy as np
    import pandas as pd

    from gsa.config import hyperparameter_table, preset
    from gsa.reproduce import run_notebook

    monkeypatch.setenv("GSA_FIGURES_DIR", str(tmp_path / "figures"))
    monkeypatch.setenv("GSA_RESULTS_DIR", str(tmp_path / "results"))
    write_synthetic_study("smoke", extra_methods=("explore",))
    tasks = preset("smoke").continual.tasks
    rows = [(m, 0, i + 1, t, 2000, 50.0 + i, 40.0 if m == "packnet" else None) for m in ("gsa", "packnet")
            for i, t in enumerate(tasks)]
    pd.DataFrame(rows, columns=["method", "seed", "position", "task", "frames", "score", "score_masked"]).to_csv(
        tmp_path / "results" / "continual-smoke_chain.csv", index=False)
    pd.DataFrame([(m, t, 0, f, 100.0, np.nan, 10.0) for m in ("gsa", "packnet") for t in tasks for f in (1000, 2000)],
                 columns=["method", "task", "seed", "frame", "return", "success", "score"]).to_csv(
        tmp_path / "results" / "continual-smoke.csv", index=False)
    run_notebook("06_paper", "smoke", tsne=False, bootstrap_reps=400)
    for name in ("paper_aggregate_curves", "paper_metrics", "paper_profiles", "paper_offline_baselines",
                 "paper_continual"):
        for ext in ("png", "pdf"):
            assert (tmp_path / "figures" / "smoke" / f"{name}.{ext}").exists(), name
    tables = tmp_path / "results" / "tables" / "smoke"
    reference = pd.read_csv(ROOT / "results" / "reference" / "paper_scores.csv")
    reference = reference[reference.budget == "150k"].set_index(["task_id", "method"])["score"]
    names = {"gsa": "GSA", "dreamerv3": "DreamerV3", "drqv2": "DrQv2"}
    for benchmark, task in (("metaworld", "mw-reach"), ("dmc", "dmc-cartpole-balance")):
        table = pd.read_csv(tables / f"per_task_{benchmark}.csv", index_col="task")
        assert table.loc[task, "drqv2"] == "not run" and table.loc[task, "gsa"] != "not run"
        for method, name in names.items():
            assert float(table.loc[task, f"{method} (paper @150k)"]) == pytest.approx(reference[(task, name)], abs=1e-9)
    params = pd.read_csv(tables / "hyperparameters.csv", keep_default_na=False)
    expected = hyperparameter_table(preset("paper"))
    assert params["paper"].tolist() == expected["value"].astype(str).tolist()
    assert set(pd.read_csv(tables / "aggregates.csv").method) == {"gsa", "dreamerv3"}
    continual = pd.read_csv(tables / "continual.csv", header=[0, 1], index_col=0)
    assert list(continual.index) == list(tasks)
    zero = continual[("score", "zero actions, same starts")]  # zero actions on the runs' last evaluation starts
    assert zero.notna().all() and (zero >= 0).all()
    assert continual[("score_masked", "zero actions, same starts")].notna().all()  # PackNet's pruned evaluation starts


def test_ablation_notebook_shows_the_components_and_empty_slots(tmp_path, monkeypatch):
    """notebooks/04_ablations on synthetic smoke results with all four components and the OTS variant: the
    Fig. 6 and Fig. 7 figures and tables are written; the variants nobody ran get no figure."""
    import nbformat
    import pandas as pd

    from gsa.reproduce import run_notebook

    monkeypatch.setenv("GSA_FIGURES_DIR", str(tmp_path / "figures"))
    monkeypatch.setenv("GSA_RESULTS_DIR", str(tmp_path / "results"))
    write_synthetic_study("smoke", extra_methods=("p", "p+er"),
                          variants={"": {}, "ots": {"finetune.reward_uncertainty": True}})  # and p+er.ots (Fig. 7)
    output = run_notebook("04_ablations", "smoke", bootstrap_reps=400)
    figures = tmp_path / "figures" / "smoke"
    assert (figures / "ablation_components.png").exists() and (figures / "ablation_fig7.png").exists()
    assert not (figures / "ablation_fig8.png").exists()  # no fine-tuned-parts variant ran
    tables = tmp_path / "results" / "tables" / "smoke"
    components = pd.read_csv(tables / "ablation_components.csv")
    assert set(components.method) == {"dreamerv3", "p", "p+er", "gsa"} and set(components.benchmark) == {"all", "dmc", "metaworld"}
    fig7 = pd.read_csv(tables / "ablation_fig7.csv", index_col="task")
    assert set(fig7.index) == {"dmc-cartpole-balance", "mw-reach"} and not fig7.isin(["not run"]).any().any()
    assert len(pd.read_csv(tables / "ablation_fig8.csv")) == 0  # smoke plans no Fig. 8 variant and none ran
    assert pd.read_csv(tables / "retrieval_precision_at_k.csv")["embodiment precision"].eq(1.0).all()
    text = "\n".join(str(o.get("data", {}).get("text/plain", o.get("text", "")))
                     for c in nbformat.read(output, as_version=4).cells for o in c.get("outputs", []))
    assert "schedule-length variants (gsa.schedule<N>k) not run" in text


def test_no_project_file_points_outside_the_repository():
    """The project stands on its own: no tracked file refers to the team's folder beside the repository."""
    import subprocess

    needle = "../" + "shared"  # spelled so that this file does not match itself
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    offenders = [f for f in files if (ROOT / f).is_file() and not f.endswith((".png", ".pdf"))
                 and needle in (ROOT / f).read_text(errors="ignore")]
    assert not offenders, offenders


def test_hyperparameter_notes_keep_comments_continued_on_the_next_lines():
    """A field's comment that runs onto further comment lines (indented under it) is one note; a comment block
    above the next field is not part of it."""
    from gsa.config import hyperparameter_table, preset

    notes = hyperparameter_table(preset("paper")).set_index(["section", "name"])["note"]
    assert notes["data", "dmc_sources"].endswith("(gsa/explore.py), early to late")
    assert notes["rlpd", "shift_pad"] == "random-shift augmentation (pixels)"  # not the ExPLORe block below it
