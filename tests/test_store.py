"""The packed offline store and the mixed sequence sampler."""
import json
from pathlib import Path

import numpy as np
import pytest

from gsa.data import EpisodeError, load_episode, read_manifest
from gsa.data.sampler import MixedSampler, Replay
from gsa.data.store import EMBODIMENT_IDS, OfflineDataset, pack
from gsa.data.synthetic import read_stamp, write_synthetic

T = 16


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    # lengths differ per embodiment so windows are not trivially aligned
    return write_synthetic(tmp_path_factory.mktemp("synthetic"), episodes=12, length=40, state=True,
                           embodiments=("walker", "sawyer", "cartpole"))


def test_packed_episodes_equal_files(root):
    ds = OfflineDataset(root, progress=False)
    assert len(ds) == 12 and ds.action_size == 6 and ds.state_size == 39
    for i, row in enumerate(ds.manifest.itertuples()):
        original = load_episode(root / row.path, row.sha256)
        packed = ds.episode(i)
        assert np.array_equal(packed["observation"], original["observation"])
        A, S = original["action"].shape[1], original["state"].shape[1]
        assert np.array_equal(packed["action"][:, :A], original["action"])
        assert np.all(packed["action"][:, A:] == 0)
        assert np.array_equal(packed["state"][:, :S], original["state"])


def test_sampler_sequences_are_contiguous_pieces_of_one_episode(root):
    ds = OfflineDataset(root, progress=False)
    sampler = MixedSampler([(ds, 1.0)], batch_size=32, seq_len=T, action_size=12, seed=1)
    starts = 0
    for _ in range(20):
        batch = sampler.sample()
        episode, frame = read_stamp(batch["observation"])  # (B, T)
        assert np.all(episode == episode[:, :1]), "a sequence mixes two episodes"
        assert np.all(np.diff(frame, axis=1) == 1), "frames are not consecutive"
        assert np.array_equal(batch["is_first"][:, 0], frame[:, 0] == 0)
        assert not batch["is_first"][:, 1:].any()
        starts += batch["is_first"][:, 0].sum()
        for b in range(32):
            e, t0 = episode[b, 0], frame[b, 0]
            native = ds.native_action[e]
            assert np.array_equal(batch["action"][b, :, :native], ds.episode(e)["action"][t0:t0 + T, :native])
            assert np.all(batch["action"][b, :, native:] == 0), "padded action dims must be zero"
            assert np.array_equal(batch["action_mask"][b], (np.arange(12) < native).astype(np.float32))
            assert batch["embodiment"][b] == EMBODIMENT_IDS[ds.manifest.embodiment[e]]
            if batch["is_first"][b, 0]:
                assert np.all(batch["action"][b, 0] == 0)
    # uniform over the 25 windows of a 41-frame episode: P(start = 0) = 1/26
    assert 0 < starts < 20 * 32 * 0.15
    assert np.all(batch["reward"] == 0), "offline rows carry no reward"


def test_state_batches(root):
    ds = OfflineDataset(root, progress=False)
    sampler = MixedSampler([(ds, 1.0)], 4, T, 12, obs_key="state", obs_shape=(78,))
    batch = sampler.sample()
    assert batch["state"].shape == (4, T, 78) and "observation" not in batch
    for b in range(4):
        size = {"walker": 24, "sawyer": 39, "cartpole": 5}[list(EMBODIMENT_IDS)[batch["embodiment"][b]]]
        assert np.all(batch["state"][b, :, size:] == 0)


def test_mix_ratio(root):
    ds = OfflineDataset(root, progress=False)
    walker = ds.subset(list(ds.manifest.id[ds.manifest.embodiment == "walker"]))
    assert set(walker.manifest.embodiment) == {"walker"}
    sampler = MixedSampler([(ds, 0.7), (walker, 0.3)], batch_size=10, seq_len=T, action_size=12, seed=0)
    counts = [sampler.counts() for _ in range(2000)]
    assert all(c.sum() == 10 and 3 <= c[1] <= 3 for c in counts)  # 0.3 × 10 is exact
    sampler = MixedSampler([(ds, 0.75), (walker, 0.25)], batch_size=10, seq_len=T, action_size=12, seed=0)
    share = np.mean([sampler.counts()[1] for _ in range(4000)]) / 10
    assert abs(share - 0.25) < 0.01
    batch = sampler.sample()
    assert np.all(batch["embodiment"][batch["source"] == 1] == EMBODIMENT_IDS["walker"])
    # the paper's 4 of 16
    paper = MixedSampler([(ds, 0.75), (walker, 0.25)], batch_size=16, seq_len=T, action_size=12)
    assert np.bincount(paper.sample()["source"]).tolist() == [12, 4]


