"""ExPLORe (Li et al., 2023, "Accelerating exploration with unlabeled prior data"): the paper's ``explore``
baseline (method §7), written from the paper.

RLPD (``gsa.agents.rlpd``) whose offline half is labelled optimistically instead of with UDS's zeros: every
offline transition gets r̃(s, a) = r̂(s, a) + β·b(s, a), where r̂ is a reward model regressed on the online
transitions and b an RND novelty bonus (Burda et al., 2019): the squared error of a trained predictor
against a fixed random network, both fed (s, a) and trained on online transitions only, so that what the
agent has already seen online looks familiar and the rest of the offline data looks promising. Online
transitions keep their true rewards (ExPLORe's Alg. 1). The labels are recomputed at every update, with the
current r̂ and b, as the paper relabels its prior data continually. Pixels: r̂ and b read the critic's
encoder features, detached.

    agent = ExPLORe(obs_shape=(78,), action_mask=mask, cfg=RLPDConfig(), device="cpu")
    metrics = agent.update(batch)      # batch["source"] > 0 marks the offline rows (gsa.data.sampler)
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gsa.agents.rlpd import RLPD, _mlp


class RND(nn.Module):
    """Random network distillation on (features, action): bonus = mean squared error of the predictor against
    a frozen random target → (B,); larger on inputs unlike those the predictor was trained on."""

    def __init__(self, inp: int, hidden: int, out: int = 64):
        super().__init__()
        self.target = _mlp(inp, hidden, out, norm=False).requires_grad_(False)
        self.predictor = _mlp(inp, hidden, out, norm=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.predictor(x) - self.target(x)).pow(2).mean(-1)    # (B,)


class ExPLORe(RLPD):
    """RLPD + a reward model and an RND bonus that label the offline rows (``batch["source"] > 0``)."""

    def __init__(self, obs_shape: tuple, action_mask, cfg, device="cpu"):
        super().__init__(obs_shape, action_mask, cfg, device)
        inp = (self.encoder.size if self.pixels else obs_shape[0]) + len(action_mask)
        self.reward_model = _mlp(inp, cfg.hidden_dim, 1, norm=True).to(self.device)
        self.rnd = RND(inp, cfg.hidden_dim).to(self.device)
        self.label_opt = torch.optim.Adam([*self.reward_model.parameters(), *self.rnd.predictor.parameters()], cfg.lr)

    def label(self, h: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """The optimistic reward r̂(s, a) + β·b(s, a) of (B,) transitions (features ``h``), without gradient."""
        with torch.no_grad():
            x = torch.cat([h, action], -1)
            return self.reward_model(x).squeeze(-1) + self.cfg.bonus_scale * self.rnd(x)

    def _split(self, batch: dict, part: slice):
        obs, action, reward, next_obs = super()._split(batch, part)
        offline = batch["source"][part] > 0                                             # (b,)
        if offline.any():
            reward = torch.where(offline, self.label(self.encoder(obs).detach(), action), reward)
        return obs, action, reward, next_obs

    def update(self, batch: dict, step: int = 0) -> dict[str, torch.Tensor]:
        """Fit r̂ and the RND predictor on the batch's online rows (one step), then RLPD's update with the
        offline rows relabelled."""
        obs, action, reward, _ = super()._split(batch, slice(None))
        online = batch["source"] == 0
        metrics = {}
        if online.any():
            with torch.no_grad():
                h = self.encoder(obs[online])
            x = torch.cat([h, action[online]], -1)
            reward_loss = F.mse_loss(self.reward_model(x).squeeze(-1), reward[online])
            rnd_loss = self.rnd(x).mean()
            self.label_opt.zero_grad(set_to_none=True)
            (reward_loss + rnd_loss).backward()
            self.label_opt.step()
            metrics = {"reward_loss": reward_loss.detach(), "rnd_loss": rnd_loss.detach()}
        return {**super().update(batch, step), **metrics}

    def state_dict(self) -> dict:
        return {**super().state_dict(), **{name: getattr(self, name).state_dict()
                                           for name in ("reward_model", "rnd", "label_opt")}}
