"""Experience retrieval (method §5.2): first-frame database, exact L2 search restricted to one embodiment."""
from __future__ import annotations

import numpy as np
import pytest

from gsa.retrieval import RetrievalDatabase, build_database

# (embodiment, task, trajectories): each (embodiment, task) has its own colour of first frame
GROUPS = [("walker", "dmc-walker-run", 30), ("walker", "dmc-walker-stand", 30), ("cheetah", "dmc-cheetah-run", 25),
          ("sawyer", "mw-reach", 5)]
COLOURS = np.array([[40, 40, 200], [200, 40, 40], [40, 200, 40], [200, 200, 40]])


def frames_of(group: int, count: int, rng) -> np.ndarray:
    """uint8 (count, 3, 8, 8) frames: the group's colour plus a little noise."""
    base = COLOURS[group][None, :, None, None] + rng.integers(-10, 11, size=(count, 3, 8, 8))
    return base.astype(np.uint8)


def encode(frames: np.ndarray) -> np.ndarray:
    """Synthetic encoder: mean colour per channel, (N, 3) float32."""
    return frames.reshape(len(frames), 3, -1).mean(-1).astype(np.float32)


@pytest.fixture
def database() -> RetrievalDatabase:
    rng = np.random.default_rng(0)
    frames = np.concatenate([frames_of(g, n, rng) for g, (_, _, n) in enumerate(GROUPS)])
    embodiments = [e for e, _, n in GROUPS for _ in range(n)]
    tasks = [t for _, t, n in GROUPS for _ in range(n)]
    chunks = (frames[i:i + 16] for i in range(0, len(frames), 16))
    return build_database(chunks, encode, ids=[f"ep{i}" for i in range(len(frames))], embodiments=embodiments,
                          tasks=tasks, manifest_hash="abc123", progress=False)


def query(group: int, count: int = 1, seed: int = 1):
    rng = np.random.default_rng(seed)
    return lambda: encode(frames_of(group, count, rng))


def test_retrieves_nearest_of_the_same_embodiment_only(database):
    for group, (embodiment, task, _) in enumerate(GROUPS[:3]):
        ids = database.retrieve(query(group), embodiment, k=20)
        assert len(ids) == len(set(ids)) == 20
        assert {database.embodiments[database.ids == i][0] for i in ids} == {embodiment}
        assert database.precision_at_k(ids, task) == 1.0
    # walker and cheetah frames are as near to a reach frame as the other reach frames: only sawyer ones count
    ids = database.retrieve(query(3), "sawyer", k=3)
    assert database.precision_at_k(ids, "mw-reach") == 1.0
    assert database.precision_at_k(database.retrieve(query(1), "walker", k=40), "dmc-walker-stand") == 0.75


def test_fewer_trajectories_than_k_returns_all_with_a_warning(database):
    with pytest.warns(UserWarning, match="only 5 trajectories"):
        ids = database.retrieve(query(3), "sawyer", k=500)
    assert sorted(ids) == sorted(database.ids[database.embodiments == "sawyer"])


def test_unknown_embodiment_raises(database):
    with pytest.raises(ValueError, match="quadruped"):
        database.retrieve(query(0), "quadruped", k=5)


def test_several_queries_rank_by_nearest_query(database):
    queries = np.concatenate([query(0)(), query(1)()])  # one reset frame of each walker task
    ids = database.retrieve(lambda: queries, "walker", k=60)
    assert len(set(ids)) == 60
    assert database.precision_at_k(ids[:2], "dmc-walker-run") < 1  # both queries' nearest come first


def test_exact_l2_order_matches_brute_force():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(200, 16)).astype(np.float32)
    embodiments = rng.choice(["a", "b"], size=200)
    db = RetrievalDatabase(features, np.array([f"ep{i}" for i in range(200)]), embodiments,
                           np.full(200, ""), "h")
    q = rng.normal(size=16).astype(np.float32)
    rows = np.flatnonzero(embodiments == "b")
    squared = ((features[rows] - q) ** 2).sum(1)
    expected = rows[np.argsort(squared)][:30]
    assert db.retrieve(lambda: q, "b", k=30) == [f"ep{i}" for i in expected]
    distances, found = db.search(q[None], "b", k=30)
    np.testing.assert_array_equal(found[0], expected)
    np.testing.assert_allclose(distances[0], np.sort(squared)[:30], rtol=1e-4)


def test_save_load_round_trip(database, tmp_path):
    path = tmp_path / "retrieval.npz"
    database.save(path)
    loaded = RetrievalDatabase.load(path, expected_manifest_hash="abc123")
    for name in ("features", "ids", "embodiments", "tasks"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(database, name))
    assert loaded.manifest_hash == "abc123"
    assert loaded.retrieve(query(0), "walker", 10) == database.retrieve(query(0), "walker", 10)
    assert [p.name for p in tmp_path.iterdir()] == ["retrieval.npz"]  # no temporary file left


def test_manifest_hash_mismatch_asks_to_rebuild(database, tmp_path):
    database.save(tmp_path / "retrieval.npz")
    with pytest.raises(ValueError, match="rebuild"):
        RetrievalDatabase.load(tmp_path / "retrieval.npz", expected_manifest_hash="def456")


def test_build_checks_alignment_and_missing_tasks():
    frames = np.zeros((4, 3, 8, 8), np.uint8)
    db = build_database([frames], encode, ids=range(4), embodiments=["walker"] * 4, tasks=[None, float("nan"),
                        "dmc-walker-run", None], progress=False)
    assert db.tasks.tolist() == ["", "", "dmc-walker-run", ""] and db.features.shape == (4, 3)
    with pytest.raises(ValueError, match="aligned"):
        build_database([frames], encode, ids=range(5), embodiments=["walker"] * 5, progress=False)