def test_bad_shares_and_short_episodes(root):
    ds = OfflineDataset(root, progress=False)
    with pytest.raises(ValueError, match="sum to 1"):
        MixedSampler([(ds, 0.5)], 4, T, 12)
    with pytest.raises(ValueError, match="no episode of"):
        MixedSampler([(ds, 1.0)], 4, 100, 12).sample()


def test_online_replay_mixes_with_offline(root):
    ds = OfflineDataset(root, progress=False)
    replay = Replay("cartpole", obs_shape=(3, 64, 64))
    for t in range(30):
        frame = np.full((3, 64, 64), t, np.uint8)
        replay.add(frame, np.full(1, 0.5 if t else 0.0, np.float32), reward=float(t), is_first=t == 0)
    sampler = MixedSampler([(replay, 0.5), (ds, 0.5)], 8, T, 12, seed=3)
    batch = sampler.sample()
    online = batch["source"] == 0
    assert online.sum() == 4
    for b in np.nonzero(online)[0]:
        t0 = batch["observation"][b, 0, 0, 0, 0]
        assert np.array_equal(batch["reward"][b], np.arange(t0, t0 + T, dtype=np.float32))
        assert np.all(batch["action"][b, :, 1:] == 0)
        assert batch["embodiment"][b] == EMBODIMENT_IDS["cartpole"]
    assert np.all(batch["reward"][~online] == 0)


def test_corrupt_and_missing_files_are_named(tmp_path):
    root = write_synthetic(tmp_path / "d", episodes=4, length=20)
    manifest = read_manifest(root)
    victim = root / manifest.path[2]
    victim.write_bytes(victim.read_bytes()[:500])
    with pytest.raises(EpisodeError, match=str(victim.name)):
        OfflineDataset(root, progress=False)
    victim.unlink()
    with pytest.raises(EpisodeError, match=str(victim.name)):
        OfflineDataset(root, progress=False)


def test_pack_resumes_and_extends(tmp_path):
    root = write_synthetic(tmp_path / "d", episodes=6, length=20)
    index = pack(root, chunk=2, progress=False)
    frames = (root / "packed" / "frames.u8").stat().st_size
    with open(root / "packed" / "frames.u8", "ab") as f:  # an interrupted chunk: bytes past the index,
        f.write(b"\x00" * 1000)
    stale = json.loads((root / "packed" / "index.json").read_text())  # and an index of an unfinished pack
    (root / "packed" / "index.json").write_text(json.dumps({**stale, "manifest_sha256": None}))
    again = pack(root, progress=False)
    assert again["episodes"] == index["episodes"]
    assert (root / "packed" / "frames.u8").stat().st_size == frames
    bigger = write_synthetic(tmp_path / "d", episodes=8, length=20)  # same first 6 episodes + 2 new
    ds = OfflineDataset(bigger, progress=False)
    assert len(ds) == 8 and ds.index["episodes"][:6] == index["episodes"]
    assert Path(bigger / "packed" / "frames.u8").stat().st_size == 8 * 21 * 3 * 64 * 64


def test_a_manifest_rewritten_while_packing_leads_to_another_pack(tmp_path, monkeypatch):
    """A collection rewrites ``manifest.csv`` every few episodes while runs open the store: the index must name
    the manifest it packed, so the next reader packs the new episodes instead of trusting an index that lacks
    them; and the reader that packed sees the episodes it packed, with their own manifest."""
    import gsa.data.store as store

    root = write_synthetic(tmp_path / "d", episodes=6, length=20)
    small = (root / "manifest.csv").read_bytes()
    write_synthetic(tmp_path / "d", episodes=8, length=20)  # the collection's next manifest: 2 more episodes
    bigger = (root / "manifest.csv").read_bytes()
    (root / "manifest.csv").write_bytes(small)
    load = store.load_episode

    def load_then_collect(*args, **kwargs):  # the collection writes its next manifest during the pack
        (root / "manifest.csv").write_bytes(bigger)
        return load(*args, **kwargs)

    monkeypatch.setattr(store, "load_episode", load_then_collect)
    first = OfflineDataset(root, progress=False)
    monkeypatch.setattr(store, "load_episode", load)
    assert len(first) == len(first.index["episodes"]) == 6
    second = OfflineDataset(root, progress=False)
    assert len(second) == len(second.index["episodes"]) == 8
    for i, row in enumerate(second.manifest.itertuples()):
        assert np.array_equal(second.episode(i)["observation"], load_episode(root / row.path)["observation"])
    assert np.array_equal(first.episode(5)["observation"], second.episode(5)["observation"])
