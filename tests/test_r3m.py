"""R3M-style baseline: the time-contrastive objective learns temporal order, the encoder stays frozen under
DrQ-v2, per-frame embeddings of a stack."""
import numpy as np
import torch

from gsa.agents.drqv2 import DrQv2
from gsa.agents.r3m import FrameEncoder, R3MEncoder, r3m_loss
from gsa.config import DrQv2Config


def videos(rng, B: int, T: int = 20):
    """B 'episodes' of 6-d states: 2 dims move as x_0 + t·v (time), 4 dims are fresh noise every frame, much
    larger, so that raw distances say little about time until the encoder learns to ignore the noise."""
    x0, v = rng.normal(size=(B, 1, 2)) * 3, rng.normal(size=(B, 1, 2)) * 0.3
    signal = x0 + np.arange(T)[None, :, None] * v
    return torch.as_tensor(np.concatenate([signal, rng.normal(size=(B, T, 4)) * 3], -1), dtype=torch.float32)


def test_time_contrastive_objective_learns_which_frame_is_nearer_in_time():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    encoder = R3MEncoder((6,), 16, hidden=64)
    opt = torch.optim.Adam(encoder.parameters(), 3e-3)
    accuracy = []
    for _ in range(800):
        loss, info = r3m_loss(encoder, videos(rng, 64), rng, 1e-5, 1e-5)
        opt.zero_grad()
        loss.backward()
        opt.step()
        accuracy.append(info["accuracy"].item())
    first, last = np.mean(accuracy[:20]), np.mean(accuracy[-50:])
    assert last > 0.8 and last > first + 0.2, (first, last)


def test_frame_encoder_embeds_each_frame_and_stays_frozen_under_drqv2():
    torch.manual_seed(0)
    encoder = R3MEncoder((3, 64, 64), 8)
    frozen = FrameEncoder(encoder, frame_stack=3)
    stack = torch.randint(0, 255, (2, 9, 64, 64), dtype=torch.uint8).float()
    z = frozen(stack)
    assert z.shape == (2, 24)
    assert torch.allclose(z[:, 8:16], encoder(stack[:, 3:6]))            # the middle frame's embedding
    before = [p.clone() for p in encoder.parameters()]
    cfg = DrQv2Config(batch_size=4, hidden_dim=16, feature_dim=8)
    agent = DrQv2((3, 64, 64), np.ones(2, np.float32), cfg, encoder=frozen)
    assert agent.encoder_opt is None
    L = agent.window
    batch = {"observation": torch.randint(0, 255, (4, L, 3, 64, 64), dtype=torch.uint8),
             "action": torch.rand(4, L, 2) * 2 - 1, "reward": torch.rand(4, L)}
    actor_before = [p.clone() for p in agent.actor.parameters()]
    agent.update(batch)
    assert all(torch.equal(a, b) for a, b in zip(before, encoder.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(actor_before, agent.actor.parameters()))
