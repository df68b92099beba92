"""Reward head and actor-critic in imagination (method §5.4–5.5): λ-returns, slow critic, online-only reward
learning, padded action dims, imagination, dynamics backprop, REINFORCE normaliser, a tiny learning check."""
from __future__ import annotations

import pytest
import torch

from gsa.config import TINY, FinetuneConfig, OptimConfig, WorldModelConfig
from gsa.models.actor_critic import (Actor, ActorCritic, frozen, imagine, lambda_returns, make_optimizers,
                                     reward_loss)
from gsa.models.world_model import WorldModel

A, REAL = 4, 2  # padded action size, real dims
MASK = (torch.arange(A) < REAL).float()
pytestmark = pytest.mark.usefixtures("one_thread")


def finetune_cfg(**kw) -> FinetuneConfig:
    return FinetuneConfig(**{"units": 32, "horizon": 5, **kw})


def tiny_world_model(seed: int = 0) -> WorldModel:
    torch.manual_seed(seed)
    return WorldModel(WorldModelConfig(**{**TINY, "deter": 32, "hidden": 32}, obs="state", state_size=6, action_size=A))


def batch(B: int = 4, T: int = 6, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    action = (torch.rand(B, T, A, generator=g) * 2 - 1) * MASK
    return {"state": torch.randn(B, T, 6, generator=g), "action": action, "action_mask": MASK.expand(B, A),
            "is_first": torch.zeros(B, T, dtype=torch.bool).index_fill(1, torch.tensor([0]), True),
            "reward": action[..., 0].clone()}


def posterior(wm: WorldModel, b: dict) -> dict:
    _, _, post, _ = wm.loss(b)
    return {k: v.detach() for k, v in post.items()}


def randomise_outputs(ac: ActorCritic) -> None:
    """The reward head and critics start at exactly 0 (DreamerV3); give them something to back-propagate."""
    for net in (ac.reward.net, ac.critic.net, ac.slow_critic.net):
        torch.nn.init.normal_(net[-1].weight, std=0.3)


def test_lambda_returns_match_hand_computation():
    # H = 2, γ = 0.5, λ = 0.5; reward[t] = r̂(s_{t+1}), value[t] = v(s_t).
    reward = torch.tensor([[1.0], [2.0]])
    value = torch.tensor([[10.0], [4.0], [8.0]])
    # R_2 = v_2 = 8
    # R_1 = 2 + 0.5·(0.5·8 + 0.5·8) = 6
    # R_0 = 1 + 0.5·(0.5·4 + 0.5·6) = 3.5
    assert lambda_returns(reward, value, 0.5, 0.5).tolist() == [[3.5], [6.0]]
    # λ = 1: discounted rewards + bootstrap, R_0 = 1 + 0.5·2 + 0.25·8 = 4;  λ = 0: one-step TD, R_0 = 1 + 0.5·4 = 3
    assert lambda_returns(reward, value, 0.5, 1.0)[0].item() == 4.0
    assert lambda_returns(reward, value, 0.5, 0.0)[0].item() == 3.0


def test_slow_critic_moves_by_exactly_the_ema_fraction():
    ac = ActorCritic(16, A, finetune_cfg())
    with torch.no_grad():
        for p in ac.critic.parameters():
            p.add_(torch.randn_like(p))
    before = [p.clone() for p in ac.slow_critic.parameters()]
    ac.update_slow(0.02)
    for old, slow, fast in zip(before, ac.slow_critic.parameters(), ac.critic.parameters()):
        torch.testing.assert_close(slow - old, 0.02 * (fast - old))
        assert not slow.requires_grad


def test_reward_head_learns_from_online_rows_only():
    ac = ActorCritic(16, A, finetune_cfg())
    randomise_outputs(ac)
    feat, reward = torch.randn(4, 5, 16), torch.randn(4, 5)
    online = torch.tensor([True, False, True, False])

    def grads(reward, online):
        ac.zero_grad()
        loss = reward_loss(ac.reward, feat, reward, online)
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in ac.reward.parameters()]

    loss, base = grads(reward, online)
    perturbed = reward.clone()
    perturbed[~online] = torch.tensor([1e4, float("nan"), -3.0, 7.0, 0.5])
    loss2, changed = grads(perturbed, online)
    assert loss2 == loss and all(torch.equal(a, b) for a, b in zip(base, changed))
    # only the online rows' mean NLL
    assert loss.item() == pytest.approx(ac.reward(feat[online]).loss(reward[online]).mean().item())
    loss, none = grads(reward, torch.zeros(4, dtype=torch.bool))
    assert loss.item() == 0.0 and all(torch.count_nonzero(g) == 0 for g in none)


