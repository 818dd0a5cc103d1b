"""fastbp.MLPClassifier and fastbp.MLPRegressor: scikit-learn's estimator checks, and
the same results as sklearn.neural_network from the same starting weights."""

import os
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn import neural_network as sk
from sklearn.base import clone
from sklearn.datasets import load_digits, make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import fastbp
from fastbp.sklearn import MLPClassifier, MLPRegressor

ROOT = Path(__file__).resolve().parents[1]

#: Checks of scikit-learn's suite these estimators do not pass, with the reason.
#: Every check passes at present.
EXPECTED_FAILED_CHECKS = {}

ACTIVATIONS = ["identity", "logistic", "tanh", "relu"]

SOLVERS = {
    "sgd": dict(solver="sgd", momentum=0.0),
    "momentum": dict(solver="sgd", momentum=0.9, nesterovs_momentum=False),
    "nesterov": dict(solver="sgd", momentum=0.9, nesterovs_momentum=True),
    "adam": dict(solver="adam"),
    "lbfgs": dict(solver="lbfgs", max_iter=15),
}


def quiet_fit(est, *args, **kwargs):
    """``est.fit`` with scikit-learn's convergence warnings silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(*args, **kwargs)


def problem(task, n=48, seed=0):
    """``(estimator name, X, y, sample_weight, extra parameters)`` of a small task."""
    rng = np.random.RandomState(seed)
    X = rng.standard_normal((n, 5))
    sw = rng.uniform(0.2, 2.0, n)
    if task == "multiclass":
        y = np.array(["ant", "bee", "cat"])[(X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5)]
        return "MLPClassifier", X, y, None, {}
    if task == "binary, weighted":
        return "MLPClassifier", X, (X[:, 0] + X[:, 2] > 0).astype(int), sw, {}
    if task == "multilabel":
        return "MLPClassifier", X, (X[:, :3] > 0).astype(int), None, {}
    if task == "regression":
        return "MLPRegressor", X, X[:, 0] - 2 * X[:, 1] ** 2, None, {}
    if task == "multi-output, weighted":
        y = np.column_stack([X[:, 0] * X[:, 1], np.sin(X[:, 2])])
        return "MLPRegressor", X, y, sw, {"alpha": 0.05}
    if task == "poisson":
        y = rng.poisson(np.exp(0.5 * X[:, 0])).astype(float)
        return "MLPRegressor", X, y, None, {"loss": "poisson", "learning_rate_init": 5e-4}
    raise ValueError(task)


def fit_both(name, params, X, y, sample_weight=None):
    """The fastbp estimator and scikit-learn's, fitted alike."""
    ours = quiet_fit(getattr(fastbp.sklearn, name)(**params), X, y,
                     sample_weight=sample_weight)
    theirs = quiet_fit(getattr(sk, name)(**params), X, y, sample_weight=sample_weight)
    return ours, theirs


def assert_same_weights(ours, theirs, rtol=1e-6):
    assert len(ours.coefs_) == len(theirs.coefs_)
    pairs = zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_)
    for mine, ref in pairs:
        assert mine.dtype == ref.dtype
        assert_allclose(mine, ref, rtol=rtol, atol=1e-9)


def assert_same_training(ours, theirs, rtol=1e-6):
    """Same iterations, losses, scores and weights as scikit-learn."""
    assert ours.n_iter_ == theirs.n_iter_
    assert ours.t_ == theirs.t_
    assert_allclose(ours.loss_, theirs.loss_, rtol=rtol)
    for name in ("loss_curve_", "validation_scores_", "best_loss_",
                 "best_validation_score_"):
        if hasattr(theirs, name) and getattr(theirs, name) is not None:
            assert_allclose(getattr(ours, name), getattr(theirs, name), rtol=rtol)
        else:
            assert getattr(ours, name, None) is None
    assert_same_weights(ours, theirs, rtol)


# --- scikit-learn's estimator checks ---------------------------------------------

