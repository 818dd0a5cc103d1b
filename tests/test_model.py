"""The MLP API: learning, determinism, state, odd arrays, pickling."""

import os
import pickle

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import fastbp


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    return train_test_split(X, y, test_size=0.2, stratify=y, random_state=0)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_digits_reaches_97_percent(digits, dtype):
    X_train, X_test, y_train, y_test = digits
    net = fastbp.MLP([64, 128, 10], activation="relu", dtype=dtype, random_state=0)
    net.fit(X_train, y_train, epochs=30, batch_size=32, lr=0.05, momentum=0.9)
    assert net.score(X_test, y_test) >= 0.97
    assert net.history_["loss"][-1] < net.history_["loss"][0] / 10


def test_digits_adam_with_validation(digits):
    X_train, X_test, y_train, y_test = digits
    net = fastbp.MLP([64, 64, 10], activation="tanh", random_state=1)
    net.fit(X_train, y_train, epochs=20, batch_size=64, optimizer="adam", lr=3e-3,
            validation_data=(X_test, y_test))
    h = net.history_
    assert len(h["val_score"]) == 20 and h["val_score"][-1] >= 0.95
    assert h["val_score"][-1] == pytest.approx(net.score(X_test, y_test))
    assert len(h["grad_norm"]) == 20 and len(h["grad_norm"][0]) == 2
    assert all(s > 0 for s in h["samples_per_sec"])


@pytest.mark.parametrize("loss", ["softmax_cross_entropy", "binary_cross_entropy", "mse",
                                  "poisson"])
def test_validation_history_is_the_loss_and_score_on_it(loss):
    """The validation loss and score of each epoch come from one forward pass;
    they equal ``loss_and_grad`` (no L2 term) and ``score`` on the held-out set."""
    from .conftest import make_targets
    rng = np.random.default_rng(5)
    X, X_val = rng.standard_normal((60, 4)), rng.standard_normal((30, 4))
    y, y_val = make_targets(loss, 60, 3, rng), make_targets(loss, 30, 3, rng)
    net = fastbp.MLP([4, 8, 3], loss=loss, random_state=0)
    net.fit(X, y, epochs=2, batch_size=16, lr=0.01, alpha=0.5, validation_data=(X_val, y_val))
    assert net.history_["val_loss"][-1] == pytest.approx(
        net.loss_and_grad(X_val, y_val, alpha=0.0)[0], rel=1e-10)
    from sklearn.metrics import accuracy_score, r2_score
    if loss == "softmax_cross_entropy":
        score = accuracy_score(y_val, net.predict_proba(X_val).argmax(axis=1))
    elif loss == "binary_cross_entropy":
        score = accuracy_score(y_val, (net.predict_proba(X_val) > 0.5).astype(int))
    else:
        logits = net.decision_function(X_val)
        score = r2_score(y_val, np.exp(logits) if loss == "poisson" else logits)
    assert net.history_["val_score"][-1] == pytest.approx(score, rel=1e-12)
    assert net.score(X_val, y_val) == pytest.approx(score, rel=1e-12)


def small_problem(rng, n=40):
    X = rng.standard_normal((n, 6))
    y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 1).astype(int)
    return X, y


def test_same_random_state_bit_identical(rng):
    X, y = small_problem(rng)
    nets = [fastbp.MLP([6, 8, 3], random_state=7).fit(X, y, epochs=3, batch_size=5)
            for _ in range(2)]
    np.testing.assert_array_equal(nets[0].params_, nets[1].params_)
    other = fastbp.MLP([6, 8, 3], random_state=8).fit(X, y, epochs=3, batch_size=5)
    assert not np.array_equal(nets[0].params_, other.params_)
    # refitting the same object starts again from the same draw
    again = nets[0].fit(X, y, epochs=3, batch_size=5)
    np.testing.assert_array_equal(again.params_, nets[1].params_)


def test_partial_fit_continues_like_fit(rng):
    X, y = small_problem(rng)
    full = fastbp.MLP([6, 8, 3], random_state=3).fit(X, y, epochs=3, batch_size=8,
                                                     momentum=0.9)
    steps = fastbp.MLP([6, 8, 3], random_state=3).fit(X, y, epochs=1, batch_size=8,
                                                      momentum=0.9)
    steps.partial_fit(X, y).partial_fit(X, y)
    np.testing.assert_array_equal(full.params_, steps.params_)
    assert full.history_["loss"] == steps.history_["loss"]


def test_partial_fit_before_fit_and_overrides(rng):
    X, y = small_problem(rng)
    net = fastbp.MLP([6, 8, 3], random_state=0)
    net.partial_fit(X, y, lr=0.1, batch_size=4)
    assert len(net.history_["loss"]) == 1
    with pytest.raises(TypeError, match="unexpected keyword"):
        net.partial_fit(X, y, learning_rate=0.1)


