"""The behaviour-cloning prior π_bc of execution guidance (method §5.6, paper App. G.1).

π_bc sees 3 stacked 64×64 RGB frames, uint8 (B, 9, 64, 64) (oldest first), and is trained by MSE on the
real action dimensions of the retrieved trajectories, with DrQ-v2's random-shift augmentation:

    sampler = BCSampler(episodes, action_mask, batch_size=256)
    policy = BCPolicy(action_size=12, action_mask=action_mask)
    losses = train_bc(policy, sampler, steps=150_000, lr=1e-4)
    action = policy.act(stack_frames(np.stack(frames[-3:]))[-1])    # in the env loop

Episodes follow the NCRL layout: ``action[t]`` is the action that *led to* observation t (row 0 zeros), so
the action taken after seeing the stack that ends at frame t is ``action[t + 1]``.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

FRAMES = 3  # stacked frames (paper App. G.1; DrQ-v2)


def stack_frames(observations: np.ndarray, is_first: np.ndarray | None = None) -> np.ndarray:
    """(T+1, 3, H, W) frames → (T+1, 9, H, W) stacks [o_{t−2}, o_{t−1}, o_t].

    Near an episode start (``is_first`` flags, (T+1,) bool; row 0 always starts one) the missing earlier
    frames repeat the episode's first frame."""
    n = len(observations)
    first = np.zeros(n, bool) if is_first is None else np.array(is_first, bool)
    first[0] = True
    t = np.arange(n)
    start = np.maximum.accumulate(np.where(first, t, 0))  # (T+1,) index of each step's episode start
    rows = np.maximum(t[:, None] + np.arange(1 - FRAMES, 1), start[:, None])  # (T+1, 3)
    return observations[rows].reshape(n, -1, *observations.shape[2:])  # (T+1, 9, H, W)


class BCSampler:
    """Uniform (observation, next action) pairs from episodes padded to A_max; call it for a batch.

    Pixel episodes (``observation`` (T+1, 3, H, W)) give 3-frame stacks (B, 9, H, W); with
    ``obs_key="state"`` the padded state vectors (B, S). Batches: ``obs``, ``action`` (B, A), ``action_mask`` (A,).
    """

    def __init__(self, episodes: list[dict], action_mask: np.ndarray | None = None, batch_size: int = 256,
                 obs_key: str = "observation", seed: int = 0):
        self.episodes, self.obs_key, self.batch_size = episodes, obs_key, batch_size
        steps = [len(e["action"]) - 1 for e in episodes]  # T pairs per episode
        self.pairs = np.concatenate([np.stack([np.full(T, i), np.arange(T)], 1) for i, T in enumerate(steps)])  # (P, 2)
        width = episodes[0]["action"].shape[1]
        self.action_mask = np.ones(width, np.float32) if action_mask is None else np.asarray(action_mask, np.float32)
        self.rng = np.random.default_rng(seed)

    def __call__(self) -> dict[str, np.ndarray]:
        picks = self.pairs[self.rng.integers(len(self.pairs), size=self.batch_size)]  # (B, 2) episode, t
        obs = np.stack([self._observation(e, t) for e, t in picks])
        action = np.stack([self.episodes[e]["action"][t + 1] for e, t in picks])  # (B, A)
        return dict(obs=obs, action=action, action_mask=self.action_mask)

    def _observation(self, episode: int, t: int) -> np.ndarray:
        obs = self.episodes[episode][self.obs_key]
        if obs.ndim == 2:
            return obs[t]  # (S,)
        return stack_frames(obs[max(t + 1 - FRAMES, 0): t + 1])[-1]  # (9, H, W)


