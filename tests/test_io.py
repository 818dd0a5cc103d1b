"""Model files: exact round trips, atomic writes, and every kind of bad file."""

import json
import os
import sys
import types
import zipfile

import numpy as np
import pytest
from sklearn.datasets import load_digits

import fastbp
from fastbp import io


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:300] / 16.0, y[:300]


@pytest.fixture(scope="module")
def trained(digits):
    X, y = digits
    net = fastbp.MLP([64, 16, 10], activation="tanh", dtype="float32", random_state=3)
    net.fit(X[:200], y[:200], epochs=3, validation_data=(X[200:], y[200:]))
    return net


@pytest.fixture
def model_file(tmp_path, trained):
    path = tmp_path / "model.npz"
    fastbp.save(trained, path)
    return path


def same_bits(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def assert_same_network(loaded, net, X):
    assert type(loaded) is fastbp.MLP
    for name in ("layer_sizes", "activation", "loss", "init", "dtype", "random_state",
                 "n_threads"):
        assert getattr(loaded, name) == getattr(net, name), name
    assert same_bits(loaded.params_, net.params_)
    for a, b in zip(loaded.coefs_ + loaded.intercepts_, net.coefs_ + net.intercepts_):
        assert same_bits(a, b)
    assert loaded.history_ == net.history_
    assert same_bits(loaded.predict(X), net.predict(X))


# --- round trips ------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("loss", ["softmax_cross_entropy", "mse"])
def test_round_trip_is_bit_identical(tmp_path, digits, dtype, loss):
    X, y = digits
    target = y if loss == "softmax_cross_entropy" else y.astype(float) / 9.0
    net = fastbp.MLP([64, 12, 7, 10 if loss == "softmax_cross_entropy" else 1],
                     activation="gelu", loss=loss, dtype=dtype, random_state=1)
    net.fit(X, target, epochs=2, batch_size=16, validation_data=(X[:50], target[:50]))
    path = tmp_path / "m.npz"
    assert fastbp.save(net, path) == str(path)
    loaded = fastbp.load(path)
    assert_same_network(loaded, net, X)
    assert loaded.history_["grad_norm"] and len(loaded.history_["grad_norm"][0]) == 3
    assert same_bits(loaded.decision_function(X), net.decision_function(X))


def test_untrained_network_and_generator_seed(tmp_path):
    net = fastbp.MLP([3, 2], loss="mse", random_state=np.random.default_rng(0))
    fastbp.save(net, tmp_path / "m.npz")
    loaded = fastbp.load(tmp_path / "m.npz")
    assert loaded.random_state is None  # a Generator is not stored (documented)
    assert same_bits(loaded.params_, net.params_)
    assert loaded.history_ == net.history_ == {key: [] for key in net.history_}


def test_info_round_trip(tmp_path, trained):
    info = {"classes": ["cat", "dog"], "score": {"value": 0.97, "n": 3}, "none": None}
    fastbp.save(trained, tmp_path / "m.npz", info=info)
    loaded, read = fastbp.load(tmp_path / "m.npz", return_info=True)
    assert read == info
    assert fastbp.load(tmp_path / "m.npz", return_info=False).layer_sizes == (64, 16, 10)


def test_loaded_model_keeps_training_like_the_original(tmp_path, digits, trained):
    """A fresh optimizer from the same weights: the same next epoch, bit for bit."""
    X, y = digits
    fastbp.save(trained, tmp_path / "m.npz")
    original, loaded = fastbp.load(tmp_path / "m.npz"), fastbp.load(tmp_path / "m.npz")
    original.params_[...] = trained.params_
    for net in (original, loaded):
        net.fit(X, y, epochs=2, shuffle=False, warm_start=True)
    assert same_bits(loaded.params_, original.params_)
    assert not same_bits(loaded.params_, trained.params_)
    loaded.partial_fit(X, y)
    assert np.isfinite(loaded.params_).all()


def test_the_file_is_plain_numpy_data(model_file):
    with np.load(model_file, allow_pickle=False) as npz:
        meta = json.loads(str(npz["fastbp_meta"][0]))
        assert meta["format"] == io.FORMAT_NAME
        assert meta["format_version"] == io.FORMAT_VERSION == 1
        assert meta["kind"] == "MLP"
        assert npz["network/params"].dtype == np.float32


# --- atomic writes ----------------------------------------------------------------

def test_save_replaces_atomically_and_leaves_no_temporary_files(tmp_path, trained):
    path = tmp_path / "m.npz"
    path.write_bytes(b"old")
    fastbp.save(trained, path)
    assert os.listdir(tmp_path) == ["m.npz"]
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask


def test_a_failed_save_keeps_the_old_file(tmp_path, trained, monkeypatch):
    path = tmp_path / "m.npz"
    fastbp.save(trained, path)
    before = path.read_bytes()

    def broken_savez(f, **arrays):
        f.write(b"PK\x03\x04 partial")
        raise OSError("disk full")

    monkeypatch.setattr(io.np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        fastbp.save(trained, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.npz"]


def test_save_refuses_what_it_cannot_store(tmp_path, trained):
    with pytest.raises(TypeError, match="fastbp.MLP"):
        fastbp.save(object(), tmp_path / "m.npz")
    with pytest.raises(TypeError, match="JSON"):
        fastbp.save(trained, tmp_path / "m.npz", info={"bad": object()})
    with pytest.raises(TypeError, match="dict"):
        fastbp.save(trained, tmp_path / "m.npz", info=["not", "a", "dict"])
    assert not os.listdir(tmp_path)


# --- bad files --------------------------------------------------------------------

def rewrite_meta(path, change):
    """Rewrite the metadata of the model file at ``path`` with ``change(meta)``."""
    with np.load(path, allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}
    meta = json.loads(str(arrays["fastbp_meta"][0]))
    change(meta)
    arrays["fastbp_meta"] = np.array([json.dumps(meta)])
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def entry_offset(path, name):
    """Where the data of zip entry ``name`` starts in the file."""
    with zipfile.ZipFile(path) as archive:
        header = archive.getinfo(name).header_offset
    raw = path.read_bytes()
    name_len, extra_len = np.frombuffer(raw[header + 26:header + 30], dtype="<u2")
    return header + 30 + int(name_len) + int(extra_len)


def test_ModelFileError_is_a_ValueError():
    assert issubclass(fastbp.ModelFileError, ValueError)
    assert fastbp.ModelFileError is io.ModelFileError


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9, 0.999])
def test_truncated_file(model_file, keep):
    raw = model_file.read_bytes()
    model_file.write_bytes(raw[:int(len(raw) * keep)])
    with pytest.raises(fastbp.ModelFileError, match="truncated"):
        fastbp.load(model_file)


@pytest.mark.parametrize("entry", ["network/params.npy", "fastbp_meta.npy"])
def test_corrupted_bytes(model_file, entry):
    raw = bytearray(model_file.read_bytes())
    raw[entry_offset(model_file, entry) + 200] ^= 0xFF
    model_file.write_bytes(bytes(raw))
    with pytest.raises(fastbp.ModelFileError, match="corrupted.*CRC"):
        fastbp.load(model_file)


def test_any_flipped_byte_gives_the_model_or_a_clear_error(tmp_path):
    """Damage anywhere: either a clean ModelFileError or (in unchecked zip header
    fields) the very same model; never another exception or a different model."""
    net = fastbp.MLP([4, 3, 2], random_state=0)
    good = tmp_path / "good.npz"
    fastbp.save(net, good)
    raw = good.read_bytes()
    bad = tmp_path / "bad.npz"
    errors = 0
    for i in range(len(raw)):
        damaged = bytearray(raw)
        damaged[i] ^= 0xFF
        bad.write_bytes(bytes(damaged))
        try:
            loaded = fastbp.load(bad)
        except fastbp.ModelFileError as exc:
            assert str(bad) in str(exc)
            errors += 1
            continue
        assert_same_network(loaded, net, np.ones((2, 4)))
    assert errors > 0.8 * len(raw)


def test_foreign_npz(tmp_path):
    path = tmp_path / "data.npz"
    np.savez(path, X=np.zeros((2, 2)), y=np.zeros(2))
    with pytest.raises(fastbp.ModelFileError, match="not a fastbp model file"):
        fastbp.load(path)


def test_foreign_zip_and_npy(tmp_path):
    path = tmp_path / "archive.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(fastbp.ModelFileError, match="not a fastbp model file"):
        fastbp.load(path)
    np.save(tmp_path / "a.npy", np.zeros(3))
    with pytest.raises(fastbp.ModelFileError, match=r"single NumPy array"):
        fastbp.load(tmp_path / "a.npy")


@pytest.mark.parametrize("content", [b"", b"layer_sizes: [64, 10]\n", b"\x80\x04K\x01."])
def test_not_a_zip(tmp_path, content):
    path = tmp_path / "model.npz"
    path.write_bytes(content)
    with pytest.raises(fastbp.ModelFileError, match="empty|not an .npz archive"):
        fastbp.load(path)


def test_newer_version(model_file):
    rewrite_meta(model_file, lambda meta: meta.update(format_version=2,
                                                      fastbp_version="9.0"))
    with pytest.raises(fastbp.ModelFileError,
                       match=r"newer fastbp \(9.0, model format version 2\).*Upgrade"):
        fastbp.load(model_file)


@pytest.mark.parametrize("change, message", [
    (lambda meta: meta.update(format="something-else"), "not a fastbp model file"),
    (lambda meta: meta.update(format_version="1"), "bad format_version"),
    (lambda meta: meta.pop("network"), "damaged.*missing entry 'network'"),
    (lambda meta: meta["network"]["params"].update(layer_sizes=[64, 10]),
     "damaged.*parameter array"),
    (lambda meta: meta["network"]["params"].update(activation="swish"),
     "damaged.*Unknown activation"),
    (lambda meta: meta["network"]["params"].update(dropout=0.5),
     "cannot be loaded.*'dropout'.*upgrade"),
    (lambda meta: meta.update(kind="Transformer"),
     "cannot be loaded.*unknown model kind"),
    (lambda meta: meta["network"].update(history=[1, 2]), "damaged.*history"),
])
def test_damaged_metadata(model_file, change, message):
    rewrite_meta(model_file, change)
    with pytest.raises(fastbp.ModelFileError, match=message):
        fastbp.load(model_file)


def test_missing_file_is_an_OSError(tmp_path):
    with pytest.raises(FileNotFoundError):
        fastbp.load(tmp_path / "nope.npz")


# --- scikit-learn estimators ------------------------------------------------------

def make_contract_module():
    """A stand-in ``fastbp.sklearn`` with one estimator following its contract."""
    module = types.ModuleType("fastbp.sklearn")

    class Estimator:
        def __init__(self, hidden_layer_sizes=(100,), alpha=1e-4, random_state=None,
                     solver="adam"):
            self.hidden_layer_sizes = hidden_layer_sizes
            self.alpha = alpha
            self.random_state = random_state
            self.solver = solver

        def get_params(self, deep=True):
            return {name: getattr(self, name)
                    for name in ("hidden_layer_sizes", "alpha", "random_state", "solver")}

        def predict(self, X):
            return self.classes_[self._network.predict(X)]

    Estimator.__module__ = module.__name__
    module.Estimator = Estimator
    return module


def test_estimators_through_their_contract(tmp_path, monkeypatch, trained, digits):
    module = make_contract_module()
    monkeypatch.setitem(sys.modules, "fastbp.sklearn", module)
    monkeypatch.setattr(fastbp, "sklearn", module, raising=False)
    est = module.Estimator(hidden_layer_sizes=(16,), alpha=np.float32(0.5), random_state=7)
    est._network = trained
    est.classes_ = np.array([f"digit {i}" for i in range(10)], dtype=object)
    est.n_features_in_ = 64
    est.n_iter_ = np.int64(3)
    est.loss_curve_ = [1.5, 0.5, float("inf")]
    est.best_loss_ = None
    est.out_activation_ = "softmax"
    est.feature_names_in_ = np.array(["a", "b"], dtype=object)
    est.t_ = np.float32(0.25)
    est._private = "not stored"

    fastbp.save(est, tmp_path / "est.npz")
    loaded = fastbp.load(tmp_path / "est.npz")
    assert type(loaded) is module.Estimator
    assert loaded.get_params() == est.get_params()
    assert type(loaded.hidden_layer_sizes) is tuple
    assert loaded.alpha.dtype == np.float32
    for name in ("n_features_in_", "loss_curve_", "best_loss_", "out_activation_"):
        assert getattr(loaded, name) == getattr(est, name)
    assert type(loaded.n_iter_) is np.int64 and loaded.n_iter_ == 3
    assert type(loaded.t_) is np.float32 and loaded.t_ == est.t_
    for name in ("classes_", "feature_names_in_"):
        assert getattr(loaded, name).dtype == object
        assert list(getattr(loaded, name)) == list(getattr(est, name))
    assert not hasattr(loaded, "_private")
    assert_same_network(loaded._network, trained, digits[0])
    assert list(loaded.predict(digits[0])) == list(est.predict(digits[0]))


def test_estimator_contract_violations(tmp_path, monkeypatch):
    module = make_contract_module()
    monkeypatch.setitem(sys.modules, "fastbp.sklearn", module)
    monkeypatch.setattr(fastbp, "sklearn", module, raising=False)
    with pytest.raises(ValueError, match="not fitted"):
        fastbp.save(module.Estimator(), tmp_path / "e.npz")
    est = module.Estimator(random_state=np.random.RandomState(0))
    est._network = fastbp.MLP([2, 2])
    with pytest.raises(TypeError, match="random_state.*RandomState"):
        fastbp.save(est, tmp_path / "e.npz")
    Sub = type("Sub", (module.Estimator,), {})
    with pytest.raises(TypeError, match="supports fastbp.MLP"):
        fastbp.save(Sub(), tmp_path / "e.npz")
    assert not os.listdir(tmp_path)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("name", ["MLPClassifier", "MLPRegressor"])
def test_scikit_learn_estimators(tmp_path, digits, name):
    estimators = pytest.importorskip("fastbp.sklearn")
    X, y = digits
    cls = getattr(estimators, name)
    target = np.where(y % 2 == 0, "even", "odd") if name == "MLPClassifier" else y / 9.0
    est = cls(hidden_layer_sizes=(16,), max_iter=5, random_state=0).fit(X, target)
    fastbp.save(est, tmp_path / "est.npz")
    loaded = fastbp.load(tmp_path / "est.npz")
    assert type(loaded) is cls
    assert loaded.get_params() == est.get_params()
    assert same_bits(loaded._network.params_, est._network.params_)
    assert np.array_equal(loaded.predict(X), est.predict(X))
    if name == "MLPClassifier":
        assert list(loaded.classes_) == list(est.classes_)
        assert np.array_equal(loaded.predict_proba(X), est.predict_proba(X))
    with pytest.raises(ValueError, match="not fitted"):
        fastbp.save(cls(), tmp_path / "unfitted.npz")
