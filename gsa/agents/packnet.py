"""PackNet (Mallya & Lazebnik, 2018): the continual-learning baseline of paper Fig. 5 (method §8), on DrQ-v2.

One network serves a sequence of tasks. Every weight tensor (linear and convolution weights) of the actor,
critic and encoder carries an owner per entry: 0 = free, t = fixed by task t. While task t trains, only
free weights change; weights of earlier tasks are restored after every optimiser step, so they stay
bit-identical (restoring after the step, rather than masking gradients, also undoes Adam's momentum and
weight decay on them). Biases and normalisation parameters train on the first task only. At the end of task
t, :meth:`PackNet.prune` keeps the largest-magnitude ``keep`` share of the free weights for task t and
zeroes the rest, which stay free for later tasks; a short re-training then tunes only the kept weights
(``phase = "retrain"``). Evaluating task t later uses the weights of tasks 1…t alone (:meth:`PackNet.masked`).

    agent = PackNetDrQv2(obs_shape, action_mask, cfg.drqv2, device)      # DrQ-v2 + agent.packnet
    ... train task 1 ...; agent.packnet.prune(keep=1/6); ... re-train ...; agent.packnet.next_task()
    with agent.packnet.masked(1): evaluate(agent, env_1, ...)
"""
from __future__ import annotations

import contextlib

import torch
from torch import nn

from gsa.agents.drqv2 import DrQv2


class PackNet:
    """Owners of the weights of ``modules``, the values to restore, the current task and phase."""

    def __init__(self, modules: list[nn.Module]):
        params = [p for m in modules for p in m.parameters() if p.requires_grad]
        self.weights = [p for p in params if p.dim() > 1]
        self.others = [p for p in params if p.dim() <= 1]
        self.owner = [torch.zeros_like(p, dtype=torch.int16) for p in self.weights]
        self.kept = [p.detach().clone() for p in self.weights]     # values of weights owned by a task
        self.kept_others = [p.detach().clone() for p in self.others]
        self.task, self.phase = 1, "train"

    @torch.no_grad()
    def restore(self) -> None:
        """After an optimiser step: weights of finished tasks back to their values (and, while re-training,
        pruned weights back to 0); biases and norms too after the first task."""
        for p, owner, kept in zip(self.weights, self.owner, self.kept):
            fixed = (owner > 0) & (owner < self.task)
            if self.phase == "retrain":
                fixed |= owner == 0
            p.copy_(torch.where(fixed, kept, p))
        if self.task > 1 or self.phase == "retrain":
            for p, kept in zip(self.others, self.kept_others):
                p.copy_(kept)

    @torch.no_grad()
    def prune(self, keep: float) -> None:
        """End of the current task's training: of each tensor's free weights keep the largest-magnitude
        ``keep`` share for this task, zero the others (they stay free); then the re-training phase."""
        for p, owner, kept in zip(self.weights, self.owner, self.kept):
            free = owner == 0
            n = int(round(keep * int(free.sum())))
            magnitude = torch.where(free, p.abs(), torch.full_like(p, -1.0))
            chosen = torch.zeros_like(free)
            if n > 0:
                chosen.view(-1)[magnitude.view(-1).topk(n).indices] = True
            p.masked_fill_(free & ~chosen, 0.0)
            owner[chosen] = self.task
            kept.copy_(torch.where(free, p, kept))  # chosen: their value; pruned: 0 (as p now)
        for p, kept in zip(self.others, self.kept_others):
            kept.copy_(p)
        self.phase = "retrain"

    @torch.no_grad()
    def next_task(self) -> None:
        """Fix the current task's weights at their re-trained values and move on to the next task."""
        for p, owner, kept in zip(self.weights, self.owner, self.kept):
            kept.copy_(torch.where(owner == self.task, p, kept))
        for p, kept in zip(self.others, self.kept_others):
            kept.copy_(p)
        self.task, self.phase = self.task + 1, "train"

    @contextlib.contextmanager
    def masked(self, task: int):
        """Act as the network of ``task``: only weights owned by tasks 1…task (others zero) inside the block."""
        saved = [p.detach().clone() for p in self.weights]
        with torch.no_grad():
            for p, owner in zip(self.weights, self.owner):
                p.mul_(((owner > 0) & (owner <= task)).to(p.dtype))
        try:
            yield
        finally:
            with torch.no_grad():
                for p, value in zip(self.weights, saved):
                    p.copy_(value)

    def state_dict(self) -> dict:
        return {"owner": self.owner, "kept": self.kept, "kept_others": self.kept_others, "task": self.task,
                "phase": self.phase}

    def load_state_dict(self, state: dict) -> None:
        for name in ("owner", "kept", "kept_others"):
            for mine, saved in zip(getattr(self, name), state[name]):
                mine.copy_(saved)
        self.task, self.phase = state["task"], state["phase"]


class PackNetDrQv2(DrQv2):
    """DrQ-v2 whose actor, critic and encoder are shared across tasks by PackNet."""

    def __init__(self, obs_shape: tuple, action_mask, cfg, device="cpu"):
        super().__init__(obs_shape, action_mask, cfg, device)
        self.packnet = PackNet([self.encoder, self.actor, self.critic])

    def update(self, batch: dict, step: int = 0) -> dict[str, torch.Tensor]:
        metrics = super().update(batch, step)
        self.packnet.restore()
        return metrics

    def state_dict(self) -> dict:
        return {**super().state_dict(), "packnet": self.packnet.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        state = dict(state)
        self.packnet.load_state_dict(state.pop("packnet"))
        super().load_state_dict(state)