def test_padded_action_dims_are_exactly_zero_and_ignored():
    actor = Actor(16, A, units=32, layers=2, min_std=0.1, max_std=1.0)
    feat = torch.randn(64, 16) * torch.logspace(-2, 3, 64)[:, None]  # extreme inputs saturate the std
    dist = actor(feat, MASK)
    assert torch.all(dist.sample()[:, REAL:] == 0) and torch.all(dist.mode()[:, REAL:] == 0)
    assert dist.sample().abs().max() <= 1 and dist.mode().abs().max() <= 1
    assert dist.std.min() >= 0.1 and dist.std.max() <= 1.0
    action = dist.sample()
    real = torch.distributions.Normal(dist.mean[:, :REAL], dist.std[:, :REAL])
    torch.testing.assert_close(dist.log_prob(action), real.log_prob(action[:, :REAL]).sum(-1))
    torch.testing.assert_close(dist.entropy(), real.entropy().sum(-1))
    noisy = action.clone()
    noisy[:, REAL:] = torch.randn(64, A - REAL)
    torch.testing.assert_close(dist.log_prob(noisy), dist.log_prob(action))


def test_imagination_starts_from_every_posterior_state():
    wm = tiny_world_model()
    ac = ActorCritic(wm.rssm.feat_size, A, finetune_cfg())
    post = posterior(wm, batch(B=3, T=4))
    start = {k: v.flatten(0, 1) for k, v in post.items()}
    states, actions, dists = imagine(wm.rssm, ac.actor, start, MASK.expand(12, A), horizon=5)
    assert dists.mean.shape == dists.std.shape == (5, 12, A)
    c = wm.cfg
    assert states["deter"].shape == (6, 12, c.deter) and states["stoch"].shape == (6, 12, c.stoch, c.classes)
    assert actions.shape == (5, 12, A) and torch.all(actions[..., REAL:] == 0)
    assert torch.equal(states["deter"][0], start["deter"])


def test_dynamics_backprop_trains_only_the_actor():
    wm = tiny_world_model()
    ac = ActorCritic(wm.rssm.feat_size, A, finetune_cfg(entropy=0.0))  # the actor's gradient is the dynamics' alone
    randomise_outputs(ac)
    actor_opt, critic_opt = make_optimizers(ac, OptimConfig(lr=1e-3, eps=1e-5, weight_decay=0.0))
    b, online = batch(), torch.ones(4, dtype=torch.bool)
    _, actor_loss, _, metrics = ac.loss(wm, posterior(wm, b), b["action_mask"], b["reward"], online)
    actor_loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in ac.actor.parameters())
    assert all(p.grad is None for p in [*ac.reward.parameters(), *ac.critic.parameters()])  # frozen in the actor path
    assert all(p.grad is None for p in wm.parameters())  # flows through the dynamics, not into their weights
    assert all(p.requires_grad for p in [*wm.parameters(), *ac.reward.parameters()])  # unfrozen afterwards
    wm_before = [p.clone() for p in wm.parameters()]
    actor_before = [p.clone() for p in ac.actor.parameters()]
    actor_opt.step()
    assert all(torch.equal(a, p) for a, p in zip(wm_before, wm.parameters()))
    assert all(not torch.equal(a, p) for a, p in zip(actor_before, ac.actor.parameters()))
    assert {id(p) for g in actor_opt.param_groups for p in g["params"]} == {id(p) for p in ac.actor.parameters()}
    assert all(v.requires_grad is False for v in metrics.values())


