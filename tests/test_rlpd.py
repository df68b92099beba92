"""RLPD (uds-rlpd): ensemble target, minibatches keep the online/offline mix, masking, learning, resume."""
import io

import numpy as np
import torch

from gsa.agents.rlpd import RLPD, Ensemble, min_of_random_members
from gsa.config import RLPDConfig
from test_drqv2 import bandit_batch  # states s ~ N(0, 1), reward −(a − s/2)²: the best action is s/2

SMALL = RLPDConfig(critics=4, utd=2, batch_size=16, hidden_dim=32, lr=1e-3)


def test_minibatches_interleave_the_batch_so_each_keeps_the_online_offline_mix(monkeypatch):
    agent = RLPD((1,), np.ones(1, np.float32), RLPDConfig(critics=2, utd=4, batch_size=4, hidden_dim=8))
    assert agent.batch_size == 16 and agent.window == 2
    batch = bandit_batch(np.random.default_rng(0), 16, 2)
    batch["state"][:, 0, 0] = torch.arange(16.0)  # rows 0–7 "online", 8–15 "offline", as the sampler orders them
    seen = []
    original = agent._split
    monkeypatch.setattr(agent, "_split", lambda b, part: seen.append(b["state"][part, 0, 0].tolist()) or original(b, part))
    agent.update(batch)
    assert len(seen) == 4 and all(sum(v < 8 for v in rows) == 2 for rows in seen)  # 2 online + 2 offline each
    assert sorted(sum(seen, [])) == list(range(16))


def test_padded_action_dims_are_zero_and_log_probs_finite():
    mask = np.array([1, 1, 0], np.float32)
    agent = RLPD((5,), mask, SMALL)
    agent.reset()
    agent.observe(np.zeros(5, np.float32))
    for explore in (True, False):
        assert agent.policy(None, explore)[2] == 0
    action, logp = agent.actor(torch.randn(64, 5), agent.mask)
    assert torch.all(action[:, 2] == 0) and torch.isfinite(logp).all()


def test_learns_the_best_action_of_a_contextual_bandit():
    torch.manual_seed(0)
    cfg = RLPDConfig(critics=4, utd=2, batch_size=64, hidden_dim=64, lr=1e-3, gamma=0.0, backup_entropy=False,
                     init_temperature=0.01)
    agent = RLPD((1,), np.ones(1, np.float32), cfg)
    rng = np.random.default_rng(0)
    for _ in range(400):
        agent.update(bandit_batch(rng, agent.batch_size, 2))
    s = torch.linspace(-1.5, 1.5, 31)[:, None]
    with torch.no_grad():
        action, _ = agent.actor(s, agent.mask, deterministic=True)
    error = (action[:, 0] - s[:, 0] / 2).abs().mean().item()
    assert error < 0.15, error


def test_checkpoint_round_trip_continues_identically():
    rng = np.random.default_rng(1)
    torch.manual_seed(0)
    a = RLPD((1,), np.ones(1, np.float32), SMALL)
    a.update(bandit_batch(rng, a.batch_size, 2))
    b = RLPD((1,), np.ones(1, np.float32), SMALL)
    buffer = io.BytesIO()
    torch.save(a.state_dict(), buffer)
    buffer.seek(0)
    b.load_state_dict(torch.load(buffer))
    batch = bandit_batch(rng, a.batch_size, 2)
    torch.manual_seed(3)
    ma = a.update(batch)
    torch.manual_seed(3)
    mb = b.update(batch)
    assert ma["critic_loss"].item() == mb["critic_loss"].item() and ma["alpha"].item() == mb["alpha"].item()
    for p, q in zip(a.actor.parameters(), b.actor.parameters()):
        assert torch.equal(p, q)


def test_the_target_is_the_minimum_of_two_members_drawn_at_random():
    """Members valued 0..9: the minimum of 2 of 10 drawn without replacement is i with probability
    (9 − i) / 45, so never 9 and 0 one time in five; all rows of a batch share the draw."""
    torch.manual_seed(0)
    q = torch.arange(10.0)[:, None].expand(10, 3)                          # (members, B)
    draws = torch.stack([min_of_random_members(q, 2) for _ in range(4000)])  # (4000, B)
    assert (draws == draws[:, :1]).all() and draws.max() <= 8
    freq = torch.bincount(draws[:, 0].long(), minlength=10).float() / len(draws)
    expected = (9 - torch.arange(10.0)) / 45
    assert torch.allclose(freq, expected, atol=0.03), freq


def test_the_stacked_ensemble_is_independent_layernorm_mlps():
    """Member j's output is its own MLP (linear → LayerNorm → ReLU, twice, → linear) of its own slice of the
    weights, and a loss on member j alone gives no gradient to the others."""
    torch.manual_seed(0)
    ens = Ensemble(5, 2, 16, members=4)
    with torch.no_grad():  # distinct LayerNorm affines, so that a mix-up of members would show
        for p in (*ens.norm_weights, *ens.norm_biases):
            p.add_(torch.randn_like(p))
    h, a = torch.randn(7, 5), torch.randn(7, 2)
    q = ens(h, a)
    assert q.shape == (4, 7)
    for j in range(4):
        x = torch.cat([h, a], -1)
        for i in range(3):
            x = x @ ens.weights[i][j] + ens.biases[i][j]
            if i < 2:
                x = torch.relu(torch.nn.functional.layer_norm(x, (16,)) * ens.norm_weights[i][j] + ens.norm_biases[i][j])
        assert torch.allclose(q[j], x[:, 0], atol=1e-5)
    q[2].sum().backward()
    for p in ens.parameters():
        others = torch.cat([p.grad[:2], p.grad[3:]])
        assert (others == 0).all() and p.grad[2].abs().sum() > 0
    bound = 1 / 7 ** 0.5  # nn.Linear's initialisation, per member: U(±1/√fan_in)
    assert ens.weights[0].abs().max() <= bound and ens.weights[0].std() > bound / 3
