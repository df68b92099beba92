"""R3M-style visual pre-training (Nair et al., 2022) under DrQ-v2: the paper's ``r3m`` baseline (method §7).

R3M's own weights (a ResNet-50 trained on Ego4D) cannot be downloaded here, so its objective is trained on
this project's offline data instead — the same non-curated data GSA's world model sees (one encoder per
benchmark, cached under ``checkpoints/<preset>/r3m/``). Of R3M's three terms, two apply:

- **time-contrastive** (InfoNCE): within an episode, a frame's embedding is closer to a frame a few steps
  later than to one further away, and than to a frame of another episode; similarity = −‖z − z'‖²;
- **sparsity**: L1 and L2 penalties on the embeddings.

R3M's third term, video–language alignment, needs language annotations that non-curated data does not
have (docs/deviations.md). The frozen encoder then embeds each of DrQ-v2's 3 stacked frames, and DrQ-v2
learns on the concatenated embeddings (no encoder updates). In state mode the encoder is an MLP over the
padded state vector, trained by the same objective.

    encoder = pretrain_r3m(cfg, dataset)            # or load_r3m(cfg, benchmark, dataset) (cached)
    agent = DrQv2(obs_shape, action_mask, cfg.drqv2, encoder=FrameEncoder(encoder, cfg.drqv2.frame_stack))
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from gsa.config import Config, to_dict
from gsa.data.episodes import atomic_write
from gsa.paths import resolve


class R3MEncoder(nn.Module):
    """One observation → an embedding (B, embed_dim): pixels (B, 3, H, W) uint8 through 4 convolutions
    (DrQ-v2's, strides 2, 1, 1, 1) and a linear layer; states (B, S) through a 2-layer MLP."""

    def __init__(self, obs_shape: tuple, embed_dim: int, hidden: int = 256):
        super().__init__()
        self.pixels = len(obs_shape) == 3
        if self.pixels:
            layers, size = [], obs_shape[-1]
            for i, stride in enumerate((2, 1, 1, 1)):
                layers += [nn.Conv2d(obs_shape[0] if i == 0 else 32, 32, 3, stride), nn.ReLU()]
                size = (size - 3) // stride + 1
            self.net = nn.Sequential(*layers, nn.Flatten(), nn.Linear(32 * size * size, embed_dim))
        else:
            self.net = nn.Sequential(nn.Linear(obs_shape[0], hidden), nn.LayerNorm(hidden), nn.ReLU(),
                                     nn.Linear(hidden, hidden), nn.LayerNorm(hidden), nn.ReLU(),
                                     nn.Linear(hidden, embed_dim))
        self.size = embed_dim

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs.float() / 255.0 - 0.5 if self.pixels else obs.float())


class FrameEncoder(nn.Module):
    """A frozen per-frame encoder applied to each frame of a stack: (B, 3·stack, H, W) → (B, stack·d); states
    (B, S) → (B, d). What DrQ-v2 reads in place of its own encoder."""

    def __init__(self, encoder: R3MEncoder, frame_stack: int):
        super().__init__()
        self.encoder, self.frame_stack = encoder.requires_grad_(False).eval(), frame_stack
        self.size = encoder.size * (frame_stack if encoder.pixels else 1)

    @torch.no_grad()
    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        if not self.encoder.pixels:
            return self.encoder(obs)
        frames = obs.unflatten(1, (self.frame_stack, -1))                   # (B, stack, 3, H, W)
        return self.encoder(frames.flatten(0, 1)).unflatten(0, frames.shape[:2]).flatten(1)

    def train(self, mode: bool = True):  # stays in eval mode: frozen
        return super().train(False)


