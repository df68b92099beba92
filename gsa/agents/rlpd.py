"""RLPD (Ball et al., 2023) with UDS rewards: the paper's ``uds-rlpd`` baseline (method §7), written from the
papers.

SAC with an ensemble of ``critics`` Q-networks (LayerNorm MLPs). The target takes the minimum over 2 members
drawn at random. There are ``utd`` critic updates per agent step and one actor and temperature update after
them. Every batch is half online and half offline (symmetric sampling); the offline half is the trajectories
GSA retrieves. UDS (Yu et al., 2022) labels the offline transitions with reward 0, which is what the shared
sampler already gives rows without rewards. Pixels use DrQ-v2's encoder and random shifts, trained by the
critic.

    agent = RLPD(obs_shape=(78,), action_mask=mask, cfg=RLPDConfig(), device="cpu")
    metrics = agent.update(batch)       # (utd × B, frame_stack + 1) windows (pixels) or (utd × B, 2) (states)
"""
from __future__ import annotations

import copy
import math
from collections import deque

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gsa.agents.drqv2 import FrameStack, n_step_transitions, observation_encoder
from gsa.bc import random_shift
from gsa.config import RLPDConfig


def _mlp(inp: int, hidden: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inp, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, out))


class Actor(nn.Module):
    """Tanh-squashed Gaussian policy; padded action dims are exactly 0."""

    def __init__(self, inp: int, action_size: int, hidden: int):
        super().__init__()
        self.net = _mlp(inp, hidden, 2 * action_size)

    def forward(self, h: torch.Tensor, mask: torch.Tensor, deterministic: bool = False):
        mean, log_std = self.net(h).chunk(2, -1)
        log_std = log_std.clamp(-5, 2)
        u = mean if deterministic else mean + log_std.exp() * torch.randn_like(mean)
        action = torch.tanh(u)
        # log π(a|s) on the real dims: Gaussian log-density minus the tanh Jacobian
        log_prob = (-0.5 * ((u - mean) / log_std.exp()) ** 2 - log_std - 0.5 * math.log(2 * math.pi)
                    - torch.log1p(-action.pow(2) + 1e-6))
        return action * mask, (log_prob * mask).sum(-1)                  # (B, A), (B,)


