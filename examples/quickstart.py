"""Train a two-task model on MultiMNIST from the bundled real digits, from Python.

    python examples/quickstart.py
"""

from __future__ import annotations

import torch

from manytask.data import build_multimnist, load_bundled_digits
from manytask.models import LeNetTrunk, MultiTaskModel
from manytask.tasks import Task
from manytask.training import OptimizerSpec, Trainer

torch.set_num_threads(1)
images, labels = load_bundled_digits()
splits = build_multimnist(images, labels, train_size=2000, val_size=500, test_size=500,
                          columns=("left", "left_parity", "right"), seed=0)
tasks = [
    Task("left", "multiclass", num_classes=10),
    Task("odd", "binary", target="left_parity"),
    Task("right", "multiclass", num_classes=10),
]
# targets are keyed by data column; key them by task name
splits = splits.select({t.name: t.column for t in tasks})

model = MultiTaskModel(LeNetTrunk(), tasks)
trainer = Trainer(model, tasks, weighting="uniform", optimizer=OptimizerSpec(lr=0.02),
                  epochs=3, batch_size=128, run_dir="runs/quickstart", progress=False)
result = trainer.fit(splits.train, splits.val, splits.test)
print("best epoch (chosen on validation):", result.best_epoch)
for task, metrics in (result.test or {}).items():
    print(f"{task:6s} test accuracy {metrics['accuracy']:.3f}")
