"""Bad input gets a clear error before any kernel runs; failures lose nothing."""

import warnings

import numpy as np
import pytest

import fastbp
import fastbp.model


@pytest.fixture
def data(rng):
    X = rng.standard_normal((20, 4))
    y = rng.integers(0, 3, size=20)
    return X, y


@pytest.fixture
def net():
    return fastbp.MLP([4, 6, 3], random_state=0)


def unchanged(net, before):
    np.testing.assert_array_equal(net.params_, before)


@pytest.mark.parametrize("make_X, message", [
    (lambda X: np.where(np.arange(X.size).reshape(X.shape) == 5, np.nan, X), "NaN"),
    (lambda X: np.where(np.arange(X.size).reshape(X.shape) == 7, np.inf, X), "infinity"),
    (lambda X: X[:, 0], "2-D"),
    (lambda X: X[None], "2-D"),
    (lambda X: X[:0], "0 samples"),
    (lambda X: X[:, :3], "3 features, but the model expects 4"),
    (lambda X: X.astype(str), "real numbers"),
    (lambda X: np.full(X.shape, 1e300), "infinity"),   # overflows float32
])
def test_bad_X(net, data, make_X, message):
    X, y = data
    before = net.params_.copy()
    with pytest.raises((ValueError, TypeError), match=message):
        net.fit(make_X(X), y[:len(make_X(X))] if make_X(X).ndim == 2 else y)
    unchanged(net, before)


@pytest.mark.parametrize("make_y, message", [
    (lambda y: y[:-1], "different numbers of samples"),
    (lambda y: y + 1, r"labels in \[1, 3\]"),
    (lambda y: y - 1, r"labels in \[-1, 1\]"),
    (lambda y: y + 0.5, "non-integer"),
    (lambda y: np.where(np.arange(y.size) == 2, np.nan, y), "NaN"),
    (lambda y: y.reshape(-1, 1).repeat(2, axis=1), "1-D integer class labels"),
])
def test_bad_y(net, data, make_y, message):
    X, y = data
    before = net.params_.copy()
    with pytest.raises(ValueError, match=message):
        net.fit(X, make_y(y))
    unchanged(net, before)


def test_bad_targets_other_losses(rng):
    X = rng.standard_normal((5, 2))
    bce = fastbp.MLP([2, 2], loss="binary_cross_entropy")
    with pytest.raises(ValueError, match="0/1"):
        bce.fit(X, np.full((5, 2), 2.0))
    with pytest.raises(ValueError, match=r"shape \(5, 2\)"):
        bce.fit(X, np.zeros((5, 3)))
    with pytest.raises(ValueError, match="non-negative"):
        fastbp.MLP([2, 1], loss="poisson").fit(X, -np.ones(5))


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(epochs=0), ValueError, "epochs"),
    (dict(epochs=2.5), TypeError, "epochs"),
    (dict(batch_size=0), ValueError, "batch_size"),
    (dict(lr=0.0), ValueError, "lr"),
    (dict(lr=float("nan")), ValueError, "lr"),
    (dict(lr="fast"), TypeError, "lr"),
    (dict(alpha=-1.0), ValueError, "alpha"),
    (dict(momentum=1.0), ValueError, "momentum"),
    (dict(beta2=1.5), ValueError, "beta2"),
    (dict(epsilon=0.0), ValueError, "epsilon"),
    (dict(clip_norm=-1.0), ValueError, "clip_norm"),
    (dict(clip_value=0.0), ValueError, "clip_value"),
    (dict(optimizer="rmsprop"), ValueError, "Unknown optimizer 'rmsprop'"),
    (dict(sample_weight=-np.ones(20)), ValueError, "non-negative"),
    (dict(sample_weight=np.ones(3)), ValueError, "sample_weight must have shape"),
    (dict(sample_weight=np.zeros(20)), ValueError, "sums to zero"),
    (dict(validation_data=np.ones(3)), TypeError, "validation_data"),
])
def test_bad_hyperparameters(net, data, kwargs, error, message):
    X, y = data
    before = net.params_.copy()
    with pytest.raises(error, match=message):
        net.fit(X, y, **kwargs)
    unchanged(net, before)


@pytest.mark.parametrize("weights, message", [
    ([1e39] + [1.0] * 19, "sample_weight contains infinity"),   # beyond float32
    ([1e-50] + [0.0] * 19, "sums to zero"),                      # 0 in float32
])
def test_sample_weights_checked_in_the_model_dtype(data, weights, message):
    X, y = data
    net = fastbp.MLP([4, 5, 3], dtype="float32", random_state=0)
    before = net.params_.copy()
    with pytest.raises(ValueError, match=message):
        net.fit(X, y, sample_weight=np.array(weights))
    unchanged(net, before)


@pytest.mark.parametrize("args, kwargs, error, message", [
    (([4],), {}, ValueError, "at least an input and an output"),
    (("64-10",), {}, TypeError, "sequence of ints"),
    (([4, 0, 3],), {}, ValueError, r"layer_sizes\[1\]"),
    (([4, 3],), dict(activation="swish"), ValueError, "Unknown activation 'swish'"),
    (([4, 3],), dict(loss="hinge"), ValueError, "Unknown loss"),
    (([4, 3],), dict(init="zeros"), ValueError, "Unknown init"),
    (([4, 3],), dict(dtype="float16"), ValueError, "Unknown dtype"),
    (([4, 1],), {}, ValueError, "at least 2 classes"),
    (([4, 3],), dict(random_state="seed"), TypeError, "random_state"),
    (([4, 3],), dict(n_threads=0), ValueError, "n_threads"),
])
def test_bad_constructor(args, kwargs, error, message):
    with pytest.raises(error, match=message):
        fastbp.MLP(*args, **kwargs)