@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@parametrize_with_checks([MLPClassifier(max_iter=100), MLPRegressor(max_iter=100)],
                         expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


# --- the same results as scikit-learn ------------------------------------------------

TASKS = ["multiclass", "binary, weighted", "multilabel", "regression",
         "multi-output, weighted", "poisson"]


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("task", TASKS)
def test_same_training_as_scikit_learn(task, activation, solver):
    name, X, y, sw, extra = problem(task)
    params = dict(hidden_layer_sizes=(6, 4), activation=activation, batch_size=16,
                  learning_rate_init=0.02, max_iter=6, shuffle=False, random_state=1,
                  alpha=1e-3)
    params.update(SOLVERS[solver])
    params.update(extra)
    ours, theirs = fit_both(name, params, X, y, sw)
    assert ours.out_activation_ == theirs.out_activation_
    assert (ours.n_layers_, ours.n_outputs_, ours.n_features_in_) == \
        (theirs.n_layers_, theirs.n_outputs_, theirs.n_features_in_)
    assert_same_training(ours, theirs)
    if name == "MLPClassifier":
        assert_array_equal(ours.classes_, theirs.classes_)
        assert_array_equal(ours.predict(X), theirs.predict(X))
        assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), rtol=1e-6)
        with np.errstate(divide="ignore"):  # log(0) of saturated probabilities
            assert_allclose(ours.predict_log_proba(X), theirs.predict_log_proba(X),
                            rtol=1e-6)
    else:
        assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("solver", ["momentum", "nesterov"])
@pytest.mark.parametrize("task", ["multiclass", "regression"])
def test_batch_one_momentum_same_training_as_scikit_learn(task, solver):
    """Single-sample momentum steps leave the first-layer rows of zero inputs
    behind (``kernels/lazy.py``) and yet train as scikit-learn's step by step."""
    name, X, y, _, extra = problem(task, n=60)
    X = np.where(X > 0.3, X, 0.0)     # two thirds of the inputs are 0
    params = dict(hidden_layer_sizes=(8,), batch_size=1, learning_rate_init=0.01,
                  max_iter=4, random_state=0, alpha=0.01, **SOLVERS[solver], **extra)
    assert_same_training(*fit_both(name, params, X, y))


@pytest.mark.parametrize("solver", ["nesterov", "adam"])
@pytest.mark.parametrize("task", ["multiclass", "multi-output, weighted"])
def test_split_batches_same_training_as_scikit_learn(task, solver, split_batches):
    name, X, y, sw, extra = problem(task, n=90)
    params = dict(hidden_layer_sizes=(12,), batch_size=20, learning_rate_init=0.02,
                  max_iter=5, random_state=2, n_threads=split_batches, **SOLVERS[solver],
                  **extra)
    ours = quiet_fit(getattr(fastbp.sklearn, name)(**params), X, y, sample_weight=sw)
    params.pop("n_threads")
    theirs = quiet_fit(getattr(sk, name)(**params), X, y, sample_weight=sw)
    assert ours._network._state.parts == 2
    assert_same_training(ours, theirs)


def test_digits_defaults_split_batches():
    """scikit-learn's defaults on the digits (batch 200, 64-100-10) split every
    batch among the threads where that is possible."""
    from fastbp.threads import can_split_batches, resolve_n_threads
    if resolve_n_threads(None) < 2 or not can_split_batches():
        pytest.skip("training does not split batches on this machine")
    X, y = load_digits(return_X_y=True)
    clf = quiet_fit(MLPClassifier(max_iter=2, random_state=0), X, y)
    assert clf._network._state.parts == resolve_n_threads(None)


@pytest.mark.parametrize("task",
                         ["binary, weighted", "multiclass", "multi-output, weighted"])
def test_shuffling_matches_scikit_learn(task):
    name, X, y, sw, extra = problem(task)
    params = dict(hidden_layer_sizes=(7,), batch_size=10, max_iter=5, random_state=3,
                  learning_rate_init=0.01, **extra)
    assert_same_training(*fit_both(name, params, X, y, sw))


@pytest.mark.parametrize("schedule, params", [
    ("invscaling", dict(learning_rate_init=0.2, power_t=0.3, max_iter=8)),
    # tol so large that no epoch improves: the rate is divided by 5 until below 1e-6
    ("adaptive", dict(learning_rate_init=0.1, tol=10.0, n_iter_no_change=2, max_iter=100)),
])
def test_learning_rate_schedules_match_scikit_learn(schedule, params):
    name, X, y, _, _ = problem("multiclass")
    params = dict(params, solver="sgd", learning_rate=schedule, hidden_layer_sizes=(6,),
                  batch_size=12, random_state=0)
    ours, theirs = fit_both(name, params, X, y)
    assert_same_training(ours, theirs)
    if schedule == "adaptive":
        # the first epoch improves on best_loss_ = inf; then 3 epochs per division,
        # 8 divisions, and 3 more epochs to stop
        assert ours.n_iter_ == 28
        assert ours._network._state.config.lr == pytest.approx(0.1 / 5 ** 8)


