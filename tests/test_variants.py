"""Ablation variants (paper Fig. 7, 8): Optimistic Thompson Sampling over a reward ensemble, and fine-tuning
only some parts of the world model."""
from __future__ import annotations

import pytest
import torch

from gsa.agents.dreamer import DreamerAgent, trained_parts
from gsa.config import preset, set_field
from gsa.models.actor_critic import ActorCritic, RewardEnsemble, optimistic_thompson
from test_actor_critic import MASK, A, batch, finetune_cfg, posterior, tiny_world_model


pytestmark = pytest.mark.usefixtures("one_thread")


def test_ots_picks_the_optimistic_member_with_the_stated_probability():
    """Ensemble of 4 with predictions 0, 0, 0, 4 (mean 1): a trajectory draws member 4 w.p. 1/4 and gets 4 at
    every step; otherwise its sample (0) is below the mean, and it gets the mean, 1."""
    torch.manual_seed(0)
    H, N = 3, 40_000
    predictions = torch.zeros(4, H, N)
    predictions[3] = 4.0
    labels = optimistic_thompson(predictions)
    assert labels.shape == (H, N) and set(labels.unique().tolist()) == {1.0, 4.0}
    assert torch.all(labels == labels[:1])                       # one member per imagined trajectory
    share = (labels[0] == 4).float().mean().item()
    assert abs(share - 0.25) < 0.01, share                       # 1/4 ± 4 standard errors
    spread = torch.randn(5, H, 1000)                             # never below the ensemble mean
    assert torch.all(optimistic_thompson(spread) >= spread.mean(0) - 1e-6)


def test_reward_ensemble_trains_every_member_and_labels_imagination_by_ots(monkeypatch):
    wm = tiny_world_model()
    ac = ActorCritic(wm.rssm.feat_size, A, finetune_cfg(reward_uncertainty=True, reward_ensemble=3))
    assert isinstance(ac.reward, RewardEnsemble) and len(ac.reward.heads) == 3
    b = batch()
    calls = []
    import gsa.models.actor_critic as module
    original = module.optimistic_thompson
    monkeypatch.setattr(module, "optimistic_thompson", lambda p: calls.append(p.shape) or original(p))
    reward_loss, actor_loss, critic_loss, _ = ac.loss(wm, posterior(wm, b), b["action_mask"], b["reward"],
                                                      torch.ones(4, dtype=torch.bool))
    (reward_loss + actor_loss + critic_loss).backward()
    assert calls == [(3, 5, 24)]                                 # (members, horizon, B·T)
    assert all(head.net[-1].weight.grad.abs().sum() > 0 for head in ac.reward.heads)


@pytest.mark.parametrize("parts,frozen", [("encoder_decoder", ["rssm"]), ("dynamics", ["encoder", "decoder"])])
def test_frozen_parts_get_no_gradient_and_do_not_change(parts, frozen):
    cfg = preset("smoke")
    for key, value in {"world_model.obs": "state", "world_model.state_size": 6, "world_model.action_size": A,
                       "world_model.deter": 32, "world_model.hidden": 32, "finetune.units": 32,
                       "finetune.horizon": 5, "finetune.train_parts": parts}.items():
        set_field(cfg, key, value)
    wm = tiny_world_model()
    before = {k: v.clone() for k, v in wm.state_dict().items()}
    agent = DreamerAgent(wm, cfg, torch.device("cpu"))
    assert {id(p) for g in agent.wm_opt.param_groups for p in g["params"]} == {id(p) for p in wm.parameters() if p.requires_grad}
    b = {**batch(), "source": torch.zeros(4, dtype=torch.long)}
    for _ in range(2):
        agent.update(b)
    for name, value in wm.state_dict().items():
        part = name.split(".")[0]
        if part in frozen:
            assert torch.equal(value, before[name]), name
    assert all(p.grad is None for name in frozen for p in getattr(wm, name).parameters())
    trained = [n for n in before if n.split(".")[0] not in frozen and before[n].is_floating_point()]
    assert any(not torch.equal(wm.state_dict()[n], before[n]) for n in trained)


def test_unknown_parts_are_refused():
    with pytest.raises(ValueError, match="train_parts"):
        trained_parts(tiny_world_model(), "decoder")
