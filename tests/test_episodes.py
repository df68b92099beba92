"""Episode files and manifests: bit-exact round trip, NCRL import, clear errors, atomic writes."""
import numpy as np
import pytest

from gsa.data import EpisodeError, import_ncrl, load_episode, read_manifest, save_episode, write_manifest


def episode(T=10, A=6, seed=0):
    rng = np.random.default_rng(seed)
    action = rng.uniform(-1, 1, (T + 1, A)).astype(np.float32)
    action[0] = 0
    return {"observation": rng.integers(0, 256, (T + 1, 3, 64, 64), dtype=np.uint8), "action": action,
            "physics": rng.normal(size=(T + 1, 18))}


def test_round_trip_is_bit_exact_and_checksummed(tmp_path):
    ep = episode()
    digest = save_episode(tmp_path / "a.npz", ep)
    loaded = load_episode(tmp_path / "a.npz", digest)
    assert loaded.keys() == ep.keys()
    assert all(np.array_equal(loaded[k], ep[k]) and loaded[k].dtype == ep[k].dtype for k in ep)
    write_manifest(tmp_path, [dict(id="a", path="a.npz", benchmark="dmc", embodiment="walker", task=None,
                                   source="random", sigma=None, length=10, action_size=6, sha256=digest)])
    row = read_manifest(tmp_path).iloc[0]
    assert row["sha256"] == digest and row["length"] == 10


def test_bad_files_give_errors_naming_the_file(tmp_path):
    path = tmp_path / "a.npz"
    digest = save_episode(path, episode())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(EpisodeError, match="a.npz"):
        load_episode(path)
    with pytest.raises(EpisodeError, match="checksum mismatch.*a.npz"):
        load_episode(path, digest)
    with pytest.raises(EpisodeError, match="missing.*b.npz"):
        load_episode(tmp_path / "b.npz")
    write_manifest(tmp_path, [dict(id="b", path="b.npz", benchmark="dmc", embodiment="walker", length=1,
                                   action_size=6, sha256="0")])
    with pytest.raises(EpisodeError, match="b.npz"):
        read_manifest(tmp_path)
    bad = episode()
    bad["action"][0] = 1
    with pytest.raises(EpisodeError, match="row 0"):
        save_episode(tmp_path / "c.npz", bad)


def test_interrupted_write_leaves_no_file(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez_compressed", boom)
    with pytest.raises(KeyboardInterrupt):
        save_episode(tmp_path / "a.npz", episode())
    assert list(tmp_path.iterdir()) == []


def test_import_ncrl_layout(tmp_path):
    save_episode(tmp_path / "dmcontrol/walker/20240101T000000-0a1b2c-0-10.npz", episode(10, 6))
    save_episode(tmp_path / "dmcontrol/cartpole/20240101T000001-0a1b2d-1-7.npz", episode(7, 1))
    save_episode(tmp_path / "metaworld/shelf-place/20240101T000002-0a1b2e-0-12.npz", episode(12, 4))
    manifest = import_ncrl(tmp_path).set_index("embodiment")
    assert sorted(manifest.index) == ["cartpole", "sawyer", "walker"]
    assert manifest.loc["sawyer", "task"] == "mw-shelf-place" and manifest.loc["sawyer", "length"] == 12
    assert manifest.loc["cartpole", "action_size"] == 1 and manifest.loc["walker", "benchmark"] == "dmc"
    save_episode(tmp_path / "metaworld/reach/20240101T000003-0a1b2f-0-99.npz", episode(5, 4))
    with pytest.raises(EpisodeError, match="length 99"):
        import_ncrl(tmp_path)
