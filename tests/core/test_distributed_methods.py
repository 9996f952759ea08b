"""Every weighting family under data-parallel training matches one process on the whole batch.

Two gloo processes (started here as plain subprocesses with ``WORLD_SIZE``/``RANK`` set, as
``torchrun`` would) each take half of every batch; a third process trains alone on the whole
batches. After three steps the weights must agree: loss-level methods whose weights depend on
the loss values (FAMO), stateful ones (GradNorm), and gradient-level methods over the shared
parameters (MGDA, PCGrad, CAGrad, IMTL-G) and over the shared representation (MGDA-UB), none
of which is linear in the losses, so averaging each process's own combination would differ.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import numpy as np
import pytest

METHODS = ["uniform", "uncertainty", "famo", "gradnorm", "mgda", "mgda_ub", "pcgrad", "cagrad", "imtl_g"]

WORKER = r'''
import sys, numpy as np, torch
from torch import nn
from manytask.data.batch import Batch
from manytask.models.multitask import MultiTaskModel
from manytask.tasks import Task
from manytask.training.optimizer import OptimizerSpec
from manytask.training.trainer import Trainer

out, methods = sys.argv[1], sys.argv[2].split(",")

class Trunk(nn.Sequential):
    out_features = 6
    def __init__(self):
        super().__init__(nn.Linear(5, 12), nn.Tanh(), nn.Linear(12, 6), nn.Tanh())
    def last_layer(self):
        return list(self[2].parameters())

g = torch.Generator().manual_seed(7)
x = torch.randn(3, 16, 5, generator=g)
targets = {"c": torch.randint(0, 3, (3, 16), generator=g), "r": torch.randn(3, 16, 1, generator=g),
           "b": torch.randint(0, 2, (3, 16), generator=g).float()}
tasks = [Task(name="c", kind="multiclass", num_classes=3), Task(name="r", kind="regression"),
         Task(name="b", kind="binary")]
result = {}
for m in methods:
    torch.manual_seed(0)
    model = MultiTaskModel(Trunk(), tasks, head_hidden=4)
    tr = Trainer(model, tasks, m, OptimizerSpec(name="sgd", lr=0.1, momentum=0.5), progress=False, seed=3)
    for s in range(3):
        tr.train_step(Batch(inputs=x[s], targets={k: v[s] for k, v in targets.items()}))
    result[m] = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).numpy()
    result[m + "/method"] = torch.cat([b.detach().double().reshape(-1) for b in
                                       [*tr.weighting.parameters(), *tr.weighting.buffers()]] or
                                      [torch.zeros(1, dtype=torch.float64)]).numpy()
np.savez(out, **result)
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_every_method_family_matches_one_process(tmp_path) -> None:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    base = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    base["OMP_NUM_THREADS"] = "1"
    methods = ",".join(METHODS)
    alone = subprocess.run([sys.executable, str(script), str(tmp_path / "one.npz"), methods], env=base,
                           capture_output=True, text=True, timeout=300, check=False)
    assert alone.returncode == 0, alone.stderr[-2000:]
    port = str(_free_port())
    procs = []
    for rank in range(2):
        env = {**base, "WORLD_SIZE": "2", "RANK": str(rank), "LOCAL_RANK": str(rank),
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port}
        procs.append(subprocess.Popen([sys.executable, str(script), str(tmp_path / f"rank{rank}.npz"), methods],
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
    one, r0, r1 = (np.load(tmp_path / f) for f in ("one.npz", "rank0.npz", "rank1.npz"))
    for key in one.files:
        np.testing.assert_array_equal(r0[key], r1[key], err_msg=f"{key}: the two processes drifted apart")
        np.testing.assert_allclose(r0[key], one[key], rtol=1e-4, atol=1e-5,
                                   err_msg=f"{key}: two processes differ from one on the whole batch")


@pytest.mark.parametrize("method", ["mgda", "mgda_ub"])
def test_the_methods_move_the_weights(method) -> None:
    """The comparison above is not vacuous: a method's three steps change the parameters."""
    import torch

    from manytask.data.batch import Batch
    from manytask.models.multitask import MultiTaskModel
    from manytask.tasks import Task
    from manytask.training.optimizer import OptimizerSpec
    from manytask.training.trainer import Trainer

    class Trunk(torch.nn.Sequential):
        out_features = 6

    tasks = [Task(name="c", kind="multiclass", num_classes=3), Task(name="r", kind="regression")]
    torch.manual_seed(0)
    model = MultiTaskModel(Trunk(torch.nn.Linear(5, 6), torch.nn.Tanh()), tasks, head_hidden=4)
    before = torch.cat([p.detach().reshape(-1).clone() for p in model.trunk.parameters()])
    tr = Trainer(model, tasks, method, OptimizerSpec(name="sgd", lr=0.1), progress=False)
    tr.train_step(Batch(inputs=torch.randn(8, 5), targets={"c": torch.randint(0, 3, (8,)), "r": torch.randn(8, 1)}))
    after = torch.cat([p.detach().reshape(-1) for p in model.trunk.parameters()])
    assert float((after - before).abs().max()) > 1e-4