@pytest.mark.parametrize("task, params", [
    ("binary, weighted", dict(early_stopping=True, validation_fraction=0.25)),
    ("multiclass", dict(early_stopping=True, validation_fraction=0.2, solver="sgd")),
    ("regression", dict(early_stopping=True, validation_fraction=0.2)),
    ("multiclass", dict(tol=2e-2)),
])
def test_stopping_matches_scikit_learn(task, params):
    name, X, y, sw, extra = problem(task, n=120, seed=4)
    params = dict(params, hidden_layer_sizes=(8,), batch_size=16, max_iter=200,
                  n_iter_no_change=3, learning_rate_init=0.01, random_state=2, **extra)
    ours, theirs = fit_both(name, params, X, y, sw)
    assert ours.n_iter_ < params["max_iter"]  # it stopped early
    assert_same_training(ours, theirs)
    if params.get("early_stopping"):
        # the weights kept are those of the best validation score
        assert ours.best_validation_score_ == max(ours.validation_scores_)
        assert ours.best_loss_ is None


def test_warm_start_continues_with_a_fresh_optimizer_as_scikit_learn():
    name, X, y, _, _ = problem("multiclass")
    params = dict(hidden_layer_sizes=(6,), max_iter=3, random_state=0, shuffle=False,
                  learning_rate_init=0.05)
    ours, theirs = fit_both(name, params, X, y)
    for est in (ours, theirs):
        quiet_fit(est.set_params(warm_start=True, max_iter=4), X, y)
    assert len(ours.loss_curve_) == 7 and ours.t_ == 7 * len(X)
    assert_same_training(ours, theirs)


# --- training behaviour -------------------------------------------------------------

@pytest.mark.parametrize("task", ["multiclass", "multi-output, weighted"])
@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_repeated_partial_fit_equals_fit(task, solver):
    name, X, y, sw, extra = problem(task)
    params = dict(solver=solver, hidden_layer_sizes=(6,), batch_size=10, max_iter=8,
                  shuffle=False, random_state=0, **extra)
    cls = getattr(fastbp.sklearn, name)
    fitted = quiet_fit(cls(**params), X, y, sample_weight=sw)
    stepped = cls(**params)
    for _ in range(8):
        kwargs = {"classes": np.unique(y)} if name == "MLPClassifier" else {}
        stepped.partial_fit(X, y, sample_weight=sw, **kwargs)
    assert stepped.n_iter_ == 1 and stepped.t_ == fitted.t_
    assert_allclose(stepped.loss_curve_, fitted.loss_curve_, rtol=1e-12)
    assert_same_weights(stepped, fitted, rtol=1e-12)


def test_partial_fit_is_only_for_stochastic_solvers():
    est = MLPClassifier(solver="lbfgs")
    assert not hasattr(est, "partial_fit")
    with pytest.raises(AttributeError, match="partial_fit") as info:
        est.partial_fit
    assert "lbfgs is not stochastic" in str(info.value.__cause__)
    with pytest.raises(ValueError, match="early_stopping"):
        MLPRegressor(early_stopping=True).partial_fit(np.ones((4, 2)), np.ones(4))


@pytest.mark.parametrize("solver, message", [("sgd", "Maximum iterations"),
                                             ("lbfgs", "lbfgs failed to converge")])
def test_convergence_warnings_as_scikit_learn(solver, message):
    name, X, y, _, _ = problem("multiclass")
    params = dict(solver=solver, max_iter=2, hidden_layer_sizes=(5,), random_state=0)
    caught = []
    for cls in (getattr(fastbp.sklearn, name), getattr(sk, name)):
        with pytest.warns(ConvergenceWarning, match=message) as record:
            cls(**params).fit(X, y)
        caught.append([str(w.message) for w in record if w.category is ConvergenceWarning])
    assert caught[0] == caught[1]


def test_float32_input_trains_in_float32():
    name, X, y, _, _ = problem("multiclass")
    X32 = X.astype(np.float32)
    params = dict(solver="sgd", hidden_layer_sizes=(6,), max_iter=5, shuffle=False,
                  random_state=0)
    ours, theirs = fit_both(name, params, X32, y)
    assert ours._network.dtype == np.float32
    assert ours.predict_proba(X32).dtype == np.float32
    assert_same_training(ours, theirs, rtol=1e-4)  # scikit-learn trains float32 too
    wide = quiet_fit(MLPClassifier(dtype="float64", **params), X32, y)
    assert wide.coefs_[0].dtype == np.float64
    assert_allclose(wide.loss_curve_, ours.loss_curve_, rtol=1e-4)
    narrow = quiet_fit(MLPClassifier(dtype=np.float32, **params), X, y)
    assert narrow.coefs_[0].dtype == np.float32


