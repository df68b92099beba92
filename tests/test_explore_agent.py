"""ExPLORe (``explore``): ensemble and RND novelty, optimistic labels on offline rows only, the reward model, resume."""
import dataclasses
import io

import numpy as np
import pytest
import torch

from gsa.agents.explore import RND, ExPLORe
from gsa.config import RLPDConfig

SMALL = RLPDConfig(critics=4, utd=2, batch_size=32, hidden_dim=64, lr=1e-3)


def bandit_batch(rng, B: int, offline: int):
    """States s ~ N(0, 1), random actions, reward 1 − (a − s/2)²; the last ``offline`` rows are offline
    (source 1, reward 0 as the sampler gives them)."""
    state = torch.as_tensor(rng.normal(size=(B, 2, 1)), dtype=torch.float32)
    action = torch.as_tensor(rng.uniform(-1, 1, (B, 2, 1)), dtype=torch.float32)
    reward = torch.zeros(B, 2)
    reward[:, 1] = 1 - (action[:, 1, 0] - state[:, 0, 0] / 2) ** 2
    source = torch.zeros(B, dtype=torch.long)
    source[B - offline:] = 1
    reward[B - offline:] = 0
    return {"state": state, "action": action, "reward": reward, "source": source}


def test_rnd_bonus_is_higher_on_novel_than_on_familiar_inputs():
    torch.manual_seed(0)
    rnd = RND(4, 64)
    opt = torch.optim.Adam(rnd.predictor.parameters(), 1e-3)
    for _ in range(500):
        loss = rnd(torch.randn(128, 4) * 0.5).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        familiar = rnd(torch.randn(512, 4) * 0.5).mean().item()
        novel = rnd(torch.randn(512, 4) * 0.5 + 3.0).mean().item()
    assert novel > 5 * familiar, (novel, familiar)


def test_only_offline_rows_are_relabelled_and_online_rows_keep_their_rewards(monkeypatch):
    agent = ExPLORe((1,), np.ones(1, np.float32), SMALL)
    batch = bandit_batch(np.random.default_rng(0), 8, offline=3)
    monkeypatch.setattr(agent, "label", lambda h, a: torch.full((len(h),), 7.0))
    _, _, reward, _ = agent._split(batch, slice(None))
    assert torch.equal(reward[:5], batch["reward"][:5, 1]) and torch.all(reward[5:] == 7.0)


@pytest.mark.parametrize("novelty", ["ensemble", "rnd"])
def test_reward_model_learns_the_online_reward_and_labels_add_the_bonus(novelty):
    torch.manual_seed(0)
    cfg = dataclasses.replace(SMALL, novelty=novelty)
    agent = ExPLORe((1,), np.ones(1, np.float32), cfg)
    rng = np.random.default_rng(0)
    for _ in range(300):
        agent.update(bandit_batch(rng, agent.batch_size, offline=agent.batch_size // 2))
    test = bandit_batch(rng, 256, offline=0)
    h, a, r = test["state"][:, 0], test["action"][:, 1], test["reward"][:, 1]
    with torch.no_grad():
        rewards = agent.reward_model(h, a)                                   # (members, B)
        bonus = rewards.std(0) if novelty == "ensemble" else agent.rnd(torch.cat([h, a], -1))
    assert len(rewards) == (cfg.reward_members if novelty == "ensemble" else 1)
    assert (rewards.mean(0) - r).abs().mean() < 0.15, (rewards.mean(0) - r).abs().mean()
    assert torch.allclose(agent.label(h, a), rewards.mean(0) + cfg.bonus_scale * bonus)


def test_ensemble_bonus_is_higher_where_the_online_data_did_not_go():
    """The paper's variant (App. G.3): the reward ensemble agrees on states like the online ones (s ~ N(0, 1))
    and disagrees far from them (s = 4)."""
    torch.manual_seed(0)
    agent = ExPLORe((1,), np.ones(1, np.float32), SMALL)
    rng = np.random.default_rng(0)
    for _ in range(300):
        agent.update(bandit_batch(rng, agent.batch_size, offline=0))
    a = torch.rand(512, 1) * 2 - 1
    with torch.no_grad():
        familiar = agent.reward_model(torch.randn(512, 1) * 0.5, a).std(0).mean().item()
        novel = agent.reward_model(torch.full((512, 1), 4.0), a).std(0).mean().item()
    assert novel > 3 * familiar, (novel, familiar)


def test_unknown_novelty_fails_early():
    with pytest.raises(ValueError, match="rlpd.novelty"):
        ExPLORe((1,), np.ones(1, np.float32), dataclasses.replace(SMALL, novelty="count"))


@pytest.mark.parametrize("novelty", ["ensemble", "rnd"])
def test_checkpoint_round_trip_keeps_the_reward_model_and_rnd(novelty):
    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    cfg = dataclasses.replace(SMALL, novelty=novelty)
    a = ExPLORe((1,), np.ones(1, np.float32), cfg)
    a.update(bandit_batch(rng, a.batch_size, offline=a.batch_size // 2))
    buffer = io.BytesIO()
    torch.save(a.state_dict(), buffer)
    buffer.seek(0)
    b = ExPLORe((1,), np.ones(1, np.float32), cfg)
    b.load_state_dict(torch.load(buffer))
    batch = bandit_batch(rng, a.batch_size, offline=a.batch_size // 2)
    torch.manual_seed(3)
    ma = a.update(batch)
    torch.manual_seed(3)
    mb = b.update(batch)
    assert ma["critic_loss"].item() == mb["critic_loss"].item() and ma["reward_loss"].item() == mb["reward_loss"].item()
