from __future__ import annotations

import pytest
import torch

from manytask.data.batch import TensorDataset


@pytest.fixture(scope="session")
def toy_data() -> tuple[TensorDataset, TensorDataset, TensorDataset]:
    """Two learnable tasks on 20 features: a 3-class rule and a linear regression target."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1400, 20, generator=g)
    cls = (x[:, 0] > 0.5).long() + (x[:, 1] > 0).long()
    reg = (x[:, 2:5].sum(1, keepdim=True) + 0.1 * torch.randn(1400, 1, generator=g))
    ds = TensorDataset(x, {"c": cls, "r": reg})
    return ds.subset(range(1000)), ds.subset(range(1000, 1200)), ds.subset(range(1200, 1400))
