"""DrQ-v2 (Yarats et al., 2021), the paper's model-free baseline (method §7), written from the paper.

An actor-critic DDPG agent on n-step returns. Pixels go through a 4-layer CNN, with random-shift
augmentation on both the current and the next observation. The encoder learns from the critic's loss only;
the actor sees detached features. Exploration noise follows a schedule (``std_schedule``), and the target
policy's noise is clipped (``std_clip``).

    agent = DrQv2(obs_shape=(3, 64, 64), action_mask=mask, cfg=DrQv2Config(), device="cpu")
    agent.reset(); agent.observe(obs); action = agent.policy(mask, explore=True, step=step)   # in the env loop
    metrics = agent.update(batch, step=step)                                                 # (B, L) windows

Batches are the sampler's sequence windows (``gsa.data.sampler``) of ``agent.window`` frames:
``frame_stack + n_step`` for pixels, ``1 + n_step`` for states. :func:`n_step_transitions` turns them into
(obs, action, n-step discounted reward, next obs). ``action[t]`` led to frame t and ``reward[t]`` was
received on reaching it. Episodes of these tasks end by time limit only, so every transition bootstraps
with γⁿ. A state-mode variant has no encoder: the trunk reads the state vector directly.
"""
from __future__ import annotations

import copy
from collections import deque

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gsa.bc import random_shift
from gsa.config import DrQv2Config
from gsa.guidance import parse_schedule


def n_step_transitions(batch: dict, pixels: bool, frame_stack: int, n_step: int, gamma: float):
    """(B, L) windows → obs (B, 3·stack, H, W) or (B, S), action (B, A), n-step reward (B,), next obs.

    The current frame is the stack's last, k = frame_stack − 1 (pixels) or 0 (states); the action taken
    there is ``action[k + 1]``; the rewards are ``reward[k+1 … k+n]``; the next observation ends at k + n."""
    if pixels:
        frames = batch["observation"]                                  # (B, L, 3, H, W)
        obs = frames[:, :frame_stack].flatten(1, 2)                    # (B, 3·stack, H, W)
        next_obs = frames[:, n_step:n_step + frame_stack].flatten(1, 2)
        k = frame_stack - 1
    else:
        obs, next_obs, k = batch["state"][:, 0], batch["state"][:, n_step], 0
    discounts = gamma ** torch.arange(n_step, device=batch["reward"].device, dtype=torch.float32)
    reward = (batch["reward"][:, k + 1:k + 1 + n_step] * discounts).sum(1)  # (B,)
    return obs, batch["action"][:, k + 1], reward, next_obs


def sample_action(mean: torch.Tensor, std: float, clip: float | None = None, eps: float = 1e-6) -> torch.Tensor:
    """mean + N(0, std²) noise (clipped to ±clip), kept inside (−1, 1) by a straight-through clamp (DrQ-v2's
    truncated normal: the gradient reaches the mean as if nothing were clipped)."""
    noise = torch.randn_like(mean) * std
    if clip is not None:
        noise = noise.clamp(-clip, clip)
    x = mean + noise
    return x - x.detach() + x.detach().clamp(-1 + eps, 1 - eps)


class FrameStack:
    """The acting half of the online loop's protocol (gsa/agents/__init__.py) for agents that read the last
    ``frame_stack`` observations (pixels; in state mode the last one): ``self.frames``, a deque with that
    ``maxlen``, made by the agent. Shared by DrQ-v2, RLPD and Diffusion Policy."""
    frames: deque

    def reset(self) -> None:
        self.frames.clear()

    def observe(self, obs: np.ndarray) -> None:
        """The next frame; the first one of an episode fills the whole stack (DrQ-v2's FrameStack)."""
        self.frames.extend([obs] * (self.frames.maxlen if not self.frames else 1))

    def executed(self, action: np.ndarray) -> None:
        pass

    @property
    def acting_state(self):
        return list(self.frames)

    @acting_state.setter
    def acting_state(self, frames) -> None:
        self.frames.clear()
        self.frames.extend(frames)


class Encoder(nn.Module):
    """4 × [Conv 3×3, 32 channels, ReLU], strides 2, 1, 1, 1, on pixels/255 − 0.5 (64 → 31 → 29 → 27 → 25)."""

    def __init__(self, channels: int, image_size: int = 64):
        super().__init__()
        layers, size = [], image_size
        for i, stride in enumerate((2, 1, 1, 1)):
            layers += [nn.Conv2d(channels if i == 0 else 32, 32, 3, stride), nn.ReLU()]
            size = (size - 3) // stride + 1
        self.net = nn.Sequential(*layers, nn.Flatten())
        self.size = 32 * size * size

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs / 255.0 - 0.5)                             # (B, 32·25·25)


def observation_encoder(obs_shape: tuple, frame_stack: int, device) -> tuple[nn.Module, int]:
    """(encoder, feature size): :class:`Encoder` over ``frame_stack`` stacked frames for pixels, the identity
    for states (DrQ-v2's state variant; also RLPD's and Diffusion Policy's)."""
    if len(obs_shape) == 3:
        encoder = Encoder(obs_shape[0] * frame_stack, obs_shape[-1]).to(device)
        return encoder, encoder.size
    return nn.Identity(), obs_shape[0]


def _mlp(inp: int, hidden: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inp, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, out))


def _trunk(inp: int, feature: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inp, feature), nn.LayerNorm(feature), nn.Tanh())


class Actor(nn.Module):
    def __init__(self, inp: int, action_size: int, feature: int, hidden: int):
        super().__init__()
        self.trunk, self.policy = _trunk(inp, feature), _mlp(feature, hidden, action_size)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.policy(self.trunk(h))) * mask           # (B, A) mean action, padded dims 0


