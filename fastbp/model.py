"""``fastbp.MLP``: a multilayer perceptron trained by backpropagation.

The model owns validation, buffers, the epoch loop and the history; every
number is computed by the kernels in ``fastbp.kernels``.
"""

import time
import warnings
from dataclasses import dataclass, replace

import numpy as np

from . import validation as v
from .kernels import activations, initializers, losses, optimizers
from .kernels.train import (loss_grad_inplace, predict_inplace,
                            predict_parallel_inplace, scratch_size,
                            train_epoch_inplace, train_epoch_parallel_inplace)
from .layout import block_offsets, layer_views, parameter_offsets
from .progress import epoch_summary
from .threads import (BLAS_THREADING_MIN_WORK, can_launch_parallel, can_split_batches,
                      product_work, resolve_n_threads, thread_limits)

#: Rows per chunk of the inference pass (bounds its work memory).
PREDICT_CHUNK = 4096
#: Inference splits rows among threads when each gets at least this many.
PARALLEL_MIN_ROWS = 512
#: Training splits each batch among threads when every part gets at least this
#: many rows, the per-part gradients (summed after every batch) are at most this
#: many bytes, and BLAS would run single-threaded anyway. Measured on an idle
#: 2-core machine (epoch time, split against serial): 64-100-10 in float64
#: (60 KB of gradient) at batch 200 0.50x, 100 0.70x, 50 0.84x; 784-256-128-10
#: in float32 (940 KB) at batch 32 1.48x, at 128 (two BLAS threads) 1.18x.
SPLIT_MIN_ROWS = 32
SPLIT_MAX_GRADIENT_BYTES = 512 * 1024

#: Per-layer gradient norms below this fraction of the largest one are vanishing.
VANISHING_RATIO = 1e-4
#: A layer gradient norm above this is exploding.
EXPLODING_NORM = 1e4

DTYPES = {"float32": np.float32, "float64": np.float64}


class GradientWarning(UserWarning):
    """The recorded gradient norms show vanishing or exploding gradients."""


class InterruptedTrainingWarning(UserWarning):
    """Training was interrupted; the model keeps its last completed epoch."""


@dataclass(frozen=True)
class TrainConfig:
    """Training hyperparameters of ``MLP.fit`` (validated by :meth:`checked`)."""

    batch_size: int = 32
    optimizer: str = "sgd"
    lr: float = 0.05
    alpha: float = 0.0
    momentum: float = 0.9
    nesterov: bool = False
    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-8
    clip_norm: float = None
    clip_value: float = None
    shuffle: bool = True

    def checked(self):
        """A copy with every field validated and in canonical form."""
        return TrainConfig(
            batch_size=v.check_int("batch_size", self.batch_size, low=1),
            optimizer=v.check_choice("optimizer", self.optimizer, optimizers.OPTIMIZERS),
            lr=v.check_float("lr", self.lr, low=0.0, low_open=True),
            alpha=v.check_float("alpha", self.alpha, low=0.0),
            momentum=v.check_float("momentum", self.momentum, low=0.0, high=1.0,
                                   high_open=True),
            nesterov=bool(self.nesterov),
            beta1=v.check_float("beta1", self.beta1, low=0.0, high=1.0, high_open=True),
            beta2=v.check_float("beta2", self.beta2, low=0.0, high=1.0, high_open=True),
            epsilon=v.check_float("epsilon", self.epsilon, low=0.0, low_open=True),
            clip_norm=v.check_float("clip_norm", self.clip_norm, low=0.0, low_open=True,
                                    allow_none=True),
            clip_value=v.check_float("clip_value", self.clip_value, low=0.0,
                                     low_open=True, allow_none=True),
            shuffle=bool(self.shuffle),
        )

    def hyperparameters(self, lr=None):
        momentum = self.momentum if self.optimizer == "sgd" else 0.0
        return optimizers.hyperparameters(
            lr=self.lr if lr is None else lr, momentum=momentum, nesterov=self.nesterov,
            beta1=self.beta1, beta2=self.beta2, epsilon=self.epsilon, l2=self.alpha,
            clip_norm=self.clip_norm, clip_value=self.clip_value)


