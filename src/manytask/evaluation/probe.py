"""A small classifier trained on fixed embeddings: the probe of a representation.

Gutelman & Levin (2020, Section 4.1) judge gallery embeddings by a *new* task: a small model
is trained on the frozen embeddings of a held-out label (star rating) and scored on its test
accuracy. :func:`fit_probe` is that model:

* inputs standardised with the training rows' mean and standard deviation,
  ``x' = (x - mean) / std`` (a constant feature keeps ``std = 1``);
* ``hidden > 0``: one hidden layer, ``logits = W2 relu(W1 x' + b1) + b2``;
  ``hidden = 0``: logistic (softmax) regression, ``logits = W x' + b``;
* multiclass: softmax cross-entropy over the classes seen in training and validation;
  binary (labels 0/1): one logit with the logistic loss, predicted positive when ``logit > 0``;
* Adam (``lr`` 1e-3, ``weight_decay`` 1e-4), mini-batches of ``batch_size``, at most
  ``max_epochs`` epochs, early stopping when the validation loss has not improved for
  ``patience`` epochs; the weights of the best validation epoch are kept;
* seeded: the same ``seed`` and inputs give the same probe (one torch thread or not).

``Probe.score(X, y)`` is the accuracy; ``Probe.fit_seconds`` the training time and
``Probe.last_seconds_per_instance`` the inference time per row of the last ``predict``.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn

from manytask.errors import ConfigError, DataError

__all__ = ["Probe", "ProbeKind", "fit_probe"]

ProbeKind = Literal["multiclass", "binary"]


@dataclass
class Probe:
    """A fitted probe (see the module docstring); build it with :func:`fit_probe`."""

    net: nn.Module
    kind: ProbeKind
    mean: np.ndarray
    std: np.ndarray
    classes: np.ndarray
    fit_seconds: float
    epochs_run: int
    best_epoch: int
    best_val_loss: float
    history: list[dict[str, float]] = field(default_factory=list)
    last_seconds_per_instance: float = float("nan")

    def _logits(self, X: np.ndarray) -> Tensor:
        x = _check_matrix(X, "X", self.mean.shape[0])
        z = torch.from_numpy(((x - self.mean) / self.std).astype(np.float32))
        self.net.eval()
        with torch.no_grad():
            return self.net(z)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predicted labels (values of ``classes``) for the rows of ``X``; times itself."""
        start = time.perf_counter()
        logits = self._logits(X)
        if self.kind == "binary":
            pos = (logits[:, 0] > 0).numpy().astype(np.int64)
            out = self.classes[pos]
        else:
            out = self.classes[logits.argmax(dim=1).numpy()]
        self.last_seconds_per_instance = (time.perf_counter() - start) / max(len(out), 1)
        return out

    def score(self, X: np.ndarray, y: np.ndarray) -> float:
        """Accuracy on ``(X, y)``: the share of rows whose predicted label equals ``y``."""
        y = np.asarray(y)
        if len(y) != len(X):
            raise DataError(f"probe: X has {len(X)} rows but y has {len(y)}")
        if len(y) == 0:
            raise DataError("probe: cannot score an empty set")
        return float(np.mean(self.predict(X) == y))


def _check_matrix(X: np.ndarray, name: str, width: int | None = None) -> np.ndarray:
    x = np.asarray(X, dtype=np.float64)
    if x.ndim != 2:
        raise DataError(f"probe: {name} must be a 2-D array (rows x features), got shape {x.shape}")
    if width is not None and x.shape[1] != width:
        raise DataError(f"probe: {name} has {x.shape[1]} features, the probe was fitted on {width}")
    if not np.isfinite(x).all():
        bad = int(np.argwhere(~np.isfinite(x))[0][0])
        raise DataError(f"probe: {name} row {bad} holds a NaN or infinite value")
    return x