class Critic(nn.Module):
    """Two Q heads on a shared trunk (clipped double Q)."""

    def __init__(self, inp: int, action_size: int, feature: int, hidden: int):
        super().__init__()
        self.trunk = _trunk(inp, feature)
        self.q1, self.q2 = _mlp(feature + action_size, hidden, 1), _mlp(feature + action_size, hidden, 1)

    def forward(self, h: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([self.trunk(h), action], -1)
        return self.q1(x).squeeze(-1), self.q2(x).squeeze(-1)          # (B,), (B,)


def _orthogonal(module: nn.Module) -> None:
    """DrQ-v2's initialisation: orthogonal weights (ReLU gain for convolutions), zero biases."""
    if isinstance(module, (nn.Linear, nn.Conv2d)):
        nn.init.orthogonal_(module.weight.data, nn.init.calculate_gain("relu") if isinstance(module, nn.Conv2d) else 1.0)
        nn.init.zeros_(module.bias.data)


class DrQv2(FrameStack):
    """The agent: networks, optimisers, the frame stack of the episode being played, the update."""

    def __init__(self, obs_shape: tuple, action_mask: np.ndarray, cfg: DrQv2Config, device="cpu",
                 encoder: nn.Module | None = None):
        """``encoder``: a frozen pre-trained encoder (with ``.size``) in place of DrQ-v2's own, which then
        learns nothing (the R3M-style baseline, ``gsa.agents.r3m``)."""
        self.cfg, self.device = cfg, torch.device(device)
        self.pixels = len(obs_shape) == 3
        self.window = (cfg.frame_stack if self.pixels else 1) + cfg.n_step
        self.mask = torch.as_tensor(action_mask, dtype=torch.float32, device=self.device)  # (A,)
        A = len(action_mask)
        learned = encoder is None and self.pixels
        if encoder is not None:
            self.encoder, inp = encoder.to(self.device), encoder.size
        else:
            self.encoder, inp = observation_encoder(obs_shape, cfg.frame_stack, self.device)
        self.actor = Actor(inp, A, cfg.feature_dim, cfg.hidden_dim).to(self.device)
        self.critic = Critic(inp, A, cfg.feature_dim, cfg.hidden_dim).to(self.device)
        for net in (self.encoder, self.actor, self.critic) if learned else (self.actor, self.critic):
            net.apply(_orthogonal)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.encoder_opt = torch.optim.Adam(self.encoder.parameters(), cfg.lr) if learned else None
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), cfg.lr)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), cfg.lr)
        self.std = parse_schedule(cfg.std_schedule)
        self.frames: deque = deque(maxlen=cfg.frame_stack)
        # what the online loop needs to know (gsa.train.online)
        self.batch_size, self.update_every, self.warmup_frames = cfg.batch_size, cfg.update_every, cfg.seed_frames

    # -- acting: FrameStack's, then the policy (the online loop's protocol, gsa/agents/__init__.py) ----
    @torch.no_grad()
    def policy(self, action_mask: torch.Tensor, explore: bool, step: int = 0) -> np.ndarray:
        """Action for the current stack: the mean, plus unclipped noise of the scheduled std at agent step
        ``step`` when exploring; padded dims exactly 0 (the agent's own mask; ``action_mask`` is the env's)."""
        obs = np.concatenate(self.frames, 0) if self.pixels else self.frames[-1]
        h = self.encoder(torch.as_tensor(obs, device=self.device, dtype=torch.float32)[None])
        mean = self.actor(h, self.mask)
        action = sample_action(mean, self.std(step)) if explore else mean
        return (action * self.mask).squeeze(0).cpu().numpy()

    # -- learning -------------------------------------------------------------------------------------
    def update(self, batch: dict, step: int = 0) -> dict[str, torch.Tensor]:
        """One critic + encoder step and one actor step on a batch of windows; returns detached metrics."""
        cfg = self.cfg
        obs, action, reward, next_obs = n_step_transitions(batch, self.pixels, cfg.frame_stack, cfg.n_step, cfg.gamma)
        obs, next_obs = obs.float(), next_obs.float()
        if self.pixels:
            obs, next_obs = random_shift(obs, cfg.shift_pad), random_shift(next_obs, cfg.shift_pad)
        h = self.encoder(obs)
        std = self.std(step)
        with torch.no_grad():
            h_next = self.encoder(next_obs)
            next_action = sample_action(self.actor(h_next, self.mask), std, cfg.std_clip) * self.mask
            target = reward + cfg.gamma ** cfg.n_step * torch.min(*self.critic_target(h_next, next_action))
        q1, q2 = self.critic(h, action)
        critic_loss = F.mse_loss(q1, target) + F.mse_loss(q2, target)
        for opt in (self.encoder_opt, self.critic_opt):
            if opt is not None:
                opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        for opt in (self.encoder_opt, self.critic_opt):
            if opt is not None:
                opt.step()

        h = h.detach()
        new_action = sample_action(self.actor(h, self.mask), std, cfg.std_clip) * self.mask
        actor_loss = -torch.min(*self.critic(h, new_action)).mean()
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_opt.step()
        with torch.no_grad():
            for p, target_p in zip(self.critic.parameters(), self.critic_target.parameters()):
                target_p.lerp_(p, cfg.critic_tau)
        return {"critic_loss": critic_loss.detach(), "actor_loss": actor_loss.detach(), "q": q1.detach().mean(),
                "target": target.mean(), "std": torch.tensor(std)}

    # -- checkpoints ----------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        state = {name: getattr(self, name).state_dict() for name in
                 ("encoder", "actor", "critic", "critic_target", "actor_opt", "critic_opt")}
        if self.encoder_opt is not None:
            state["encoder_opt"] = self.encoder_opt.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        for name, value in state.items():
            getattr(self, name).load_state_dict(value)
