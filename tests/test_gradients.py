"""Gradients of ``loss_and_grad`` against central differences, for every registry entry."""

import numba
import numpy as np
import pytest

import fastbp
from fastbp.kernels.exp import exp

from . import reference
from .conftest import make_targets, net_from_layers

ALL_ACTIVATIONS = sorted(fastbp.ACTIVATIONS)
ALL_LOSSES = sorted(fastbp.LOSSES)


def numerical_gradient(net, X, y, alpha, sw=None, h=1e-6):
    """Central differences of the loss with respect to every entry of ``params_``."""
    grad = np.zeros_like(net.params_)
    for i in range(net.params_.size):
        saved = net.params_[i]
        net.params_[i] = saved + h
        plus, _ = net.loss_and_grad(X, y, sample_weight=sw, alpha=alpha)
        net.params_[i] = saved - h
        minus, _ = net.loss_and_grad(X, y, sample_weight=sw, alpha=alpha)
        net.params_[i] = saved
        grad[i] = (plus - minus) / (2 * h)
    return grad


def flat(grads):
    return np.concatenate([np.concatenate([dW.ravel(), db]) for dW, db in grads])


def check(sizes, activation, loss, alpha, n, rng, sw=None):
    layers = reference.random_layers(sizes, rng)
    X = rng.standard_normal((n, sizes[0]))
    y = make_targets(loss, n, sizes[-1], rng)
    net = net_from_layers(layers, activation, loss)
    before = net.params_.copy()
    J, grads = net.loss_and_grad(X, y, sample_weight=sw, alpha=alpha)
    np.testing.assert_array_equal(net.params_, before)  # the model is unchanged
    numeric = numerical_gradient(net, X, y, alpha, sw)
    np.testing.assert_allclose(flat(grads), numeric, rtol=1e-5, atol=1e-7)
    J_ref, grads_ref = reference.loss_and_grads(layers, X, y, activation, loss, alpha, sw)
    assert J == pytest.approx(J_ref, rel=1e-12)
    np.testing.assert_allclose(flat(grads), flat(grads_ref), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("loss", ALL_LOSSES)
@pytest.mark.parametrize("activation", ALL_ACTIVATIONS)
def test_gradient_every_activation_and_loss(activation, loss, rng):
    check([4, 5, 3], activation, loss, alpha=0.0, n=6, rng=rng)
    check([3, 4, 4, 3], activation, loss, alpha=0.3, n=5, rng=rng)


@pytest.mark.parametrize("sizes", [[5, 3], [3, 7, 2], [2, 3, 4, 3, 2], [6, 2, 9, 3]])
@pytest.mark.parametrize("n", [1, 4])
def test_gradient_depths_widths_batch_sizes(sizes, n, rng):
    check(sizes, "tanh", "softmax_cross_entropy", alpha=0.1, n=n, rng=rng)
    check(sizes, "gelu", "mse", alpha=0.0, n=n, rng=rng)


def test_gradient_with_sample_weight(rng):
    sw = rng.random(7) + 0.1
    check([3, 5, 4], "elu", "softmax_cross_entropy", alpha=0.2, n=7, rng=rng, sw=sw)
    check([3, 5, 2], "softplus", "binary_cross_entropy", alpha=0.0, n=7, rng=rng, sw=sw)


def test_gradient_through_blas_sized_layers(rng):
    """Layers large enough that the products go to BLAS rather than loops."""
    sizes = [40, 64, 30, 3]
    layers = reference.random_layers(sizes, rng, scale=0.2)
    X = rng.standard_normal((32, 40))
    y = make_targets("softmax_cross_entropy", 32, 3, rng)
    net = net_from_layers(layers, "relu", "softmax_cross_entropy")
    J, grads = net.loss_and_grad(X, y, alpha=0.5)
    J_ref, grads_ref = reference.loss_and_grads(layers, X, y, "relu",
                                                "softmax_cross_entropy", 0.5)
    assert J == pytest.approx(J_ref, rel=1e-12)
    np.testing.assert_allclose(flat(grads), flat(grads_ref), rtol=1e-10, atol=1e-12)


def test_loss_is_stable_for_huge_logits(rng):
    """Log-sum-exp and softplus forms: no overflow, exact large-logit limits."""
    layers = [(np.array([[1000.0, -1000.0, 0.0]]), np.zeros(3))]
    net = net_from_layers(layers, "relu", "softmax_cross_entropy")
    J, grads = net.loss_and_grad(np.ones((1, 1)), np.array([1]))
    assert J == pytest.approx(2000.0)
    assert all(np.isfinite(g).all() for pair in grads for g in pair)
    net = net_from_layers([(np.array([[800.0]]), np.zeros(1))], "relu",
                          "binary_cross_entropy")
    J, _ = net.loss_and_grad(np.ones((1, 1)), np.array([0.0]))
    assert J == pytest.approx(800.0)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("rows", [1, 5])     # row by row, or the whole block at once
def test_softmax_flushes_subnormals(dtype, rows):
    """exp of a logit gap beyond the smallest normal float is exactly 0, never subnormal."""
    tiny = np.finfo(dtype).tiny
    gap = -np.log(tiny) + 5.0
    layers = [(np.array([[1.0, 0.0, 0.5]]), np.array([0.0, -gap, -gap + 10.0]))]
    net = net_from_layers(layers, "relu", "softmax_cross_entropy", dtype)
    proba = net.predict_proba(np.zeros((rows, 1)))
    assert np.all(proba[:, 1] == 0.0) and np.all(proba[:, 2] >= tiny)
    _, grads = net.loss_and_grad(np.zeros((rows, 1)), np.zeros(rows, dtype=int))
    db = grads[0][1]
    assert db[1] == 0.0
    assert np.all((np.abs(db) >= tiny) | (db == 0))


@numba.njit
def _exp_all(x, out):
    for i in range(x.size):
        out[i] = exp(x[i])


def test_vectorised_exp_within_two_ulp_of_numpy(rng):
    """``kernels.exp.exp`` over its whole range: normal results, the subnormals
    (-745 < x < -708), overflow, and the special values."""
    x = np.concatenate([rng.uniform(-750.0, 710.0, 200_000), rng.uniform(-1.0, 1.0, 50_000),
                        np.arange(-1100.0, 1100.0, 0.5) * np.log(2.0),
                        [0.0, -0.0, 1e-300, 709.78, 709.79, -708.4, -720.0, -745.1, -745.2,
                         1e308, -1e308, np.inf, -np.inf, np.nan]])
    out = np.empty_like(x)
    _exp_all(x, out)
    with np.errstate(over="ignore"):
        expected = np.exp(x)
    normal = np.isfinite(expected) & (expected >= np.finfo(float).tiny)
    ulps = np.abs(out[normal] - expected[normal]) / np.spacing(expected[normal])
    assert ulps.max() <= 2.0
    np.testing.assert_allclose(out[~normal], expected[~normal], rtol=0,
                               atol=2 * np.finfo(float).smallest_subnormal)
    assert np.isnan(out[-1]) and out[-2] == 0.0 and out[-3] == np.inf
