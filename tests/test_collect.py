"""Dataset generation: round trip, re-rendering, resume after a kill, noisy-expert quality."""
import os
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pandas as pd
import pytest

from gsa.config import preset
from gsa.data import load_episode, read_manifest, save_episode
from gsa.data.card import coverage, write_card
from gsa.data.collect import Job, collect, expert_name, jobs, run_job
from gsa.data.store import OfflineDataset
from gsa.envs import make
from gsa.envs.registry import MW_TASKS

OVERRIDES = {"data.dmc_embodiments": ("cartpole",), "data.dmc_episodes": 2, "data.dmc_length": 12,
             "data.dmc_sources": ("random", "ou"),
             "data.mw_tasks": ("reach",), "data.mw_episodes": 2, "data.workers": 2}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    cfg = preset("smoke", {**OVERRIDES, "data.root": str(tmp_path_factory.mktemp("data") / "smoke")}).data
    return cfg, collect(cfg, progress=False)


def test_manifest_and_round_trip(dataset):
    cfg, manifest = dataset
    assert len(manifest) == 4
    assert manifest.groupby("embodiment").size().to_dict() == {"cartpole": 2, "sawyer": 2}
    assert sorted(manifest.sigma.dropna()) == [0.1, 0.3]
    assert set(manifest.source) == {"random", "ou", "expert"}
    ds = OfflineDataset(cfg.root, progress=False)
    for i, row in enumerate(manifest.itertuples()):
        episode = load_episode(f"{cfg.root}/{row.path}", row.sha256)
        assert len(episode["observation"]) == row.length + 1 == (13 if row.benchmark == "dmc" else 101)
        assert np.array_equal(ds.episode(i)["observation"], episode["observation"])
        assert np.array_equal(ds.episode(i)["action"][:, :row.action_size], episode["action"])
        assert np.all(np.abs(episode["action"]) <= 1) and np.all(episode["action"][0] == 0)
    card = write_card(cfg.root).read_text()
    assert "success rate by noise" in card and "cartpole" in card and "State-space coverage" in card


def test_coverage_counts_cells_of_equal_state_counts_and_pools_explorer_snapshots(tmp_path):
    """A source whose states spread over the embodiment's state space covers more cells than one that stays
    near a point; snapshots ``p2e@<frames>`` pool into one source; each source is cut to the smallest's
    number of states; Meta-World episodes have no coverage rows."""
    rng, rows = np.random.default_rng(0), []

    def add(source: str, spread: float, episodes: int, benchmark: str = "dmc", embodiment: str = "cheetah"):
        for _ in range(episodes):
            i = len(rows)
            episode = {"action": np.zeros((51, 6), np.float32), "state": rng.normal(size=(51, 17)).astype(np.float32),
                       "physics": rng.normal(scale=spread, size=(51, 18))}
            path = f"{embodiment}/{i}.npz"
            (tmp_path / embodiment).mkdir(exist_ok=True)
            rows.append({"id": str(i), "path": path, "benchmark": benchmark, "embodiment": embodiment, "task": None,
                         "source": source, "sigma": None, "length": 50, "action_size": 6,
                         "sha256": save_episode(tmp_path / path, episode)})

    add("p2e@100", 1.0, 2), add("p2e@200", 1.0, 2), add("random", 0.05, 6)
    add("expert", 1.0, 2, benchmark="metaworld", embodiment="sawyer")
    table = coverage(tmp_path, pd.DataFrame(rows)).set_index("source")
    assert table.index.tolist() == ["p2e", "random"] and (table["embodiment"] == "cheetah").all()
    assert (table["states"] == 4 * 51).all() and (table["of"] == 10 ** 4).all()
    assert table.loc["p2e", "cells"] > 10 * table.loc["random", "cells"]
    assert table["cells"].max() <= 4 * 51


@pytest.mark.parametrize("benchmark", ["dmc", "metaworld"])
def test_frames_rendered_from_physics_equal_online_frames(dataset, benchmark):
    cfg, manifest = dataset
    job = next(j for j in jobs(cfg) if j.benchmark == benchmark)
    row = manifest[manifest.id.str.contains(job.uuid)].iloc[0]
    episode = load_episode(f"{cfg.root}/{row.path}")
    env = make(job.task, obs="pixels")  # rendering online, no stored physics
    frames = [env.reset(seed=job.seed)[0]]
    for action in episode["action"][1:]:
        frames.append(env.step(action)[0])
    assert np.array_equal(np.stack(frames), episode["observation"])  # pixel-identical