BAD_PARAMETERS = [
    ("hidden_layer_sizes", [4, 0]), ("hidden_layer_sizes", -1),
    ("activation", "softmax"), ("solver", "newton"), ("alpha", -1.0),
    ("batch_size", 0), ("batch_size", "big"), ("learning_rate", "cyclic"),
    ("learning_rate_init", 0.0), ("power_t", -0.5), ("max_iter", 0), ("shuffle", "yes"),
    ("tol", -1e-3), ("momentum", 1.5), ("validation_fraction", 1.0), ("beta_1", 1.0),
    ("beta_2", -0.1), ("epsilon", 0.0), ("n_iter_no_change", 0), ("max_fun", 0),
    ("random_state", "seed"), ("dtype", "float16"), ("n_threads", 0),
    ("clip_norm", 0.0), ("clip_value", -1.0),
]


@pytest.mark.parametrize("cls", [MLPClassifier, MLPRegressor])
@pytest.mark.parametrize("name, value", BAD_PARAMETERS)
def test_bad_parameters_raise_value_error_in_fit(cls, name, value):
    est = cls(**{name: value})  # accepted at construction, as scikit-learn does
    with pytest.raises(ValueError, match=name):
        est.fit(np.ones((6, 2)), np.arange(6) % 2)
    assert not hasattr(est, "n_iter_")


def test_bad_loss_and_small_validation_set_raise_value_error():
    with pytest.raises(ValueError, match="loss"):
        MLPRegressor(loss="huber").fit(np.ones((6, 2)), np.ones(6))
    with pytest.raises(ValueError, match="validation set is too small"):
        MLPRegressor(early_stopping=True, validation_fraction=0.05).fit(
            np.ones((10, 2)), np.arange(10))


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_divergence_raises_value_error_as_scikit_learn(solver):
    name, X, y, _, extra = problem("poisson")
    params = dict(extra, solver=solver, learning_rate_init=5.0, activation="identity",
                  max_iter=5, shuffle=False, random_state=1)
    for cls in (MLPRegressor, sk.MLPRegressor):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # scikit-learn's overflows
            warnings.simplefilter("ignore", ConvergenceWarning)
            with pytest.raises(ValueError, match="non-finite parameter weights"):
                cls(**params).fit(X, y)


# --- scikit-learn's machinery ------------------------------------------------------

def test_pickle_loads_in_a_fresh_process_and_keeps_training(tmp_path):
    name, X, y, _, _ = problem("multiclass")
    est = quiet_fit(MLPClassifier(solver="sgd", hidden_layer_sizes=(6,), max_iter=4,
                                  random_state=0), X, y)
    (tmp_path / "est.pkl").write_bytes(pickle.dumps(est))
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    script = (
        "import pickle, sys, numpy as np\n"
        "d = sys.argv[1]\n"
        "est = pickle.load(open(d + '/est.pkl', 'rb'))\n"
        "X, y = np.load(d + '/X.npy'), np.load(d + '/y.npy')\n"
        "np.save(d + '/proba.npy', est.predict_proba(X))\n"
        "est.partial_fit(X, y)\n"
        "np.save(d + '/coef.npy', est.coefs_[0])\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True, cwd=ROOT,
                   env=env, timeout=120)
    assert_array_equal(np.load(tmp_path / "proba.npy"), est.predict_proba(X))
    est.partial_fit(X, y)
    assert_allclose(np.load(tmp_path / "coef.npy"), est.coefs_[0], rtol=1e-12)


