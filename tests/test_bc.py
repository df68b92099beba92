"""Behaviour-cloning prior π_bc (method §5.6, paper App. G.1)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from gsa.bc import BCPolicy, BCSampler, bc_loss, random_shift, stack_frames, train_bc

MASK = np.array([1, 1, 0], np.float32)  # 2 real action dims padded to A_max = 3
SMALL = dict(channels=(8, 16, 16, 16), feature=16, hidden=32)


pytestmark = pytest.mark.usefixtures("one_thread")


def test_paper_network_shapes_and_zero_padding():
    policy = BCPolicy(action_size=3, action_mask=MASK)
    obs = torch.randint(0, 256, (5, 9, 64, 64), dtype=torch.uint8)
    action = policy(obs)
    assert action.shape == (5, 3)
    assert torch.all(action[:, 2] == 0) and torch.all(action.abs() <= 1)
    assert policy.act(obs[0].numpy()).shape == (3,) and policy.act(obs.numpy()).shape == (5, 3)
    assert policy.act(obs[0].numpy())[2] == 0.0


def test_state_mode_fits_a_linear_policy():
    """State episodes: action[t + 1] = 0.5 · state[t][:2], padded with a zero."""
    torch.manual_seed(0)
    state = np.random.default_rng(0).uniform(-1, 1, size=(4, 51, 7)).astype(np.float32)
    action = np.zeros((4, 51, 3), np.float32)
    action[:, 1:, :2] = 0.5 * state[:, :-1, :2]
    sampler = BCSampler([dict(state=s, action=a) for s, a in zip(state, action)], MASK, batch_size=32,
                        obs_key="state")
    assert sampler()["obs"].shape == (32, 7)
    policy = BCPolicy(action_size=3, action_mask=MASK, state_size=7, feature=16, hidden=32)
    losses = train_bc(policy, sampler, steps=150, lr=1e-3, progress=False)
    assert np.mean(losses[-10:]) < np.mean(losses[:5]) / 5
    assert np.all(policy.act(state[0])[:, 2] == 0)


def test_loss_ignores_padded_dims():
    prediction, target = torch.randn(8, 3), torch.randn(8, 3)
    changed = target.clone()
    changed[:, 2] += 100.0
    mask = torch.as_tensor(MASK)
    assert bc_loss(prediction, target, mask) == bc_loss(prediction, changed, mask)
    assert bc_loss(prediction, target, mask) == pytest.approx(((prediction - target)[:, :2] ** 2).mean().item())
    assert bc_loss(prediction, target, mask.expand(8, 3)) == bc_loss(prediction, target, mask)


def test_stack_frames_repeats_first_frame_at_episode_starts():
    frames = np.arange(6, dtype=np.uint8)[:, None, None, None] * np.ones((1, 3, 2, 2), np.uint8)  # frame t = t
    stacks = stack_frames(frames, is_first=np.array([1, 0, 0, 0, 1, 0], bool))
    assert stacks.shape == (6, 9, 2, 2)
    oldest_to_newest = stacks[:, ::3, 0, 0].tolist()  # the value of each of the 3 stacked frames
    assert oldest_to_newest == [[0, 0, 0], [0, 0, 1], [0, 1, 2], [1, 2, 3], [4, 4, 4], [4, 4, 5]]
    assert stack_frames(frames)[5, ::3, 0, 0].tolist() == [3, 4, 5]


def test_random_shift_is_an_integer_translation():
    images = torch.rand(6, 9, 16, 16)
    shifted = random_shift(images, pad=4, generator=torch.Generator().manual_seed(0))
    assert shifted.shape == images.shape
    padded = torch.nn.functional.pad(images, (4, 4, 4, 4), mode="replicate")
    offsets = []
    for i in range(len(images)):
        matches = [(dy, dx) for dy in range(9) for dx in range(9)
                   if torch.equal(shifted[i], padded[i, :, dy:dy + 16, dx:dx + 16])]
        assert len(matches) == 1
        offsets.append(matches[0])
    assert len(set(offsets)) > 1  # per-image offsets


def square_episodes(count: int, length: int, seed: int = 0) -> list[dict]:
    """Frame t shows a 20×20 square of colour (r, g) at a random place; the action taken after seeing it,
    action[t + 1] (NCRL layout), is (2r − 1, 2g − 1) padded with a zero."""
    rng = np.random.default_rng(seed)
    episodes = []
    for _ in range(count):
        colour = rng.uniform(size=(length + 1, 2))
        obs = np.zeros((length + 1, 3, 64, 64), np.uint8)
        for t, (y, x) in enumerate(rng.integers(4, 40, size=(length + 1, 2))):
            obs[t, :2, y:y + 20, x:x + 20] = (255 * colour[t])[:, None, None]
        action = np.zeros((length + 1, 3), np.float32)
        action[1:, :2] = 2 * colour[:-1] - 1
        episodes.append(dict(observation=obs, action=action))
    return episodes


def test_sampler_pairs_stack_with_next_action():
    episodes = square_episodes(2, 5)
    batch = BCSampler(episodes, MASK, batch_size=64, seed=0)()
    assert batch["obs"].shape == (64, 9, 64, 64) and batch["obs"].dtype == np.uint8
    assert batch["action"].shape == (64, 3) and batch["action_mask"].tolist() == MASK.tolist()
    newest = batch["obs"][:, 6:8].reshape(64, 2, -1).max(-1) / 255  # colour of the last stacked frame
    np.testing.assert_allclose(batch["action"][:, :2], 2 * newest - 1, atol=0.01)


def test_bc_fits_colour_of_a_square():
    torch.manual_seed(0)
    sampler = BCSampler(square_episodes(8, 30), MASK, batch_size=32, seed=0)
    policy = BCPolicy(action_size=3, action_mask=MASK, **SMALL)
    losses = train_bc(policy, sampler, steps=200, lr=1e-3, progress=False)
    assert np.mean(losses[-20:]) < np.mean(losses[:5]) / 5
