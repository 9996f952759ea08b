"""The gallery encoder of Gutelman & Levin 2020 (section 3.2) as the trunk ``set_encoder``.

A gallery of ``n`` images ``x_1 … x_n`` is encoded by one item encoder ``φ`` shared by all its
images, then a permutation-invariant pooling ``ρ`` (:mod:`manytask.models.pooling`)::

    z = P( ρ({φ(x_i) : i real}) )

The paper uses VGG16 with its first four of five blocks frozen as ``φ``, mean pooling as ``ρ``
and no projection ``P``: the 512 pooled values go straight to the task heads. Here ``φ`` is
any registered trunk (``model.options.item``, default :class:`SmallVGG`, a VGG-style CNN for
28×28 grey digits), ``ρ`` is ``mean`` (default), ``sum``, ``max`` or ``pma``, and ``P`` is an
optional FC layer + ReLU to ``model.features`` values (``project: true``; off by default, as in
the paper: the item encoder's last layer already sets the width, and after mean, sum or max a
linear map would only compose with it; with ``pma`` and several seeds it brings the ``k·D``
values back to ``model.features``).

The item encoder runs only on the real items of the padded ``(B, W, *item_shape)`` batch: they
are gathered with ``x[set_mask]``, encoded, and scattered back into zero-filled ``(B, W, D)``
features, so padding costs no compute and never reaches the result (its values may be
anything, NaN included).

``freeze_blocks: k`` freezes the first ``k`` blocks of the item encoder (see :func:`item_blocks`):
their parameters stop requiring gradients and their batch norms stay in evaluation mode.
``init_from: RUN_DIR`` copies the item encoder's weights from a finished run whose trunk was the
same item trunk (or a ``set_encoder`` run with it), read from ``best.safetensors`` (else
``last.safetensors``); nothing is unpickled.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from manytask.errors import ConfigError
from manytask.models.pooling import build_pooling
from manytask.models.registry import TrunkSpec, build_trunk, register_trunk

__all__ = [
    "SetEncoder",
    "SmallVGG",
    "encode_real_items",
    "freeze_blocks",
    "init_item_from",
    "item_blocks",
    "parameter_counts",
]


def _scaled(n: int, width: float) -> int:
    return max(1, round(n * width))


class SmallVGG(nn.Module):
    """A VGG-style CNN for small grey images (``small_vgg``), in four blocks.

    Blocks 1–3: [conv 3×3 (pad 1) → BN → ReLU] × 2 → max pool 2, with 16, 32, 64 channels
    (× ``width``); block 4: flatten → FC(→ ``out_features``) → ReLU. A 28×28 digit becomes
    64×3×3 = 576 values before the FC layer. Like VGG16's five blocks, the blocks are the units
    :func:`freeze_blocks` freezes.
    """

    CHANNELS = (16, 32, 64)

    def __init__(self, in_channels: int = 1, image_size: int = 28, width: float = 1.0,
                 out_features: int = 64) -> None:
        super().__init__()
        if image_size < 8:
            raise ConfigError(f"model.trunk small_vgg needs images of at least 8×8 pixels, got {image_size}")
        convs: list[nn.Module] = []
        prev, side = in_channels, image_size
        for c in self.CHANNELS:
            c = _scaled(c, width)
            convs.append(nn.Sequential(
                nn.Conv2d(prev, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(),
                nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(), nn.MaxPool2d(2),
            ))
            prev, side = c, side // 2
        self.features = nn.Sequential(*convs)
        self.out_features = _scaled(out_features, width)
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(prev * side * side, self.out_features), nn.ReLU())

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.features(x))

    def blocks(self) -> list[nn.Module]:
        return [*self.features, self.fc]

    def last_layer(self) -> list[nn.Parameter]:
        return list(self.fc[1].parameters())


@register_trunk("small_vgg")
def build_small_vgg(shape: Sequence[int], spec: TrunkSpec) -> nn.Module:
    """Square images ``(C, H, W)`` (or ``(H, W)``); ``model.features`` values out."""
    spec.take_options()
    if len(shape) not in (2, 3) or shape[-1] != shape[-2]:
        raise ConfigError(f"model.trunk small_vgg needs square images (C, H, W), got input shape {tuple(shape)}")
    channels = 1 if len(shape) == 2 else int(shape[0])
    return SmallVGG(channels, int(shape[-1]), spec.width, spec.features)


# ---------------------------------------------------------------------- blocks and freezing
def item_blocks(module: nn.Module) -> list[nn.Module]:
    """The blocks of a trunk, in order: its ``blocks()`` if it has one, else its top-level
    children that hold parameters (e.g. LeNet: conv1, conv2, fc)."""
    method = getattr(module, "blocks", None)
    if callable(method):
        return list(method())
    return [c for c in module.children() if any(True for _ in c.parameters())]


def freeze_blocks(module: nn.Module, k: int, where: str = "model.options.freeze_blocks") -> list[nn.Module]:
    """Freeze the first ``k`` blocks of ``module`` (``requires_grad = False``, batch norms put in
    evaluation mode); returns them. ``k`` larger than the number of blocks is a ConfigError."""
    blocks = item_blocks(module)
    if isinstance(k, bool) or not isinstance(k, int) or k < 0 or k > len(blocks):
        raise ConfigError(f"{where}: got {k!r} but the item trunk {type(module).__name__} has "
                          f"{len(blocks)} blocks (0..{len(blocks)})")
    for block in blocks[:k]:
        block.requires_grad_(False)
        block.eval()
    return blocks[:k]


def parameter_counts(model: nn.Module) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts of ``model`` (shared parameters counted once)."""
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


