"""scikit-learn estimators trained by fastbp: ``MLPClassifier`` and ``MLPRegressor``.

Drop-in replacements for :mod:`sklearn.neural_network`'s estimators: the same
parameters, defaults, fitted attributes, stopping rules, learning-rate
schedules, warnings and errors, and, started from the same ``random_state``,
the same weights and loss curve. The work is fastbp's: each epoch of ``sgd``
or ``adam`` is one compiled call (``fastbp.MLP._epoch``), and ``lbfgs`` runs
SciPy's L-BFGS-B on fastbp's fused loss-and-gradient kernel.

The adapters translate and do not compute. A fitted estimator keeps its
network as ``_network`` (a :class:`fastbp.MLP`, whose flat ``params_`` holds
every weight); ``coefs_`` and ``intercepts_`` are its views. Every other
fitted attribute is a plain value (number, string, ``None``, list or array).
"""

import warnings
from dataclasses import replace
from numbers import Integral, Real

import numpy as np
import scipy
import scipy.optimize
from scipy import sparse
from scipy.special import xlogy
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.utils import check_random_state, column_or_1d
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import (_check_partial_fit_first_call, type_of_target,
                                      unique_labels)
from sklearn.utils.optimize import _check_optimize_result
from sklearn.utils.validation import check_is_fitted, validate_data

from .kernels.activations import ACTIVATIONS
from .model import MLP, TrainConfig, _Data, _TrainState
from .validation import writeable_native

__all__ = ["MLPClassifier", "MLPRegressor"]

_STOCHASTIC_SOLVERS = ("sgd", "adam")

#: fastbp loss of each output activation (``out_activation_``).
_LOSS_OF_OUTPUT = {"softmax": "softmax_cross_entropy", "logistic": "binary_cross_entropy",
                   "identity": "mse", "exp": "poisson"}

#: ``ValueError`` text of scikit-learn for weights that are not finite.
_NON_FINITE = ("Solver produced non-finite parameter weights. The input data may contain "
               "large values and need to be preprocessed.")

#: The smallest learning rate the ``adaptive`` schedule goes on with.
_MIN_ADAPTIVE_LR = 1e-6


def _lbfgs_print_options(verbose):
    """``iprint`` for SciPy's L-BFGS-B, which takes it only before SciPy 1.15."""
    major, minor = (int(part) for part in scipy.__version__.split(".")[:2])
    if (major, minor) >= (1, 15):
        return {}
    return {"iprint": 1 if verbose is True or verbose >= 1 else -1}


def _split_data(data, train, val):
    """``data`` (a validated ``_Data``) restricted to the rows ``train`` and ``val``."""
    return (_Data(data.X[train], data.Y[train], data.sw[train]),
            _Data(data.X[val], data.Y[val], data.sw[val]))


