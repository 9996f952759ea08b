"""A manytask weighting method inside a plain PyTorch loop (random data; runs in seconds)."""

import torch
from torch import nn

from manytask.tasks import Task, stack_losses
from manytask.weighting import SharedParts, create

torch.manual_seed(0)
tasks = [Task("digit", "multiclass", num_classes=10), Task("size", "regression")]
trunk = nn.Sequential(nn.Linear(32, 64), nn.ReLU())
heads = nn.ModuleDict({t.name: nn.Linear(64, t.out_features) for t in tasks})
method = create("mgda_ub", tasks)  # or "uncertainty", "dwa", "pcgrad", "cagrad", "gradnorm", ...
opt = torch.optim.Adam([*trunk.parameters(), *heads.parameters(), *method.parameters()], lr=1e-2)
x, y = torch.randn(256, 32), {"digit": torch.randint(0, 10, (256,)), "size": torch.randn(256)}
for step in range(100):
    opt.zero_grad()
    z = trunk(x)  # the shared representation
    losses = stack_losses(tasks, {name: head(z) for name, head in heads.items()}, y)
    shared = SharedParts(params=list(trunk.parameters()), features=z, last_layer=list(trunk[0].parameters()))
    info = method.backward(losses, shared=shared)  # leaves gradients in .grad
    opt.step()
    if step % 25 == 0 or step == 99:
        print(f"step {step:3d}  loss {losses.sum().item():.3f}  weights {[round(w, 3) for w in info.weights.tolist()]}")
