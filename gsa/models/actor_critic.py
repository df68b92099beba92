"""Reward head and actor-critic in imagination (method §5.4–5.5; paper Eq. 2–4; DreamerV3).

    ac = ActorCritic(wm.rssm.feat_size, wm_cfg.action_size, cfg.finetune)
    actor_opt, critic_opt = make_optimizers(ac, cfg.finetune.ac_optim)
    _, _, post, _ = wm.loss(batch)
    reward_loss, actor_loss, critic_loss, metrics = ac.loss(wm, post, batch["action_mask"], batch["reward"], online)
    (reward_loss + actor_loss + critic_loss).backward()   # each loss reaches only its own head's parameters
    actor_opt.step(); critic_opt.step(); ac.update_slow(cfg.finetune.slow_critic_fraction)

(The actor's gradient flows through the imagined dynamics and the reward head, whose weights are frozen
while imagining: the world model gets no gradient from the actor-critic.)

Time convention (DreamerV3): ``reward[t]`` of a sequence is the reward received on reaching observation t,
so the reward head predicts it from s_t = [h_t, z_t], the state reached *after* the action. In imagination
s_0 is a posterior state, a_t ~ π(s_t), s_{t+1} = img_step(s_t, a_t) and the reward of step t is r̂(s_{t+1}).

Every loss is a mean of per-step terms with no host synchronisation, so the update can be compiled.
"""
from __future__ import annotations

import contextlib
import copy
import math

import torch
from torch import nn

from gsa.config import FinetuneConfig, OptimConfig
from gsa.models.distributions import TwoHot
from gsa.models.nets import MLP
from gsa.models.rssm import RSSM, State
from gsa.train.optim import make_optimizer

RETURN_DECAY = 0.99     # DreamerV3: EMA of the 5th/95th return percentiles (REINFORCE option)


def mlp_head(inp: int, units: int, layers: int, out: int, zero_init: bool = False) -> nn.Sequential:
    """`layers` × (Linear → LayerNorm → SiLU) of width `units`, then Linear to `out`. DreamerV3 initialises
    the output layer of the reward head and critic at zero, so both start by predicting exactly 0."""
    linear = nn.Linear(units, out)
    if zero_init:
        nn.init.zeros_(linear.weight)
        nn.init.zeros_(linear.bias)
    return nn.Sequential(MLP(inp, units, layers), linear)


class RewardHead(nn.Module):
    """r_ξ(s_t): symlog two-hot over `bins` bins in [−20, 20] (method §5.4). Its inputs are not detached here:
    :func:`reward_loss` detaches the posterior features, and imagination evaluates it with frozen weights."""

    def __init__(self, feat_size: int, units: int, layers: int, bins: int):
        super().__init__()
        self.net = mlp_head(feat_size, units, layers, bins, zero_init=True)

    def forward(self, feat: torch.Tensor) -> TwoHot:
        return TwoHot(self.net(feat))                               # over (..., bins)


def reward_loss(head: RewardHead, feat: torch.Tensor, reward: torch.Tensor, online: torch.Tensor) -> torch.Tensor:
    """Two-hot NLL of reward (B, T) from detached features (B, T, F), averaged over the online rows (B,) only.

    Retrieved rows (method §5.3) contribute nothing: their targets are replaced by 0 and their terms weighted
    by 0, so their rewards reach neither the loss nor the gradient. No online row → 0 (zero gradient)."""
    keep = online[:, None].expand_as(reward)                        # (B, T) bool
    nll = head(feat.detach()).loss(torch.where(keep, reward, torch.zeros_like(reward)))  # (B, T)
    weight = keep.to(nll.dtype)
    return (nll * weight).sum() / weight.sum().clamp(min=1)


class RewardEnsemble(nn.Module):
    """``members`` reward heads r_ξ1 … r_ξM on the same online rows (their random initialisations make them
    disagree away from the data): the uncertainty-aware reward of paper Fig. 7."""

    def __init__(self, feat_size: int, units: int, layers: int, bins: int, members: int):
        super().__init__()
        self.heads = nn.ModuleList(RewardHead(feat_size, units, layers, bins) for _ in range(members))

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        return torch.stack([head(feat).mean() for head in self.heads])  # (M, ...) predicted rewards

    def loss(self, feat: torch.Tensor, reward: torch.Tensor, online: torch.Tensor) -> torch.Tensor:
        return sum(reward_loss(head, feat, reward, online) for head in self.heads)