def test_killed_collection_resumes_without_duplicates(tmp_path):
    root = tmp_path / "killed"
    overrides = [f"data.root={root}", "data.dmc_embodiments=['cartpole']", "data.dmc_episodes=6",
                 "data.dmc_length=60", "data.mw_tasks=[]", "data.workers=1", "data.dmc_sources=['random', 'ou']"]
    command = [sys.executable, "-m", "gsa.cli", "collect", "--preset", "smoke"]
    for item in overrides:
        command += ["-o", item]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while len(list(root.glob("dmcontrol/*/*.npz"))) < 2 and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    before = {p.name: p.stat().st_mtime_ns for p in root.glob("dmcontrol/*/*.npz")}
    assert 2 <= len(before) < 6, "the kill should land mid-collection"
    cfg = preset("smoke", overrides).data
    manifest = collect(cfg, progress=False)
    after = sorted(p.name for p in root.glob("dmcontrol/*/*.npz"))
    assert len(after) == len(manifest) == 6 and manifest.id.is_unique
    assert {job.uuid for job in jobs(cfg)} == {name.split("-")[1] for name in after}
    assert all((root / "dmcontrol/cartpole" / n).stat().st_mtime_ns == t for n, t in before.items()), \
        "finished episodes must not be redone"
    assert not list(root.rglob("*.tmp")), "no partial files may remain"
    for row in read_manifest(root).itertuples():
        load_episode(root / row.path, row.sha256)


def test_expert_names_exist_for_all_tasks():
    import metaworld.policies

    assert all(hasattr(metaworld.policies, expert_name(f"mw-{t}")) for t in MW_TASKS)


def test_noise_lowers_expert_success():
    warnings.filterwarnings("ignore", message="Constant")
    success = {}
    for sigma in (0.1, 2.0):
        runs = [run_job(Job("metaworld", "mw-button-press", "sawyer", "expert", sigma, i, 1000 + i),
                        render=False)[1]
                for i in range(6)]
        success[sigma] = np.mean([r["success"] for r in runs])
    assert success[0.1] >= 0.8 and success[2.0] <= 0.2, success


def test_state_only_dataset_skips_rendering_and_samples_states(tmp_path):
    """``data.obs="state"`` (the cpu preset): no frames are rendered or stored; the store and the sampler
    serve padded state vectors, and asking it for frames is a clear error."""
    from gsa.data.sampler import MixedSampler

    cfg = preset("smoke", {**OVERRIDES, "data.root": str(tmp_path / "state"), "data.obs": "state"}).data
    manifest = collect(cfg, progress=False)
    episode = load_episode(f"{cfg.root}/{manifest.path[0]}")
    assert "observation" not in episode and episode["state"].shape == (13, 5)
    ds = OfflineDataset(cfg.root, progress=False)
    assert ds.frame_shape == () and not (tmp_path / "state" / "packed" / "frames.u8").stat().st_size
    batch = MixedSampler([(ds, 1.0)], 4, 8, 12, obs_key="state", obs_shape=(78,)).sample()
    assert batch["state"].shape == (4, 8, 78) and np.all(batch["state"][..., 39:] == 0)
    assert np.abs(batch["state"]).sum() > 0
    with pytest.raises(ValueError, match="state-only"):
        next(ds.first_frames())


def test_recollecting_with_the_same_recipe_gives_the_same_episodes(tmp_path):
    """A machine that lost ``data/`` collects it again with the same recipe and seeds: the random, OU and
    noisy-expert episodes must come out the same, array for array and file hash for file hash (only the ids'
    time stamps differ), which is what a run's ``retrieved_sha256`` compares. Plan2Explore snapshots are not
    covered (their explorers are trained with torch)."""
    first, second = (preset("smoke", {**OVERRIDES, "data.root": str(tmp_path / name), "data.obs": "state"}).data
                     for name in ("first", "second"))
    episodes, hashes = [], []
    for cfg in (first, second):
        manifest = collect(cfg, progress=False)
        episodes.append({row.id.split("-", 1)[1]: load_episode(f"{cfg.root}/{row.path}") for row in manifest.itertuples()})
        hashes.append(dict(zip(episodes[-1], manifest["sha256"])))
    assert episodes[0].keys() == episodes[1].keys() and len(episodes[0]) == 4
    assert hashes[0] == hashes[1]
    for name, episode in episodes[0].items():
        again = episodes[1][name]
        assert episode.keys() == again.keys()
        assert all(np.array_equal(episode[k], again[k]) for k in episode), name


def test_collecting_one_benchmark_alone_keeps_the_other_ones_episodes(tmp_path):
    """``-o data.dmc_embodiments=[]`` collects the Meta-World part alone and ``-o data.mw_tasks=[]`` the DMC part
    (`gsa sweep --status` suggests them): the second must not drop the first's episodes from the manifest, and
    the two together must list what one whole collection lists, in its order."""
    def data(root: str, **narrowed):
        return preset("smoke", {**OVERRIDES, "data.root": str(tmp_path / root), "data.obs": "state", **narrowed}).data

    whole = collect(data("whole"), progress=False)
    collect(data("parts", **{"data.dmc_embodiments": ()}), progress=False)
    parts = collect(data("parts", **{"data.mw_tasks": ()}), progress=False)
    columns = ["benchmark", "task", "source", "sha256"]
    assert parts[columns].equals(whole[columns]) and set(parts["benchmark"]) == {"dmc", "metaworld"}
    analysis = {root: pd.read_csv(tmp_path / root / "analysis.csv", dtype={"id": str}) for root in ("whole", "parts")}
    assert list(analysis["parts"]["id"]) == list(parts["id"])
    pd.testing.assert_frame_equal(analysis["parts"].drop(columns="id"), analysis["whole"].drop(columns="id"))
    again = collect(data("parts", **{"data.mw_tasks": ()}), progress=False)  # a part already there: nothing changes
    assert again.equals(parts)
