"""The world-model agent: GSA, its ablations (P, P+ER) and DreamerV3 (method §5; paper Alg. 1).

An RSSM world model (pre-trained or from scratch) and an actor-critic trained in imagination. Acting filters
one posterior step per frame; the update trains the world model on every row (Eq. 1), the reward head on
online rows only, and the actor-critic from every posterior state of the batch.

    agent = DreamerAgent(wm, cfg, device)
    agent.reset(); agent.observe(obs); action = agent.policy(action_mask, explore=True); agent.executed(action)
    metrics = agent.update(batch)          # batch: (B, T) sequences of the mixed sampler
"""
from __future__ import annotations

import numpy as np
import torch

from gsa.config import Config
from gsa.models.actor_critic import ActorCritic, make_optimizers
from gsa.models.world_model import WorldModel
from gsa.train.optim import make_optimizer
from gsa.train.pretrain import make_train_step, runtime


PARTS = {"all": ("encoder", "rssm", "decoder"), "encoder_decoder": ("encoder", "decoder"), "dynamics": ("rssm",)}


def trained_parts(wm: WorldModel, parts: str) -> list[torch.nn.Parameter]:
    """The world-model parameters fine-tuning trains (paper Fig. 8: all, encoder + decoder, or the RSSM
    dynamics); the other parts are frozen (``requires_grad`` off), so they get no gradient and keep their
    pre-trained weights, and the optimiser (with its weight decay) never sees them."""
    if parts not in PARTS:
        raise ValueError(f"finetune.train_parts={parts!r}: choose from {sorted(PARTS)}")
    for name, module in wm.named_children():
        module.requires_grad_(name in PARTS[parts])
    return [p for p in wm.parameters() if p.requires_grad]


class DreamerAgent:
    """World model + actor-critic: acting in the env (one posterior step per frame) and the update."""

    def __init__(self, wm: WorldModel, cfg: Config, device: torch.device):
        f = cfg.finetune
        self.wm, self.cfg, self.device = wm, cfg, device
        self.ac = ActorCritic(wm.rssm.feat_size, cfg.world_model.action_size, f).to(device)
        self.wm_opt = make_optimizer(trained_parts(wm, f.train_parts), cfg.pretrain.optim)
        self.actor_opt, self.critic_opt = make_optimizers(self.ac, f.ac_optim)
        compile_, self.bf16 = runtime(cfg.pretrain.compile, cfg.pretrain.bf16, device)
        self.wm_step = make_train_step(wm, self.wm_opt, cfg.pretrain.optim.grad_clip, compile_, self.bf16, device)
        # the actor-critic loss as two compiled graphs (reward head; imagination + actor + critic): on with the
        # world model's "graph" mode unless finetune.compile says otherwise (2 CPU cores, cpu preset: README)
        if f.compile if f.compile is not None else compile_ == "graph":
            self.ac.compile_losses()
        self.state, self.prev_action = None, None
        # what the online loop needs to know (gsa.train.online)
        self.window, self.batch_size, self.warmup_frames = f.seq_len, f.batch_size, f.warmup_frames
        self.update_every = max(1, f.batch_size * f.seq_len // f.train_ratio)  # train ratio 256: every 4 agent steps

    @property
    def acting_state(self):
        """The state of the episode being played (kept across an evaluation in the middle of it)."""
        return self.state, self.prev_action

    @acting_state.setter
    def acting_state(self, value) -> None:
        self.state, self.prev_action = value

    def reset(self) -> None:
        self.state = None
        self.prev_action = torch.zeros(1, self.cfg.world_model.action_size, device=self.device)

    @torch.no_grad()
    def observe(self, obs: np.ndarray) -> None:
        """Filter the new observation with the previously executed action."""
        x = torch.as_tensor(obs, device=self.device)[None]  # (1, ...)
        first = torch.tensor([self.state is None], device=self.device)
        state = self.wm.rssm.initial(1) if self.state is None else self.state
        self.state, _ = self.wm.rssm.obs_step(state, self.prev_action, self.wm.encoder(x), first)

    @torch.no_grad()
    def policy(self, action_mask: torch.Tensor, explore: bool, step: int = 0) -> np.ndarray:
        """π_RL's padded action for the current state (padded dims exactly 0); ``step`` is unused here."""
        dist = self.ac.actor(self.wm.rssm.feat(self.state), action_mask)
        return (dist.sample() if explore else dist.mode()).squeeze(0).cpu().numpy()

    def executed(self, action: np.ndarray) -> None:
        self.prev_action = torch.as_tensor(action, device=self.device, dtype=torch.float32)[None]

    def update(self, batch: dict, intrinsic=None, step: int | None = None) -> dict[str, torch.Tensor]:
        """World model on every row (Eq. 1), reward head on online rows only, actor-critic in imagination
        from every posterior state (method §5.1, 5.3–5.5). Returns detached metrics (no host sync); the
        batch's posterior states stay in ``self.post``. ``intrinsic`` replaces the reward head in
        imagination (the Plan2Explore explorer, see ``ActorCritic.loss``)."""
        f = self.cfg.finetune
        metrics, post = self.wm_step(batch)
        self.post = post
        metrics["wm_loss"] = metrics.pop("loss")
        online = batch["source"] == 0
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            reward_loss, actor_loss, critic_loss, ac_metrics = self.ac.loss(
                self.wm, post, batch["action_mask"], batch["reward"], online, intrinsic)
        self.actor_opt.zero_grad(set_to_none=True)
        self.critic_opt.zero_grad(set_to_none=True)
        (reward_loss + actor_loss + critic_loss).backward()
        torch.nn.utils.clip_grad_norm_(self.ac.actor.parameters(), f.ac_optim.grad_clip)
        torch.nn.utils.clip_grad_norm_([*self.ac.critic.parameters(), *self.ac.reward.parameters()], f.ac_optim.grad_clip)
        self.actor_opt.step()
        self.critic_opt.step()
        self.ac.update_slow(f.slow_critic_fraction)
        return {**metrics, "reward_loss": reward_loss.detach(),
                "actor_loss": actor_loss.detach(), "critic_loss": critic_loss.detach(), **ac_metrics}

    def state_dict(self) -> dict:
        return {"wm": self.wm.state_dict(), "ac": self.ac.state_dict(), "wm_opt": self.wm_opt.state_dict(),
                "actor_opt": self.actor_opt.state_dict(), "critic_opt": self.critic_opt.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.wm.load_state_dict(state["wm"])
        self.ac.load_state_dict(state["ac"])
        self.wm_opt.load_state_dict(state["wm_opt"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])