def optimistic_thompson(predictions: torch.Tensor) -> torch.Tensor:
    """Optimistic Thompson Sampling over an ensemble (M, H, N) → (H, N): each imagined trajectory n draws one
    member j uniformly (Thompson sampling, one posterior sample per trajectory) and takes max(r_j, mean of
    the members) at every step — a sample, never below the ensemble's mean (optimism)."""
    M, _, N = predictions.shape
    j = torch.randint(0, M, (N,), device=predictions.device)
    sampled = predictions.gather(0, j[None, None].expand(1, predictions.shape[1], N)).squeeze(0)
    return torch.maximum(sampled, predictions.mean(0))


class ActionDist:
    """DreamerV3's bounded normal, the "tanh-squashed/truncated normal" of method §5.5.

    N(mean, std) per dim with mean = tanh(raw) and std = min_std + (max_std − min_std)·σ(raw_std + 2);
    samples are reparameterised and clipped to [−1, 1] with a straight-through gradient (the clip is the
    truncation). log_prob and entropy sum over the real dims of `mask` (..., A) only; sampled and mean
    actions are multiplied by the mask, so padded dims are exactly 0 (method §4).
    """

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, mask: torch.Tensor):
        self.mean, self.std, self.mask = mean, std, mask            # (..., A)

    def sample(self) -> torch.Tensor:
        x = self.mean + self.std * torch.randn_like(self.mean)
        x = x + (x.clamp(-1, 1) - x).detach()                       # clip forward, identity backward
        return x * self.mask

    def mode(self) -> torch.Tensor:
        return self.mean * self.mask

    def log_prob(self, action: torch.Tensor) -> torch.Tensor:
        z = (action - self.mean) / self.std
        log_prob = -0.5 * z.square() - self.std.log() - 0.5 * math.log(2 * math.pi)
        return (log_prob * self.mask).sum(-1)                       # (...)

    def entropy(self) -> torch.Tensor:
        return ((0.5 * math.log(2 * math.pi * math.e) + self.std.log()) * self.mask).sum(-1)  # (...)


class Actor(nn.Module):
    """π_φ(a | s): MLP → mean and std for each of the A_max action dims (method §5.5)."""

    def __init__(self, feat_size: int, action_size: int, units: int, layers: int,
                 min_std: float = 0.1, max_std: float = 1.0):
        super().__init__()
        self.net = mlp_head(feat_size, units, layers, 2 * action_size)
        self.min_std, self.max_std = min_std, max_std

    def forward(self, feat: torch.Tensor, action_mask: torch.Tensor) -> ActionDist:
        mean, std = self.net(feat).float().chunk(2, -1)             # (..., A) each
        std = self.min_std + (self.max_std - self.min_std) * torch.sigmoid(std + 2)
        return ActionDist(torch.tanh(mean), std, action_mask.float())


class Critic(nn.Module):
    """v_ψ(s): two-hot distribution over the λ-return (paper Eq. 3)."""

    def __init__(self, feat_size: int, units: int, layers: int, bins: int):
        super().__init__()
        self.net = mlp_head(feat_size, units, layers, bins, zero_init=True)

    def forward(self, feat: torch.Tensor) -> TwoHot:
        return TwoHot(self.net(feat))


def lambda_returns(reward: torch.Tensor, value: torch.Tensor, gamma: float, lam: float) -> torch.Tensor:
    """Paper Eq. 2: R_t = r_t + γ((1 − λ)·v_{t+1} + λ·R_{t+1}), R_H = v_H. No continue head (method §5.5).

    reward (H, N): reward[t] = r̂(s_{t+1}), received on the step s_t → s_{t+1}; value (H+1, N): v(s_t).
    Returns R_0 … R_{H−1}, (H, N), the targets for states s_0 … s_{H−1}.
    """
    returns = [value[-1]]                                           # R_H
    for t in reversed(range(reward.shape[0])):
        returns.append(reward[t] + gamma * ((1 - lam) * value[t + 1] + lam * returns[-1]))
    return torch.stack(returns[:0:-1])                              # (H, N), R_0 first


def discount_weights(gamma: float, horizon: int, like: torch.Tensor) -> torch.Tensor:
    """(H, 1) weights of the imagined steps s_0 … s_{H−1} in the actor and critic losses: the cumulative
    product of the discount, γ^t (DreamerV3 and the NCRL code; with no continue head every factor is γ)."""
    return gamma ** torch.arange(horizon, device=like.device, dtype=torch.float32)[:, None]