class Ensemble(nn.Module):
    """``members`` independent Q(s, a) MLPs with LayerNorm (RLPD) → (members, B). Their weights are stacked
    along a first axis, so each layer of all members is one batched matmul (as RLPD's vmapped ensemble):
    ~10× fewer operations per update than a loop over members, which is what an update on the CPU costs.
    Each member is initialised as its own ``nn.Linear`` / ``nn.LayerNorm`` would be."""

    def __init__(self, inp: int, action_size: int, hidden: int, members: int):
        super().__init__()
        sizes = [inp + action_size, hidden, hidden, 1]
        self.weights = nn.ParameterList(nn.Parameter(torch.empty(members, i, o)) for i, o in zip(sizes, sizes[1:]))
        self.biases = nn.ParameterList(nn.Parameter(torch.empty(members, 1, o)) for o in sizes[1:])
        self.norm_weights = nn.ParameterList(nn.Parameter(torch.ones(members, 1, hidden)) for _ in range(2))
        self.norm_biases = nn.ParameterList(nn.Parameter(torch.zeros(members, 1, hidden)) for _ in range(2))
        for w, b in zip(self.weights, self.biases):  # nn.Linear's default: U(±1/√fan_in) for weight and bias
            bound = 1 / math.sqrt(w.shape[1])
            nn.init.uniform_(w, -bound, bound)
            nn.init.uniform_(b, -bound, bound)

    def forward(self, h: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        x = torch.cat([h, action], -1).expand(len(self.weights[0]), -1, -1)  # (members, B, S + A)
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            x = torch.baddbmm(b, x, w)                                          # (members, B, out)
            if i < len(self.norm_weights):
                x = F.relu(F.layer_norm(x, x.shape[-1:]) * self.norm_weights[i] + self.norm_biases[i])
        return x.squeeze(-1)                                                    # (members, B)


def min_of_random_members(q: torch.Tensor, k: int) -> torch.Tensor:
    """RLPD's target value: the minimum over ``k`` members of the ensemble's values ``q`` (members, B), drawn at
    random without replacement, the same ``k`` for the whole batch → (B,)."""
    pick = torch.randperm(q.shape[0], device=q.device)[:k]
    return q[pick].min(0).values


class RLPD(FrameStack):
    """The agent: networks, optimisers, temperature, the frame stack of the episode, the update."""

    def __init__(self, obs_shape: tuple, action_mask: np.ndarray, cfg: RLPDConfig, device="cpu"):
        self.cfg, self.device = cfg, torch.device(device)
        self.pixels = len(obs_shape) == 3
        self.mask = torch.as_tensor(action_mask, dtype=torch.float32, device=self.device)  # (A,)
        A = len(action_mask)
        self.encoder, inp = observation_encoder(obs_shape, cfg.frame_stack, self.device)
        self.actor = Actor(inp, A, cfg.hidden_dim).to(self.device)
        self.critic = Ensemble(inp, A, cfg.hidden_dim, cfg.critics).to(self.device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = torch.tensor(math.log(cfg.init_temperature), device=self.device, requires_grad=True)
        self.target_entropy = -float(self.mask.sum()) / 2                 # RLPD: −|A| / 2
        critic_params = [*self.critic.parameters(), *(self.encoder.parameters() if self.pixels else [])]
        self.critic_opt = torch.optim.Adam(critic_params, cfg.lr)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), cfg.lr)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], cfg.lr)
        self.frames: deque = deque(maxlen=cfg.frame_stack)
        # what the online loop needs to know (gsa.train.online)
        self.window = (cfg.frame_stack if self.pixels else 1) + 1
        self.batch_size, self.update_every, self.warmup_frames = cfg.batch_size * cfg.utd, 1, cfg.seed_frames

    # -- acting: FrameStack's, then the policy (the online loop's protocol, gsa/agents/__init__.py) ----
    @torch.no_grad()
    def policy(self, action_mask: torch.Tensor, explore: bool, step: int = 0) -> np.ndarray:
        obs = np.concatenate(self.frames, 0) if self.pixels else self.frames[-1]
        h = self.encoder(torch.as_tensor(obs, device=self.device, dtype=torch.float32)[None])
        action, _ = self.actor(h, self.mask, deterministic=not explore)
        return action.squeeze(0).cpu().numpy()

    # -- learning -------------------------------------------------------------------------------------
    def _split(self, batch: dict, part: slice):
        obs, action, reward, next_obs = n_step_transitions(batch, self.pixels, self.cfg.frame_stack, 1, self.cfg.gamma)
        obs, action, reward, next_obs = obs[part].float(), action[part], reward[part], next_obs[part].float()
        if self.pixels:
            obs, next_obs = random_shift(obs, self.cfg.shift_pad), random_shift(next_obs, self.cfg.shift_pad)
        return obs, action, reward, next_obs

    def update(self, batch: dict, step: int = 0) -> dict[str, torch.Tensor]:
        """``utd`` critic updates on minibatches of the batch (B = utd × minibatch; minibatch i takes rows i,
        i + utd, …, so each has the batch's online/offline mix), then one actor and temperature update on the
        last one; returns detached metrics."""
        cfg = self.cfg
        alpha = self.log_alpha.exp().detach()
        for i in range(cfg.utd):
            obs, action, reward, next_obs = self._split(batch, slice(i, None, cfg.utd))
            with torch.no_grad():
                h_next = self.encoder(next_obs)
                next_action, next_logp = self.actor(h_next, self.mask)
                q_next = min_of_random_members(self.critic_target(h_next, next_action), cfg.target_members)  # (B,)
                if cfg.backup_entropy:
                    q_next = q_next - alpha * next_logp
                target = reward + cfg.gamma * q_next
            q = self.critic(self.encoder(obs), action)                                 # (members, B)
            critic_loss = F.mse_loss(q, target.expand_as(q))
            self.critic_opt.zero_grad(set_to_none=True)
            critic_loss.backward()
            self.critic_opt.step()
            with torch.no_grad():
                torch._foreach_lerp_(list(self.critic_target.parameters()), list(self.critic.parameters()), cfg.tau)

        h = self.encoder(obs).detach()
        new_action, logp = self.actor(h, self.mask)
        actor_loss = (alpha * logp - self.critic(h, new_action).mean(0)).mean()
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_opt.step()
        alpha_loss = -(self.log_alpha.exp() * (logp.detach() + self.target_entropy)).mean()
        self.alpha_opt.zero_grad(set_to_none=True)
        alpha_loss.backward()
        self.alpha_opt.step()
        return {"critic_loss": critic_loss.detach(), "actor_loss": actor_loss.detach(), "q": q.detach().mean(),
                "alpha": alpha, "entropy": -logp.detach().mean()}

    # -- checkpoints ----------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        state = {name: getattr(self, name).state_dict() for name in
                 ("encoder", "actor", "critic", "critic_target", "actor_opt", "critic_opt", "alpha_opt")}
        return {**state, "log_alpha": self.log_alpha.detach().clone()}

    def load_state_dict(self, state: dict) -> None:
        for name, value in state.items():
            if name == "log_alpha":
                self.log_alpha.data.copy_(value)
            else:
                getattr(self, name).load_state_dict(value)
