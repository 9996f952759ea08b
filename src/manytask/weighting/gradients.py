"""Per-task gradients for the gradient-level methods: one engine, a batched and a looped path.

Every gradient-level method (MGDA, MGDA-UB, PCGrad, CAGrad, IMTL-G, GradNorm) needs the k × d matrix
``J`` whose row k is the gradient of task loss ``L_k`` with respect to the shared parameters
(flattened and concatenated), or with respect to the shared representation ``z`` (k × (B·D)).
This module computes it and writes the combined result back:

* **Looped path** (``mode="loop"``): one ``autograd.grad`` per task. When the loss vector is a
  ``torch.stack`` of the task losses (what :func:`manytask.tasks.stack_losses` returns), each
  call starts at that task's own loss node, so it traverses head k and the trunk once, and never
  the other heads (a one-hot cotangent on the stacked vector would push zeros through all of
  them). The task-specific leaves ride along in the same calls, so the heads' own gradients
  ``Σ_k ∂L_k/∂θ_k`` come for free.
* **Batched path** (``mode="batched"``): one vectorised backward (``is_grads_batched=True``).
  For the parameter Jacobian, when every path from the losses to the shared parameters runs
  through ``z`` (hard parameter sharing, checked by walking the graph), it takes the per-task
  ``∂L_k/∂z`` first (k one-hot cotangents through the heads only) and then the Jacobian as one
  batched vector-Jacobian product of the trunk with those k cotangents; otherwise it batches the
  k one-hot cotangents through the whole graph. The heads then get one backward of ``Σ_k L_k``
  restricted to the task-specific leaves (:meth:`GradientEngine.head_backward`).
* **Graph walk** (:meth:`GradientEngine.inspect`): the task-specific leaves are the leaves the
  losses reach without passing through ``z`` or a shared parameter; the shared ``.grad`` is
  left alone, so it ends up holding only the method's combination.
* **Write-back** (:func:`write_grads`, :meth:`GradientEngine.features_backward`): the combined
  d-vector is *added* to the shared ``.grad`` (so gradient accumulation works); a combined
  representation gradient is back-propagated through the trunk once.

* **Direct convolution weights** (looped path, ``direct_convs=True``): the weight gradient of a
  shared convolution with a single input channel (the first layer of an image trunk) is not
  taken from autograd. Each per-task call asks instead for the cotangent ``D_k`` at that layer's
  output (a ``GradientEdge``), so autograd never runs the layer's backward; the engine then forms
  the input patches ``P`` once per step (a strided view, copied once) and gets
  ``∂L_k/∂W = Σ_b D_k[b] P[b]^T`` as one batched matrix product and ``∂L_k/∂bias = Σ D_k``.
  oneDNN's backward-weights kernel is slow for one input channel: on the LeNet's first layer
  (1→10, 5×5, batch 256) it took 30-55 ms against 9-11 ms for the matrix product, and the layer
  is visited once per task; for three or more input channels oneDNN was as fast or faster, so
  only single-channel layers take this route. A layer whose parameters are also used elsewhere
  in the graph stays with autograd.

``mode="auto"`` is batched on CUDA and looped elsewhere. Measured on a 2-core CPU with the
LeNet MultiMNIST model (``benchmarks/weighting_speed.py``) the vmap-based batched backward was
slower than the loop (1.6-1.7× at k = 10, 1.8-1.9× at k = 40: convolution backward under vmap
concatenates inputs and runs grouped convolutions), while on a GPU a loop of small kernels is
bound by launch latency, which the single batched call avoids.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from manytask.errors import ConfigError
from manytask.tasks import Task
from manytask.weighting.base import SharedParts, StepInfo, WeightingMethod

EngineMode = Literal["auto", "batched", "loop"]
ENGINE_MODES: tuple[str, ...] = ("auto", "batched", "loop")

_GradientEdge: Any = getattr(torch.autograd.graph, "GradientEdge", None)


@dataclass
class GraphInfo:
    """What the engine learned from one walk of the autograd graph of the losses.

    Attributes:
        head_leaves: leaf tensors (parameters) the losses depend on that are neither shared nor
            behind ``features``: the task-specific parameters.
        through_features: True if every path from the losses to a shared parameter passes
            through ``features`` (then the z-first Jacobian is exact).
    """

    head_leaves: list[Tensor]
    through_features: bool


def _flat(grads: Sequence[Tensor | None], params: Sequence[Tensor], batch: int | None = None) -> Tensor:
    parts: list[Tensor] = []
    for g, p in zip(grads, params):
        if g is None:
            shape = (p.numel(),) if batch is None else (batch, p.numel())
            parts.append(torch.zeros(shape, dtype=p.dtype, device=p.device))
        else:
            parts.append(g.reshape(-1) if batch is None else g.reshape(batch, -1))
    return torch.cat(parts, dim=-1)


def write_grads(params: Sequence[Tensor], vec: Tensor) -> None:
    """Add the flat vector ``vec`` (concatenated in ``params`` order) to ``p.grad``."""
    total = sum(p.numel() for p in params)
    if vec.numel() != total:
        raise ValueError(f"write_grads: vector has {vec.numel()} entries, parameters have {total}")
    offset = 0
    for p in params:
        n = p.numel()
        g = vec[offset : offset + n].view(p.shape).to(p.dtype)
        offset += n
        if p.grad is None:
            p.grad = g.clone()
        else:
            p.grad.add_(g)


def _loss_edges(losses: Tensor) -> list[tuple[Any, int]] | None:
    """The k per-task entry points of a ``torch.stack``-ed loss vector, or None."""
    fn = losses.grad_fn
    if _GradientEdge is None or fn is None or type(fn).__name__ != "StackBackward0":
        return None
    edges = list(fn.next_functions)
    if len(edges) != losses.shape[0]:
        return None
    return edges


def _graph_nodes(root: Any, stop: Any = None) -> Iterator[Any]:
    """Every autograd node reachable from ``root``, once each; ``stop`` is not entered (nor yielded)."""
    seen: dict[int, Any] = {}  # holds the node objects so that ids stay unique
    stack = [root]
    while stack:
        fn = stack.pop()
        if fn is None or id(fn) in seen or (stop is not None and fn is stop):
            continue
        seen[id(fn)] = fn
        yield fn
        stack.extend(nf for nf, _ in fn.next_functions)


@dataclass
class DirectConv:
    """A shared single-input-channel convolution whose weight gradient the engine forms itself.

    Attributes:
        node: its ``ConvolutionBackward0`` node in the graph of the losses.
        weight: its weight parameter (shared).
        bias: its bias parameter (shared), or None.
    """

    node: Any
    weight: Tensor
    bias: Tensor | None

    def _output_size(self) -> tuple[int, int]:
        """``(H_out, W_out)`` of the layer."""
        x: Tensor = self.node._saved_input
        (ph, pw), (sh, sw), (dh, dw) = self.node._saved_padding, self.node._saved_stride, self.node._saved_dilation
        kh, kw = self.weight.shape[2], self.weight.shape[3]
        return (x.shape[2] + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (x.shape[3] + 2 * pw - dw * (kw - 1) - 1) // sw + 1

    def patch_elements(self) -> int:
        """Size of the patch matrix :meth:`patches` builds: B · C·kh·kw · H_out·W_out."""
        ho, wo = self._output_size()
        return self.node._saved_input.shape[0] * self.weight[0].numel() * ho * wo

    def patches(self) -> Tensor:
        """``(B, L, C·kh·kw)``: the input patch under every output position (one copy)."""
        fn = self.node
        x: Tensor = fn._saved_input
        ho, wo = self._output_size()
        ph, pw = fn._saved_padding
        if ph or pw:
            x = F.pad(x, (pw, pw, ph, ph))
        sh, sw = fn._saved_stride
        dh, dw = fn._saved_dilation
        kh, kw = self.weight.shape[2], self.weight.shape[3]
        b, c = x.shape[:2]
        s = x.stride()
        view = x.as_strided((b, c, kh, kw, ho, wo), (s[0], s[1], dh * s[2], dw * s[3], sh * s[2], sw * s[3]))
        return view.reshape(b, c * kh * kw, ho * wo).transpose(1, 2)

    def grads(self, cotangent: Tensor | None, patches: Tensor) -> tuple[Tensor, Tensor | None]:
        """Weight and bias gradients from the output cotangent ``(B, C_out, H_out, W_out)``."""
        if cotangent is None:
            return torch.zeros_like(self.weight), None if self.bias is None else torch.zeros_like(self.bias)
        b, c_out = cotangent.shape[:2]
        d = cotangent.reshape(b, c_out, -1)
        gw = torch.bmm(d, patches.to(d.dtype)).sum(0).view_as(self.weight).to(self.weight.dtype)
        gb = None if self.bias is None else d.sum(dim=(0, 2)).to(self.bias.dtype)
        return gw, gb


#: the largest patch matrix (elements) the direct route builds: 2^26 floats = 256 MiB in float32
MAX_PATCH_ELEMENTS = 2**26


def find_direct_convs(losses: Tensor, params: Sequence[Tensor],
                      max_patch_elements: int = MAX_PATCH_ELEMENTS) -> list[DirectConv]:
    """The single-input-channel 2-D convolutions among ``params`` that the engine can handle itself.

    A convolution qualifies when it is not transposed, has one group and one input channel, its
    weight (and bias, if any) are in ``params``, no other node of the graph uses them, and its
    patch matrix has at most ``max_patch_elements`` entries (a larger layer stays with autograd
    rather than allocating that much memory).
    """
    shared = {id(p): p for p in params}
    uses: dict[int, int] = {}
    convs: list[DirectConv] = []
    for fn in _graph_nodes(losses.grad_fn):
        for nf, _ in fn.next_functions:
            var = getattr(nf, "variable", None)
            if var is not None and id(var) in shared:
                uses[id(var)] = uses.get(id(var), 0) + 1
        if type(fn).__name__ == "ConvolutionBackward0":
            conv = _as_direct_conv(fn, shared)
            if conv is not None:
                convs.append(conv)
    return [c for c in convs if uses.get(id(c.weight)) == 1 and (c.bias is None or uses.get(id(c.bias)) == 1)
            and c.patch_elements() <= max_patch_elements]


def _as_direct_conv(fn: Any, shared: dict[int, Tensor]) -> DirectConv | None:
    try:
        return _read_conv_node(fn, shared)
    except (AttributeError, RuntimeError, TypeError, ValueError):  # a torch whose node exposes less
        return None


def _read_conv_node(fn: Any, shared: dict[int, Tensor]) -> DirectConv | None:
    if fn._saved_transposed or fn._saved_groups != 1 or len(fn.next_functions) != 3:
        return None
    w_node, b_node = fn.next_functions[1][0], fn.next_functions[2][0]
    weight = getattr(w_node, "variable", None)
    if weight is None or id(weight) not in shared or weight.dim() != 4 or weight.shape[1] != 1:
        return None
    if any(isinstance(v, str) for v in (fn._saved_padding, fn._saved_stride, fn._saved_dilation)):
        return None
    if len(fn._saved_padding) != 2 or any(fn._saved_output_padding):
        return None
    bias = None
    if b_node is not None:
        bias = getattr(b_node, "variable", None)
        if bias is None or id(bias) not in shared:
            return None
    return DirectConv(node=fn, weight=weight, bias=bias)


class GradientEngine:
    """Per-task gradients of a loss vector, batched or looped (see the module docstring).

    Args:
        mode: ``"auto"`` (batched on CUDA, loop elsewhere), ``"batched"`` or ``"loop"``.
        direct_convs: on the looped path, form the weight gradients of single-input-channel
            convolutions directly (see the module docstring); False leaves them to autograd.
    """

    def __init__(self, mode: str = "auto", direct_convs: bool = True) -> None:
        if mode not in ENGINE_MODES:
            raise ConfigError(f"weighting engine: unknown mode '{mode}' (expected one of {', '.join(ENGINE_MODES)})")
        self.mode = mode
        self.direct_convs = direct_convs

    def path(self, device: torch.device) -> str:
        """The path used on ``device``: ``"batched"`` or ``"loop"``."""
        if self.mode != "auto":
            return self.mode
        return "batched" if device.type == "cuda" else "loop"

    # ------------------------------------------------------------------ graph
    def inspect(self, losses: Tensor, params: Sequence[Tensor], features: Tensor | None = None) -> GraphInfo:
        """Walk the graph of ``losses``: task-specific leaves, and whether ``features`` cuts it."""
        shared_ids = {id(p) for p in params}
        stop = features.grad_fn if features is not None else None
        feat_id = id(features) if features is not None else None
        leaves: list[Tensor] = []
        reached_shared = False
        for fn in _graph_nodes(losses.grad_fn, stop=stop):
            var = getattr(fn, "variable", None)
            if var is not None:  # AccumulateGrad: a leaf
                if id(var) in shared_ids:
                    reached_shared = True
                elif id(var) != feat_id:
                    leaves.append(var)
        usable = features is not None and features.requires_grad and not reached_shared
        return GraphInfo(head_leaves=leaves, through_features=usable)

    @staticmethod
    def head_backward(losses: Tensor, leaves: Sequence[Tensor], retain_graph: bool = True) -> None:
        """Accumulate ``∂(Σ_k L_k)/∂θ`` into the given (task-specific) leaves only."""
        if leaves:
            torch.autograd.backward(losses.sum(), inputs=list(leaves), retain_graph=retain_graph)

    # ------------------------------------------------------------------ jacobians
    def _one_hot(self, losses: Tensor) -> Tensor:
        return torch.eye(losses.shape[0], dtype=losses.dtype, device=losses.device)

    def _loop(self, losses: Tensor, inputs: Sequence[Any], heads: Sequence[Tensor]) -> list[tuple[Tensor | None, ...]]:
        """One ``autograd.grad`` per task w.r.t. ``inputs`` (tensors or ``GradientEdge`` s); the
        task-specific leaves ``heads`` ride along, and their summed gradient is added to their ``.grad``."""
        edges = _loss_edges(losses)
        one = torch.ones((), dtype=losses.dtype, device=losses.device)
        targets = [*inputs, *heads]
        n = len(inputs)
        head_sum: list[Tensor | None] = [None] * len(heads)
        out: list[tuple[Tensor | None, ...]] = []
        for i in range(losses.shape[0]):
            if edges is not None:
                node, nr = edges[i]
                if node is None:  # this loss does not depend on anything that needs a gradient
                    out.append(tuple(None for _ in inputs))
                    continue
                grads = torch.autograd.grad(
                    [_GradientEdge(node, nr)], targets, grad_outputs=[one], retain_graph=True, allow_unused=True
                )
            else:
                grads = torch.autograd.grad(losses[i], targets, retain_graph=True, allow_unused=True)
            out.append(tuple(grads[:n]))
            for j, g in enumerate(grads[n:]):
                if g is not None:
                    acc = head_sum[j]
                    head_sum[j] = g if acc is None else acc + g
        for leaf, total in zip(heads, head_sum):
            if total is None:
                continue
            if leaf.grad is None:
                leaf.grad = total.detach().clone()
            else:
                leaf.grad.add_(total)
        return out

    def _loop_direct(self, losses: Tensor, inputs: Sequence[Tensor], heads: Sequence[Tensor],
                     convs: Sequence[DirectConv]) -> list[tuple[Tensor | None, ...]]:
        """:meth:`_loop`, except that the parameters of ``convs`` are not asked of autograd: their
        output cotangents are, and :meth:`DirectConv.grads` forms their gradients."""
        slots: dict[int, tuple[int, int]] = {}  # id(param) -> (conv index, 0 weight / 1 bias)
        for ci, conv in enumerate(convs):
            slots[id(conv.weight)] = (ci, 0)
            if conv.bias is not None:
                slots[id(conv.bias)] = (ci, 1)
        rest = [p for p in inputs if id(p) not in slots]
        edges = [_GradientEdge(c.node, 0) for c in convs]
        patches = [c.patches() for c in convs]
        rows = self._loop(losses, [*rest, *edges], heads)
        out: list[tuple[Tensor | None, ...]] = []
        for row in rows:
            by_id = {id(p): g for p, g in zip(rest, row[: len(rest)])}
            conv_grads = [c.grads(d, pt) for c, d, pt in zip(convs, row[len(rest):], patches)]
            full: list[Tensor | None] = []
            for p in inputs:
                slot = slots.get(id(p))
                full.append(by_id[id(p)] if slot is None else conv_grads[slot[0]][slot[1]])
            out.append(tuple(full))
        return out

    def feature_jacobian(self, losses: Tensor, features: Tensor, info: GraphInfo | None = None,
                         heads: bool = False) -> Tensor:
        """``(k, *features.shape)``: the gradient of each task loss w.r.t. ``features``.

        With ``heads=True`` the task-specific leaves of ``info`` also receive ``Σ_k ∂L_k/∂θ``
        (in ``.grad``), for free on the looped path (the per-task calls traverse the heads anyway).
        """
        k = losses.shape[0]
        leaves = self._heads(losses, features, info, heads)
        if self.path(losses.device) == "batched":
            (g,) = torch.autograd.grad(
                losses, features, self._one_hot(losses), retain_graph=True, is_grads_batched=True, allow_unused=True
            )
            self.head_backward(losses, leaves)
            return torch.zeros((k, *features.shape), dtype=features.dtype, device=features.device) if g is None else g
        rows = [torch.zeros_like(features) if g[0] is None else g[0] for g in self._loop(losses, [features], leaves)]
        return torch.stack(rows)

    def param_jacobian(self, losses: Tensor, params: Sequence[Tensor], features: Tensor | None = None,
                       info: GraphInfo | None = None, heads: bool = False) -> Tensor:
        """``(k, d)``: the gradient of each task loss w.r.t. ``params``, flattened and concatenated.

        Looped path: one backward per task, started at that task's own loss (its head and the
        trunk, once each). Batched path: when ``features`` cuts every path to ``params``, the
        z-first route (per-task ``∂L/∂z`` through the heads, then one batched vector-Jacobian
        product of the trunk with the k cotangents); otherwise one batched backward of the k
        one-hot cotangents. ``heads=True``: as in :meth:`feature_jacobian`.
        """
        params = list(params)
        k = losses.shape[0]
        if info is None:
            info = self.inspect(losses, params, features)
        leaves = self._heads(losses, features, info, heads)
        if self.path(losses.device) == "loop":
            convs = find_direct_convs(losses, params) if self.direct_convs and _GradientEdge is not None else []
            rows = self._loop_direct(losses, params, leaves, convs) if convs else self._loop(losses, params, leaves)
            return torch.stack([_flat(g, params) for g in rows])
        if info.through_features and features is not None:
            gz = self.feature_jacobian(losses, features)
            grads = torch.autograd.grad(features, params, gz, retain_graph=True, is_grads_batched=True, allow_unused=True)
        else:
            grads = torch.autograd.grad(
                losses, params, self._one_hot(losses), retain_graph=True, is_grads_batched=True, allow_unused=True
            )
        self.head_backward(losses, leaves)
        return _flat(grads, params, batch=k)

    def _heads(self, losses: Tensor, features: Tensor | None, info: GraphInfo | None, heads: bool) -> list[Tensor]:
        if not heads:
            return []
        if info is None:
            raise ValueError("heads=True needs the GraphInfo from inspect() (it names the task-specific leaves)")
        return info.head_leaves

    # ------------------------------------------------------------------ write-back
    @staticmethod
    def features_backward(features: Tensor, cotangent: Tensor, params: Sequence[Tensor], retain_graph: bool = True) -> None:
        """Back-propagate one representation gradient through the trunk into ``params``' ``.grad``."""
        torch.autograd.backward(features, cotangent.view_as(features), inputs=list(params), retain_graph=retain_graph)