#: A script written against scikit-learn; ``{estimators}`` is the line that imports
#: ``MLPClassifier`` and ``MLPRegressor``.
SKLEARN_SCRIPT = """
import pickle
import warnings

import numpy as np
from sklearn.datasets import load_diabetes, load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
{estimators}

warnings.simplefilter("ignore", ConvergenceWarning)
X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, stratify=y, random_state=0)
pipe = make_pipeline(StandardScaler(),
                     MLPClassifier(hidden_layer_sizes=(32,), max_iter=30, random_state=0))
pipe.fit(X_train, y_train)
mlp = pipe[-1]
print("accuracy %.4f, loss %.6f, epochs %d" % (pipe.score(X_test, y_test), mlp.loss_,
                                               mlp.n_iter_))
print("proba", np.round(pipe.predict_proba(X_test[:2]), 4).tolist())
print("layers", mlp.n_layers_, mlp.out_activation_, [c.shape for c in mlp.coefs_])
online = MLPClassifier(solver="sgd", batch_size=1, max_iter=2, random_state=0)
online.fit(X_train[:200] / 16, y_train[:200])
print("sgd, batch 1: loss curve", np.round(online.loss_curve_, 4).tolist())
search = GridSearchCV(MLPClassifier(solver="lbfgs", max_iter=40, random_state=0),
                      {{"alpha": [1e-3, 3.0]}}, cv=3).fit(X_train[:300] / 16, y_train[:300])
print("grid search", search.best_params_, "%.4f" % search.best_score_)
copy = pickle.loads(pickle.dumps(mlp))
scaled = pipe[0].transform(X_train)
copy.partial_fit(scaled, y_train)
print("partial_fit loss %.6f, t_ %d" % (copy.loss_, copy.t_))
X, y = load_diabetes(return_X_y=True)
reg = MLPRegressor(hidden_layer_sizes=(20,), early_stopping=True, max_iter=300,
                   learning_rate_init=0.01, random_state=0).fit(X, y / 100)
print("R2 %.4f, best validation %.4f, epochs %d" % (
    reg.score(X, y / 100), reg.best_validation_score_, reg.n_iter_))
"""


def test_a_scikit_learn_script_runs_unchanged_after_swapping_the_import():
    outputs = []
    for module in ("sklearn.neural_network", "fastbp"):
        script = SKLEARN_SCRIPT.format(
            estimators=f"from {module} import MLPClassifier, MLPRegressor")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
        run = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr
        outputs.append(run.stdout)
    assert outputs[1] == outputs[0]
    assert outputs[0].count("\n") == 7


def test_grid_search_over_a_pipeline():
    X, y = make_classification(n_samples=90, n_features=6, random_state=0)
    pipe = make_pipeline(StandardScaler(), MLPClassifier(
        hidden_layer_sizes=(8,), solver="lbfgs", max_iter=40, random_state=0))
    grid = {"mlpclassifier__alpha": [1e-4, 30.0],
            "mlpclassifier__activation": ["tanh", "relu"]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search = GridSearchCV(pipe, grid, cv=3).fit(X, y)
        # each candidate scores as it does fitted on its own
        for params, score in zip(search.cv_results_["params"],
                                 search.cv_results_["mean_test_score"]):
            own = cross_val_score(clone(pipe).set_params(**params), X, y, cv=3)
            assert score == pytest.approx(own.mean())
        best = clone(pipe).set_params(**search.best_params_).fit(X, y)
    assert_array_equal(search.predict(X), best.predict(X))
    assert search.best_score_ > 0.8


def test_clone_round_trips():
    name, X, y, _, _ = problem("poisson")
    est = MLPRegressor(loss="poisson", hidden_layer_sizes=[5, 3], activation="gelu",
                       solver="sgd", learning_rate_init=0.01, max_iter=4, random_state=3,
                       dtype="float32", n_threads=1, clip_norm=1.0, clip_value=0.5)
    assert clone(est).get_params() == est.get_params()
    quiet_fit(est, X, y)
    twin = clone(est)
    assert twin.get_params() == est.get_params()
    assert not hasattr(twin, "coefs_") and not hasattr(twin, "n_iter_")
    quiet_fit(twin, X, y)
    assert_array_equal(twin.predict(X), est.predict(X))


def test_fitted_attributes_follow_the_model_file_contract():
    name, X, y, _, _ = problem("multiclass")
    est = quiet_fit(MLPClassifier(hidden_layer_sizes=(6,), early_stopping=True,
                                  max_iter=5, random_state=0), X, y)
    assert isinstance(est._network, fastbp.MLP)
    plain = (int, float, str, type(None), np.ndarray, np.integer, np.floating)
    attributes = {k: v for k, v in vars(est).items()
                  if k.endswith("_") and not k.startswith("_")}
    assert set(attributes) >= {"classes_", "loss_", "best_loss_", "loss_curve_",
                               "validation_scores_", "best_validation_score_", "t_",
                               "n_features_in_", "n_iter_", "n_layers_", "n_outputs_",
                               "out_activation_"}
    for key, value in attributes.items():
        items = value if isinstance(value, list) else [value]
        assert all(isinstance(item, plain) for item in items), key
    # coefs_ and intercepts_ are the network's views
    for view in est.coefs_ + est.intercepts_:
        assert np.shares_memory(view, est._network.params_)