class _BaseMLP(BaseEstimator):
    """Shared parameters, training loop and inference of the two estimators."""

    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "solver": [StrOptions({"lbfgs", "sgd", "adam"})],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left"),
                             Options(Real, {np.inf})],
        "max_fun": [Interval(Integral, 1, None, closed="left")],
        "dtype": [None, StrOptions({"float32", "float64"}),
                  Options(type, {np.float32, np.float64})],
        "n_threads": [None, Options(Integral, {-1}),
                      Interval(Integral, 1, None, closed="left")],
        "clip_norm": [None, Interval(Real, 0, None, closed="neither")],
        "clip_value": [None, Interval(Real, 0, None, closed="neither")],
    }

    def __init__(self, hidden_layer_sizes, activation, *, solver, alpha, batch_size,
                 learning_rate, learning_rate_init, power_t, max_iter, shuffle,
                 random_state, tol, verbose, warm_start, momentum, nesterovs_momentum,
                 early_stopping, validation_fraction, beta_1, beta_2, epsilon,
                 n_iter_no_change, max_fun, dtype, n_threads, clip_norm, clip_value):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.dtype = dtype
        self.n_threads = n_threads
        self.clip_norm = clip_norm
        self.clip_value = clip_value

    # --- the network's parameters -------------------------------------------------

    @property
    def coefs_(self):
        """Weights, ``coefs_[l]`` of shape (n_l, n_{l+1}): views into the network."""
        return list(self._network.coefs_)

    @coefs_.setter
    def coefs_(self, values):
        self._network.coefs_ = values

    @property
    def intercepts_(self):
        """Biases, ``intercepts_[l]`` of shape (n_{l+1},): views into the network."""
        return list(self._network.intercepts_)

    @intercepts_.setter
    def intercepts_(self, values):
        self._network.intercepts_ = values

    def __sklearn_is_fitted__(self):
        return hasattr(self, "_network")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True  # densified: the kernels work on dense rows
        return tags

    # --- fit --------------------------------------------------------------------------

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the model to data matrix ``X`` and targets ``y``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data (sparse input is densified).
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Class labels (classification) or real targets (regression).
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights; ``None`` weighs every sample 1.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        return self._fit(X, y, sample_weight, incremental=False)

    def _check_solver(self):
        """``partial_fit`` exists for the stochastic solvers only."""
        if self.solver not in _STOCHASTIC_SOLVERS:
            raise AttributeError("partial_fit is only available for stochastic optimizers. "
                                 f"{self.solver} is not stochastic.")
        return True

    def _hidden_sizes(self):
        """``hidden_layer_sizes`` as a list of positive widths."""
        sizes = self.hidden_layer_sizes
        sizes = list(sizes) if hasattr(sizes, "__iter__") else [sizes]
        if np.any(np.array(sizes) <= 0):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {sizes}.")
        return sizes

    def _fit_dtype(self, reset):
        """dtype(s) ``validate_data`` converts ``X`` to: the network's when continuing."""
        if not reset:
            return self._network.dtype
        if self.dtype is None:
            return (np.float64, np.float32)  # float32 stays float32, the rest float64
        return np.dtype(self.dtype)

    def _fit(self, X, y, sample_weight, incremental):
        """Validate, initialise on a first pass, then run the solver."""
        hidden = self._hidden_sizes()
        first_pass = not hasattr(self, "_network") or not (self.warm_start or incremental)
        X, y, Y = self._validate_input(X, y, incremental, reset=first_pass)
        self._random_state = check_random_state(self.random_state)
        if first_pass:
            self._initialize(X.shape[1], hidden, Y, X.dtype)
        net = self._network
        net.n_threads = self.n_threads
        data = net._prepare(X, Y, sample_weight)
        if self.solver == "lbfgs":
            self._fit_lbfgs(data)   # each evaluation sets its thread limits
        else:
            self._fit_stochastic(data, y, sample_weight is not None, incremental)
        if not np.isfinite(net.params_).all():
            raise ValueError(_NON_FINITE)
        return self

    def _initialize(self, n_features, hidden, Y, dtype):
        """Fitted attributes of a fresh model, and its network with scikit-learn's init."""
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_, self.out_activation_ = self._output_layer(Y)
        layer_units = [n_features, *hidden, self.n_outputs_]
        self.n_layers_ = len(layer_units)
        net = MLP(layer_units, activation=self.activation,
                  loss=_LOSS_OF_OUTPUT[self.out_activation_], init="glorot_uniform",
                  dtype=np.dtype(dtype).name, random_state=0, n_threads=self.n_threads)
        self._init_coefs(net, self._random_state)
        self._network = net
        self._best_params = net.params_.copy()
        if self.solver in _STOCHASTIC_SOLVERS:
            self.loss_curve_ = []
            self._no_improvement_count = 0
            if self.early_stopping:
                self.validation_scores_ = []
                self.best_validation_score_ = -np.inf
                self.best_loss_ = None
            else:
                self.best_loss_ = np.inf
                self.validation_scores_ = None
                self.best_validation_score_ = None

    def _init_coefs(self, net, random_state):
        """scikit-learn's initialisation, written into the network's views.

        Glorot uniform with factor 6 (2 for the logistic activation): per layer,
        weights then biases are drawn from ``U(-r, r)``, ``r = sqrt(factor /
        (fan_in + fan_out))``, so the same ``random_state`` gives scikit-learn's
        starting weights.
        """
        factor = 2.0 if self.activation == "logistic" else 6.0
        for coef, intercept in zip(net.coefs_, net.intercepts_):
            fan_in, fan_out = coef.shape
            bound = np.sqrt(factor / (fan_in + fan_out))
            coef[...] = random_state.uniform(-bound, bound, (fan_in, fan_out))
            intercept[...] = random_state.uniform(-bound, bound, fan_out)

    @staticmethod
    def _dense(X):
        """Validated ``X`` (or ``y``) as a dense array (the kernels work on dense rows)."""
        return X.toarray() if sparse.issparse(X) else X

    # --- loss bookkeeping -------------------------------------------------------------

    def _reports_mean_over_outputs(self):
        """scikit-learn's squared error averages over outputs; fastbp's sums them."""
        return self.out_activation_ == "identity" and self.n_outputs_ > 1

    def _l2_term(self, sw_sum):
        """``alpha / (2 S) * sum ||W||^2`` for the current weights."""
        squares = sum(float(np.dot(c.ravel(), c.ravel())) for c in self._network.coefs_)
        return 0.5 * self.alpha * squares / sw_sum

    def _objective(self, loss, data, sw_sum):
        """scikit-learn's loss value for the weights ``_loss_grad`` just evaluated.

        ``loss`` is fastbp's ``J`` on all of ``data`` (total sample weight
        ``sw_sum``). The two differ for several squared-error outputs, where
        scikit-learn divides the data term (not the L2 term) by ``n_outputs_``.
        """
        if not self._reports_mean_over_outputs():
            return loss
        l2 = self._l2_term(sw_sum) if self.alpha > 0 else 0.0
        return (loss - l2) / self.n_outputs_ + l2

    # --- lbfgs --------------------------------------------------------------------------

    def _fit_lbfgs(self, data):
        """Full-batch L-BFGS-B (SciPy) on fastbp's fused loss and gradient.

        SciPy gets scikit-learn's pair (loss value, gradient), so that its line
        searches, and so its iterates, are scikit-learn's.
        """
        net = self._network
        grads = np.empty_like(net.params_)
        sw_sum = float(data.sw.sum(dtype=np.float64))

        def loss_and_grad(params):
            net.params_[...] = params
            loss = float(net._loss_grad(data.X, data.Y, data.sw, self.alpha, grads))
            return self._objective(loss, data, sw_sum), grads.astype(np.float64)

        result = scipy.optimize.minimize(
            loss_and_grad, net.params_.astype(np.float64), method="L-BFGS-B", jac=True,
            options={"maxfun": self.max_fun, "maxiter": self.max_iter, "gtol": self.tol,
                     **_lbfgs_print_options(self.verbose)})
        self.n_iter_ = _check_optimize_result("lbfgs", result, self.max_iter)
        self.loss_ = float(result.fun)
        net.params_[...] = result.x

    # --- sgd and adam -------------------------------------------------------------

    def _batch_size(self, n_samples):
        """Rows per batch: ``"auto"`` is ``min(200, n_samples)``; larger ones are clipped."""
        if self.batch_size == "auto":
            return min(200, n_samples)
        if self.batch_size > n_samples:
            warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is "
                          "going to be clipped")
        return int(np.clip(self.batch_size, 1, n_samples))

    def _train_config(self):
        """A fresh optimizer's configuration.

        The batch size is set by each call (it depends on the data). fastbp's own
        shuffling is off: ``_run_epochs`` shuffles with scikit-learn's draws.
        """
        config = TrainConfig(
            batch_size=1, optimizer=self.solver, lr=self.learning_rate_init,
            alpha=self.alpha, momentum=0.0, nesterov=self.nesterovs_momentum,
            beta1=self.beta_1, beta2=self.beta_2, epsilon=self.epsilon,
            clip_norm=self.clip_norm, clip_value=self.clip_value, shuffle=False).checked()
        # momentum == 1 is valid for scikit-learn (and checked by our constraints)
        # but refused by TrainConfig, so it is set after the check
        return replace(config, momentum=float(self.momentum))

    def _early_stopping_split(self, data, y, weighted):
        """scikit-learn's validation split: ``train_test_split`` of the same arrays.

        Returns the training ``_Data`` and the validation set ``(X, y, sample_weight)``
        with ``y`` in the form :meth:`score` takes. Classification with one output
        column is stratified (as scikit-learn does).
        """
        from sklearn.model_selection import train_test_split

        stratify = self._stratify(data) if self.n_outputs_ == 1 else None
        train, val = train_test_split(np.arange(data.n), random_state=self._random_state,
                                      test_size=self.validation_fraction,
                                      stratify=stratify)
        if val.shape[0] < 2:
            raise ValueError("The validation set is too small. Increase "
                             "'validation_fraction' or the size of your dataset.")
        train_data, val_data = _split_data(data, train, val)
        return train_data, (val_data.X, y[val], val_data.sw if weighted else None)

    def _stratify(self, data):
        """Labels to stratify the validation split by: none for regression."""
        return None

    def _fit_stochastic(self, data, y, weighted, incremental):
        """Epochs of ``sgd``/``adam`` with scikit-learn's stopping rules and schedules."""
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        self._start_optimizer(incremental)
        if self.early_stopping:
            train, val = self._early_stopping_split(data, y, weighted)
        else:
            train, val = data, None
        state = self._network._state
        state.config = replace(state.config, batch_size=self._batch_size(train.n))
        try:
            with self._network._training_threads(state.config.batch_size):
                self._run_epochs(train, val, incremental)
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.")
        if self.early_stopping:
            self._network.params_[...] = self._best_params

    def _start_optimizer(self, incremental):
        """A fresh optimizer for ``fit`` (warm start too); ``partial_fit`` keeps one."""
        net = self._network
        if not incremental or net._state is None:
            net._state = _TrainState(net, self._train_config())
        # private state that a model file does not keep
        if not hasattr(self, "_best_params"):
            self._best_params = net.params_.copy()
        self._no_improvement_count = getattr(self, "_no_improvement_count", 0)

    def _run_epochs(self, train, val, incremental):
        """Up to ``max_iter`` epochs (one for ``partial_fit``) over ``train``."""
        self.n_iter_ = 0
        for _ in range(self.max_iter):
            if self.shuffle:
                # sklearn.utils.shuffle(sample_idx, random_state=...) draws the same
                # permutation from _random_state; applied here in place
                self._random_state.shuffle(train.order)
            self._record_epoch(self._run_epoch(train), train.n)
            if self._stops_after_epoch(val) or incremental:
                break
            if self.n_iter_ == self.max_iter:
                warnings.warn(
                    "Stochastic Optimizer: Maximum iterations (%d) reached and the "
                    "optimization hasn't converged yet." % self.max_iter,
                    ConvergenceWarning)

    def _record_epoch(self, loss, n_samples):
        """Count an epoch of ``n_samples`` samples whose loss was ``loss``."""
        self.n_iter_ += 1
        self.t_ += n_samples
        self.loss_ = loss
        self.loss_curve_.append(loss)
        if self.verbose:
            print("Iteration %d, loss = %.8f" % (self.n_iter_, loss))

    def _stops_after_epoch(self, val):
        """scikit-learn's end of an epoch: count, schedule, and whether to stop."""
        self._update_no_improvement_count(val)
        self._iteration_ends()
        if self._no_improvement_count > self.n_iter_no_change:
            if self._trigger_stopping():
                return True
            self._no_improvement_count = 0
        return False

    def _run_epoch(self, data):
        """One epoch over ``data`` in its ``order``; returns scikit-learn's epoch loss.

        With several squared-error outputs scikit-learn divides the data term,
        not the L2 term, by ``n_outputs_``.
        """
        try:
            loss = self._network._epoch(data, None, False)
        except FloatingPointError as exc:
            raise ValueError(f"{_NON_FINITE} {exc}") from exc
        if not self._reports_mean_over_outputs():
            return loss
        data_loss, l2_loss = self._network._epoch_terms
        return data_loss / self.n_outputs_ + l2_loss

    def _update_no_improvement_count(self, val):
        """Count epochs without improvement by ``tol``; keep the best weights."""
        if val is not None:
            score = self._score(*val)
            self.validation_scores_.append(score)
            if self.verbose:
                print("Validation score: %f" % score)
            if score < self.best_validation_score_ + self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                np.copyto(self._best_params, self._network.params_)
        else:
            loss = self.loss_curve_[-1]
            if loss > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if loss < self.best_loss_:
                self.best_loss_ = loss

    def _iteration_ends(self):
        """``invscaling``: ``lr = learning_rate_init / (t_ + 1) ** power_t`` (sgd only)."""
        if self.solver == "sgd" and self.learning_rate == "invscaling":
            state = self._network._state
            lr = float(self.learning_rate_init) / (self.t_ + 1) ** self.power_t
            state.config = replace(state.config, lr=lr)

    def _trigger_stopping(self):
        """Stop, or (``adaptive`` sgd) divide the learning rate by 5 and go on."""
        what = ("Validation score" if self.early_stopping else "Training loss")
        msg = (f"{what} did not improve more than tol={self.tol:f} for "
               f"{self.n_iter_no_change} consecutive epochs.")
        state = self._network._state
        if self.solver != "sgd" or self.learning_rate != "adaptive":
            stop, note = True, " Stopping."
        elif state.config.lr <= _MIN_ADAPTIVE_LR:
            stop, note = True, " Learning rate too small. Stopping."
        else:
            state.config = replace(state.config, lr=state.config.lr / 5.0)
            stop, note = False, f" Setting learning rate to {state.config.lr:f}"
        if self.verbose:
            print(msg + note)
        return stop

    # --- inference ------------------------------------------------------------------

    def _forward(self, X):
        """Network outputs for validated ``X``: shape (n_samples, n_outputs_)."""
        net = self._network
        net.n_threads = self.n_threads
        return net._forward(X, output=True)

    def _validate_X(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, accept_sparse=["csr", "csc"], reset=False,
                          dtype=self._network.dtype, order="C")
        return writeable_native(self._dense(X))

    def predict(self, X):
        """Predict using the multilayer perceptron.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            Class labels (indicator matrix for multilabel) or predicted values.
        """
        return self._predict(self._validate_X(X))

    def _score(self, X, y, sample_weight):
        """Score of validated ``X`` (NaN when a prediction is not finite)."""
        prediction = self._predict(X)
        if prediction.dtype.kind == "f" and not np.isfinite(prediction).all():
            return np.nan
        return float(self._metric(y, prediction, sample_weight=sample_weight))


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multilayer perceptron classifier trained by fastbp.

    A drop-in for :class:`sklearn.neural_network.MLPClassifier`: same parameters
    with the same defaults and meanings, same fitted attributes, same results
    from the same ``random_state`` (up to rounding). It minimises the log-loss
    (softmax output for several classes, logistic output for two classes and
    for multilabel targets) with ``lbfgs``, ``sgd`` or ``adam``.

    Parameters
    ----------
    hidden_layer_sizes : array-like of shape (n_layers - 2,), default=(100,)
        Width of each hidden layer.
    activation : str, default="relu"
        Hidden activation: scikit-learn's ``"identity"``, ``"logistic"``,
        ``"tanh"``, ``"relu"``, or fastbp's ``"leaky_relu"``, ``"elu"``,
        ``"softplus"``, ``"gelu"``.
    solver : {"lbfgs", "sgd", "adam"}, default="adam"
    alpha : float, default=1e-4
        L2 penalty, divided by the batch's total sample weight.
    batch_size : int or "auto", default="auto"
        Mini-batch size of ``sgd``/``adam``; ``"auto"`` is ``min(200, n_samples)``.
    learning_rate : {"constant", "invscaling", "adaptive"}, default="constant"
        Schedule of ``sgd``: ``invscaling`` sets ``learning_rate_init / (t_ + 1)
        ** power_t`` after every epoch; ``adaptive`` divides the rate by 5 each
        time ``n_iter_no_change`` epochs fail to improve by ``tol``.
    learning_rate_init : float, default=1e-3
    power_t : float, default=0.5
    max_iter : int, default=200
        Epochs (``sgd``/``adam``) or iterations (``lbfgs``).
    shuffle : bool, default=True
        Shuffle the samples every epoch (``sgd``/``adam``).
    random_state : int, RandomState instance or None, default=None
        Initial weights, validation split and shuffling, as scikit-learn draws them.
    tol : float, default=1e-4
    verbose : bool, default=False
    warm_start : bool, default=False
        Continue from the current weights (with a fresh optimizer).
    momentum : float, default=0.9
    nesterovs_momentum : bool, default=True
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data and stop when its accuracy
        stops improving; the best weights are kept.
    validation_fraction : float, default=0.1
    beta_1, beta_2 : float, default=0.9, 0.999
    epsilon : float, default=1e-8
    n_iter_no_change : int, default=10
    max_fun : int, default=15000
        Maximum number of loss evaluations of ``lbfgs``.
    dtype : {"float32", "float64"} or None, default=None
        Precision of weights and arithmetic; ``None`` trains float32 input in
        float32 and anything else in float64.
    n_threads : int or None, default=None
        Threads for fastbp's kernels and BLAS; ``None`` or -1 uses every CPU.
    clip_norm, clip_value : float or None, default=None
        Gradient clipping (``sgd``/``adam``) by global norm and by value.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    loss_ : float
    best_loss_ : float or None
    loss_curve_ : list of shape (n_iter_,)
    validation_scores_ : list of shape (n_iter_,) or None
    best_validation_score_ : float or None
    t_ : int
        Training samples seen.
    coefs_ : list of ndarray, ``coefs_[l]`` of shape (n_l, n_{l+1})
    intercepts_ : list of ndarray, ``intercepts_[l]`` of shape (n_{l+1},)
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
    n_iter_ : int
    n_layers_ : int
    n_outputs_ : int
    out_activation_ : str
    """

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False,
                 momentum=0.9, nesterovs_momentum=True, early_stopping=False,
                 validation_fraction=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                 n_iter_no_change=10, max_fun=15000, dtype=None, n_threads=None,
                 clip_norm=None, clip_value=None):
        super().__init__(
            hidden_layer_sizes, activation, solver=solver, alpha=alpha,
            batch_size=batch_size, learning_rate=learning_rate,
            learning_rate_init=learning_rate_init, power_t=power_t, max_iter=max_iter,
            shuffle=shuffle, random_state=random_state, tol=tol, verbose=verbose,
            warm_start=warm_start, momentum=momentum,
            nesterovs_momentum=nesterovs_momentum, early_stopping=early_stopping,
            validation_fraction=validation_fraction, beta_1=beta_1, beta_2=beta_2,
            epsilon=epsilon, n_iter_no_change=n_iter_no_change, max_fun=max_fun,
            dtype=dtype, n_threads=n_threads, clip_norm=clip_norm, clip_value=clip_value)

    _metric = staticmethod(accuracy_score)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags

    # --- targets ------------------------------------------------------------------

    def _validate_input(self, X, y, incremental, reset):
        """Validated ``X``, labels ``y`` and the network's targets ``Y``.

        ``Y`` is the class index per sample (several classes, softmax output),
        or one 0/1 column per output (two classes or multilabel, logistic output).
        """
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                             dtype=self._fit_dtype(reset), order="C", reset=reset)
        y = self._dense(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if not hasattr(self, "classes_") or not (self.warm_start or incremental):
            target_type = self._fit_labels(y)
        else:
            self._check_labels(y)
            target_type = self._target_type(y)
        return self._dense(X), y, self._encode(y, target_type)

    def _fit_labels(self, y):
        """Set ``classes_`` from ``y``; its target type (as ``LabelBinarizer.fit``)."""
        target_type = type_of_target(y, input_name="y")
        if "multioutput" in target_type:
            raise ValueError("Multioutput target data is not supported with label "
                             "binarization")
        self.classes_ = unique_labels(y)
        return target_type

    def _check_labels(self, y):
        classes = unique_labels(y)
        if self.warm_start:
            if set(classes) != set(self.classes_):
                raise ValueError(
                    "warm_start can only be used where `y` has the same classes as in "
                    f"the previous call to fit. Previously got {self.classes_}, `y` has "
                    f"{classes}")
        elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
            raise ValueError("`y` has classes not in `self.classes_`. `self.classes_` has "
                             f"{self.classes_}. 'y' has {classes}.")

    def _target_type(self, y):
        """Target type of a model that has ``classes_``."""
        if hasattr(self, "_network"):
            if self.out_activation_ == "softmax":
                return "multiclass"
            return "multilabel-indicator" if self.n_outputs_ > 1 else "binary"
        # first call to partial_fit: as scikit-learn, from y if multilabel, else classes_
        if type_of_target(y).startswith("multilabel"):
            return "multilabel-indicator"
        return type_of_target(self.classes_)

    def _encode(self, y, target_type):
        """The network's targets (see :meth:`_validate_input`)."""
        if target_type == "multilabel-indicator":
            return y
        if target_type == "multiclass":
            return np.searchsorted(self.classes_, y)
        positive = self.classes_[-1] if len(self.classes_) > 1 else None
        return (y == positive).reshape(-1, 1)

    def _output_layer(self, Y):
        """``(n_outputs_, out_activation_)`` for the targets ``Y`` of a first pass."""
        if Y.ndim == 1:
            return len(self.classes_), "softmax"
        return Y.shape[1], "logistic"

    def _stratify(self, data):
        """Stratification labels of the validation split: the 0/1 output column."""
        return data.Y.astype(bool)

    # --- scikit-learn's log-loss value (lbfgs) --------------------------------------

    def _objective(self, loss, data, sw_sum):
        """scikit-learn's log-loss value for the weights just evaluated.

        scikit-learn clips probabilities to ``[eps, 1 - eps]``, which clamps
        each sample's (each label's) loss to ``[-log(1 - eps), -log(eps)]``;
        fastbp's loss, from the logits, is not clipped. The clipped value is
        recomputed (one more forward pass) only when the clamp can change the
        loss by more than rounding: when a loss above ``-log(eps)`` fits in the
        total, or when the loss is so small that ``eps`` per label counts.
        """
        l2 = self._l2_term(sw_sum) if self.alpha > 0 else 0.0
        data_loss = loss - l2
        eps = np.finfo(data.X.dtype).eps
        labels = 1 if self.out_activation_ == "softmax" else self.n_outputs_
        largest = data_loss * sw_sum / data.sw[data.sw > 0].min()
        if largest < -np.log(eps) and labels * eps <= np.sqrt(eps) * data_loss:
            return loss
        return self._clipped_log_loss(data, sw_sum) + l2

    def _clipped_log_loss(self, data, sw_sum):
        """scikit-learn's (clipped) mean log-loss of validated ``data``."""
        proba = self._network._forward(data.X, output=True)
        eps = np.finfo(proba.dtype).eps
        proba = np.clip(proba, eps, 1 - eps)
        if self.out_activation_ == "softmax":
            rows = np.arange(proba.shape[0])
            losses = -np.log(proba[rows, data.Y[:, 0].astype(np.intp)])
        else:
            losses = -(xlogy(data.Y, proba) + xlogy(1 - data.Y, 1 - proba)).sum(axis=1)
        return float(np.dot(data.sw, losses) / sw_sum)

    # --- partial_fit and inference ------------------------------------------------

    @available_if(lambda est: est._check_solver())
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch of ``sgd``/``adam`` on ``(X, y)``, keeping the optimizer state.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array-like of shape (n_samples,), default=None
        classes : array of shape (n_classes,), default=None
            Every class; required on the first call, checked against ``classes_``
            afterwards.

        Returns
        -------
        self : object
        """
        _check_partial_fit_first_call(self, classes)
        return self._fit(X, y, sample_weight, incremental=True)

    def _predict(self, X):
        proba = self._forward(X)
        if self.out_activation_ == "softmax":
            return self.classes_.take(proba.argmax(axis=1), mode="clip")
        labels = (proba > 0.5).astype(int)
        if self.n_outputs_ > 1:
            return labels
        if len(self.classes_) == 1:
            return np.repeat(self.classes_[0], labels.shape[0])
        return self.classes_[labels.ravel()]

    def predict_proba(self, X):
        """Probability of each class.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Ordered as ``classes_`` (for multilabel, one column per label).
        """
        proba = self._forward(self._validate_X(X))
        if self.n_outputs_ == 1:
            p = proba.ravel()
            return np.vstack([1 - p, p]).T
        return proba

    def predict_log_proba(self, X):
        """Log of :meth:`predict_proba`, shape (n_samples, n_classes)."""
        proba = self.predict_proba(X)
        return np.log(proba, out=proba)


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multilayer perceptron regressor trained by fastbp.

    A drop-in for :class:`sklearn.neural_network.MLPRegressor`: same parameters
    with the same defaults and meanings, same fitted attributes, same results
    from the same ``random_state`` (up to rounding). The output layer is the
    identity (``loss="squared_error"``, half the mean squared error) or the
    exponential (``loss="poisson"``, half the Poisson deviance).

    Parameters
    ----------
    loss : {"squared_error", "poisson"}, default="squared_error"
    hidden_layer_sizes, activation, solver, alpha, batch_size, learning_rate, \
learning_rate_init, power_t, max_iter, shuffle, random_state, tol, verbose, \
warm_start, momentum, nesterovs_momentum, early_stopping, validation_fraction, \
beta_1, beta_2, epsilon, n_iter_no_change, max_fun, dtype, n_threads, clip_norm, \
clip_value
        As for :class:`MLPClassifier`; ``early_stopping`` scores by R^2.

    Attributes
    ----------
    loss_, best_loss_, loss_curve_, validation_scores_, best_validation_score_, \
t_, coefs_, intercepts_, n_features_in_, feature_names_in_, n_iter_, n_layers_, \
n_outputs_, out_activation_
        As for :class:`MLPClassifier`.
    """

    _parameter_constraints: dict = {
        **_BaseMLP._parameter_constraints,
        "loss": [StrOptions({"squared_error", "poisson"})],
    }

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu",
                 *, solver="adam", alpha=0.0001, batch_size="auto",
                 learning_rate="constant", learning_rate_init=0.001, power_t=0.5,
                 max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False,
                 warm_start=False, momentum=0.9, nesterovs_momentum=True,
                 early_stopping=False, validation_fraction=0.1, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-8, n_iter_no_change=10, max_fun=15000, dtype=None,
                 n_threads=None, clip_norm=None, clip_value=None):
        self.loss = loss
        super().__init__(
            hidden_layer_sizes, activation, solver=solver, alpha=alpha,
            batch_size=batch_size, learning_rate=learning_rate,
            learning_rate_init=learning_rate_init, power_t=power_t, max_iter=max_iter,
            shuffle=shuffle, random_state=random_state, tol=tol, verbose=verbose,
            warm_start=warm_start, momentum=momentum,
            nesterovs_momentum=nesterovs_momentum, early_stopping=early_stopping,
            validation_fraction=validation_fraction, beta_1=beta_1, beta_2=beta_2,
            epsilon=epsilon, n_iter_no_change=n_iter_no_change, max_fun=max_fun,
            dtype=dtype, n_threads=n_threads, clip_norm=clip_norm, clip_value=clip_value)

    _metric = staticmethod(r2_score)

    def _validate_input(self, X, y, incremental, reset):
        """Validated ``X``, targets ``y`` and the network's targets (``y`` itself)."""
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                             y_numeric=True, dtype=self._fit_dtype(reset), order="C",
                             reset=reset)
        y = self._dense(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        return self._dense(X), y, y

    def _output_layer(self, Y):
        return (1 if Y.ndim == 1 else Y.shape[1]), \
            ("exp" if self.loss == "poisson" else "identity")

    @available_if(lambda est: est._check_solver())
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch of ``sgd``/``adam`` on ``(X, y)``, keeping the optimizer state.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self : object
        """
        return self._fit(X, y, sample_weight, incremental=True)

    def _predict(self, X):
        out = self._forward(X)
        return out.ravel() if out.shape[1] == 1 else out