def _check_labels(y: np.ndarray, n: int, name: str, kind: ProbeKind) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != n:
        raise DataError(f"probe: {name} must be a vector of {n} labels, got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        if not (np.isfinite(y).all() and np.all(y == np.round(y))):
            raise DataError(f"probe: {name} must hold integer class labels")
        y = y.astype(np.int64)
    if kind == "binary" and not np.isin(y, (0, 1)).all():
        raise DataError(f"probe: {name} of a binary probe must be 0 or 1, found {sorted(set(y.tolist()) - {0, 1})[:3]}")
    return y.astype(np.int64)


def _network(d: int, out: int, hidden: int, dropout: float) -> nn.Module:
    if hidden == 0:
        return nn.Linear(d, out)
    return nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, out))


def _loss(kind: ProbeKind, logits: Tensor, target: Tensor) -> Tensor:
    if kind == "binary":
        return nn.functional.binary_cross_entropy_with_logits(logits[:, 0], target.float())
    return nn.functional.cross_entropy(logits, target)


def fit_probe(train_X: np.ndarray, train_y: np.ndarray, val_X: np.ndarray, val_y: np.ndarray,
              kind: ProbeKind = "multiclass", seed: int = 0, *, hidden: int = 64, dropout: float = 0.0,
              lr: float = 1e-3, weight_decay: float = 1e-4, batch_size: int = 64, max_epochs: int = 200,
              patience: int = 10) -> Probe:
    """Train a probe on ``(train_X, train_y)`` with early stopping on ``(val_X, val_y)``.

    ``hidden = 0`` gives logistic regression. Returns the :class:`Probe` at the epoch of the
    lowest validation loss. Raises :class:`ConfigError` for bad settings and
    :class:`DataError` (one line naming the array) for bad inputs.
    """
    if kind not in ("multiclass", "binary"):
        raise ConfigError(f"probe: kind must be 'multiclass' or 'binary', got {kind!r}")
    if hidden < 0 or batch_size < 1 or max_epochs < 1 or patience < 1 or lr <= 0:
        raise ConfigError("probe: hidden >= 0, batch_size >= 1, max_epochs >= 1, patience >= 1 and lr > 0 "
                          f"(got {hidden}, {batch_size}, {max_epochs}, {patience}, {lr})")
    tx = _check_matrix(train_X, "train_X")
    vx = _check_matrix(val_X, "val_X", tx.shape[1])
    ty = _check_labels(train_y, len(tx), "train_y", kind)
    vy = _check_labels(val_y, len(vx), "val_y", kind)
    if len(tx) == 0 or len(vx) == 0:
        raise DataError("probe: the training and the validation set each need at least one row")
    classes = np.array([0, 1]) if kind == "binary" else np.unique(np.concatenate([ty, vy]))
    mean = tx.mean(axis=0)
    std = tx.std(axis=0)
    std[std < 1e-12] = 1.0
    code = {int(c): i for i, c in enumerate(classes)}
    to_t = lambda x: torch.from_numpy(((x - mean) / std).astype(np.float32))  # noqa: E731
    Xt, Xv = to_t(tx), to_t(vx)
    Yt = torch.tensor([code[int(v)] for v in ty], dtype=torch.long)
    Yv = torch.tensor([code[int(v)] for v in vy], dtype=torch.long)

    start = time.perf_counter()
    torch.manual_seed(seed)
    out = 1 if kind == "binary" else len(classes)
    net = _network(tx.shape[1], out, hidden, dropout)
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(seed)
    best, best_state, best_epoch, bad, history = float("inf"), copy.deepcopy(net.state_dict()), 0, 0, []
    for epoch in range(1, max_epochs + 1):
        net.train()
        order = torch.randperm(len(Xt), generator=gen)
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            opt.zero_grad(set_to_none=True)
            _loss(kind, net(Xt[idx]), Yt[idx]).backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            val_loss = float(_loss(kind, net(Xv), Yv))
        history.append({"epoch": epoch, "val_loss": val_loss})
        if val_loss < best - 1e-7:
            best, best_state, best_epoch, bad = val_loss, copy.deepcopy(net.state_dict()), epoch, 0
        else:
            bad += 1
            if bad >= patience:
                break
    net.load_state_dict(best_state)
    seconds = time.perf_counter() - start
    return Probe(net=net, kind=kind, mean=mean, std=std, classes=classes, fit_seconds=seconds,
                 epochs_run=len(history), best_epoch=best_epoch, best_val_loss=best, history=history)