def test_reinforce_runs_with_percentile_normaliser():
    wm = tiny_world_model()
    ac = ActorCritic(wm.rssm.feat_size, A, finetune_cfg(actor_grad="reinforce"))
    randomise_outputs(ac)
    b = batch()
    losses = ac.loss(wm, posterior(wm, b), b["action_mask"], b["reward"], torch.ones(4, dtype=torch.bool))
    sum(losses[:3]).backward()
    assert all(p.grad.abs().sum() > 0 for p in ac.actor.parameters())
    assert all(p.grad is not None for p in ac.critic.parameters())
    assert losses[3]["return_scale"] >= 1
    # the EMA of P5/P95 starts at 0 and moves 1% of the way per call; small ranges are never scaled up
    fresh = ActorCritic(8, A, finetune_cfg(actor_grad="reinforce"))
    returns = torch.linspace(0, 1000, 1001)[:, None]  # P5 = 50, P95 = 950
    assert fresh.return_scale(returns).item() == pytest.approx(0.01 * 900)
    torch.testing.assert_close(fresh.return_range, torch.tensor([0.5, 9.5]))
    assert ActorCritic(8, A, finetune_cfg()).return_scale(returns / 1000).item() == 1.0
    with pytest.raises(ValueError, match="actor_grad"):
        ActorCritic(8, A, finetune_cfg(actor_grad="policy-gradient"))


def test_actor_learns_to_push_the_rewarded_action_dim():
    """Fixed random world model; the reward is the first action dim, which the world model carries in
    h_t (action[t] leads to s_t). The reward head learns it on posterior states; then the actor, by
    back-propagating through the imagined dynamics, raises its mean action on that dim."""
    wm = tiny_world_model().requires_grad_(False)
    ac = ActorCritic(wm.rssm.feat_size, A, finetune_cfg(units=64, horizon=4))
    fast = OptimConfig(lr=3e-3, eps=1e-5, weight_decay=0.0)
    actor_opt, critic_opt = make_optimizers(ac, fast)
    data = [batch(B=8, T=8, seed=s) for s in range(4)]
    posts = [posterior(wm, b) for b in data]
    online = torch.ones(8, dtype=torch.bool)
    for i in range(150):  # reward head first
        b, post = data[i % 4], posts[i % 4]
        critic_opt.zero_grad()
        reward_loss(ac.reward, wm.rssm.feat(post), b["reward"], online).backward()
        critic_opt.step()

    def mean_action() -> float:
        with torch.no_grad():
            return ac.actor(wm.rssm.feat(posts[0]), MASK).mode()[..., 0].mean().item()

    before = mean_action()
    for i in range(30):
        b, post = data[i % 4], posts[i % 4]
        losses = ac.loss(wm, post, b["action_mask"], b["reward"], online)
        actor_opt.zero_grad()
        critic_opt.zero_grad()
        sum(losses[:3]).backward()
        actor_opt.step()
        critic_opt.step()
        ac.update_slow(0.02)
    assert mean_action() > before + 0.3, (before, mean_action())


def captured_loss(ac: ActorCritic, wm: WorldModel, monkeypatch) -> tuple[tuple, dict]:
    """``ac.loss`` on a batch, with what it computed inside: the λ-returns, the critic's and the slow
    critic's logits on the imagined states, and the policy's distributions along the imagined states."""
    import gsa.models.actor_critic as module

    seen = {}
    returns, imagine = module.lambda_returns, module.imagine
    monkeypatch.setattr(module, "lambda_returns", lambda *a, **k: seen.setdefault("returns", returns(*a, **k)))
    monkeypatch.setattr(module, "imagine", lambda *a, **k: seen.setdefault("imagined", imagine(*a, **k)))
    ac.critic.net.register_forward_hook(lambda m, i, out: seen.__setitem__("critic", out.detach()))
    ac.slow_critic.net.register_forward_hook(lambda m, i, out: seen.__setitem__("slow", out.detach()))
    b = batch()
    losses = ac.loss(wm, posterior(wm, b), b["action_mask"], b["reward"], torch.ones(4, dtype=torch.bool))
    return losses, seen


