"""Output distributions of DreamerV3: symlog, straight-through one-hot categoricals, symlog two-hot.

Everything is computed in float32 (logits are cast), so the functions are safe under bf16 autocast.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def symlog(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.log1p(x.abs())


def symexp(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.expm1(x.abs())


class OneHotDist:
    """Categoricals over the last axis with a uniform mix (method §4: 1% in prior and posterior).

    probs = (1 − unimix)·softmax(logits) + unimix / classes. Every statistic is per categorical,
    i.e. reduced over the class axis only; callers sum over the latents.
    """

    def __init__(self, logits: torch.Tensor, unimix: float = 0.01):
        probs = F.softmax(logits.float(), -1)
        self.probs = (1 - unimix) * probs + unimix / probs.shape[-1]  # (..., C)
        self.log_probs = torch.log(self.probs)

    def sample(self) -> torch.Tensor:
        """One-hot sample with straight-through gradients to the probabilities. Inverse-CDF sampling: one
        uniform number per categorical (CPU random numbers are slow: 8× fewer than an exponential race)."""
        u = torch.rand(self.probs.shape[:-1] + (1,), device=self.probs.device)  # (..., 1)
        index = (self.probs.detach().cumsum(-1) < u).sum(-1).clamp(max=self.probs.shape[-1] - 1)
        return self._straight_through(F.one_hot(index, self.probs.shape[-1]))

    def mode(self) -> torch.Tensor:
        return self._straight_through(F.one_hot(self.probs.argmax(-1), self.probs.shape[-1]))

    def _straight_through(self, onehot: torch.Tensor) -> torch.Tensor:
        return onehot.to(self.probs) + (self.probs - self.probs.detach())  # exactly one-hot forward

    def log_prob(self, onehot: torch.Tensor) -> torch.Tensor:
        return (onehot * self.log_probs).sum(-1)

    def entropy(self) -> torch.Tensor:
        return -(self.probs * self.log_probs).sum(-1)

    def kl(self, other: OneHotDist) -> torch.Tensor:
        """KL(self ‖ other) per categorical."""
        return (self.probs * (self.log_probs - other.log_probs)).sum(-1)


def _two_hot_indices(x: torch.Tensor, bins: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For x (...) over sorted bins (K,): the lower bin's index and the upper bin's weight, both (...);
    values outside the bins clip to the ends."""
    x = x.clamp(bins[0], bins[-1])
    below = (torch.searchsorted(bins, x.contiguous(), right=True) - 1).clamp(0, len(bins) - 2)
    weight = ((x - bins[below]) / (bins[below + 1] - bins[below])).clamp(0, 1)  # share of the upper bin
    return below, weight


def two_hot(x: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
    """Two-hot encoding of x (...) over sorted bins (K,) → (..., K); values outside clip to the ends."""
    below, weight = _two_hot_indices(x, bins)
    return (F.one_hot(below, len(bins)) * (1 - weight)[..., None]
            + F.one_hot(below + 1, len(bins)) * weight[..., None])


class TwoHot:
    """Symlog two-hot regression head output (method §5.4): `bins` evenly spaced over [low, high] in symlog space."""

    def __init__(self, logits: torch.Tensor, low: float = -20.0, high: float = 20.0):
        self.logits = logits.float()  # (..., K)
        self.bins = torch.linspace(low, high, logits.shape[-1], device=logits.device)

    def mean(self) -> torch.Tensor:
        return symexp((F.softmax(self.logits, -1) * self.bins).sum(-1))

    def loss(self, target: torch.Tensor) -> torch.Tensor:
        """Cross-entropy against two_hot(symlog(target)), per element of target: the two non-zero weights of
        the encoding are gathered instead of a dense (..., K) product."""
        below, weight = _two_hot_indices(symlog(target.float()), self.bins)
        log_probs = F.log_softmax(self.logits, -1)
        low = log_probs.gather(-1, below[..., None])[..., 0]
        high = log_probs.gather(-1, below[..., None] + 1)[..., 0]
        return -((1 - weight) * low + weight * high)
