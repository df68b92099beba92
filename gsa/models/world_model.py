"""The pre-trained world model: encoder + RSSM + decoder, trained with paper Eq. 1 (method §4).

A batch is a dict of tensors: ``observation`` uint8 (B, T, 3, 64, 64) (pixels) or ``state`` float32
(B, T, S) (state mode, zero-padded to ``state_size``), ``action`` float32 (B, T, A_max), ``action_mask``
float32 (B, A_max) with 1 on the embodiment's real dims, and ``is_first`` bool (B, T).
"""
from __future__ import annotations

import torch
from torch import nn

from gsa.config import WorldModelConfig
from gsa.models.distributions import symexp, symlog
from gsa.models.nets import Decoder, Encoder, StateDecoder, StateEncoder
from gsa.models.rssm import RSSM, State


class WorldModel(nn.Module):
    def __init__(self, cfg: WorldModelConfig):
        super().__init__()
        if cfg.obs not in ("pixels", "state"):
            raise ValueError(f"unknown observation mode {cfg.obs!r}; choose 'pixels' or 'state'")
        self.cfg = cfg
        if cfg.obs == "pixels":
            self.encoder = Encoder(cfg.depth)
        else:
            self.encoder = StateEncoder(cfg.state_size, cfg.hidden, cfg.mlp_layers)
        self.rssm = RSSM(cfg, self.encoder.size)
        if cfg.obs == "pixels":
            self.decoder = Decoder(cfg.deter, cfg.stoch * cfg.classes, cfg.hidden, cfg.depth, cfg.blocks)
        else:
            self.decoder = StateDecoder(self.rssm.feat_size, cfg.state_size, cfg.hidden, cfg.mlp_layers)

    def observation(self, batch: dict) -> torch.Tensor:
        return batch["observation"] if self.cfg.obs == "pixels" else batch["state"]

    def target(self, obs: torch.Tensor) -> torch.Tensor:
        """What the decoder predicts: pixels/255 − 0.5, or symlog(state) in state mode."""
        return obs.float() / 255 - 0.5 if self.cfg.obs == "pixels" else symlog(obs.float())

    def observe(self, batch: dict, state: State | None = None) -> tuple[State, State]:
        """Posterior and prior states (B, T, ...). Padded action dims are zeroed by the mask (method §4)."""
        action = batch["action"] * batch["action_mask"][:, None]    # (B, T, A)
        return self.rssm.observe(self.encoder(self.observation(batch)), action, batch["is_first"], state)

    def decode(self, states: State) -> torch.Tensor:
        return self.decoder(self.rssm.feat(states))                 # (B, T, 3, 64, 64) or (B, T, S)

    def loss(self, batch: dict, state: State | None = None):
        """Paper Eq. 1 → (loss, metrics, posterior states (B, T, ...), last posterior state, detached).

        recon: squared error summed over pixels (or state dims); dyn = KL(sg(q) ‖ p), rep = KL(q ‖ sg(p)),
        each summed over the latents and clipped below at `free_nats`, per step (DreamerV3) or, with
        `free_bits_after_mean` (NCRL code), after averaging over batch and time. Everything is a mean
        over batch and time.
        """
        cfg = self.cfg
        post, prior = self.observe(batch, state)
        obs = self.observation(batch)
        recon = (self.decode(post) - self.target(obs)).square().flatten(2).sum(-1)  # (B, T)
        q, p = self.rssm.dist(post["logits"]), self.rssm.dist(prior["logits"])
        q_sg, p_sg = self.rssm.dist(post["logits"].detach()), self.rssm.dist(prior["logits"].detach())
        dyn = free_bits(q_sg.kl(p).sum(-1), cfg.free_nats, cfg.free_bits_after_mean)
        rep = free_bits(q.kl(p_sg).sum(-1), cfg.free_nats, cfg.free_bits_after_mean)
        recon = recon.mean()
        loss = recon + cfg.dyn_scale * dyn + cfg.rep_scale * rep
        metrics = {
            "recon": recon, "dyn": dyn, "rep": rep,
            "kl_value": q.kl(p).sum(-1).mean(),
            "prior_entropy": p.entropy().sum(-1).mean(),
            "post_entropy": q.entropy().sum(-1).mean(),
        }
        last = {k: v[:, -1].detach() for k, v in post.items()}
        return loss, {k: v.detach() for k, v in metrics.items()}, post, last

    forward = loss  # so DDP / torch.compile wrap the training loss

    @torch.no_grad()
    def openloop(self, batch: dict, context: int = 5, horizon: int | None = None) -> torch.Tensor:
        """Predictions for figures: filter the first `context` steps, then imagine `horizon` steps with the
        recorded actions (no resets inside the horizon). Returns (B, context + horizon, ...) in observation
        units: uint8 frames (pixels) or float states."""
        horizon = batch["action"].shape[1] - context if horizon is None else horizon
        ctx = {k: v if k == "action_mask" else v[:, :context] for k, v in batch.items()}
        post, _ = self.observe(ctx)
        state = {k: v[:, -1] for k, v in post.items()}
        action = batch["action"] * batch["action_mask"][:, None]   # (B, T, A)
        imagined = []
        for t in range(context, context + horizon):
            state = self.rssm.img_step(state, action[:, t])
            imagined.append(state)
        states = {k: torch.cat([post[k], torch.stack([s[k] for s in imagined], 1)], 1) for k in post}
        pred = self.decode(states)
        if self.cfg.obs == "pixels":
            return ((pred + 0.5) * 255).round().clamp(0, 255).to(torch.uint8)
        return symexp(pred)


def free_bits(kl: torch.Tensor, free_nats: float, after_mean: bool = False) -> torch.Tensor:
    """max(free_nats, KL) per step then mean over (B, T), or max(free_nats, mean KL) with `after_mean`.
    Below the threshold the term is constant and passes no gradient."""
    if after_mean:
        return kl.mean().clamp(min=free_nats)
    return kl.clamp(min=free_nats).mean()


def parameter_counts(model: WorldModel) -> dict[str, int]:
    """Parameters per part: encoder, dynamics (RSSM core: input projections + GRU blocks), prior,
    posterior, decoder, and total."""
    count = lambda m: sum(p.numel() for p in m.parameters())
    parts = {"encoder": model.encoder, "dynamics": model.rssm.core, "prior": model.rssm.prior,
             "posterior": model.rssm.posterior, "decoder": model.decoder}
    counts = {name: count(m) for name, m in parts.items()}
    counts["total"] = count(model)
    return counts