# ---------------------------------------------------------------------- init_from
def _weights_name(run_dir: Path) -> str:
    if not run_dir.is_dir():
        raise ConfigError(f"model.options.init_from: {run_dir} is not a run directory")
    for name in ("best", "last"):
        if (run_dir / f"{name}.safetensors").is_file():
            return name
    raise ConfigError(f"model.options.init_from: {run_dir} has neither best.safetensors nor last.safetensors")


def init_item_from(item: nn.Module, run_dir: str | Path) -> Path:
    """Copy a run's trunk weights into ``item``; returns the weights file read.

    The tensors are those named ``trunk.item.*`` (a ``set_encoder`` run) or else ``trunk.*`` (a
    run of the item trunk itself); every tensor of ``item`` must be there with its shape, and
    nothing else, or a one-line ConfigError names the run directory and the tensor.
    """
    from manytask.training.checkpoint import CheckpointError
    from manytask.training.rundir import RunDir, load_module_state

    run_dir = Path(run_dir)
    name = _weights_name(run_dir)
    rd = RunDir(run_dir, readonly=True)
    path = rd.file(f"{name}.safetensors")
    try:
        state = rd.read_weights(name)
    except CheckpointError as err:
        raise ConfigError(f"model.options.init_from: {err}") from None
    prefix = "trunk.item." if any(k.startswith("trunk.item.") for k in state) else "trunk."
    taken = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if not taken:
        raise ConfigError(f"model.options.init_from: {path} holds no trunk.* tensors")
    own = item.state_dict()
    for name, tensor in own.items():
        if name not in taken:
            raise ConfigError(f"model.options.init_from: {run_dir}: no tensor {prefix}{name} "
                              f"(was that run's trunk the same item trunk?)")
        if tuple(taken[name].shape) != tuple(tensor.shape):
            raise ConfigError(f"model.options.init_from: {run_dir}: tensor {prefix}{name} has shape "
                              f"{tuple(taken[name].shape)}, the item trunk needs {tuple(tensor.shape)} "
                              "(same trunk, width and model.features?)")
    extra = sorted(set(taken) - set(own))
    if extra:
        raise ConfigError(f"model.options.init_from: {run_dir}: tensor {prefix}{extra[0]} has no place in "
                          f"the item trunk (was that run's trunk the same item trunk?)")
    load_module_state(item, taken, path)
    return path


# ---------------------------------------------------------------------- the set encoder
def encode_real_items(encode: Callable[[Tensor], Tensor], x: Tensor, set_mask: Tensor) -> Tensor:
    """``(B, W, D)`` features of a padded ``(B, W, *item_shape)`` batch: ``encode`` (items
    ``(n, *item_shape)`` to ``(n, D)``) run on the real items only, zeros at the padding."""
    if bool(set_mask.all()):
        return encode(x.flatten(0, 1)).unflatten(0, set_mask.shape)
    feats = encode(x[set_mask])
    out = feats.new_zeros((*set_mask.shape, feats.shape[-1]))
    return out.index_put((set_mask,), feats)


