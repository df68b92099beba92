"""Diffusion Policy: noise schedule, the denoising loss falls, DDIM samples imitate the data, masking, resume."""
import io

import numpy as np
import torch

from gsa.agents.diffusion import DiffusionPolicy, cosine_alpha_bar
from gsa.config import DiffusionConfig

SMALL = DiffusionConfig(hidden_dim=128, layers=2, batch_size=128, lr=1e-3)


def demo_batch(rng, B: int):
    """Demonstrations a = s/2 on dim 0 (states s ~ U(−1.5, 1.5)), action dim 1 padded (mask 0)."""
    state = torch.as_tensor(rng.uniform(-1.5, 1.5, (B, 2, 1)), dtype=torch.float32)
    action = torch.zeros(B, 2, 2)
    action[:, 1, 0] = state[:, 0, 0] / 2
    return {"state": state, "action": action, "reward": torch.zeros(B, 2)}


def test_cosine_schedule_decreases_from_one_to_near_zero():
    ab = cosine_alpha_bar(100)
    assert ab.shape == (100,) and torch.all(ab[1:] < ab[:-1])
    assert 0.99 < ab[0] < 1 and ab[-1] < 1e-3


def test_denoising_loss_falls_and_samples_imitate_the_demonstrations():
    torch.manual_seed(0)
    agent = DiffusionPolicy((1,), np.array([1, 0], np.float32), SMALL)
    rng = np.random.default_rng(0)
    losses = [agent.update(demo_batch(rng, SMALL.batch_size))["denoising_loss"].item() for _ in range(1500)]
    assert np.mean(losses[-100:]) < 0.5 * np.mean(losses[:100]), (np.mean(losses[:100]), np.mean(losses[-100:]))
    s = torch.linspace(-1.2, 1.2, 25)[:, None]
    actions = agent.sample(s)
    assert torch.all(actions[:, 1] == 0)                                  # the padded dim stays exactly 0
    error = (actions[:, 0] - s[:, 0] / 2).abs().mean().item()
    assert error < 0.1, error


def test_acting_gives_padded_zeros_and_checkpoints_round_trip():
    torch.manual_seed(0)
    agent = DiffusionPolicy((1,), np.array([1, 0], np.float32), SMALL)
    agent.reset()
    agent.observe(np.ones(1, np.float32))
    assert agent.policy(None, explore=False)[1] == 0.0
    buffer = io.BytesIO()
    torch.save(agent.state_dict(), buffer)
    buffer.seek(0)
    other = DiffusionPolicy((1,), np.array([1, 0], np.float32), SMALL)
    other.load_state_dict(torch.load(buffer))
    batch = demo_batch(np.random.default_rng(1), 64)
    torch.manual_seed(3)
    a = agent.update(batch)["denoising_loss"].item()
    torch.manual_seed(3)
    b = other.update(batch)["denoising_loss"].item()
    assert a == b
