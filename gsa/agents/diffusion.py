"""Diffusion Policy (Chi et al., 2023): the paper's imitation baseline (method §7, appendix), written from
the papers.

A DDPM (Ho et al., 2020) over actions, conditioned on the observation: ε_θ(a_k, k, s) is trained to predict
the noise added to a retrieved action at a random diffusion step k (cosine noise schedule, ``train_steps``
steps); acting runs the reverse process from Gaussian noise with DDIM (Song et al., 2021,
``inference_steps`` deterministic steps). It imitates the trajectories GSA retrieves (the same k, the same
embodiment) and never uses a reward: the online loop samples its batches from the retrieved data only, and its
online episodes serve evaluation alone. Pixels go through DrQ-v2's encoder on 3 stacked frames with random
shifts, trained with the noise predictor; states feed the predictor directly.

Deviation from Diffusion Policy: one action per observation (no action chunks of 16 executed 8 at a time) and
an MLP noise predictor instead of a temporal U-Net, so that it acts through the same protocol as every agent
here; ``docs/deviations.md``.

    agent = DiffusionPolicy(obs_shape=(78,), action_mask=mask, cfg=DiffusionConfig(), device="cpu")
    metrics = agent.update(batch)          # (B, frame_stack + 1) windows (pixels) or (B, 2) (states)
"""
from __future__ import annotations

import math
from collections import deque

import numpy as np
import torch
from torch import nn

from gsa.agents.drqv2 import FrameStack, n_step_transitions, observation_encoder
from gsa.bc import random_shift
from gsa.config import DiffusionConfig


def cosine_alpha_bar(steps: int, s: float = 0.008) -> torch.Tensor:
    """ᾱ_k for k = 1 … steps of the cosine schedule (Nichol & Dhariwal, 2021), betas clipped at 0.999 → (steps,)."""
    t = torch.linspace(0, steps, steps + 1, dtype=torch.float64) / steps
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
    return torch.cumprod(1 - betas, 0).float()


def time_embedding(k: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of diffusion steps (B,) → (B, dim)."""
    freqs = torch.exp(-math.log(10_000) * torch.arange(dim // 2, device=k.device) / (dim // 2))
    x = k.float()[:, None] * freqs[None]
    return torch.cat([x.sin(), x.cos()], -1)


class NoiseNet(nn.Module):
    """ε_θ(a_k, k, s): an MLP on [noisy action, step embedding, observation features] → noise (B, A)."""

    def __init__(self, inp: int, action_size: int, hidden: int, layers: int, time_dim: int = 64):
        super().__init__()
        self.time_dim = time_dim
        self.time = nn.Sequential(nn.Linear(time_dim, hidden), nn.Mish(), nn.Linear(hidden, hidden))
        width = [inp + action_size + hidden] + [hidden] * layers
        blocks = []
        for a, b in zip(width[:-1], width[1:]):
            blocks += [nn.Linear(a, b), nn.LayerNorm(b), nn.Mish()]
        self.net = nn.Sequential(*blocks, nn.Linear(hidden, action_size))

    def forward(self, noisy: torch.Tensor, k: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([noisy, self.time(time_embedding(k, self.time_dim)), h], -1))


class DiffusionPolicy(FrameStack):
    """The agent: the noise predictor (and encoder), its optimiser, the frame stack, the update."""

    def __init__(self, obs_shape: tuple, action_mask: np.ndarray, cfg: DiffusionConfig, device="cpu"):
        self.cfg, self.device = cfg, torch.device(device)
        self.pixels = len(obs_shape) == 3
        self.mask = torch.as_tensor(action_mask, dtype=torch.float32, device=self.device)  # (A,)
        self.encoder, inp = observation_encoder(obs_shape, cfg.frame_stack, self.device)
        self.net = NoiseNet(inp, len(action_mask), cfg.hidden_dim, cfg.layers).to(self.device)
        self.alpha_bar = cosine_alpha_bar(cfg.train_steps).to(self.device)           # (K,)
        self.opt = torch.optim.AdamW([*self.encoder.parameters(), *self.net.parameters()], cfg.lr,
                                     weight_decay=cfg.weight_decay)
        self.frames: deque = deque(maxlen=cfg.frame_stack)
        # what the online loop needs to know (gsa.train.online): batches of retrieved data from the start
        self.window = (cfg.frame_stack if self.pixels else 1) + 1
        self.batch_size, self.update_every, self.warmup_frames = cfg.batch_size, cfg.update_every, 0

    # -- acting: FrameStack's, then the policy (the online loop's protocol, gsa/agents/__init__.py) ----
    @torch.no_grad()
    def sample(self, h: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Actions (B, A) for features ``h`` (B, D) by DDIM from Gaussian noise, clipped to [−1, 1], padded dims 0."""
        K, n = self.cfg.train_steps, self.cfg.inference_steps
        ks = torch.linspace(K - 1, 0, n, device=self.device).round().long()          # (n,) descending steps
        a = torch.randn(len(h), len(self.mask), device=self.device, generator=generator)
        for i, k in enumerate(ks):
            ab = self.alpha_bar[k]
            ab_prev = self.alpha_bar[ks[i + 1]] if i + 1 < n else torch.ones((), device=self.device)
            eps = self.net(a, k.expand(len(h)), h)
            a0 = ((a - (1 - ab).sqrt() * eps) / ab.sqrt()).clamp(-1, 1)
            a = ab_prev.sqrt() * a0 + (1 - ab_prev).sqrt() * eps
        return a.clamp(-1, 1) * self.mask

    @torch.no_grad()
    def policy(self, action_mask: torch.Tensor, explore: bool, step: int = 0) -> np.ndarray:
        """A sampled action for the current stack (the policy is stochastic by construction; ``explore`` is
        unused: nothing learns from its online episodes)."""
        obs = np.concatenate(self.frames, 0) if self.pixels else self.frames[-1]
        h = self.encoder(torch.as_tensor(obs, device=self.device, dtype=torch.float32)[None])
        return self.sample(h).squeeze(0).cpu().numpy()

    # -- learning -------------------------------------------------------------------------------------
    def loss(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """DDPM's simple loss: ‖ε − ε_θ(√ᾱ_k a + √(1−ᾱ_k) ε, k, s)‖² on the real action dims."""
        h = self.encoder(obs)
        k = torch.randint(0, self.cfg.train_steps, (len(obs),), device=self.device)
        ab = self.alpha_bar[k][:, None]
        noise = torch.randn_like(action) * self.mask
        pred = self.net(ab.sqrt() * action + (1 - ab).sqrt() * noise, k, h)
        return ((pred - noise) ** 2 * self.mask).sum(-1).mean() / self.mask.sum()

    def update(self, batch: dict, step: int = 0) -> dict[str, torch.Tensor]:
        """One denoising step on (observation, next action) pairs of the batch's windows."""
        obs, action, _, _ = n_step_transitions(batch, self.pixels, self.cfg.frame_stack, 1, 1.0)
        obs = obs.float()
        if self.pixels:
            obs = random_shift(obs, self.cfg.shift_pad)
        loss = self.loss(obs, action * self.mask)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {"denoising_loss": loss.detach()}

    # -- checkpoints ----------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {name: getattr(self, name).state_dict() for name in ("encoder", "net", "opt")}

    def load_state_dict(self, state: dict) -> None:
        for name, value in state.items():
            getattr(self, name).load_state_dict(value)