def test_coefs_are_views_into_params(rng):
    net = fastbp.MLP([3, 4, 2], random_state=0)
    net.coefs_[0][1, 2] = 42.0
    assert 42.0 in net.params_
    net.intercepts_ = [np.ones(4), np.full(2, 2.0)]
    assert net.intercepts_[1][0] == 2.0 and np.shares_memory(net.intercepts_[1], net.params_)
    with pytest.raises(ValueError, match="shape"):
        net.coefs_ = [np.ones((4, 3)), np.ones((4, 2))]


def test_warm_start_keeps_weights(rng):
    X, y = small_problem(rng)
    net = fastbp.MLP([6, 8, 3], random_state=0).fit(X, y, epochs=5)
    loss_after_5 = net.history_["loss"][-1]
    net.fit(X, y, epochs=1, warm_start=True)
    assert net.history_["loss"][0] < loss_after_5 * 1.5
    cold = fastbp.MLP([6, 8, 3], random_state=0).fit(X, y, epochs=1)
    assert net.history_["loss"][0] < cold.history_["loss"][0]


@pytest.mark.parametrize("transform", [
    lambda X: np.asfortranarray(X),
    lambda X: np.repeat(X, 2, axis=1)[:, ::2],                  # non-contiguous
    lambda X: X.astype(">f8"),                                 # big-endian
    lambda X: X.astype(np.float32),
])
def test_odd_arrays_give_identical_results(transform, rng):
    X = rng.integers(-3, 4, size=(30, 6)).astype(float)
    y = rng.integers(0, 3, size=30)
    clean = fastbp.MLP([6, 5, 3], random_state=0, dtype="float64").fit(X, y, epochs=2)
    odd_X = transform(X.copy())
    odd = fastbp.MLP([6, 5, 3], random_state=0, dtype="float64").fit(odd_X, y, epochs=2)
    np.testing.assert_array_equal(clean.params_, odd.params_)
    np.testing.assert_array_equal(clean.predict_proba(X), odd.predict_proba(odd_X))


def test_read_only_and_integer_inputs(rng):
    X = rng.integers(-3, 4, size=(30, 6))
    y = rng.integers(0, 3, size=30)
    clean = fastbp.MLP([6, 5, 3], random_state=0).fit(X.astype(float), y.astype(float),
                                                      epochs=2)
    Xr = X.copy()
    Xr.setflags(write=False)
    odd = fastbp.MLP([6, 5, 3], random_state=0).fit(Xr, y, epochs=2)
    np.testing.assert_array_equal(clean.params_, odd.params_)
    assert not Xr.flags.writeable


def test_read_only_inputs_compile_nothing_new(rng):
    """Read-only arrays would make Numba compile every kernel a second time."""
    from fastbp.kernels.train import train_epoch_inplace
    X = rng.standard_normal((30, 6)).astype(np.float32)
    y = rng.integers(0, 3, size=30)
    fastbp.MLP([6, 5, 3], random_state=0).fit(X, y, epochs=1)
    compiled = len(train_epoch_inplace.signatures)
    for array in (X, y):
        array.setflags(write=False)
    sw = np.ones(30)
    sw.setflags(write=False)
    fastbp.MLP([6, 5, 3], random_state=0).fit(X, y, epochs=1, sample_weight=sw)
    assert len(train_epoch_inplace.signatures) == compiled


def test_pickle_round_trip(rng):
    X, y = small_problem(rng)
    net = fastbp.MLP([6, 8, 3], random_state=0).fit(X, y, epochs=2)
    copy = pickle.loads(pickle.dumps(net))
    np.testing.assert_array_equal(copy.predict_proba(X), net.predict_proba(X))
    assert np.shares_memory(copy.coefs_[0], copy.params_)
    copy.partial_fit(X, y)
    net.partial_fit(X, y)
    np.testing.assert_array_equal(copy.params_, net.params_)


def test_predict_shapes(rng):
    X = rng.standard_normal((10, 4))
    clf = fastbp.MLP([4, 5, 3], random_state=0)
    assert clf.predict(X).shape == (10,) and clf.predict_proba(X).shape == (10, 3)
    np.testing.assert_allclose(clf.predict_proba(X).sum(axis=1), 1.0, rtol=1e-6)
    multi = fastbp.MLP([4, 5, 3], loss="binary_cross_entropy", random_state=0)
    assert multi.predict(X).shape == (10, 3)
    assert set(np.unique(multi.predict(X))) <= {0, 1}
    reg = fastbp.MLP([4, 5, 1], loss="mse", random_state=0)
    assert reg.predict(X).shape == (10,)
    with pytest.raises(AttributeError, match="predict_proba"):
        reg.predict_proba(X)


