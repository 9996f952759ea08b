"""The tiny 3-task MultiMNIST config the grouping tests train candidates on."""

from __future__ import annotations

from typing import Any


def tiny_config(seed: int, sizes: tuple[int, int, int] = (160, 60, 60), epochs: int = 1,
                sgd: bool = False) -> dict[str, Any]:
    """left digit, left parity and right-image reconstruction on a 16-8 MLP, one thread.

    ``sizes``: train / validation / test samples; ``sgd``: SGD with momentum instead of the
    default optimizer.
    """
    train, val, test = sizes
    training: dict[str, Any] = {"epochs": epochs, "batch_size": 64, "threads": 1, "monitor": "loss"}
    if sgd:
        training["optimizer"] = {"name": "sgd", "lr": 0.05, "momentum": 0.9}
    return {
        "name": "tiny3",
        "seed": seed,
        "data": {"kind": "multimnist", "source": "bundled", "train_size": train, "val_size": val, "test_size": test},
        "tasks": [
            {"name": "left", "kind": "multiclass", "num_classes": 10},
            {"name": "odd", "kind": "binary", "target": "left_parity"},
            {"name": "recon", "kind": "reconstruction", "target": "right_image", "dim": 1296},
        ],
        "model": {"trunk": "mlp", "hidden": [16, 8]},
        "training": training,
    }
