"""Permutation-invariant pooling of a padded set of item features, with its mask.

Every pooling maps item features ``H`` of shape ``(B, W, D)`` and a mask ``(B, W)`` (True = a
real item; padding is never read) to one vector per set. With ``n_b`` the number of real items
of set ``b`` and ``R_b`` their positions:

* ``mean`` (Gutelman & Levin 2020, section 3.2): ``z_b = (1/n_b) Σ_{i∈R_b} h_{b,i}`` — ``D`` values;
* ``sum`` (Zaheer et al.'s sum decomposition): ``z_b = Σ_{i∈R_b} h_{b,i}`` — ``D`` values;
* ``max``: ``z_{b,d} = max_{i∈R_b} h_{b,i,d}`` — ``D`` values;
* ``pma`` (Lee et al. 2019, Set Transformer's pooling by multihead attention): ``k`` learnable
  seed vectors ``S`` (``k × D``) attend over the real items::

      H   = LayerNorm(S + Multihead(S, Z, Z))      (keys/values masked to the real items)
      PMA = LayerNorm(H + rFF(H)),  rFF(H) = ReLU(H W + b)

  and the ``k`` outputs are flattened — ``k·D`` values. (As in the authors' code, ``Z`` enters
  the attention as is; the paper's extra ``rFF(Z)`` is left to the item encoder's last layer.)

All are symmetric functions of the real items: reordering them, or adding padding of any value
(even NaN), leaves the result unchanged. A set without any real item pools to zeros.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from manytask.errors import ConfigError

__all__ = ["PMA", "POOLINGS", "MaskedPool", "build_pooling"]

POOLINGS = ("mean", "sum", "max", "pma")


class MaskedPool(nn.Module):
    """``mean``, ``sum`` or ``max`` over the real items (no parameters)."""

    def __init__(self, mode: str, features: int) -> None:
        super().__init__()
        if mode not in ("mean", "sum", "max"):
            raise ConfigError(f"model.options.pooling: unknown pooling '{mode}' (expected one of {', '.join(POOLINGS)})")
        self.mode = mode
        self.out_features = features

    def forward(self, h: Tensor, mask: Tensor) -> Tensor:
        m = mask.unsqueeze(-1)
        if self.mode == "max":
            out = torch.where(m, h, torch.full_like(h, float("-inf"))).amax(1)
            return torch.where(mask.any(1, keepdim=True), out, torch.zeros_like(out))
        total = torch.where(m, h, torch.zeros_like(h)).sum(1)
        if self.mode == "sum":
            return total
        count = mask.sum(1, keepdim=True).clamp(min=1).to(total.dtype)
        return total / count

    def extra_repr(self) -> str:
        return self.mode


class PMA(nn.Module):
    """Pooling by multihead attention (Lee et al. 2019, eq. 11 with the MAB of eq. 8).

    Args:
        features: ``D``, the item feature width (divisible by ``heads``).
        heads: attention heads (Set Transformer's default 4).
        seeds: ``k`` seed vectors; the output has ``k·D`` values.
    """

    def __init__(self, features: int, heads: int = 4, seeds: int = 1) -> None:
        super().__init__()
        if heads < 1 or seeds < 1:
            raise ConfigError(f"model.options: pma_heads and pma_seeds must be >= 1, got {heads} and {seeds}")
        if features % heads:
            raise ConfigError(f"model.options.pma_heads: the item features ({features}) must be divisible by "
                              f"the number of heads ({heads})")
        self.seeds = nn.Parameter(torch.empty(seeds, features))
        nn.init.xavier_uniform_(self.seeds)
        self.attn = nn.MultiheadAttention(features, heads, batch_first=True)
        self.norm1 = nn.LayerNorm(features)
        self.ff = nn.Linear(features, features)
        self.norm2 = nn.LayerNorm(features)
        self.out_features = seeds * features

    def forward(self, h: Tensor, mask: Tensor) -> Tensor:
        ignore = ~mask
        ignore = ignore & mask.any(1, keepdim=True)  # an empty set attends to its zero padding
        s = self.seeds.unsqueeze(0).expand(h.shape[0], -1, -1).to(h.dtype)
        att, _ = self.attn(s, h, h, key_padding_mask=ignore, need_weights=False)
        hs = self.norm1(s + att)
        out = self.norm2(hs + torch.relu(self.ff(hs)))
        return out.flatten(1)

    def last_layer(self) -> list[nn.Parameter]:
        return list(self.ff.parameters())


def build_pooling(name: str, features: int, heads: int = 4, seeds: int = 1) -> nn.Module:
    """The pooling ``name`` (one of :data:`POOLINGS`) over items of ``features`` values."""
    if name == "pma":
        return PMA(features, heads, seeds)
    if name not in POOLINGS:
        raise ConfigError(f"model.options.pooling: unknown pooling '{name}' (expected one of {', '.join(POOLINGS)})")
    return MaskedPool(name, features)
