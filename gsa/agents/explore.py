"""ExPLORe (Li et al., 2023, "Accelerating exploration with unlabeled prior data"): the paper's ``explore``
baseline (method §7), written from the papers.

RLPD (``gsa.agents.rlpd``) whose offline half is labelled optimistically instead of with UDS's zeros: every
offline transition gets r̃(s, a) = r̂(s, a) + β·b(s, a), an upper confidence bound on its reward. Online
transitions keep their true rewards (ExPLORe's Alg. 1). The labels are recomputed at every update, with the
current models, as ExPLORe relabels its prior data continually. Two choices of r̂ and b
(``rlpd.novelty``):
- ``"ensemble"`` (default; the paper, App. G.3, replaced ExPLORe's RND with ensembles "to calculate
  uncertainty"): ``reward_members`` reward models regressed on the online transitions from different
  initialisations; r̂ is their mean and b their standard deviation, large where online data has not pinned
  them down;
- ``"rnd"`` (the original ExPLORe): one reward model, and b the RND bonus (Burda et al., 2019): the squared
  error of a trained predictor against a fixed random network, both fed (s, a) and trained on online
  transitions only, so that what the agent has seen online looks familiar and the rest looks promising.
Pixels: the models read the critic's encoder features, detached (the paper's "shared latent space").

    agent = ExPLORe(obs_shape=(78,), action_mask=mask, cfg=RLPDConfig(), device="cpu")
    metrics = agent.update(batch)      # batch["source"] > 0 marks the offline rows (gsa.data.sampler)
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gsa.agents.rlpd import RLPD, Ensemble, _mlp

NOVELTY = ("ensemble", "rnd")


class RND(nn.Module):
    """Random network distillation on (features, action): bonus = mean squared error of the predictor against
    a frozen random target → (B,); larger on inputs unlike those the predictor was trained on."""

    def __init__(self, inp: int, hidden: int, out: int = 64):
        super().__init__()
        self.target = _mlp(inp, hidden, out).requires_grad_(False)
        self.predictor = _mlp(inp, hidden, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.predictor(x) - self.target(x)).pow(2).mean(-1)    # (B,)


class ExPLORe(RLPD):
    """RLPD + reward model(s) and a novelty bonus that label the offline rows (``batch["source"] > 0``)."""

    def __init__(self, obs_shape: tuple, action_mask, cfg, device="cpu"):
        super().__init__(obs_shape, action_mask, cfg, device)
        if cfg.novelty not in NOVELTY:
            raise ValueError(f"rlpd.novelty={cfg.novelty!r}: choose one of {NOVELTY}")
        feat, A = (self.encoder.size if self.pixels else obs_shape[0]), len(action_mask)
        members = cfg.reward_members if cfg.novelty == "ensemble" else 1
        self.reward_model = Ensemble(feat, A, cfg.hidden_dim, members).to(self.device)   # → (members, B)
        self.rnd = RND(feat + A, cfg.hidden_dim).to(self.device) if cfg.novelty == "rnd" else None
        trained = [*self.reward_model.parameters(), *(self.rnd.predictor.parameters() if self.rnd else [])]
        self.label_opt = torch.optim.Adam(trained, cfg.lr)

    def bonus(self, h: torch.Tensor, action: torch.Tensor, rewards: torch.Tensor) -> torch.Tensor:
        """b(s, a) → (B,): the ensemble's standard deviation (``rewards``: its (members, B) predictions) or
        the RND error."""
        return rewards.std(0) if self.rnd is None else self.rnd(torch.cat([h, action], -1))

    def label(self, h: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """The optimistic reward r̂(s, a) + β·b(s, a) of (B,) transitions (features ``h``), without gradient."""
        with torch.no_grad():
            rewards = self.reward_model(h, action)                                       # (members, B)
            return rewards.mean(0) + self.cfg.bonus_scale * self.bonus(h, action, rewards)

    def _split(self, batch: dict, part: slice):
        obs, action, reward, next_obs = super()._split(batch, part)
        offline = batch["source"][part] > 0                                             # (b,)
        if offline.any():
            reward = torch.where(offline, self.label(self.encoder(obs).detach(), action), reward)
        return obs, action, reward, next_obs

    def update(self, batch: dict, step: int = 0) -> dict[str, torch.Tensor]:
        """Fit the reward model(s) (and the RND predictor) on the batch's online rows (one step), then RLPD's
        update with the offline rows relabelled."""
        obs, action, reward, _ = super()._split(batch, slice(None))
        online = batch["source"] == 0
        metrics = {}
        if online.any():
            with torch.no_grad():
                h = self.encoder(obs[online])
            predicted = self.reward_model(h, action[online])                             # (members, b)
            reward_loss = F.mse_loss(predicted, reward[online].expand_as(predicted))
            loss, metrics = reward_loss, {"reward_loss": reward_loss.detach()}
            if self.rnd is not None:
                rnd_loss = self.rnd(torch.cat([h, action[online]], -1)).mean()
                loss, metrics["rnd_loss"] = loss + rnd_loss, rnd_loss.detach()
            self.label_opt.zero_grad(set_to_none=True)
            loss.backward()
            self.label_opt.step()
        return {**super().update(batch, step), **metrics}

    def state_dict(self) -> dict:
        return {**super().state_dict(), **{name: getattr(self, name).state_dict()
                                           for name in ("reward_model", "label_opt", *(("rnd",) if self.rnd else ()))}}
