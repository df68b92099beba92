"""The one optimiser of every learner: Adam with the NCRL code's decoupled weight decay (method §4, §5.5)."""
from __future__ import annotations

import torch

from gsa.config import OptimConfig


def make_optimizer(params, cfg: OptimConfig) -> torch.optim.Optimizer:
    """Adam (lr, eps of ``cfg``) whose step first multiplies every weight by (1 − weight_decay), as the NCRL
    code does (decoupled and not scaled by the learning rate). AdamW scales its decay by lr, so it is given
    weight_decay / lr. Gradient clipping (``cfg.grad_clip``) is the caller's."""
    decay = cfg.weight_decay / cfg.lr if cfg.lr > 0 else 0.0
    return torch.optim.AdamW(params, lr=cfg.lr, eps=cfg.eps, weight_decay=decay)
