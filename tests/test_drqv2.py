"""DrQ-v2: n-step transitions, the truncated-normal sampler, masking, learning on a toy problem, resume."""
import numpy as np
import pytest
import torch

from gsa.agents.drqv2 import DrQv2, n_step_transitions, sample_action
from gsa.config import DrQv2Config

SMALL = DrQv2Config(feature_dim=16, hidden_dim=64, batch_size=32, lr=1e-3, std_schedule="0.2")


def test_n_step_transitions_pick_the_right_frames_actions_and_rewards():
    B, n, stack = 2, 3, 3
    L = stack + n
    frames = torch.arange(L, dtype=torch.float32).view(1, L, 1, 1, 1).expand(B, L, 3, 2, 2)
    action = torch.arange(L, dtype=torch.float32).view(1, L, 1).expand(B, L, 2)
    reward = torch.tensor([[0.0, 0, 0, 1, 2, 4]]).expand(B, L)
    obs, act, ret, nxt = n_step_transitions({"observation": frames, "action": action, "reward": reward},
                                            True, stack, n, gamma=0.5)
    assert obs.shape == (B, 9, 2, 2) and obs[0, :, 0, 0].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert nxt[0, ::3, 0, 0].tolist() == [3, 4, 5]          # the stack ending n frames later
    assert act[0].tolist() == [3, 3]                        # the action taken at the stack's last frame
    assert ret[0].item() == pytest.approx(1 + 0.5 * 2 + 0.25 * 4)
    state = {"state": torch.arange(4.0).view(1, 4, 1), "action": torch.arange(4.0).view(1, 4, 1),
             "reward": torch.tensor([[0.0, 1, 1, 1]])}
    obs, act, ret, nxt = n_step_transitions(state, False, stack, n, gamma=1.0)
    assert obs.item() == 0 and act.item() == 1 and ret.item() == 3 and nxt.item() == 3


def test_sampled_actions_stay_inside_the_box_and_clip_the_noise():
    mean = torch.full((10_000, 1), 0.99, requires_grad=True)
    x = sample_action(mean, std=1.0, clip=0.3)
    assert (x.abs() < 1).all() and (x >= 0.69 - 1e-6).all()
    x.sum().backward()
    assert torch.allclose(mean.grad, torch.ones_like(mean))  # straight-through: the gradient is not clipped


def test_padded_action_dims_are_exactly_zero_when_acting_and_learning():
    mask = np.array([1, 1, 0, 0], np.float32)
    agent = DrQv2((3, 64, 64), mask, SMALL)
    agent.reset()
    agent.observe(np.zeros((3, 64, 64), np.uint8))
    assert len(agent.frames) == 3
    for explore in (True, False):
        assert np.all(agent.policy(None, explore=explore, step=0)[2:] == 0)
    L = agent.window
    batch = {"observation": torch.randint(0, 255, (4, L, 3, 64, 64), dtype=torch.uint8),
             "action": torch.rand(4, L, 4) * torch.as_tensor(mask), "reward": torch.rand(4, L)}
    metrics = agent.update(batch, step=0)
    assert set(metrics) >= {"critic_loss", "actor_loss"} and torch.isfinite(metrics["critic_loss"])


def bandit_batch(rng, B: int, L: int):
    """States s ~ N(0, 1) (1-D), random actions, reward −(a − s/2)² at every step: Q peaks at a = s/2."""
    state = torch.as_tensor(rng.normal(size=(B, L, 1)), dtype=torch.float32)
    action = torch.as_tensor(rng.uniform(-1, 1, (B, L, 1)), dtype=torch.float32)
    reward = torch.zeros(B, L)
    reward[:, 1:] = -(action[:, 1:, 0] - state[:, :-1, 0] / 2) ** 2
    return {"state": state, "action": action, "reward": reward}


def test_state_agent_learns_the_best_action_of_a_contextual_bandit():
    """With n_step = 1 and γ = 0 DrQ-v2 is a contextual bandit learner: after training the actor's mean
    action tracks a = s/2 (error < 0.1 on average)."""
    torch.manual_seed(0)
    cfg = DrQv2Config(feature_dim=16, hidden_dim=64, lr=1e-3, n_step=1, gamma=0.0, std_schedule="0.3")
    agent = DrQv2((1,), np.ones(1, np.float32), cfg)
    rng = np.random.default_rng(0)
    for step in range(600):
        agent.update(bandit_batch(rng, 128, agent.window), step)
    s = torch.linspace(-1.5, 1.5, 31)[:, None]
    with torch.no_grad():
        error = (agent.actor(s, agent.mask)[:, 0] - s[:, 0] / 2).abs().mean().item()
    assert error < 0.1, error


def test_state_dict_round_trip_gives_the_same_updates():
    """Saved and loaded as a checkpoint is (torch.save / torch.load: an in-memory state_dict would share
    the optimisers' state tensors between the two agents), the agent continues identically."""
    import io

    rng = np.random.default_rng(1)
    torch.manual_seed(0)
    a = DrQv2((1,), np.ones(1, np.float32), SMALL)
    a.update(bandit_batch(rng, 8, a.window), 0)
    b = DrQv2((1,), np.ones(1, np.float32), SMALL)
    buffer = io.BytesIO()
    torch.save(a.state_dict(), buffer)
    buffer.seek(0)
    b.load_state_dict(torch.load(buffer))
    batch = bandit_batch(rng, 8, a.window)
    torch.manual_seed(5)
    ma = a.update(batch, 1)
    torch.manual_seed(5)
    mb = b.update(batch, 1)
    assert ma["critic_loss"].item() == mb["critic_loss"].item()
    for p, q in zip(a.actor.parameters(), b.actor.parameters()):
        assert torch.equal(p, q)