class GradientWeighting(WeightingMethod):
    """Base of the methods whose shared update is a combination ``Σ_k c_k g_k`` of per-task gradients.

    A subclass maps the k × k Gram matrix ``G G^T`` of the per-task gradients (and the losses) to
    the coefficients ``c`` in :meth:`coefficients`; the engine does everything else. Shared
    parameters receive exactly ``Σ_k c_k g_k`` (added to their ``.grad``); task-specific
    parameters receive their own unweighted ``∂L_k/∂θ_k``. ``StepInfo.weights`` is ``c``.

    Args:
        tasks: the tasks in loss order.
        engine: ``"auto"``, ``"batched"`` or ``"loop"`` (see :class:`GradientEngine`).
    """

    #: ``"params"``: gradients w.r.t. the shared parameters; ``"features"``: w.r.t. ``z``
    wrt: ClassVar[str] = "params"

    def __init__(self, tasks: Sequence[Task], engine: str = "auto") -> None:
        super().__init__(tasks)
        try:
            self.engine = GradientEngine(engine)
        except ConfigError as exc:
            raise ConfigError(f"weighting '{self.name}': {exc}") from None

    def coefficients(self, gram: Tensor, losses: Tensor) -> Tensor:
        """Return ``c`` (k,) from the Gram matrix (k, k) and the losses (k,), both float64 on CPU."""
        raise NotImplementedError

    def backward(self, losses: Tensor, shared: SharedParts | None = None) -> StepInfo:
        self.check_losses(losses)
        if shared is None:
            raise ValueError(f"weighting '{self.name}': needs shared=SharedParts(params=..., features=...)")
        params = [p for p in shared.params if p.requires_grad]
        features = shared.features
        if self.wrt == "features":
            if features is None or not features.requires_grad:
                raise ValueError(
                    f"weighting '{self.name}': needs the shared representation in the graph (SharedParts.features)"
                )
            info = self.engine.inspect(losses, params, features)
            jac = self.engine.feature_jacobian(losses, features, info, heads=True).reshape(self.k, -1)
            # each process holds other samples' rows of z: the global Gram is Σ_r share_r² J_r J_rᵀ
            gram = shared.global_sum((jac @ jac.T).detach() * shared.share ** 2)
        else:
            info = self.engine.inspect(losses, params, features)
            jac = shared.global_mean(self.engine.param_jacobian(losses, params, features, info, heads=True))
            gram = (jac @ jac.T).detach()
        gram = gram.to(torch.float64).cpu()
        coef = self.coefficients(gram, shared.global_mean(losses.detach()).to(torch.float64).cpu())
        c = coef.to(device=jac.device, dtype=jac.dtype)
        combined = c @ jac
        if self.wrt == "features":
            assert features is not None
            self.engine.features_backward(features, combined, params)
        else:
            write_grads(params, combined)
        return StepInfo(weights=c.detach())