class BCPolicy(nn.Module):
    """π_bc (paper App. G.1): 4 × [Conv k4 s2, ELU] with ``channels`` [32, 64, 128, 256] → Linear → LayerNorm
    → tanh (``feature`` = 50) → 2 × [Linear ``hidden`` = 1024, LayerNorm, ELU] → Linear → tanh.

    State mode (``state_size`` given): the same trunk and head on the padded state vector (B, S). The
    output is multiplied by ``action_mask``, so padded action dims are exactly zero (method §4)."""

    def __init__(self, action_size: int, action_mask: np.ndarray | None = None, state_size: int | None = None,
                 channels: tuple[int, ...] = (32, 64, 128, 256), feature: int = 50, hidden: int = 1024,
                 image_size: int = 64):
        super().__init__()
        self.pixels = state_size is None
        if self.pixels:
            layers, size, previous = [], image_size, 3 * FRAMES
            for width in channels:
                layers += [nn.Conv2d(previous, width, 4, 2), nn.ELU()]
                size, previous = (size - 4) // 2 + 1, width  # 64 → 31 → 14 → 6 → 2
            self.encoder = nn.Sequential(*layers, nn.Flatten())
            inputs = previous * size * size
        else:
            self.encoder, inputs = nn.Identity(), state_size
        self.trunk = nn.Sequential(nn.Linear(inputs, feature), nn.LayerNorm(feature), nn.Tanh())
        self.head = nn.Sequential(nn.Linear(feature, hidden), nn.LayerNorm(hidden), nn.ELU(),
                                  nn.Linear(hidden, hidden), nn.LayerNorm(hidden), nn.ELU(),
                                  nn.Linear(hidden, action_size), nn.Tanh())
        mask = torch.ones(action_size) if action_mask is None else torch.as_tensor(action_mask, dtype=torch.float32)
        self.register_buffer("action_mask", mask)  # (A,)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """(B, 9, H, W) pixels in [0, 255] (uint8 or float) or (B, S) states → (B, A) actions."""
        x = obs.float() / 255 - 0.5 if self.pixels else obs.float()
        return self.head(self.trunk(self.encoder(x))) * self.action_mask

    @torch.no_grad()
    def act(self, obs: np.ndarray) -> np.ndarray:
        """Action for one observation ((9, H, W) stack or (S,) state) or a batch of them, as float32 numpy."""
        x = torch.as_tensor(obs, device=self.action_mask.device)
        single = x.ndim == (3 if self.pixels else 1)
        action = self(x[None] if single else x)  # (B, A)
        return (action[0] if single else action).cpu().numpy()


def random_shift(images: torch.Tensor, pad: int = 4, generator: torch.Generator | None = None) -> torch.Tensor:
    """DrQ-v2 augmentation: replicate-pad each float image (B, C, H, W) by ``pad`` and crop it back at a random
    integer offset in [0, 2·pad]², i.e. translate by up to ±pad pixels."""
    b, c, h, w = images.shape
    padded = F.pad(images, (pad, pad, pad, pad), mode="replicate").flatten(2)  # (B, C, (H+2p)·(W+2p))
    dy, dx = torch.randint(0, 2 * pad + 1, (2, b, 1, 1), generator=generator, device=images.device)
    rows = dy + torch.arange(h, device=images.device).view(1, h, 1)  # (B, H, 1)
    cols = dx + torch.arange(w, device=images.device).view(1, 1, w)  # (B, 1, W)
    index = (rows * (w + 2 * pad) + cols).view(b, 1, h * w).expand(b, c, h * w)  # (B, C, H·W)
    return padded.gather(2, index).view(b, c, h, w)  # (B, C, H, W)


def bc_loss(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the real action dims only; ``mask`` (B, A) or (A,)."""
    mask = mask.expand_as(prediction)
    return ((prediction - target) ** 2 * mask).sum() / mask.sum()


def train_bc(policy: BCPolicy, sample_batch: Callable[[], dict], steps: int, lr: float = 1e-4,
             progress: bool = True) -> list[float]:
    """Behaviour cloning with Adam (method §5.6); pixel inputs get random shifts. Returns the loss per step."""
    optimiser = torch.optim.Adam(policy.parameters(), lr=lr)
    device = policy.action_mask.device
    losses = []
    bar = tqdm(range(steps), desc="behaviour cloning", disable=not progress)
    for _ in bar:
        batch = {key: torch.as_tensor(value, device=device) for key, value in sample_batch().items()}
        obs = random_shift(batch["obs"].float()) if policy.pixels else batch["obs"]
        loss = bc_loss(policy(obs), batch["action"], batch["action_mask"])
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{losses[-1]:.4f}", refresh=False)
    return losses
