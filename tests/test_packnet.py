"""PackNet: earlier tasks' weights stay bit-identical through later tasks, pruning keeps the largest free
weights, a task's network is recovered by its mask."""
import numpy as np
import pytest
import torch

from gsa.agents.packnet import PackNet, PackNetDrQv2
from gsa.config import DrQv2Config


def bandit_batch(rng, B: int, target: float):
    """One-step transitions with reward −(a − target·s)²: each 'task' wants another action."""
    state = torch.as_tensor(rng.normal(size=(B, 4, 3)), dtype=torch.float32)
    action = torch.as_tensor(rng.uniform(-1, 1, (B, 4, 1)), dtype=torch.float32)
    reward = torch.zeros(B, 4)
    reward[:, 1] = -(action[:, 1, 0] - target * state[:, 0, 0]) ** 2
    return {"state": state, "action": action, "reward": reward}


def train(agent, rng, target: float, updates: int) -> None:
    for _ in range(updates):
        agent.update(bandit_batch(rng, agent.batch_size, target))


def test_earlier_tasks_weights_stay_bit_identical_after_later_tasks():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    cfg = DrQv2Config(batch_size=32, hidden_dim=32, feature_dim=8, gamma=0.0, n_step=1, lr=1e-3)
    agent = PackNetDrQv2((3,), np.ones(1, np.float32), cfg)
    pack = agent.packnet
    probe = torch.randn(64, 3)
    train(agent, rng, 0.5, 30)
    pack.prune(keep=1 / 3)
    train(agent, rng, 0.5, 10)                                   # re-train the kept weights only
    owned_1 = [(p.detach().clone(), (o == 1)) for p, o in zip(pack.weights, pack.owner)]
    pruned = [(o == 0) for o in pack.owner]
    assert all(torch.all(p[m] == 0) for p, m in zip(pack.weights, pruned))   # pruned weights stay 0 in re-training
    kept_share = sum(int(m.sum()) for _, m in owned_1) / sum(p.numel() for p in pack.weights)
    assert kept_share == pytest.approx(1 / 3, abs=0.01)
    with torch.no_grad(), pack.masked(1):
        task1_actions = agent.actor(probe, agent.mask).clone()
    pack.next_task()
    train(agent, rng, -0.5, 30)                                  # task 2 trains only the free weights
    pack.prune(keep=1 / 2)
    train(agent, rng, -0.5, 10)
    pack.next_task()
    train(agent, rng, 0.0, 10)                                   # task 3, part of it
    for (value, mask), p in zip(owned_1, pack.weights):
        assert torch.equal(p[mask], value[mask])                 # bit-identical
    assert any((o == 2).any() for o in pack.owner) and not any(((o == 1) & (o == 2)).any() for o in pack.owner)
    with torch.no_grad(), pack.masked(1):
        assert torch.equal(agent.actor(probe, agent.mask), task1_actions)   # task 1's network, exactly
    assert not torch.equal(agent.actor(probe, agent.mask), task1_actions)   # the current network differs


def test_prune_keeps_the_largest_free_weights():
    layer = torch.nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.1, -3.0, 0.2, 2.0]]))
    pack = PackNet([layer])
    pack.prune(keep=0.5)
    assert layer.weight.tolist() == [[0.0, -3.0, 0.0, 2.0]] and pack.owner[0].tolist() == [[0, 1, 0, 1]]


def test_state_round_trip():
    torch.manual_seed(0)
    cfg = DrQv2Config(batch_size=8, hidden_dim=16, feature_dim=8, n_step=1)
    a = PackNetDrQv2((3,), np.ones(1, np.float32), cfg)
    a.packnet.prune(0.5)
    a.packnet.next_task()
    b = PackNetDrQv2((3,), np.ones(1, np.float32), cfg)
    b.load_state_dict(a.state_dict())
    assert b.packnet.task == 2 and all(torch.equal(x, y) for x, y in zip(a.packnet.owner, b.packnet.owner))