def r3m_loss(encoder: R3MEncoder, obs: torch.Tensor, rng: np.random.Generator, l1: float, l2: float,
             temperature: float = 1.0) -> tuple[torch.Tensor, dict]:
    """R3M's time-contrastive and sparsity terms on (B, T, ...) windows of B different episodes.

    Per row: t0 < t1 < t2 drawn in the window; anchor z(t0), positive z(t1), negatives z(t2) (same episode,
    further in time) and z(t0) of the next row (another episode). Returns the loss and the contrastive
    accuracy (how often the positive is the nearest)."""
    B, T = obs.shape[:2]
    t = np.sort(np.stack([rng.choice(T, 3, replace=False) for _ in range(B)]), 1)     # (B, 3)
    rows, t = torch.arange(B).repeat_interleave(3), torch.as_tensor(t.reshape(-1))
    z = encoder(obs[rows.to(obs.device), t.to(obs.device)]).view(B, 3, -1)             # (B, 3, d)
    z0, z1, z2 = z.unbind(1)
    other = z0.roll(1, 0)
    sim = lambda a, b: -((a - b) ** 2).sum(-1) / temperature                          # noqa: E731
    logits = torch.stack([sim(z0, z1), sim(z0, z2), sim(z0, other)], 1)               # (B, 3), positive first
    contrastive = F.cross_entropy(logits, torch.zeros(B, dtype=torch.long, device=obs.device))
    loss = contrastive + l1 * z.abs().sum(-1).mean() + l2 * z.pow(2).sum(-1).mean()
    return loss, {"contrastive": contrastive.detach(), "accuracy": (logits.argmax(1) == 0).float().mean()}


def r3m_path(cfg: Config, benchmark: str) -> Path:
    return resolve(f"checkpoints/{cfg.name}/r3m/{benchmark}.pt")


def _key(cfg: Config, dataset) -> str:
    """The cache key: the dataset's manifest hash and every setting the encoder depends on."""
    settings = {"r3m": to_dict(cfg)["r3m"], "obs": cfg.world_model.obs, "state_size": cfg.world_model.state_size,
                "image_size": cfg.world_model.image_size, "manifest": dataset.manifest_sha256}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def pretrain_r3m(cfg: Config, dataset, device="cpu", progress: bool = True) -> tuple[R3MEncoder, list[float]]:
    """Train the R3M-style encoder on ``dataset`` (an ``OfflineDataset``) for ``r3m.steps``; returns it and its losses."""
    from gsa.train.pretrain import sampler_for, to_torch

    r, wm = cfg.r3m, cfg.world_model
    torch.manual_seed(r.seed)
    obs_shape = (3, wm.image_size, wm.image_size) if wm.obs == "pixels" else (wm.state_size,)
    encoder = R3MEncoder(obs_shape, r.embed_dim).to(device)
    opt = torch.optim.Adam(encoder.parameters(), r.lr)
    sampler = sampler_for(dataset, cfg, r.batch_size, r.window, r.seed)
    rng, losses = np.random.default_rng(r.seed), []
    key = "observation" if wm.obs == "pixels" else "state"
    for step in tqdm(range(r.steps), desc="r3m", disable=not progress):
        obs = to_torch(sampler.sample(step=step), torch.device(device))[key]
        loss, _ = r3m_loss(encoder, obs, rng, r.l1, r.l2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return encoder.eval(), losses


def load_r3m(cfg: Config, benchmark: str, dataset, device="cpu", progress: bool = True) -> R3MEncoder:
    """The benchmark's R3M-style encoder: from its cache if it was trained on this data with these settings,
    trained (and cached atomically) otherwise."""
    path, key = r3m_path(cfg, benchmark), _key(cfg, dataset)
    if path.exists():
        saved = torch.load(path, map_location=device, weights_only=False)
        if saved["key"] == key:
            encoder = R3MEncoder(tuple(saved["obs_shape"]), cfg.r3m.embed_dim).to(device)
            encoder.load_state_dict(saved["encoder"])
            return encoder.eval()
    encoder, losses = pretrain_r3m(cfg, dataset, device, progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    obs_shape = (3, cfg.world_model.image_size, cfg.world_model.image_size) if encoder.pixels else (cfg.world_model.state_size,)
    atomic_write(path, lambda out: torch.save({"key": key, "obs_shape": obs_shape, "encoder": encoder.state_dict(),
                                               "losses": losses}, out))
    return encoder
