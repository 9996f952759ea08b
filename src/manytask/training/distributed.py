"""Data-parallel training across processes started by ``torchrun``.

``torchrun --nproc_per_node N -m manytask.cli run CONFIG --out DIR`` starts N copies of the
command; each reads ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` from its environment and joins
one process group (``nccl`` on CUDA, one GPU per process; ``gloo`` on CPU). Every process
draws the same shuffled batches (same seed) and trains on its own contiguous slice of each;
after the weighting method's backward the gradients are averaged across processes, weighted
by slice size (one all-reduce of one flat buffer), so every process applies the same update
and the weights stay identical. Task losses are averaged the same way before the non-finite
check, so every process takes the same decision, and so are the losses FAMO's ``after_step``
sees.

Every weighting method computes what one process would compute on the whole batch
(:class:`~manytask.weighting.base.SharedParts` carries this process's ``share`` and an
``all_sum``):

* loss-level methods (uniform, uncertainty, DWA, FAMO, ...) compute their weights from the
  global loss values (slice-weighted means over processes), with the gradient of the
  process's own losses, so the weights agree everywhere and the averaged gradient is the
  global one;
* gradient-level methods combine the global per-task gradients: with respect to the shared
  parameters, the k × d matrix is all-reduced (slice-weighted) before its Gram matrix and the
  combination are formed; with respect to the shared representation (MGDA-UB), each process
  holds other samples' rows, so the k × k Gram matrix is summed (weighted by the squared
  shares) and each process back-propagates the common coefficients through its own rows;
* GradNorm reduces the last layer's per-task gradients and takes its initial losses from the
  global values; class-wise auxiliary weighting sums its per-class window statistics over
  processes before each update.

The cost is one extra all-reduce per step of the k × d matrix for parameter-level methods (of
k × k for representation-level ones).

Only rank 0 writes the run directory (history, checkpoints, summary, predictions); every rank
reads the checkpoint on ``--resume``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor

from manytask.data.batch import Batch

__all__ = ["Distributed"]


@dataclass(frozen=True)
class Distributed:
    """This process's place in a ``torchrun`` job (``world == 1``: not distributed)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> Distributed:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        return cls(rank=int(os.environ.get("RANK", "0")), world=world,
                   local_rank=int(os.environ.get("LOCAL_RANK", "0")))

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, requested: torch.device) -> torch.device:
        """One GPU per process on CUDA (``cuda:LOCAL_RANK``); the requested device otherwise."""
        if self.active and requested.type == "cuda":
            torch.cuda.set_device(self.local_rank)
            return torch.device("cuda", self.local_rank)
        return requested

    def init(self, device: torch.device) -> None:
        import torch.distributed as dist

        if self.active and not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")

    def broadcast(self, tensors: Iterable[Tensor]) -> None:
        """Rank 0's values of ``tensors`` everywhere (the initial weights)."""
        if not self.active:
            return
        import torch.distributed as dist

        for t in tensors:
            dist.broadcast(t.data, src=0)

    def shard(self, batch: Batch) -> tuple[Batch, float]:
        """This process's contiguous slice of ``batch`` and its share of the batch's rows."""
        n = len(batch)
        lo, hi = n * self.rank // self.world, n * (self.rank + 1) // self.world

        def cut(t: Tensor) -> Tensor:
            return t[lo:hi]

        part = Batch(inputs=cut(batch.inputs), targets={k: cut(v) for k, v in batch.targets.items()},
                     masks={k: cut(v) for k, v in batch.masks.items()},
                     set_mask=None if batch.set_mask is None else cut(batch.set_mask))
        return part, (hi - lo) / max(n, 1)

    def average(self, values: Tensor, share: float) -> Tensor:
        """``sum over processes of share * values`` (a slice-weighted mean)."""
        import torch.distributed as dist

        out = values.detach() * share
        dist.all_reduce(out)
        return out

    def all_sum(self, values: Tensor) -> Tensor:
        """``Σ over processes of values`` (a copy; the same result on every process)."""
        import torch.distributed as dist

        out = values.detach().clone()
        dist.all_reduce(out)
        return out

    def average_gradients(self, params: Iterable[Tensor], share: float) -> None:
        """Replace every gradient by the slice-weighted mean over processes (missing ones count as 0)."""
        import torch.distributed as dist

        params = [p for p in params if p.requires_grad]
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads]) * share
        dist.all_reduce(flat)
        offset = 0
        for p in params:
            n = p.numel()
            p.grad = flat[offset:offset + n].view_as(p).clone()
            offset += n