def test_aliases_accepted():
    net = fastbp.MLP([3, 2], activation="sigmoid", init="xavier_uniform", dtype=np.float64)
    assert (net.activation, net.init, net.dtype) == ("logistic", "glorot_uniform",
                                                     np.dtype("float64"))


def test_wrong_features_at_predict(net, data):
    X, y = data
    net.fit(X, y, epochs=1)
    with pytest.raises(ValueError, match="5 features, but the model expects 4"):
        net.predict(np.ones((3, 5)))
    with pytest.raises(ValueError, match="NaN"):
        net.predict_proba(np.full((3, 4), np.nan))
    assert net.predict(X).shape == (20,)      # still usable


def test_non_finite_loss_stops_and_keeps_last_epoch(data):
    X, y = data
    net = fastbp.MLP([4, 6, 3], activation="identity", random_state=0)
    net.fit(X, y, epochs=2, lr=0.01)
    good = net.params_.copy()
    with pytest.raises(FloatingPointError, match="non-finite at epoch 1, batch 1"):
        net.fit(np.full_like(X, 3e38), y, epochs=5, lr=1.0, warm_start=True)
    np.testing.assert_array_equal(net.params_, good)
    assert net.predict(X).shape == (20,)


def test_non_finite_loss_later_epoch_keeps_that_epoch(data):
    X, y = data
    net = fastbp.MLP([4, 6, 3], activation="identity", dtype="float32", random_state=0)
    with pytest.raises(FloatingPointError, match="non-finite") as info:
        net.fit(X * 1e3, y, epochs=50, lr=5.0, momentum=0.99, batch_size=4)
    epoch = int(str(info.value).split("epoch ")[1].split(",")[0])
    assert epoch > 1 and len(net.history_["loss"]) == epoch - 1
    assert np.isfinite(net.params_).all()
    assert np.isfinite(net.loss_and_grad(X, y)[0])


def test_keyboard_interrupt_keeps_last_completed_epoch(data, monkeypatch):
    X, y = data
    reference = fastbp.MLP([4, 6, 3], random_state=0).fit(X, y, epochs=2)
    real = fastbp.model.train_epoch_inplace
    calls = []

    def interrupted_epoch(*args):
        result = real(*args)      # the weights change...
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt   # ...then Ctrl-C arrives before the epoch ends
        return result

    monkeypatch.setattr(fastbp.model, "train_epoch_inplace", interrupted_epoch)
    net = fastbp.MLP([4, 6, 3], random_state=0)
    with pytest.warns(fastbp.InterruptedTrainingWarning, match="after 2 of 10"):
        net.fit(X, y, epochs=10)
    np.testing.assert_array_equal(net.params_, reference.params_)
    assert len(net.history_["loss"]) == 2
    monkeypatch.setattr(fastbp.model, "train_epoch_inplace", real)
    net.partial_fit(X, y)      # still usable, and trains on
    reference.partial_fit(X, y)
    np.testing.assert_array_equal(net.params_, reference.params_)


def test_vanishing_gradient_warning(rng):
    X = rng.standard_normal((64, 8))
    y = rng.integers(0, 2, size=64)
    deep = fastbp.MLP([8] + [16] * 12 + [2], activation="logistic", init="lecun_normal",
                      random_state=0)
    with pytest.warns(fastbp.GradientWarning, match="Vanishing"):
        deep.fit(X, y, epochs=1, batch_size=64, lr=0.01)
    shallow = fastbp.MLP([8, 16, 2], activation="relu", random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", fastbp.GradientWarning)
        shallow.fit(X, y, epochs=2, lr=0.01)


def test_exploding_gradient_warning(rng):
    X = rng.standard_normal((32, 4)) * 1e3
    y = rng.standard_normal(32) * 1e3
    net = fastbp.MLP([4, 8, 1], activation="identity", loss="mse", random_state=0,
                     dtype="float64")
    with pytest.warns(fastbp.GradientWarning, match="Exploding"):
        net.fit(X, y, epochs=1, lr=1e-12, momentum=0.0)


def test_interrupt_between_epochs_keeps_the_finished_epoch(data):
    X, y = data
    reference = fastbp.MLP([4, 6, 3], random_state=0).fit(X, y, epochs=2)

    def callback(model):
        if len(model.history_["loss"]) == 2:
            raise KeyboardInterrupt   # after epoch 2 completed and was recorded

    net = fastbp.MLP([4, 6, 3], random_state=0)
    with pytest.warns(fastbp.InterruptedTrainingWarning, match="after 2 of 5"):
        net.fit(X, y, epochs=5, callback=callback)
    np.testing.assert_array_equal(net.params_, reference.params_)
    assert net.history_["loss"] == reference.history_["loss"]


def test_interrupt_before_an_epoch_starts_changes_nothing(data, monkeypatch):
    X, y = data
    reference = fastbp.MLP([4, 6, 3], random_state=0).fit(X, y, epochs=2)
    real = fastbp.model._TrainState.buffers
    calls = []

    def interrupted_buffers(self, model, rows, parts):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt   # epoch 3 set up its buffers, nothing ran yet
        return real(self, model, rows, parts)

    monkeypatch.setattr(fastbp.model._TrainState, "buffers", interrupted_buffers)
    net = fastbp.MLP([4, 6, 3], random_state=0)
    with pytest.warns(fastbp.InterruptedTrainingWarning, match="after 2 of 5"):
        net.fit(X, y, epochs=5)
    np.testing.assert_array_equal(net.params_, reference.params_)
    assert net.history_["loss"] == reference.history_["loss"]
