"""Steps and epochs of every optimizer against the NumPy reference."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastbp
from fastbp.kernels.blas import SMALL_KERNEL_WORK
from fastbp.kernels.lazy import MAX_LAG, step_powers, takes_lazy_rows
from fastbp.kernels.optimizers import flush_subnormals_inplace

from . import reference
from .conftest import make_targets, net_from_layers

OPTIMIZER_SETTINGS = {
    "sgd": dict(optimizer="sgd", momentum=0.0),
    "momentum": dict(optimizer="sgd", momentum=0.9),
    "nesterov": dict(optimizer="sgd", momentum=0.8, nesterov=True),
    "adam": dict(optimizer="adam", beta1=0.85, beta2=0.99, epsilon=1e-7),
}


def reference_optimizer(settings, lr):
    settings = dict(settings)
    name = settings.pop("optimizer")
    return reference.Optimizer(name, lr, **settings)


def assert_same_layers(net, layers, rtol=1e-10, atol=1e-12):
    for (W, b), coef, intercept in zip(layers, net.coefs_, net.intercepts_):
        np.testing.assert_allclose(coef, W, rtol=rtol, atol=atol)
        np.testing.assert_allclose(intercept, b, rtol=rtol, atol=atol)


def run_both(sizes, activation, loss, settings, batch_size, n, rng, epochs=1, lr=0.05,
             alpha=0.0, clip_value=None, clip_norm=None, sw=None, n_threads=None):
    layers = reference.random_layers(sizes, rng, scale=0.4)
    X = rng.standard_normal((n, sizes[0]))
    y = make_targets(loss, n, sizes[-1], rng)
    net = net_from_layers(layers, activation, loss)
    net.n_threads = n_threads
    net.fit(X, y, epochs=epochs, batch_size=batch_size, lr=lr, alpha=alpha,
            clip_value=clip_value, clip_norm=clip_norm, shuffle=False, sample_weight=sw,
            warm_start=True, **settings)
    opt = reference_optimizer(settings, lr)
    losses = [reference.train_epoch(layers, X, y, activation, loss, opt, batch_size,
                                    alpha=alpha, sw=sw, clip_value=clip_value,
                                    clip_norm=clip_norm) for _ in range(epochs)]
    return net, layers, losses


@pytest.mark.parametrize("name", sorted(OPTIMIZER_SETTINGS))
def test_one_step_every_optimizer(name, rng):
    # batch_size = n: one step of batch gradient descent
    net, layers, losses = run_both([5, 6, 3], "tanh", "softmax_cross_entropy",
                                   OPTIMIZER_SETTINGS[name], batch_size=8, n=8, rng=rng,
                                   alpha=0.1)
    assert_same_layers(net, layers)
    assert net.history_["loss"][0] == pytest.approx(losses[0], rel=1e-12)


@pytest.mark.parametrize("name", sorted(OPTIMIZER_SETTINGS))
@pytest.mark.parametrize("loss", sorted(fastbp.LOSSES))
def test_epochs_every_optimizer_and_loss(name, loss, rng):
    net, layers, losses = run_both([4, 7, 5, 3], "relu", loss, OPTIMIZER_SETTINGS[name],
                                   batch_size=4, n=18, rng=rng, epochs=3, lr=0.02,
                                   alpha=0.05)
    assert_same_layers(net, layers)
    np.testing.assert_allclose(net.history_["loss"], losses, rtol=1e-10)


@pytest.mark.parametrize("name", sorted(OPTIMIZER_SETTINGS))
@pytest.mark.parametrize("clip", [dict(clip_value=0.05), dict(clip_norm=0.1),
                                  dict(clip_value=0.05, clip_norm=0.08)])
@pytest.mark.parametrize("batch_size", [2, 5])   # the step fused into backward, or not
def test_clipping(name, clip, batch_size, rng):
    net, layers, losses = run_both([4, 6, 3], "logistic", "softmax_cross_entropy",
                                   OPTIMIZER_SETTINGS[name], batch_size=batch_size, n=12,
                                   rng=rng, epochs=2, lr=0.1, alpha=0.01, **clip)
    assert_same_layers(net, layers)
    np.testing.assert_allclose(net.history_["loss"], losses, rtol=1e-10)


def test_clipping_changes_the_result(rng):
    """Guard against clipping silently doing nothing."""
    settings = OPTIMIZER_SETTINGS["sgd"]
    state = rng.bit_generator.state
    clipped, _, _ = run_both([4, 6, 3], "tanh", "mse", settings, 5, 12, rng,
                             clip_norm=1e-3)
    rng.bit_generator.state = state
    free, _, _ = run_both([4, 6, 3], "tanh", "mse", settings, 5, 12, rng)
    assert np.abs(clipped.params_ - free.params_).max() > 1e-3


@pytest.mark.parametrize("batch_size", [1, 5, 7, 20, 64])
def test_batch_stochastic_minibatch_modes(batch_size, rng):
    """n = 20: stochastic, uneven mini-batches (7 -> 7, 7, 6), exact, larger than n."""
    net, layers, losses = run_both([3, 5, 2], "elu", "mse", OPTIMIZER_SETTINGS["momentum"],
                                   batch_size=batch_size, n=20, rng=rng, epochs=2,
                                   lr=0.01)
    assert_same_layers(net, layers)
    np.testing.assert_allclose(net.history_["loss"], losses, rtol=1e-10)


@pytest.mark.parametrize("name", ["nesterov", "adam"])
@pytest.mark.parametrize("batch_size", [1, 2])
def test_step_computes_next_product_skipping_zero_inputs(name, batch_size, rng):
    """Single-sample batches (every one at batch 1; the last of 11 at batch 2) get
    their first product from the previous step's update pass, which skips the
    rows of ``W_0`` whose input is 0: half the inputs here are 0."""
    sizes = [6, 8, 3]
    layers = reference.random_layers(sizes, rng, scale=0.4)
    X = rng.standard_normal((11, 6)) * (rng.random((11, 6)) < 0.5)
    y = make_targets("softmax_cross_entropy", 11, 3, rng)
    net = net_from_layers(layers, "tanh", "softmax_cross_entropy")
    net.fit(X, y, epochs=2, batch_size=batch_size, lr=0.05, alpha=0.01, shuffle=False,
            warm_start=True, **OPTIMIZER_SETTINGS[name])
    opt = reference_optimizer(OPTIMIZER_SETTINGS[name], 0.05)
    losses = [reference.train_epoch(layers, X, y, "tanh", "softmax_cross_entropy", opt,
                                    batch_size, alpha=0.01) for _ in range(2)]
    assert_same_layers(net, layers)
    np.testing.assert_allclose(net.history_["loss"], losses, rtol=1e-10)


def sparse_inputs(n, n_in, rng, zeros=0.6):
    """Inputs of which a fraction ``zeros`` is 0, input 3 always."""
    X = rng.standard_normal((n, n_in)) * (rng.random((n, n_in)) >= zeros)
    X[:, 3] = 0.0
    return X


@pytest.mark.parametrize("name", ["momentum", "nesterov"])
@pytest.mark.parametrize("weight", [None, 2.5])
def test_lazy_rows_of_zero_inputs_match_reference(name, weight, rng):
    """Single-sample momentum steps leave the rows of ``W_0`` whose input is 0
    behind (``kernels/lazy.py``) and bring them up to date later at once. Rows
    come back at every lag; row 3 reaches the largest lag (600 steps an epoch)
    and is brought up to date on the way. A sample weight of 2.5 for all
    samples makes the L2 coefficient alpha / 2.5 at every step."""
    n, sizes = 600, [10, 7, 3]
    X = sparse_inputs(n, sizes[0], rng)
    sw = None if weight is None else np.full(n, weight)
    assert takes_lazy_rows(np.ones(n) if sw is None else sw, np.arange(n))
    assert n > MAX_LAG + 2
    layers = reference.random_layers(sizes, rng, scale=0.4)
    y = make_targets("softmax_cross_entropy", n, 3, rng)
    net = net_from_layers(layers, "relu", "softmax_cross_entropy")
    net.fit(X, y, epochs=2, batch_size=1, lr=0.01, alpha=0.05, sample_weight=sw,
            shuffle=False, warm_start=True, **OPTIMIZER_SETTINGS[name])
    opt = reference_optimizer(OPTIMIZER_SETTINGS[name], 0.01)
    losses = [reference.train_epoch(layers, X, y, "relu", "softmax_cross_entropy", opt, 1,
                                    alpha=0.05, sw=sw) for _ in range(2)]
    assert_same_layers(net, layers)
    np.testing.assert_allclose(net.history_["loss"], losses, rtol=1e-10)


def test_lazy_rows_shuffled_float32_follow_float64(rng):
    """Lazy rows in float32 (powers of ``M`` rounded to float32) and in shuffled
    order, against float64 with the same shuffles."""
    X = sparse_inputs(400, 12, rng)
    y = make_targets("softmax_cross_entropy", 400, 4, rng)
    nets = {dtype: fastbp.MLP([12, 16, 4], dtype=dtype, random_state=1)
            .fit(X, y, epochs=3, batch_size=1, lr=0.01, alpha=0.01, optimizer="sgd",
                 momentum=0.9, nesterov=True)
            for dtype in ("float32", "float64")}
    np.testing.assert_allclose(nets["float32"].params_, nets["float64"].params_,
                               rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(nets["float32"].history_["loss"],
                               nets["float64"].history_["loss"], rtol=1e-4)


@pytest.mark.parametrize("nesterov", [False, True])
def test_step_powers_are_the_powers_of_one_step(nesterov):
    """Row k of the table is M^k, M the map of one momentum step of a weight with no
    data gradient: (w, v) -> (w', v') as the optimizer computes it."""
    lr, mu, l2 = 0.05, 0.8, 0.3
    powers = step_powers(lr, mu, nesterov, l2, np.zeros(1))
    assert powers.shape == (MAX_LAG + 2, 4)
    opt = reference.Optimizer("sgd", lr, momentum=mu, nesterov=nesterov)
    w, v = np.array([0.7, -0.2]), np.array([0.1, 0.4])
    params = [w.copy()]
    opt.step(params, [l2 * params[0]])       # builds opt.m, a zero velocity
    opt.m[0][...] = v
    params[0][...] = w
    for k in range(1, 40):
        opt.step(params, [l2 * params[0]])
        m11, m12, m21, m22 = powers[k]
        np.testing.assert_allclose(params[0], m11 * w + m12 * v, rtol=1e-12)
        np.testing.assert_allclose(opt.m[0], m21 * w + m22 * v, rtol=1e-12)


def test_lazy_rows_need_one_weight_for_all():
    """``M`` depends on the sample weight: lazy rows need the same for all samples."""
    order = np.arange(10)
    assert takes_lazy_rows(np.full(10, 0.5), order)
    assert not takes_lazy_rows(np.linspace(0.5, 1.0, 10), order)
    assert takes_lazy_rows(np.linspace(0.5, 1.0, 10), np.full(5, 3))
    assert not takes_lazy_rows(np.zeros(10), order)


def test_blas_sized_layers_fused_update(rng):
    """Products big enough for BLAS: the fused gemm SGD update, every batch but the first."""
    net, layers, losses = run_both([48, 64, 40, 4], "relu", "softmax_cross_entropy",
                                   OPTIMIZER_SETTINGS["sgd"], batch_size=16, n=70,
                                   rng=rng, epochs=2, lr=0.05, alpha=0.2)
    assert_same_layers(net, layers, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(net.history_["loss"], losses, rtol=1e-10)


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_products_run_in_halves_match_reference(name, rng):
    """Products of 1 to 2 million multiply-adds run as two BLAS calls (blas.py,
    SMALL_KERNEL_WORK): at batch 200 through 64-120-50 every product of the step
    does (forward rows, input-delta rows, weight gradients summed over two halves
    of the batch; with plain SGD the second half adds to the first's update)."""
    sizes, batch = [64, 120, 50], 200
    assert SMALL_KERNEL_WORK < batch * 50 * 120 <= 2 * SMALL_KERNEL_WORK
    net, layers, losses = run_both(sizes, "relu", "softmax_cross_entropy",
                                   OPTIMIZER_SETTINGS[name], batch_size=batch, n=3 * batch,
                                   rng=rng, epochs=2, lr=0.01, alpha=0.1, n_threads=1)
    assert_same_layers(net, layers, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(net.history_["loss"], losses, rtol=1e-10)


@pytest.mark.parametrize("name", ["momentum", "nesterov", "adam"])
@pytest.mark.parametrize("clip_value", [None, 0.02])
def test_wide_layers_step_fused_into_backward(name, clip_value, rng):
    """Batches of 1 and 2 rows take the fused step, which forms the gradient a few
    rows of ``W`` at a time: 1024 // 200 = 5 rows, so the chunks of the 9 x 200
    layer end with the bias row and those of the 10 x 200 layer include a
    bias-only chunk."""
    for sizes in ([9, 200, 3], [10, 200, 130, 2]):
        net, layers, losses = run_both(sizes, "tanh", "softmax_cross_entropy",
                                       OPTIMIZER_SETTINGS[name], batch_size=2, n=7,
                                       rng=rng, epochs=2, lr=0.01, alpha=0.3,
                                       clip_value=clip_value)
        assert_same_layers(net, layers)
        np.testing.assert_allclose(net.history_["loss"], losses, rtol=1e-10)


@pytest.mark.parametrize("name", sorted(OPTIMIZER_SETTINGS))
@pytest.mark.parametrize("extra", [dict(), dict(clip_value=0.05, alpha=0.1),
                                   dict(clip_norm=0.1), dict(sample_weight=True)])
def test_split_batches_match_reference(name, extra, split_batches, rng):
    """Batches split between two threads: 23 samples in batches of 9 leave a last
    batch of 5 (parts of 3 and 2); in batches of 11, a last batch of 1 (an empty
    part). GELU also keeps the pre-activations of each part."""
    extra = dict(extra)
    if extra.pop("sample_weight", False):
        extra["sw"] = rng.random(23) * 2
    for batch_size, activation in ((9, "gelu"), (11, "relu")):
        net, layers, losses = run_both([5, 9, 4], activation, "softmax_cross_entropy",
                                       OPTIMIZER_SETTINGS[name], batch_size=batch_size,
                                       n=23, rng=rng, epochs=2, lr=0.05,
                                       n_threads=split_batches, **extra)
        assert net._state.parts == 2
        assert_same_layers(net, layers)
        np.testing.assert_allclose(net.history_["loss"], losses, rtol=1e-10)


def test_split_batches_shuffled_match_serial(split_batches, rng):
    """Shuffled batches are gathered per part; only the rounding of the summed
    gradient differs from the serial epoch."""
    X = rng.standard_normal((90, 12))
    y = make_targets("softmax_cross_entropy", 90, 3, rng)
    nets = [fastbp.MLP([12, 20, 3], dtype="float64", random_state=3, n_threads=threads)
            .fit(X, y, epochs=4, batch_size=16, optimizer="adam", lr=0.01, alpha=0.01)
            for threads in (1, split_batches)]
    assert [net._state.parts for net in nets] == [1, 2]
    np.testing.assert_allclose(nets[1].params_, nets[0].params_, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(nets[1].history_["loss"], nets[0].history_["loss"],
                               rtol=1e-12)
    np.testing.assert_allclose(nets[1].history_["grad_norm"],
                               nets[0].history_["grad_norm"], rtol=1e-10)


def test_sample_weight_epoch(rng):
    sw = rng.random(15) * 2
    net, layers, losses = run_both([3, 4, 3], "gelu", "softmax_cross_entropy",
                                   OPTIMIZER_SETTINGS["adam"], batch_size=4, n=15,
                                   rng=rng, epochs=2, alpha=0.1, sw=sw)
    assert_same_layers(net, layers)
    np.testing.assert_allclose(net.history_["loss"], losses, rtol=1e-10)


def test_float32_follows_float64(rng):
    sizes = [8, 16, 4]
    layers = reference.random_layers(sizes, rng, scale=0.3)
    X = rng.standard_normal((64, 8))
    y = make_targets("softmax_cross_entropy", 64, 4, rng)
    nets = {}
    for dtype in ("float32", "float64"):
        nets[dtype] = net_from_layers(layers, "tanh", "softmax_cross_entropy", dtype)
        nets[dtype].fit(X, y, epochs=3, batch_size=8, lr=0.05, shuffle=False,
                        warm_start=True)
    assert nets["float32"].params_.dtype == np.float32
    assert nets["float32"].predict_proba(X).dtype == np.float32
    np.testing.assert_allclose(nets["float32"].params_, nets["float64"].params_,
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(nets["float32"].history_["loss"],
                               nets["float64"].history_["loss"], rtol=1e-5)


def test_predict_matches_reference(rng):
    for loss in sorted(fastbp.LOSSES):
        layers = reference.random_layers([5, 9, 3], rng)
        X = rng.standard_normal((11, 5))
        net = net_from_layers(layers, "softplus", loss)
        expected = reference.predict_outputs(layers, X, "softplus", loss)
        if loss in ("softmax_cross_entropy", "binary_cross_entropy"):
            np.testing.assert_allclose(net.predict_proba(X), expected, rtol=1e-12)
        else:
            np.testing.assert_allclose(net.predict(X), expected, rtol=1e-12)


def test_predict_in_several_chunks(rng, monkeypatch):
    import fastbp.model
    monkeypatch.setattr(fastbp.model, "PREDICT_CHUNK", 7)
    layers = reference.random_layers([5, 9, 3], rng)
    X = rng.standard_normal((30, 5))
    net = net_from_layers(layers, "relu", "softmax_cross_entropy")
    expected = reference.predict_outputs(layers, X, "relu", "softmax_cross_entropy")
    np.testing.assert_allclose(net.predict_proba(X), expected, rtol=1e-12)


@settings(max_examples=30, deadline=None)
@given(hidden=st.lists(st.integers(1, 6), min_size=0, max_size=3),
       n=st.integers(1, 13), batch_size=st.integers(1, 15),
       name=st.sampled_from(sorted(OPTIMIZER_SETTINGS)),
       activation=st.sampled_from(sorted(fastbp.ACTIVATIONS)),
       seed=st.integers(0, 2**16))
def test_any_architecture_matches_reference(hidden, n, batch_size, name, activation, seed):
    """Any depth, width, sample count and batch size: an epoch equals the reference's."""
    rng = np.random.default_rng(seed)
    net, layers, losses = run_both([3, *hidden, 2], activation, "softmax_cross_entropy",
                                   OPTIMIZER_SETTINGS[name], batch_size=batch_size, n=n,
                                   rng=rng, epochs=2, lr=0.03, alpha=0.01)
    assert_same_layers(net, layers, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(net.history_["loss"], losses, rtol=1e-9)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_optimizer_state_flushes_subnormals(dtype):
    tiny = np.finfo(dtype).tiny
    state = np.array([tiny / 4, -tiny / 1e3, tiny, -2 * tiny, 0.5, np.nan, -np.inf], dtype)
    expected = state.copy()
    expected[:2] = 0.0
    flush_subnormals_inplace(state)
    np.testing.assert_array_equal(state, expected)


@pytest.mark.parametrize("name", ["nesterov", "adam"])
def test_epochs_leave_no_subnormal_state(name, rng):
    """A velocity (moment) sunk into subnormals changes no weight against one at
    0, and the epoch leaves it flushed to 0. Hidden unit 0 is dead, so the
    gradient of its weights and bias is 0 and nothing but the flush moves its
    state."""
    X = rng.standard_normal((6, 3))
    y = make_targets("softmax_cross_entropy", 6, 2, rng)
    nets = []
    for sunk in (np.finfo(np.float64).tiny / 8, 0.0):
        net = fastbp.MLP([3, 4, 2], dtype="float64", random_state=0)
        net.coefs_[0][:, 0] = 1e-3
        net.intercepts_[0][0] = -100.0
        net.fit(X, y, epochs=1, batch_size=2, lr=0.05, shuffle=False, warm_start=True,
                **OPTIMIZER_SETTINGS[name])
        net._state.state1[:] = sunk
        net.partial_fit(X, y)
        nets.append(net)
    np.testing.assert_array_equal(nets[0].params_, nets[1].params_)
    state = nets[0]._state.state1
    assert not np.any((state != 0) & (np.abs(state) < np.finfo(np.float64).tiny))