class _Data:
    """Validated training data in the kernels' form."""

    def __init__(self, X, Y, sw):
        self.X, self.Y, self.sw = X, Y, sw
        self.n = X.shape[0]
        self.order = np.arange(self.n, dtype=np.int64)


def _n_state(config):
    """State buffers the optimizer of ``config`` keeps (none for plain SGD)."""
    if config.optimizer == "sgd" and config.momentum == 0.0:
        return 0
    return optimizers.OPTIMIZERS[config.optimizer].n_state


class _TrainState:
    """Optimizer state and work buffers that live across epochs."""

    def __init__(self, model, config):
        dtype, n_params = model.dtype, model.params_.size
        self.config = config
        self.grads = np.zeros(n_params, dtype=dtype)
        self.state1 = self.state2 = np.zeros(0, dtype=dtype)
        self.fit_optimizer(model)
        self.step = np.zeros(1, dtype=np.int64)
        self.norms = np.zeros(len(model.layer_sizes) - 1)
        self.rows = self.parts = 0
        self._snapshot = None
        self.saved_epoch = None

    def fit_optimizer(self, model):
        """(Re)allocate zeroed optimizer state if ``config`` needs other buffers.

        The kernels trust the state's sizes; a config changed in place (say,
        momentum switched on) gets its buffers here before any step.
        """
        n_state = _n_state(self.config)
        sizes = [model.params_.size if n_state > i else 0 for i in range(2)]
        if [self.state1.size, self.state2.size] != sizes:
            self.state1, self.state2 = (np.zeros(size, dtype=model.dtype) for size in sizes)
            self._snapshot = None

    def buffers(self, model, rows, parts):
        """Work buffers for batches of up to ``rows`` samples split into ``parts``.

        Each part gets a slot of its own in ``acts``, ``deltas``, ``pre`` and
        ``scratch``, and every part but the first a gradient in ``part_grads``.
        Reallocated only when ``rows`` or ``parts`` change.
        """
        if (rows, parts) != (self.rows, self.parts):
            dtype = model.dtype
            self.a_off = block_offsets(model.layer_sizes, -(-rows // parts))
            size = int(self.a_off[-1]) * parts
            self.acts = np.zeros(size, dtype=dtype)
            self.deltas = np.zeros(size, dtype=dtype)
            self.pre = np.zeros(size if model._keeps_input else 0, dtype=dtype)
            self.scratch = np.zeros(scratch_size(model.layer_sizes) * parts, dtype=dtype)
            self.part_grads = np.zeros(model.params_.size * (parts - 1), dtype=dtype)
            self.part_loss = np.zeros(parts)
            self.rows, self.parts = rows, parts

    def save(self, params, rng, epoch):
        """Copy parameters, optimizer and shuffling state aside at the start of ``epoch``."""
        self.saved_epoch = epoch
        self._rng_state = rng.bit_generator.state
        arrays = (params, self.state1, self.state2, self.step)
        if self._snapshot is None:
            self._snapshot = tuple(a.copy() for a in arrays)
        else:
            for saved, a in zip(self._snapshot, arrays):
                np.copyto(saved, a)

    def restore(self, params, rng):
        """Put back what :meth:`save` copied (nothing if nothing was saved yet)."""
        if self._snapshot is None:
            return
        rng.bit_generator.state = self._rng_state
        for saved, a in zip(self._snapshot, (params, self.state1, self.state2, self.step)):
            np.copyto(a, saved)


def _empty_history():
    return {"loss": [], "val_loss": [], "val_score": [], "samples_per_sec": [],
            "epoch_time": [], "grad_norm": []}


class MLP:
    """A multilayer perceptron trained by backpropagation with Numba kernels.

    Parameters
    ----------
    layer_sizes : sequence of int
        Widths of every layer, input first, output last, e.g. ``[64, 32, 10]``.
    activation : str, default="relu"
        Hidden-layer activation: one of ``fastbp.ACTIVATIONS`` (identity, relu,
        leaky_relu, logistic (or sigmoid), tanh, elu, softplus, gelu).
    loss : str, default="softmax_cross_entropy"
        ``"softmax_cross_entropy"`` (integer class labels ``0..k-1``),
        ``"binary_cross_entropy"`` (0/1 targets, one column per label),
        ``"mse"`` (regression, identity output) or ``"poisson"`` (counts,
        exponential output).
    init : str, default="auto"
        Weight initialisation, one of ``fastbp.INITIALIZERS``; ``"auto"`` is
        ``"he_normal"`` for the ReLU family and ``"glorot_uniform"`` otherwise.
    dtype : {"float32", "float64"}, default="float32"
        Precision of parameters, data and arithmetic, end to end.
    random_state : int, numpy.random.Generator or None
        Seeds the initialisation and the shuffling: the same int gives
        bit-identical weights.
    n_threads : int or None
        Threads for Numba and BLAS; ``None`` uses every CPU.

    Attributes
    ----------
    params_ : ndarray, shape (n_params,)
        All parameters in one flat buffer.
    coefs_ : list of ndarray, shape (n_l, n_{l+1})
        Weight matrices: writable views into ``params_``.
    intercepts_ : list of ndarray, shape (n_{l+1},)
        Biases: writable views into ``params_``.
    history_ : dict of lists
        Per epoch: ``loss``, ``val_loss``, ``val_score``, ``samples_per_sec``,
        ``epoch_time`` and ``grad_norm`` (per-layer gradient L2 norms, measured
        on the first mini-batch of the epoch).
    """

    def __init__(self, layer_sizes, activation="relu", loss="softmax_cross_entropy",
                 init="auto", dtype="float32", random_state=None, n_threads=None):
        if isinstance(layer_sizes, (str, bytes)) or not hasattr(layer_sizes, "__len__"):
            raise TypeError("layer_sizes must be a sequence of ints such as [64, 32, 10]; "
                            f"got {layer_sizes!r}.")
        if len(layer_sizes) < 2:
            raise ValueError("layer_sizes needs at least an input and an output width, "
                             f"e.g. [64, 10]; got {list(layer_sizes)}.")
        self.layer_sizes = tuple(v.check_int(f"layer_sizes[{i}]", s, low=1)
                                 for i, s in enumerate(layer_sizes))
        self.activation = v.check_choice("activation", activation, activations.ACTIVATIONS,
                                         activations.ALIASES)
        self.loss = v.check_choice("loss", loss, losses.LOSSES, losses.ALIASES)
        if self.loss == "softmax_cross_entropy" and self.layer_sizes[-1] < 2:
            raise ValueError("softmax_cross_entropy needs an output layer of at least 2 "
                             "classes; use binary_cross_entropy for a single output.")
        if init == "auto":
            init = "he_normal" if self.activation in ("relu", "leaky_relu", "elu", "gelu") \
                else "glorot_uniform"
        self.init = v.check_choice("init", init, initializers.INITIALIZERS,
                                   initializers.ALIASES)
        dtype_name = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
        self.dtype = np.dtype(DTYPES[v.check_choice("dtype", dtype_name, DTYPES)])
        if n_threads is not None:
            v.check_int("n_threads", n_threads, low=-1)
            if n_threads == 0:
                raise ValueError("n_threads must be positive, or -1/None for all CPUs.")
        self.n_threads = n_threads
        self.random_state = random_state
        self._check_random_state(random_state)

        self._sizes = np.asarray(self.layer_sizes, dtype=np.int64)
        self._offsets, n_params = parameter_offsets(self.layer_sizes)
        self.params_ = np.zeros(n_params, dtype=self.dtype)
        self._reset(np.random.default_rng(random_state))

    # --- construction helpers -----------------------------------------------------

    @staticmethod
    def _check_random_state(random_state):
        if random_state is None or isinstance(random_state, np.random.Generator):
            return
        if isinstance(random_state, (bool, np.bool_)) or not isinstance(
                random_state, (int, np.integer)) or random_state < 0:
            raise TypeError("random_state must be None, a non-negative int or a "
                            f"numpy.random.Generator; got {random_state!r}.")

    @property
    def _keeps_input(self):
        return activations.ACTIVATIONS[self.activation].uses_input

    @property
    def n_layers(self):
        """Number of weight layers."""
        return len(self.layer_sizes) - 1

    def _reset(self, rng):
        """Fresh weights drawn from ``rng``, no optimizer state, empty history."""
        self._rng = rng
        initializers.initialize_inplace(self.params_, self._offsets, self._sizes,
                                        initializers.INITIALIZERS[self.init], rng)
        self._views()
        self._state = None
        self.history_ = _empty_history()

    def _views(self):
        self._coefs, self._intercepts = layer_views(self.params_, self.layer_sizes,
                                                    self._offsets)

    @property
    def coefs_(self):
        """Weight matrices, ``coefs_[l]`` of shape (n_l, n_{l+1}), views into ``params_``."""
        return self._coefs

    @coefs_.setter
    def coefs_(self, values):
        self._assign("coefs_", self._coefs, values)

    @property
    def intercepts_(self):
        """Biases, ``intercepts_[l]`` of shape (n_{l+1},), views into ``params_``."""
        return self._intercepts

    @intercepts_.setter
    def intercepts_(self, values):
        self._assign("intercepts_", self._intercepts, values)

    def _assign(self, name, views, values):
        values = list(values)
        if len(values) != len(views):
            raise ValueError(f"{name} needs {len(views)} arrays; got {len(values)}.")
        checked = []
        for i, (view, value) in enumerate(zip(views, values)):
            array = v.as_numeric_array(f"{name}[{i}]", value)
            if array.shape != view.shape:
                raise ValueError(f"{name}[{i}] must have shape {view.shape}; got "
                                 f"{array.shape}.")
            v.check_finite(f"{name}[{i}]", array)
            checked.append(array)
        for view, array in zip(views, checked):
            view[...] = array

    def __getstate__(self):
        state = self.__dict__.copy()
        del state["_coefs"], state["_intercepts"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._views()

    def __repr__(self):
        return (f"MLP({list(self.layer_sizes)}, activation={self.activation!r}, "
                f"loss={self.loss!r}, init={self.init!r}, dtype={self.dtype.name!r})")

    # --- data ---------------------------------------------------------------------

    def _check_X(self, X, name="X"):
        return v.check_features(X, self.dtype, self.layer_sizes[0], name=name)

    def _check_targets(self, y, n_samples, name="y"):
        """Targets as the kernels' ``(n, t)`` float array of the model dtype."""
        y = v.as_numeric_array(name, y)
        if y.ndim == 0 or y.shape[0] != n_samples:
            raise ValueError(f"X and {name} have different numbers of samples: "
                             f"{n_samples} and {y.shape[0] if y.ndim else 'a scalar'}.")
        v.check_finite(name, y)
        k = self.layer_sizes[-1]
        if self.loss == "softmax_cross_entropy":
            if y.ndim != 1:
                raise ValueError(f"{name} must be 1-D integer class labels 0..{k - 1} for "
                                 f"softmax_cross_entropy; got shape {y.shape}.")
            if y.dtype.kind == "f" and not np.array_equal(y, np.round(y)):
                raise ValueError(f"{name} holds non-integer values; softmax_cross_entropy "
                                 f"needs class labels 0..{k - 1}.")
            low, high = y.min(), y.max()
            if low < 0 or high > k - 1:
                raise ValueError(f"{name} holds labels in [{low:g}, {high:g}] but the "
                                 f"output layer has {k} classes (labels 0..{k - 1}); "
                                 "encode labels as 0..k-1 (sklearn LabelEncoder) or "
                                 "widen the output layer.")
            return v.writeable_native(np.ascontiguousarray(y.reshape(-1, 1), dtype=self.dtype))
        if y.ndim == 1:
            y = y.reshape(-1, 1)
        if y.ndim != 2 or y.shape[1] != k:
            raise ValueError(f"{name} must have shape ({n_samples}, {k}) (one column per "
                             f"output); got {y.shape}.")
        if self.loss == "binary_cross_entropy" and ((y < 0).any() or (y > 1).any()):
            raise ValueError(f"{name} must hold 0/1 targets (or probabilities in [0, 1]) "
                             "for binary_cross_entropy.")
        if self.loss == "poisson" and (y < 0).any():
            raise ValueError(f"{name} must be non-negative for the poisson loss.")
        Y = v.writeable_native(np.ascontiguousarray(y, dtype=self.dtype))
        v.check_finite(name, Y)
        return Y

    def _prepare(self, X, y, sample_weight=None):
        """Validate a training set once; the result is reused by every epoch."""
        X = self._check_X(X)
        Y = self._check_targets(y, X.shape[0])
        sw = v.check_sample_weight(sample_weight, X.shape[0], self.dtype)
        return _Data(X, Y, sw)

    # --- training -----------------------------------------------------------------

    def fit(self, X, y, epochs=20, batch_size=32, optimizer="sgd", lr=0.05, alpha=0.0,
            momentum=0.9, nesterov=False, beta1=0.9, beta2=0.999, epsilon=1e-8,
            clip_norm=None, clip_value=None, shuffle=True, validation_data=None,
            sample_weight=None, warm_start=False, verbose=False, callback=None):
        """Train for ``epochs`` epochs of mini-batch backpropagation.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)
        y : array-like, shape (n_samples,) or (n_samples, n_outputs)
            Class labels ``0..k-1`` (softmax loss), 0/1 targets (binary cross
            entropy), real targets (mse) or counts (poisson).
        epochs : int
        batch_size : int
            ``n_samples`` (or more) is batch gradient descent, 1 is stochastic,
            else mini-batch. The last, shorter batch is averaged over its own
            size.
        optimizer : {"sgd", "adam"}
        lr : float
            Learning rate.
        alpha : float
            L2 penalty: the loss gains ``alpha / (2 S) * sum ||W||^2`` per batch of
            total sample weight ``S`` (scikit-learn's convention; biases are not
            penalised).
        momentum : float
            SGD momentum in [0, 1); 0 is plain SGD.
        nesterov : bool
            Nesterov momentum (SGD).
        beta1, beta2, epsilon : float
            Adam's moment decays and denominator offset.
        clip_norm : float or None
            Rescale each step's gradient to at most this global L2 norm.
        clip_value : float or None
            Clip each gradient element to ``[-clip_value, clip_value]`` (applied
            before ``clip_norm``).
        shuffle : bool
            Reshuffle the samples every epoch.
        validation_data : tuple (X_val, y_val) or None
            Scored after every epoch (``history_["val_score"]``, ``["val_loss"]``).
        sample_weight : array-like, shape (n_samples,) or None
        warm_start : bool
            Continue from the current weights (with a fresh optimizer) instead
            of re-initialising them.
        verbose : bool
            Print one line per epoch.
        callback : callable or None
            Called as ``callback(model)`` after every completed epoch, with
            ``history_`` already updated; returning True stops training.

        Returns
        -------
        self
        """
        epochs = v.check_int("epochs", epochs, low=1)
        config = TrainConfig(batch_size, optimizer, lr, alpha, momentum, nesterov, beta1,
                             beta2, epsilon, clip_norm, clip_value, shuffle).checked()
        data = self._prepare(X, y, sample_weight)
        val = self._prepare_validation(validation_data)
        if warm_start:   # the current weights and shuffling stream go on
            self.history_ = _empty_history()
        else:
            self._reset(np.random.default_rng(self.random_state))
        self._state = _TrainState(self, config)
        self._train(data, epochs, val, verbose, callback)
        return self

    def partial_fit(self, X, y, sample_weight=None, **config):
        """One more epoch on ``(X, y)``, keeping the optimizer state.

        Keyword arguments override the hyperparameters of the last ``fit`` (or
        the defaults of :meth:`fit` before any); changing ``optimizer``
        starts a fresh optimizer state.

        Returns
        -------
        self
        """
        unknown = set(config) - set(TrainConfig.__dataclass_fields__)
        if unknown:
            raise TypeError(f"partial_fit got unexpected keyword(s) {sorted(unknown)}; "
                            f"valid ones are {sorted(TrainConfig.__dataclass_fields__)}.")
        base = self._state.config if self._state is not None else TrainConfig()
        new_config = replace(base, **config).checked()
        data = self._prepare(X, y, sample_weight)
        if self._state is None or new_config.optimizer != base.optimizer:
            self._state = _TrainState(self, new_config)
        else:
            self._state.config = new_config
        self._train(data, 1, None, False)
        return self

    def _prepare_validation(self, validation_data):
        if validation_data is None:
            return None
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise TypeError("validation_data must be a tuple (X_val, y_val).")
        X_val = self._check_X(validation_data[0], name="X_val")
        return X_val, validation_data[1], self._check_targets(validation_data[1],
                                                              X_val.shape[0], "y_val")

    def _train(self, data, epochs, val, verbose, callback=None):
        """Run ``epochs`` epochs; handle interruption and report gradient trouble.

        Returns the number of completed epochs.
        """
        completed, in_epoch = 0, False
        recorded = len(self.history_["loss"])
        rows = min(self._state.config.batch_size, data.n)
        try:
            with self._training_threads(rows):
                for _ in range(epochs):
                    in_epoch = True
                    self._epoch(data, val, verbose)
                    in_epoch = False
                    completed += 1
                    if callback is not None and callback(self):
                        break
        except KeyboardInterrupt:
            if in_epoch:  # undo the epoch in progress: weights, state and history
                if self._state.saved_epoch == recorded + completed:
                    self._state.restore(self.params_, self._rng)   # it had started
                for values in self.history_.values():
                    del values[recorded + completed:]
            warnings.warn(
                f"Training interrupted after {completed} of {epochs} epoch(s); the model "
                f"keeps the weights of its last completed epoch and can be used or "
                f"trained further.", InterruptedTrainingWarning, stacklevel=3)
            return completed
        self._warn_gradients()
        return completed

    def _epoch(self, data, val, verbose, lr=None):
        """One epoch over ``data``; returns its mean loss. Restores on failure.

        The loss's two terms, the weighted data loss and the L2 term, are left
        in ``_epoch_terms`` (scikit-learn reports them differently scaled for
        several squared-error outputs).
        """
        state = self._state
        config = state.config
        batch_size = min(config.batch_size, data.n)
        state.fit_optimizer(self)
        state.save(self.params_, self._rng, len(self.history_["loss"]))
        parts = self._batch_parts(batch_size)
        state.buffers(self, batch_size, parts)
        order = self._rng.permutation(data.n) if config.shuffle else data.order
        args = (data.X, data.Y, data.sw, order, batch_size, self.params_, state.grads,
                state.state1, state.state2, state.step, self._offsets, self._sizes,
                state.acts, state.deltas, state.pre, state.a_off, state.scratch,
                activations.ACTIVATIONS[self.activation].code,
                losses.LOSSES[self.loss].code,
                optimizers.OPTIMIZERS[config.optimizer].code,
                config.hyperparameters(lr), state.norms)
        start = time.perf_counter()
        if parts > 1:
            data_loss, l2_loss, n_done = train_epoch_parallel_inplace(
                *args, state.part_grads, state.part_loss)
        else:
            data_loss, l2_loss, n_done = train_epoch_inplace(*args)
        elapsed = time.perf_counter() - start
        n_batches = -(-data.n // batch_size)
        if n_done < n_batches:
            state.restore(self.params_, self._rng)
            epoch = len(self.history_["loss"]) + 1
            raise FloatingPointError(
                f"The loss became non-finite at epoch {epoch}, batch {n_done + 1}; "
                "training stopped and the model keeps the weights of its last completed "
                "epoch. Lower the learning rate, scale the inputs, or set clip_norm.")
        loss = data_loss + l2_loss
        self._record(loss, elapsed, data.n, val, verbose)
        self._epoch_terms = (data_loss, l2_loss)
        return loss

    def _batch_parts(self, rows):
        """Into how many parts, run by parallel threads, training splits a batch.

        One part per thread when threads are allowed and
        :func:`fastbp.threads.can_split_batches`, each part gets at least
        ``SPLIT_MIN_ROWS`` rows, the gradient is at most
        ``SPLIT_MAX_GRADIENT_BYTES`` and the batch's products are too small for
        threaded BLAS; else 1 (the batch runs serially, with BLAS threads by size).
        """
        parts = resolve_n_threads(self.n_threads)
        if parts == 1 or rows // parts < SPLIT_MIN_ROWS \
                or self.params_.nbytes > SPLIT_MAX_GRADIENT_BYTES \
                or product_work(self.layer_sizes, rows) >= BLAS_THREADING_MIN_WORK \
                or not can_split_batches():
            return 1
        return parts

    def _training_threads(self, rows):
        """Thread limits for training on batches of ``rows``: Numba threads and
        single-threaded BLAS when batches are split, else BLAS threads by size."""
        parts = self._batch_parts(rows)
        if parts > 1:
            return thread_limits(parts, work=0)
        return thread_limits(self.n_threads, product_work(self.layer_sizes, rows))

    def _record(self, loss, elapsed, n, val, verbose):
        h = self.history_
        val_loss = val_score = None
        if val is not None:
            X_val, y_val, Y_val = val
            Z = self._forward(X_val, output=False)   # one forward pass for both
            val_loss = self._mean_loss(Z, Y_val)
            val_score = self._score_of(self._predictions(Z), y_val)
        h["loss"].append(float(loss))
        h["val_loss"].append(val_loss)
        h["val_score"].append(val_score)
        h["epoch_time"].append(elapsed)
        h["samples_per_sec"].append(n / elapsed if elapsed > 0 else float("inf"))
        h["grad_norm"].append([float(x) for x in self._state.norms])
        if verbose:
            print(f"epoch {len(h['loss']):4d}  {epoch_summary(h, 'score')}")

    def _warn_gradients(self):
        if not self.history_["grad_norm"]:
            return
        norms = np.asarray(self.history_["grad_norm"][-1])
        largest = norms.max()
        if largest > EXPLODING_NORM:
            warnings.warn(
                f"Exploding gradients: a layer's gradient norm reached {largest:.3g} "
                f"(per-layer norms {np.array2string(norms, precision=3)}). Lower the "
                "learning rate, scale the inputs, or set clip_norm.",
                GradientWarning, stacklevel=3)
        elif self.n_layers > 1 and largest > 0 and norms[0] < VANISHING_RATIO * largest:
            warnings.warn(
                "Vanishing gradients: the first layer's gradient norm is "
                f"{norms[0] / largest:.2g} of the largest (per-layer norms "
                f"{np.array2string(norms, precision=3)}). Use relu-like activations "
                "with he_normal init, fewer layers, or a larger learning rate.",
                GradientWarning, stacklevel=3)

    # --- inference ------------------------------------------------------------------

    def _forward(self, X, output):
        """Outputs for validated ``X``: logits (``output=False``) or ``g(logits)``.

        With several threads and enough rows, the rows are split among Numba
        threads, each running single-threaded BLAS on its own part, when
        :func:`fastbp.threads.can_launch_parallel`. Only the
        main thread launches the parallel kernel: Numba's default threading
        layer cannot run two parallel launches at once.
        """
        X = np.ascontiguousarray(X, dtype=self.dtype)   # no copy when already so
        n = X.shape[0]
        parts = resolve_n_threads(self.n_threads)
        if parts == 1 or n < parts * PARALLEL_MIN_ROWS or not can_launch_parallel():
            parts = 1
        chunk = min(PREDICT_CHUNK, -(-n // parts))
        a_off = block_offsets(self.layer_sizes, chunk, with_input=False)
        acts = np.empty(int(a_off[-1]) * parts, dtype=self.dtype)
        out = np.empty((n, self.layer_sizes[-1]), dtype=self.dtype)
        args = (X, self.params_, self._offsets, self._sizes, acts, a_off,
                activations.ACTIVATIONS[self.activation].code,
                losses.LOSSES[self.loss].code if output else -1, out)
        if parts > 1:
            with thread_limits(parts, work=0):   # Numba threads, BLAS single-threaded
                predict_parallel_inplace(*args)
        else:
            with thread_limits(self.n_threads, product_work(self.layer_sizes, chunk)):
                predict_inplace(*args)
        return out

    def decision_function(self, X):
        """Logits of the output layer, shape (n_samples, n_outputs)."""
        return self._forward(self._check_X(X), output=False)

    def predict_proba(self, X):
        """Class probabilities, shape (n_samples, n_outputs) (classification losses)."""
        if self.loss not in ("softmax_cross_entropy", "binary_cross_entropy"):
            raise AttributeError(f"predict_proba needs a classification loss; this model "
                                 f"uses {self.loss!r}. Use predict.")
        return self._forward(self._check_X(X), output=True)

    def predict(self, X):
        """Predictions for ``X``.

        Returns
        -------
        ndarray
            Class labels, shape (n_samples,), for softmax cross-entropy; 0/1
            labels, shape (n_samples, n_outputs), for binary cross-entropy;
            outputs, shape (n_samples, n_outputs), for regression. A single
            output column is returned as shape (n_samples,).
        """
        return self._predictions(self._forward(self._check_X(X), output=False))

    def _predictions(self, Z):
        """:meth:`predict`'s result from the logits ``Z``, shape (n_samples, n_outputs)."""
        # softmax and the logistic are increasing: labels come from the logits
        if self.loss == "softmax_cross_entropy":
            return Z.argmax(axis=1)
        if self.loss == "binary_cross_entropy":
            out = (Z > 0).astype(np.int64)     # logistic(z) > 0.5 <=> z > 0
        else:
            out = np.exp(Z) if self.loss == "poisson" else Z
        return out[:, 0] if out.shape[1] == 1 else out

    def _score_of(self, prediction, y):
        """Accuracy or R^2 of ``prediction`` (from :meth:`predict`) against ``y``."""
        from sklearn.metrics import accuracy_score, r2_score
        y = np.asarray(y)
        if self.loss in ("softmax_cross_entropy", "binary_cross_entropy"):
            return float(accuracy_score(y.reshape(prediction.shape), prediction))
        return float(r2_score(y.reshape(prediction.shape), prediction))

    def score(self, X, y):
        """Accuracy (subset accuracy for multilabel) or, for regression, R^2."""
        X = self._check_X(X)
        self._check_targets(y, X.shape[0])
        return self._score_of(self._predictions(self._forward(X, output=False)), y)

    # --- loss and gradient --------------------------------------------------------

    def _loss_grad(self, X, Y, sw, alpha, grads):
        """Loss ``J`` on all of validated (X, Y, sw); fills ``grads`` (shape (P,))."""
        n = X.shape[0]
        a_off = block_offsets(self.layer_sizes, n)
        size = int(a_off[-1])
        norms = np.zeros(self.n_layers)
        with thread_limits(self.n_threads, product_work(self.layer_sizes, n)):
            return loss_grad_inplace(
                X, Y, sw, np.arange(n, dtype=np.int64), self.params_, grads,
                self._offsets, self._sizes, np.empty(size, dtype=self.dtype),
                np.empty(size, dtype=self.dtype),
                np.empty(size if self._keeps_input else 0, dtype=self.dtype), a_off,
                np.empty(scratch_size(self.layer_sizes), dtype=self.dtype),
                activations.ACTIVATIONS[self.activation].code,
                losses.LOSSES[self.loss].code, alpha, norms)

    def _mean_loss(self, Z, Y):
        """Mean loss (no L2 term) of the logits ``Z`` against the targets ``Y``."""
        n = Z.shape[0]
        total = losses.loss_delta_inplace(Z, Y, np.ones(n, dtype=self.dtype),
                                          np.arange(n, dtype=np.int64), np.empty_like(Z),
                                          losses.LOSSES[self.loss].code)
        return float(total / n)

    def loss_and_grad(self, X, y, sample_weight=None, alpha=None):
        """Mean loss and its gradient on ``(X, y)`` as one batch; the model is unchanged.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)
        y : array-like
            Targets, as in :meth:`fit`.
        sample_weight : array-like, shape (n_samples,) or None
        alpha : float or None
            L2 penalty; ``None`` uses the last ``fit``'s (0 before any).

        Returns
        -------
        loss : float
            ``sum_i s_i loss_i / S + alpha / (2 S) * sum_l ||W_l||^2``.
        grads : list of (dW, db)
            Per layer, ``dW`` of shape (n_l, n_{l+1}) and ``db`` of shape
            (n_{l+1},): new arrays.
        """
        data = self._prepare(X, y, sample_weight)
        if alpha is None:
            alpha = self._state.config.alpha if self._state is not None else 0.0
        alpha = v.check_float("alpha", alpha, low=0.0)
        grads = np.zeros_like(self.params_)
        loss = self._loss_grad(data.X, data.Y, data.sw, alpha, grads)
        coefs, intercepts = layer_views(grads, self.layer_sizes, self._offsets)
        return float(loss), list(zip(coefs, intercepts))