def imagine(rssm: RSSM, actor: Actor, start: State, action_mask: torch.Tensor,
            horizon: int) -> tuple[State, torch.Tensor, ActionDist]:
    """Roll π in the prior from start states (N, ...) → states (H+1, N, ...) (start first), actions (H, N, A)
    and the policy's distributions at s_0 … s_{H−1}, stacked to (H, N, A).

    The actor sees detached features (DreamerV2), so with dynamics backprop the gradient reaches the actor
    only through its actions' effect on later states, rewards and values (and through the distributions'
    entropy, which the actor loss reuses instead of running the actor again)."""
    states, actions, means, stds = [start], [], [], []
    for _ in range(horizon):
        dist = actor(rssm.feat(states[-1]).detach(), action_mask)
        action = dist.sample()                                      # (N, A)
        states.append(rssm.img_step(states[-1], action))
        actions.append(action)
        means.append(dist.mean)
        stds.append(dist.std)
    dists = ActionDist(torch.stack(means), torch.stack(stds), action_mask.float())
    return {k: torch.stack([s[k] for s in states]) for k in start}, torch.stack(actions), dists


@contextlib.contextmanager
def frozen(*modules: nn.Module):
    """Build the graph without the modules' parameters: gradients reach their inputs, not their weights."""
    params = [p for m in modules for p in m.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


class ActorCritic(nn.Module):
    """Reward head, actor, critic and slow critic of GSA fine-tuning (method §5.4–5.5)."""

    def __init__(self, feat_size: int, action_size: int, cfg: FinetuneConfig):
        super().__init__()
        if cfg.actor_grad not in ("dynamics", "reinforce"):
            raise ValueError(f"unknown actor_grad {cfg.actor_grad!r}; choose 'dynamics' or 'reinforce'")
        self.cfg = cfg
        self.reward = (RewardEnsemble(feat_size, cfg.units, cfg.reward_layers, cfg.bins, cfg.reward_ensemble)
                       if cfg.reward_uncertainty else RewardHead(feat_size, cfg.units, cfg.reward_layers, cfg.bins))
        self.actor = Actor(feat_size, action_size, cfg.units, cfg.actor_layers, cfg.min_std, cfg.max_std)
        self.critic = Critic(feat_size, cfg.units, cfg.actor_layers, cfg.bins)
        self.slow_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.register_buffer("return_range", torch.zeros(2))       # EMA of the 5th, 95th return percentiles

    @torch.no_grad()
    def update_slow(self, fraction: float) -> None:
        """θ_slow ← (1 − f)·θ_slow + f·θ (method §5.5: f = 0.02 every update)."""
        for slow, fast in zip(self.slow_critic.parameters(), self.critic.parameters()):
            slow.lerp_(fast, fraction)

    def return_scale(self, returns: torch.Tensor) -> torch.Tensor:
        """DreamerV3 return normalisation: update the EMA of the 5th/95th percentiles of the returns and give
        max(1, P95 − P5), so advantages are scaled down when returns are large and never scaled up."""
        q = torch.quantile(returns.detach().float().flatten(), returns.new_tensor([0.05, 0.95], dtype=torch.float))
        self.return_range.lerp_(q, 1 - RETURN_DECAY)
        low, high = self.return_range
        return (high - low).clamp(min=1.0)

    def loss(self, world_model, post: State, action_mask: torch.Tensor, reward: torch.Tensor, online: torch.Tensor,
             intrinsic=None):
        """→ (reward loss, actor loss, critic loss, metrics) for posterior states (B, T, ...) of a batch.

        action_mask (B, A) float, reward (B, T), online (B,) bool. Imagination starts from all B·T posterior
        states (method §5.5). The λ-returns use rewards of the (frozen) reward head and values of the slow
        critic; with ``actor_grad="dynamics"`` (paper Eq. 4) the actor maximises them by back-propagating
        through the imagined dynamics and the reward head, whose weights are frozen while imagining (no
        gradient is computed for them).

        ``intrinsic(feat (H, N, F), actions (H, N, A)) → (H, N)``, if given, replaces the reward head in
        imagination (the Plan2Explore explorer's disagreement, ``gsa/explore.py``): reward[t] is then a
        function of (s_t, a_t), and the reward head is not trained (its loss is 0).

        The two parts are separate functions so that :meth:`compile_losses` can compile each as one graph:
        the weights are frozen between them, which a compiled graph cannot do (dynamo does not trace
        ``requires_grad_``).
        """
        rssm = world_model.rssm
        post = {k: v.detach() for k, v in post.items()}
        if intrinsic is not None:
            rew_loss = reward.new_zeros(())
        else:
            rew_loss = self.reward_head_loss(rssm.feat(post), reward, online)
        with frozen(rssm, self.reward):
            actor_loss, critic_loss, metrics = self.policy_loss(rssm, post, action_mask, intrinsic)
        return rew_loss, actor_loss, critic_loss, metrics

    def compile_losses(self) -> None:
        """torch.compile :meth:`reward_head_loss` and :meth:`policy_loss` (two graphs; the weights are frozen
        between them, outside the graphs)."""
        self.reward_head_loss = torch.compile(self.reward_head_loss)
        self.policy_loss = torch.compile(self.policy_loss)

    def reward_head_loss(self, feat: torch.Tensor, reward: torch.Tensor, online: torch.Tensor) -> torch.Tensor:
        """The reward head's loss on the online rows (method §5.3)."""
        if isinstance(self.reward, RewardEnsemble):
            return self.reward.loss(feat, reward, online)
        return reward_loss(self.reward, feat, reward, online)

    def policy_loss(self, rssm, post: State, action_mask: torch.Tensor, intrinsic=None):
        """Imagination from every posterior state (B, T, ...), λ-returns, and the actor and critic losses
        → (actor loss, critic loss, metrics). Called by :meth:`loss` with the RSSM and reward head frozen."""
        cfg = self.cfg
        B, T = next(iter(post.values())).shape[:2]
        start = {k: v.flatten(0, 1) for k, v in post.items()}     # (N, ...), N = B·T
        mask = action_mask[:, None].expand(B, T, -1).flatten(0, 1)  # (N, A)
        with torch.no_grad() if cfg.actor_grad == "reinforce" else contextlib.nullcontext():
            states, actions, dists = imagine(rssm, self.actor, start, mask, cfg.horizon)
            feat = rssm.feat(states)                                # (H+1, N, F)
            if intrinsic is not None:
                imag_reward = intrinsic(feat[:-1], actions)         # (H, N)
            elif isinstance(self.reward, RewardEnsemble):           # paper Fig. 7: optimistic labels
                imag_reward = optimistic_thompson(self.reward(feat[1:]))
            else:
                imag_reward = self.reward(feat[1:]).mean()          # (H, N)
            slow_value = self.slow_critic(feat).mean()              # (H+1, N)
            returns = lambda_returns(imag_reward, slow_value, cfg.gamma, cfg.lam)  # (H, N)

        weight = discount_weights(cfg.gamma, cfg.horizon, returns)  # (H, 1)
        value_dist = self.critic(feat[:-1].detach())                # two-hot over (H, N)
        critic_loss = value_dist.loss(returns.detach())             # (H, N)
        if cfg.slow_reg:                                            # DreamerV3 option, off by default
            critic_loss = critic_loss + cfg.slow_reg * value_dist.loss(slow_value[:-1].detach())
        critic_loss = (weight * critic_loss).mean()
        if cfg.actor_grad == "reinforce":  # imagined without gradients: the log-probabilities need them
            dists = self.actor(feat[:-1].detach(), mask)
        actor_loss, metrics = self._actor_loss(dists, actions, mask, returns, slow_value[:-1], weight)
        metrics.update(imag_return=returns.mean(), imag_reward=imag_reward.mean(),
                       value=value_dist.mean().detach().mean())
        return actor_loss, critic_loss, {k: v.detach() for k, v in metrics.items()}

    def _actor_loss(self, dist, actions, mask, returns, baseline, weight) -> tuple[torch.Tensor, dict]:
        """−(objective + η·entropy) over the imagined states s_0 … s_{H−1}, weighted by ``weight`` (H, 1) and
        averaged: π's distributions there (H, N, A), actions (H, N, A), returns and baseline (H, N). The objective is the
        λ-return itself (dynamics backprop, paper Eq. 4) or REINFORCE with the advantage R − v_slow (the NCRL
        code's baseline: the slow critic) normalised by max(1, P95 − P5)."""
        cfg = self.cfg
        entropy = dist.entropy()                                    # (H, N)
        metrics = {"actor_entropy": entropy.mean(), "actor_std": (dist.std * mask).sum() / (mask.sum() * len(dist.std))}
        if cfg.actor_grad == "dynamics":
            objective = returns
        else:
            metrics["return_scale"] = scale = self.return_scale(returns)
            objective = dist.log_prob(actions.detach()) * ((returns - baseline) / scale).detach()
        return -(weight * (objective + cfg.entropy * entropy)).mean(), metrics


def make_optimizers(ac: ActorCritic, cfg: OptimConfig) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
    """Adam for the actor, and Adam for critic + reward head, both with ``ac_optim`` (method §5.5: lr 8e-5,
    eps 1e-5, decoupled weight decay 1e-6 as NCRL; gradient-norm clip ``cfg.grad_clip`` = 100 is applied
    by the caller). Choice: the reward head joins the critic's optimiser (lr 8e-5) instead of the world
    model's (DreamerV3 trains it with the world model, lr 1e-4), so the world-model optimiser holds exactly
    the pre-trained model's parameters."""
    return make_optimizer(ac.actor.parameters(), cfg), make_optimizer([*ac.critic.parameters(), *ac.reward.parameters()], cfg)
