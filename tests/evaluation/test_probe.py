"""The probe on fixed embeddings: separable data is learnt, seeding, standardisation, errors."""

from __future__ import annotations

import numpy as np
import pytest

from manytask.errors import ConfigError, DataError
from manytask.evaluation.probe import fit_probe


def _blobs(n: int, k: int, d: int, seed: int, spread: float = 0.3, scale: float = 1.0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, size=(k, d))
    y = rng.integers(0, k, size=n)
    x = centres[y] + spread * rng.normal(size=(n, d))
    return x * scale, y


def test_multiclass_probe_learns_separable_blobs_and_times_itself():
    x, y = _blobs(300, 4, 6, seed=0)
    probe = fit_probe(x[:200], y[:200], x[200:250], y[200:250], "multiclass", seed=0)
    assert probe.score(x[250:], y[250:]) >= 0.96
    assert probe.fit_seconds > 0 and probe.last_seconds_per_instance > 0
    assert 1 <= probe.best_epoch <= probe.epochs_run <= 200


def test_labels_that_are_not_0_to_k_come_back_as_given():
    x, y = _blobs(200, 3, 4, seed=1)
    labels = np.array([10, 20, 30])[y]
    probe = fit_probe(x[:150], labels[:150], x[150:], labels[150:], "multiclass", seed=0, hidden=0)
    assert set(np.unique(probe.predict(x))) <= {10, 20, 30}
    assert probe.score(x[150:], labels[150:]) >= 0.95


def test_binary_probe_with_huge_feature_scale_is_standardised():
    x, y = _blobs(300, 2, 5, seed=2, scale=1e6)
    probe = fit_probe(x[:200], y[:200], x[200:250], y[200:250], "binary", seed=3)
    assert probe.score(x[250:], y[250:]) >= 0.96
    assert probe.mean.shape == (5,) and np.all(probe.std > 1e3)


def test_same_seed_same_probe_other_seed_other_probe():
    x, y = _blobs(120, 3, 4, seed=4, spread=2.0)
    a = fit_probe(x[:80], y[:80], x[80:], y[80:], seed=7, max_epochs=5, patience=5)
    b = fit_probe(x[:80], y[:80], x[80:], y[80:], seed=7, max_epochs=5, patience=5)
    c = fit_probe(x[:80], y[:80], x[80:], y[80:], seed=8, max_epochs=5, patience=5)
    wa, wb, wc = (p.net.state_dict()["0.weight"] for p in (a, b, c))
    assert (wa == wb).all() and not (wa == wc).all()


def test_early_stopping_stops_before_max_epochs_on_noise():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(100, 3)), rng.integers(0, 2, size=100)
    probe = fit_probe(x[:60], y[:60], x[60:], y[60:], "binary", seed=0, max_epochs=500, patience=3, lr=0.05)
    assert probe.epochs_run < 500 and probe.epochs_run == probe.best_epoch + 3


def test_bad_inputs_give_one_line_errors():
    x, y = _blobs(20, 2, 3, seed=0)
    with pytest.raises(DataError, match="val_X has 2 features"):
        fit_probe(x, y, x[:, :2], y)
    with pytest.raises(DataError, match="train_X row 3"):
        bad = x.copy()
        bad[3, 1] = np.nan
        fit_probe(bad, y, x, y)
    with pytest.raises(DataError, match="binary probe must be 0 or 1"):
        fit_probe(x, y + 1, x, y, "binary")
    with pytest.raises(ConfigError, match="kind must be"):
        fit_probe(x, y, x, y, "regression")  # type: ignore[arg-type]
    probe = fit_probe(x, y, x, y, max_epochs=1)
    with pytest.raises(DataError, match="fitted on 3"):
        probe.score(x[:, :2], y)
