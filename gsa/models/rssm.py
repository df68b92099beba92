"""Recurrent state-space model with a block GRU (method §4; DreamerV3, 2024 version).

    h_t = f(h_{t−1}, z_{t−1}, a_{t−1})      deterministic state, `deter`, split into `blocks`
    ẑ_t ~ p(z_t | h_t)                      prior (imagination)
    z_t ~ q(z_t | h_t, e_t)                 posterior, e_t = encoder(o_t)

A state is a dict of tensors: ``deter (..., D)``, ``stoch (..., S, C)`` one-hot (straight-through) and
``logits (..., S, C)`` (raw; the 1% unimix is applied by :class:`OneHotDist`). Actions follow the
DreamerV3 convention: ``action[t]`` is the action that led to observation t.
"""
from __future__ import annotations

import torch
from torch import nn

from gsa.config import WorldModelConfig
from gsa.models.distributions import OneHotDist
from gsa.models.nets import MLP, BlockLinear

State = dict[str, torch.Tensor]


class BlockGRU(nn.Module):
    """The dynamics core h' = f(h, z, a) of DreamerV3 2024 (method §4).

    h, flat z and a are each projected to `hidden` (Linear → LN → SiLU) and concatenated; every block
    receives that concatenation plus its own slice of h. One block-diagonal layer to `deter`
    (→ LayerNorm over all of `deter` → SiLU), then a block-diagonal layer to the three GRU gates.
    Each block outputs [reset, cand, update] for its own slice of h, as in DreamerV3 (the NCRL code
    instead chunks the flat output in three, so a block's gates land on other blocks' slices).
    """

    def __init__(self, deter: int, stoch: int, action: int, hidden: int, blocks: int):
        super().__init__()
        self.blocks = blocks
        self.inp_deter = MLP(deter, hidden, 1)
        self.inp_stoch = MLP(stoch, hidden, 1)
        self.inp_action = MLP(action, hidden, 1)
        self.hidden = nn.Sequential(
            BlockLinear(deter + blocks * 3 * hidden, deter, blocks), nn.LayerNorm(deter), nn.SiLU())
        self.gates = BlockLinear(deter, 3 * deter, blocks)

    def forward(self, deter: torch.Tensor, stoch: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        g = self.blocks
        x = torch.cat([self.inp_deter(deter), self.inp_stoch(stoch.flatten(-2)), self.inp_action(action)], -1)
        x = self.hidden[1:](_block_input(self.hidden[0], deter, x))  # LayerNorm, SiLU: (B, D)
        x = self.gates(x)                                           # (B, 3·D), block-major
        reset, cand, update = x.unflatten(-1, (g, 3, -1)).unbind(-2)  # each (B, G, D/G)
        reset, cand, update = reset.flatten(-2), cand.flatten(-2), update.flatten(-2)
        cand = torch.tanh(torch.sigmoid(reset) * cand)
        update = torch.sigmoid(update - 1)
        return update * cand + (1 - update) * deter                 # (B, D)


def _block_input(layer: BlockLinear, deter: torch.Tensor, shared: torch.Tensor) -> torch.Tensor:
    """The first block layer's pre-activation for inputs [deter slice g, shared] of every block g, without
    building the (B, G, D/G + X) concatenation: deter's slices go through their blocks' rows of the weight,
    and the input all blocks share through the stacked remaining rows in one matrix product (same result)."""
    g, rows, out = layer.weight.shape                               # (G, D/G + X, out/G)
    d = deter.shape[-1] // g
    own = torch.einsum("...gi,gio->...go", deter.unflatten(-1, (g, d)), layer.weight[:, :d])  # (B, G, out/G)
    common = shared @ layer.weight[:, d:].transpose(0, 1).reshape(rows - d, g * out)         # (B, G·out/G)
    return own.flatten(-2) + common + layer.bias


class RSSM(nn.Module):
    def __init__(self, cfg: WorldModelConfig, embed: int):
        super().__init__()
        self.cfg = cfg
        latent = cfg.stoch * cfg.classes
        self.core = BlockGRU(cfg.deter, latent, cfg.action_size, cfg.hidden, cfg.blocks)
        self.prior = nn.Sequential(MLP(cfg.deter, cfg.hidden, 2), nn.Linear(cfg.hidden, latent))
        self.posterior = nn.Sequential(MLP(cfg.deter + embed, cfg.hidden, 1), nn.Linear(cfg.hidden, latent))

    @property
    def feat_size(self) -> int:
        return self.cfg.deter + self.cfg.stoch * self.cfg.classes

    def initial(self, batch_size: int) -> State:
        """All zeros, as in DreamerV3 2024: zero deter and a zero (not one-hot) stoch. Resetting at
        `is_first` is then a multiplication by 0, which keeps the loop free of host syncs."""
        p = next(self.parameters())
        zeros = lambda *shape: torch.zeros(batch_size, *shape, device=p.device, dtype=p.dtype)
        c = self.cfg
        return {"deter": zeros(c.deter), "stoch": zeros(c.stoch, c.classes), "logits": zeros(c.stoch, c.classes)}

    def feat(self, state: State) -> torch.Tensor:
        return torch.cat([state["deter"], state["stoch"].flatten(-2)], -1)  # (..., D + S·C)

    def dist(self, logits: torch.Tensor) -> OneHotDist:
        return OneHotDist(logits, self.cfg.unimix)

    def _latent(self, deter: torch.Tensor, logits: torch.Tensor) -> State:
        logits = logits.unflatten(-1, (self.cfg.stoch, self.cfg.classes))  # (B, S, C)
        return {"deter": deter, "stoch": self.dist(logits).sample().to(deter.dtype), "logits": logits}

    def img_step(self, state: State, action: torch.Tensor) -> State:
        """Prior step: h' = f(h, z, a), ẑ' ~ p(· | h')."""
        deter = self.core(state["deter"], state["stoch"], action)
        return self._latent(deter, self.prior(deter))

    def obs_step(self, state: State, action: torch.Tensor, embed: torch.Tensor,
                 is_first: torch.Tensor) -> tuple[State, State]:
        """One filtering step → (posterior, prior). Where `is_first`, the carried state and the action
        are reset to the initial (zero) state before the step."""
        keep = (~is_first).to(embed.dtype)[:, None]                 # (B, 1)
        state = {"deter": state["deter"] * keep, "stoch": state["stoch"] * keep[..., None]}
        prior = self.img_step(state, action * keep)
        post = self._latent(prior["deter"], self.posterior(torch.cat([prior["deter"], embed], -1)))
        return post, prior

    def compile_steps(self) -> None:
        """torch.compile the one-step functions (filtering and imagination) rather than the unrolled
        sequence: the compile stays small (``pretrain.compile="step"``, see ``runtime``)."""
        self.img_step = torch.compile(self.img_step)
        self.obs_step = torch.compile(self.obs_step)

    def observe(self, embed: torch.Tensor, action: torch.Tensor, is_first: torch.Tensor,
                state: State | None = None) -> tuple[State, State]:
        """Filter a sequence: embed (B, T, E), action (B, T, A), is_first (B, T) → posteriors and priors,
        each a state with a time axis (B, T, ...)."""
        if state is None:
            state = self.initial(embed.shape[0])
        posts, priors = [], []
        for t in range(embed.shape[1]):
            state, prior = self.obs_step(state, action[:, t], embed[:, t], is_first[:, t])
            posts.append(state)
            priors.append(prior)
        return stack(posts), stack(priors)


def stack(states: list[State]) -> State:
    """A list over time of states (B, ...) → one state (B, T, ...)."""
    return {k: torch.stack([s[k] for s in states], 1) for k in states[0]}