def test_regression_learns(rng):
    X = rng.standard_normal((200, 3))
    y = np.sin(X[:, 0]) + X[:, 1] * X[:, 2]
    net = fastbp.MLP([3, 32, 1], activation="tanh", loss="mse", dtype="float64",
                     random_state=0)
    net.fit(X, y, epochs=200, batch_size=16, optimizer="adam", lr=0.01)
    assert net.score(X, y) > 0.9


def test_multilabel_learns(rng):
    X = rng.standard_normal((300, 4))
    Y = np.column_stack([X[:, 0] > 0, X[:, 1] + X[:, 2] > 0]).astype(int)
    net = fastbp.MLP([4, 16, 2], loss="binary_cross_entropy", random_state=0)
    net.fit(X, Y, epochs=60, batch_size=16, lr=0.1)
    assert net.score(X, Y) > 0.9


def test_callback_sees_every_epoch_and_can_stop(rng):
    X, y = small_problem(rng)
    seen = []

    def callback(model):
        seen.append(len(model.history_["loss"]))
        return len(seen) == 3

    net = fastbp.MLP([6, 8, 3], random_state=0).fit(X, y, epochs=10, callback=callback)
    assert seen == [1, 2, 3] and len(net.history_["loss"]) == 3
    three = fastbp.MLP([6, 8, 3], random_state=0).fit(X, y, epochs=3)
    np.testing.assert_array_equal(net.params_, three.params_)


def test_parallel_inference_matches_serial(rng):
    import threading
    X = rng.standard_normal((5000, 6))
    net = fastbp.MLP([6, 16, 3], random_state=0, n_threads=2, dtype="float64")
    parallel = net.predict_proba(X)                 # rows split between two threads
    net.n_threads = 1
    serial = net.predict_proba(X)
    np.testing.assert_allclose(parallel, serial, rtol=1e-14)
    np.testing.assert_allclose(parallel[:7], net.predict_proba(X[:7]), rtol=1e-14)
    net.n_threads = 2
    results = []
    worker = threading.Thread(target=lambda: results.append(net.predict_proba(X)))
    worker.start()
    worker.join()
    np.testing.assert_allclose(results[0], serial, rtol=1e-14)


def test_partial_fit_switching_momentum_on_allocates_velocity(rng):
    X, y = small_problem(rng)
    net = fastbp.MLP([6, 8, 3], random_state=0).fit(X, y, epochs=1, momentum=0.0)
    assert net._state.state1.size == 0          # plain SGD keeps no velocity
    net.partial_fit(X, y, momentum=0.9)
    assert net._state.state1.size == net.params_.size
    assert np.isfinite(net.params_).all()


def test_predict_labels_agree_with_probabilities(rng):
    X = rng.standard_normal((200, 4))
    clf = fastbp.MLP([4, 7, 5], random_state=0)
    np.testing.assert_array_equal(clf.predict(X), clf.predict_proba(X).argmax(axis=1))
    multi = fastbp.MLP([4, 7, 3], loss="binary_cross_entropy", random_state=0)
    np.testing.assert_array_equal(multi.predict(X), (multi.predict_proba(X) > 0.5))


def test_fit_memory_does_not_grow_with_epochs(rng):
    """Nothing is allocated per step or kept per epoch beyond the history."""
    import tracemalloc
    X = rng.standard_normal((512, 32)).astype(np.float32)
    y = rng.integers(0, 4, size=512)
    net = fastbp.MLP([32, 64, 4], random_state=0)
    net.fit(X, y, epochs=1, batch_size=8)          # compile and warm up outside
    peaks = {}
    for epochs in (1, 20):
        tracemalloc.start()
        net.fit(X, y, epochs=epochs, batch_size=8, optimizer="adam", lr=1e-3)
        peaks[epochs] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peaks[20] <= 1.05 * peaks[1]


def _fit_and_predict():
    """One epoch at batch 128 (64 rows a part on two threads) and a prediction of
    2,000 rows (parallel inference); returns the sum of the probabilities."""
    X = np.random.default_rng(1).standard_normal((2000, 16))
    y = (X[:, 0] > 0).astype(int)
    net = fastbp.MLP([16, 32, 2], dtype="float64", random_state=0)
    net.fit(X, y, epochs=1, batch_size=128)
    return float(net.predict_proba(X).sum())


def _fit_and_predict_in_child(queue):
    queue.put(_fit_and_predict())


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_trains_after_the_parent_used_threads():
    """A child forked after the parent ran split batches and parallel inference
    trains and predicts serially: the parent's thread pool does not survive fork."""
    import multiprocessing
    expected = _fit_and_predict()
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_fit_and_predict_in_child, args=(queue,))
    child.start()
    child.join(timeout=120)
    assert child.exitcode == 0
    assert queue.get(timeout=5) == pytest.approx(expected, rel=1e-9)
