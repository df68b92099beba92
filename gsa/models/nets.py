"""Building blocks of the world model (method §4): MLPs, channel LayerNorm, block-diagonal linear, CNNs."""
from __future__ import annotations

import math

import torch
from torch import nn

from gsa.models.distributions import symlog


class MLP(nn.Sequential):
    """`layers` × (Linear → LayerNorm → SiLU) of width `units`."""

    def __init__(self, inp: int, units: int, layers: int):
        super().__init__(*(
            nn.Sequential(nn.Linear(inp if i == 0 else units, units), nn.LayerNorm(units), nn.SiLU())
            for i in range(layers)))


class ChannelNorm(nn.LayerNorm):
    """LayerNorm over the channels of a (N, C, H, W) map."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.movedim(1, -1)).movedim(-1, 1)


class BlockLinear(nn.Module):
    """Block-diagonal linear layer (DreamerV3 2024): input and output are split into `blocks` equal
    slices and slice g of the output sees only slice g of the input. Weight (blocks, in/blocks, out/blocks)."""

    def __init__(self, inp: int, out: int, blocks: int):
        super().__init__()
        assert inp % blocks == 0 and out % blocks == 0, (inp, out, blocks)
        self.blocks = blocks
        bound = 1 / math.sqrt(inp // blocks)  # nn.Linear's default init, per block
        self.weight = nn.Parameter(torch.empty(blocks, inp // blocks, out // blocks).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(out).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.unflatten(-1, (self.blocks, -1))                      # (..., G, in/G)
        x = torch.einsum("...gi,gio->...go", x, self.weight)        # (..., G, out/G)
        return x.flatten(-2) + self.bias                            # (..., out)


def _flat(fn, x: torch.Tensor, dims: int) -> torch.Tensor:
    """Apply fn to x with all but its last `dims` axes flattened into one batch axis."""
    lead = x.shape[:x.dim() - dims]
    y = fn(x.reshape(-1, *x.shape[x.dim() - dims:]))
    return y.reshape(*lead, *y.shape[1:])


class Encoder(nn.Module):
    """Image encoder: 4 × (Conv k4 s2, no padding → ChannelNorm → SiLU), channels [d, 2d, 4d, 8d];
    64 → 31 → 14 → 6 → 2, so the embedding has 8d·2·2 features. Input uint8 pixels, scaled to /255 − 0.5."""

    def __init__(self, depth: int):
        super().__init__()
        chans = [3, depth, 2 * depth, 4 * depth, 8 * depth]
        self.convs = nn.Sequential(*(
            nn.Sequential(nn.Conv2d(cin, cout, 4, 2), ChannelNorm(cout), nn.SiLU())
            for cin, cout in zip(chans[:-1], chans[1:])))
        self.size = 8 * depth * 2 * 2

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs.float() / 255 - 0.5                                 # (..., 3, 64, 64)
        return _flat(lambda x: self.convs(x).flatten(1), x, 3)      # (..., 8d·2·2)


class Decoder(nn.Module):
    """Image decoder of the NCRL code, whose size gives the paper's 281.4M parameters (method §4).

    h and z enter through separate paths, as in the DreamerV3 2024 decoder (h through a block-diagonal
    layer), summed into a 32d × 1 × 1 map; transposed convs k [5, 5, 6, 6] s2 with channels [4d, 2d, d, 3]
    grow it 1 → 5 → 13 → 30 → 64 (DreamerV2). The last layer has no norm or activation; the output is in
    target space (pixels/255 − 0.5).
    """

    def __init__(self, deter: int, latent: int, hidden: int, depth: int, blocks: int):
        super().__init__()
        self.deter = deter
        self.from_deter = nn.Sequential(
            BlockLinear(deter, 2 * hidden, blocks), nn.LayerNorm(2 * hidden), nn.SiLU(),
            nn.Linear(2 * hidden, 32 * depth))
        self.from_stoch = nn.Sequential(MLP(latent, 2 * hidden, 1), nn.Linear(2 * hidden, 32 * depth))
        chans = [32 * depth, 4 * depth, 2 * depth, depth]
        layers = []
        for cin, cout, kernel in zip(chans[:-1], chans[1:], [5, 5, 6]):
            layers += [nn.ConvTranspose2d(cin, cout, kernel, 2), ChannelNorm(cout), nn.SiLU()]
        layers.append(nn.ConvTranspose2d(depth, 3, 6, 2))
        self.convs = nn.Sequential(*layers)

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        deter, stoch = feat[..., :self.deter], feat[..., self.deter:]  # feat = [h, flat z]
        x = self.from_deter(deter) + self.from_stoch(stoch)         # (..., 32d)
        return _flat(self.convs, x[..., None, None], 3)             # (..., 3, 64, 64)


class StateEncoder(nn.Module):
    """State mode (our extension): MLP on symlog of the padded state vector, as DreamerV3 does for vectors."""

    def __init__(self, state_size: int, units: int, layers: int):
        super().__init__()
        self.mlp = MLP(state_size, units, layers)
        self.size = units

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return self.mlp(symlog(state))                              # (..., units)


class StateDecoder(nn.Sequential):
    """State mode: MLP → Linear to the padded state size; predicts symlog(state)."""

    def __init__(self, feat: int, state_size: int, units: int, layers: int):
        super().__init__(MLP(feat, units, layers), nn.Linear(units, state_size))