class SetEncoder(nn.Module):
    """Item encoder → masked permutation-invariant pooling → optional FC projection.

    Args:
        item_encoder: a trunk mapping ``(n, *item_shape)`` to ``(n, D)`` (``out_features = D``).
        pooling: ``mean`` (the paper's), ``sum``, ``max`` or ``pma``.
        features: output width of the projection; ``None`` = no projection (the default).
        freeze: freeze the first ``freeze`` blocks of the item encoder.
        pma_heads, pma_seeds: attention heads and seed vectors of ``pma``.
    """

    def __init__(self, item_encoder: nn.Module, pooling: str = "mean", features: int | None = None, *,
                 freeze: int = 0, pma_heads: int = 4, pma_seeds: int = 1) -> None:
        super().__init__()
        d = getattr(item_encoder, "out_features", None)
        if not isinstance(d, int) or d < 1:
            raise ConfigError("model.options.item: the item trunk must expose a positive int 'out_features'")
        self.item = item_encoder
        self.pool = build_pooling(pooling, d, pma_heads, pma_seeds)
        self.pooling = pooling
        self.project = None if features is None else nn.Sequential(nn.Linear(self.pool.out_features, features), nn.ReLU())
        self.out_features: int = self.pool.out_features if features is None else int(features)
        self._frozen = freeze_blocks(item_encoder, freeze)
        self.frozen_blocks = len(self._frozen)

    def train(self, mode: bool = True) -> SetEncoder:
        super().train(mode)
        for block in self._frozen:  # frozen batch norms keep their running statistics
            block.eval()
        return self

    def encode_items(self, x: Tensor, set_mask: Tensor) -> Tensor:
        """Item features ``(B, W, D)``: the encoder on the real items, zeros at the padding."""
        return encode_real_items(self.item, x, set_mask)

    def forward(self, x: Tensor, set_mask: Tensor | None = None) -> Tensor:
        """``x`` ``(B, W, *item_shape)``, ``set_mask`` ``(B, W)`` (True = a real item; default:
        all real) → ``(B, out_features)``."""
        if x.dim() < 2:
            raise ConfigError(f"set_encoder: inputs must be (galleries, items, ...), got shape {tuple(x.shape)}")
        if set_mask is None:
            set_mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        elif tuple(set_mask.shape) != tuple(x.shape[:2]):
            raise ConfigError(f"set_encoder: set_mask has shape {tuple(set_mask.shape)}, the inputs "
                              f"{tuple(x.shape[:2])} galleries × items")
        set_mask = set_mask.to(torch.bool)
        z = self.pool(self.encode_items(x, set_mask), set_mask)
        return z if self.project is None else self.project(z)

    def last_layer(self) -> list[nn.Parameter]:
        if self.project is not None:
            return list(self.project[0].parameters())
        if self.pooling == "pma":
            return self.pool.last_layer()  # type: ignore[operator]
        last = getattr(self.item, "last_layer", None)
        return list(last()) if callable(last) else list(self.item.parameters())[-2:]


_OPTIONS: dict[str, Any] = {"item": "small_vgg", "item_options": {}, "pooling": "mean", "freeze_blocks": 0,
                            "init_from": None, "pma_heads": 4, "pma_seeds": 1, "project": False}


@register_trunk("set_encoder")
def build_set_encoder(shape: Sequence[int], spec: TrunkSpec) -> nn.Module:
    """Galleries ``(max size, *item_shape)``: the item trunk is built on ``shape[1:]`` with the
    same width, features, hidden and dropout (``model.options.item_options`` are its options)."""
    o = spec.take_options(**_OPTIONS)
    if len(shape) < 2:
        raise ConfigError(f"model.trunk set_encoder needs set inputs (items, *item_shape), got shape {tuple(shape)}")
    if o["item"] == "set_encoder":
        raise ConfigError("model.options.item: the item trunk cannot itself be set_encoder")
    if not isinstance(o["item_options"], dict):
        raise ConfigError(f"model.options.item_options: expected a mapping, got {o['item_options']!r}")
    item_spec = TrunkSpec(width=spec.width, features=spec.features, hidden=spec.hidden, dropout=spec.dropout,
                          options=dict(o["item_options"]))
    item = build_trunk(str(o["item"]), shape[1:], item_spec)
    if o["init_from"]:
        init_item_from(item, o["init_from"])
    for name in ("pma_heads", "pma_seeds"):
        if isinstance(o[name], bool) or not isinstance(o[name], int):
            raise ConfigError(f"model.options.{name}: expected an integer, got {o[name]!r}")
    if not isinstance(o["project"], bool):
        raise ConfigError(f"model.options.project: expected true or false, got {o['project']!r}")
    features = _scaled(spec.features, spec.width) if o["project"] else None
    return SetEncoder(item, str(o["pooling"]), features, freeze=o["freeze_blocks"],
                      pma_heads=o["pma_heads"], pma_seeds=o["pma_seeds"])