def test_critic_regresses_to_the_lambda_return_only_with_discount_weights(monkeypatch):
    """method §5.5 / NCRL: the critic's loss is the two-hot NLL of the λ-return alone (no extra term toward
    the slow critic), and the critic and actor losses weight imagined step t by γ^t (NCRL, DreamerV3)."""
    from gsa.models.distributions import TwoHot

    wm = tiny_world_model()
    gamma, horizon = 0.5, 5
    ac = ActorCritic(wm.rssm.feat_size, A, finetune_cfg(gamma=gamma, horizon=horizon))
    randomise_outputs(ac)
    (_, actor_loss, critic_loss, _), seen = captured_loss(ac, wm, monkeypatch)
    weight = gamma ** torch.arange(horizon, dtype=torch.float32)[:, None]  # (H, 1)
    nll = TwoHot(seen["critic"]).loss(seen["returns"])                      # (H, N)
    torch.testing.assert_close(critic_loss, (weight * nll).mean())
    dist = seen["imagined"][2]
    assert dist.mean.shape == (horizon, 4 * 6, A)
    objective = seen["returns"] + ac.cfg.entropy * dist.entropy()
    torch.testing.assert_close(actor_loss, -(weight * objective).mean())
    # the DreamerV3 regulariser stays available as an option
    monkeypatch.undo()
    ac.cfg.slow_reg = 1.0
    (_, _, critic_loss, _), seen = captured_loss(ac, wm, monkeypatch)
    slow = TwoHot(seen["slow"][:-1]).mean()
    expected = TwoHot(seen["critic"]).loss(seen["returns"]) + TwoHot(seen["critic"]).loss(slow)
    torch.testing.assert_close(critic_loss, (weight * expected).mean())


def test_reinforce_baseline_is_the_slow_critic(monkeypatch):
    """With a zero reward head and a zero slow critic every λ-return is 0; with the slow critic as the
    baseline (NCRL) every advantage is then 0, whatever the (random) fast critic says."""
    wm = tiny_world_model()
    ac = ActorCritic(wm.rssm.feat_size, A, finetune_cfg(actor_grad="reinforce", entropy=0.0))
    torch.nn.init.normal_(ac.critic.net[-1].weight, std=1.0)  # the fast critic predicts large values
    (_, actor_loss, _, metrics), seen = captured_loss(ac, wm, monkeypatch)
    assert seen["returns"].abs().max() < 1e-5 and metrics["value"].abs() > 0.1
    assert abs(actor_loss.item()) < 1e-5  # the fast critic as baseline gives advantages of about −value


def test_optimisers_decay_weights_like_ncrl():
    """Decoupled weight decay 1e-6 on the world model, actor and critic (NCRL): with zero gradients a step
    multiplies every weight by exactly (1 − 1e-6), at any learning rate."""
    from gsa.config import Config
    from gsa.train.optim import make_optimizer

    cfg = Config()
    wm = tiny_world_model().double()
    ac = ActorCritic(wm.rssm.feat_size, A, finetune_cfg()).double()
    optimisers = [make_optimizer(wm.parameters(), cfg.pretrain.optim), *make_optimizers(ac, cfg.finetune.ac_optim)]
    params = [*wm.parameters(), *ac.actor.parameters(), *ac.critic.parameters(), *ac.reward.parameters()]
    before = [p.detach().clone() for p in params]
    for p in params:
        p.grad = torch.zeros_like(p)
    for optimiser in optimisers:
        optimiser.step()
    for old, new in zip(before, params):
        torch.testing.assert_close(new.detach(), old * (1 - 1e-6), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("actor_grad", ["dynamics", "reinforce"])
def test_compiled_parts_trace_as_whole_graphs(actor_grad):
    """``compile_losses`` compiles the reward head's loss and the policy loss; each must be one graph with no
    graph break (a break leaves the rest of the function to run eagerly, in small compiled pieces — it
    happened when the weights were frozen inside the compiled function). Dynamo's trace only: no codegen."""
    wm = tiny_world_model()
    ac = ActorCritic(wm.rssm.feat_size, A, finetune_cfg(actor_grad=actor_grad))
    b, online = batch(), torch.ones(4, dtype=torch.bool)
    post = posterior(wm, b)
    torch._dynamo.reset()
    explained = torch._dynamo.explain(ac.reward_head_loss)(wm.rssm.feat(post), b["reward"], online)
    assert (explained.graph_count, explained.graph_break_count) == (1, 0), explained.break_reasons
    with frozen(wm.rssm, ac.reward):  # as ActorCritic.loss calls it
        explained = torch._dynamo.explain(ac.policy_loss)(wm.rssm, post, b["action_mask"])
    assert (explained.graph_count, explained.graph_break_count) == (1, 0), explained.break_reasons
    torch._dynamo.reset()
