import numpy as np
import pytest

import fastbp


def make_targets(loss, n, k, rng):
    """Random targets of the right kind for ``loss`` with ``k`` outputs."""
    if loss == "softmax_cross_entropy":
        return rng.integers(0, k, size=n)
    if loss == "binary_cross_entropy":
        return (rng.random((n, k)) < 0.5).astype(float)
    if loss == "poisson":
        return rng.poisson(1.5, size=(n, k)).astype(float)
    return rng.standard_normal((n, k))


def net_from_layers(layers, activation, loss, dtype="float64"):
    """A ``fastbp.MLP`` holding the reference's ``[(W, b), ...]``."""
    sizes = [layers[0][0].shape[0]] + [W.shape[1] for W, _ in layers]
    net = fastbp.MLP(sizes, activation=activation, loss=loss, dtype=dtype, random_state=0)
    net.coefs_ = [W for W, _ in layers]
    net.intercepts_ = [b for _, b in layers]
    return net


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture
def split_batches(monkeypatch):
    """Training splits every batch of two or more rows between two threads.

    Skips where batches cannot be split (one CPU, or a threading layer that
    training does not split under).
    """
    from fastbp.threads import can_split_batches, resolve_n_threads
    if resolve_n_threads(2) < 2 or not can_split_batches():
        pytest.skip("training does not split batches on this machine")
    monkeypatch.setattr(fastbp.model, "SPLIT_MIN_ROWS", 1)
    return 2
