#!/usr/bin/env python
"""Side-by-side training throughput: fastbp against PyTorch, JAX and scikit-learn.

Every peer trains the same network (float32, ReLU hidden layers, softmax
cross-entropy, plain SGD) on the same synthetic data, from the same initial
weights, with the same learning rate and the same batch order (no shuffling).
For each case the script reports samples per second per peer (best of
``--repeat`` timings, each at least ``--min-time`` seconds of training), the
ratio fastbp / peer, and the *roofline*: the time the same matrix products take
in NumPy's BLAS alone (forward ``A @ W``, input deltas ``D @ W.T`` for every
layer but the first, weight gradients ``A.T @ D``), with fastbp's share of it
(roofline time / fastbp time). On the side it checks correctness: after one
epoch from the same weights every peer's training loss and final loss must
agree with fastbp's to float32 tolerance.

Peers that are not installed are skipped with a note. Usage::

    python bench/compare.py                       # every case, every peer
    python bench/compare.py --cases online,wide --repeat 5 --threads 1
    python bench/compare.py --markdown bench/results.md
    python bench/compare.py --sklearn-digits      # the estimators against scikit-learn's
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/compare.py

Timings of different peers are interleaved (repeat 1 of every peer, then
repeat 2, ...) with a short pause between them, so that load from other
processes and the spinning worker threads of the previous peer's thread pool
hit every peer alike. Quote ratios from one run, not absolute numbers from
different runs.

This module is also imported by the asv suite (``bench/benchmarks.py``) and by
``tests/test_bench.py``: it imports only NumPy at module level and defines
no asv-prefixed (``time_``, ``track_``, ``peakmem_``, ``mem_``) names.
"""

import argparse
import datetime
import math
import os
import platform
import sys
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

#: Every peer uses this learning rate.
LR = 0.01
#: Seed of the data and the initial weights.
SEED = 0
#: Fraction of random labels in the synthetic data (see :func:`make_data`).
LABEL_NOISE = 0.3
#: Relative tolerance of the loss agreement after one epoch (float32 arithmetic
#: in different summation orders, accumulated over every step of the epoch).
LOSS_RTOL = 1e-4
#: A median / best timing ratio above this is reported as noise.
NOISY = 1.25
#: CPU load of other processes (cores) above which a timing is reported as contended.
BUSY = 0.2
#: Seconds of pause before each timing (lets the previous thread pool go idle).
SETTLE = 0.2


@dataclass(frozen=True)
class Case:
    """One benchmark case: the network, the batch size and the epoch size."""

    key: str
    title: str
    layers: tuple
    batch: int
    n_samples: int
    #: Samples of the one-epoch correctness check (a prefix of the data).
    n_check: int = 2048

    @property
    def label(self):
        return "-".join(str(s) for s in self.layers)


#: The cases of the comparison, by key (``--cases``). ``n_samples`` is a
#: multiple of the batch size, sized so one epoch of the slowest peer is about
#: 0.3 s; faster peers train more epochs per timing.
CASES = {
    "online": Case("online", "online SGD", (64, 32, 10), 1, 4096),
    "small": Case("small", "small batch", (64, 32, 10), 16, 32768),
    "mnist32": Case("mnist32", "MNIST-shaped", (784, 256, 128, 10), 32, 8192),
    "mnist128": Case("mnist128", "MNIST-shaped", (784, 256, 128, 10), 128, 16384),
    "wide": Case("wide", "wide", (1024, 1024, 1024, 10), 256, 4096),
}


# --- data and weights ---------------------------------------------------------------

def make_data(layers, n_samples, seed=SEED, label_noise=LABEL_NOISE):
    """Synthetic float32 inputs and integer labels 0..k-1 from a random linear teacher.

    A fraction ``label_noise`` of the labels is replaced by random classes, so
    that no network can fit the data exactly: however many epochs a benchmark
    trains, the loss and the gradients stay in the range of real training
    (a perfectly fitted network has vanishing gradients whose subnormal
    floats slow some arithmetic several-fold).

    Returns
    -------
    X : ndarray of float32, shape (n_samples, layers[0]), C-contiguous
    y : ndarray of int64, shape (n_samples,)
    """
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_samples, layers[0]), dtype=np.float32)
    teacher = rng.standard_normal((layers[0], layers[-1])).astype(np.float32)
    y = np.argmax(X @ teacher, axis=1).astype(np.int64)
    noisy = rng.random(n_samples) < label_noise
    y[noisy] = rng.integers(0, layers[-1], int(noisy.sum()))
    return X, y


def make_weights(layers, seed=SEED):
    """He-normal float32 weights (shape ``(n_in, n_out)``) and small random biases."""
    rng = np.random.default_rng(seed + 1)
    coefs, intercepts = [], []
    for n_in, n_out in zip(layers[:-1], layers[1:]):
        coefs.append((rng.standard_normal((n_in, n_out)) * math.sqrt(2.0 / n_in))
                     .astype(np.float32))
        intercepts.append((0.01 * rng.standard_normal(n_out)).astype(np.float32))
    return coefs, intercepts


def reference_loss(coefs, intercepts, X, y):
    """Mean softmax cross-entropy of the network on ``(X, y)``, in float64."""
    h = X.astype(np.float64)
    for i, (W, b) in enumerate(zip(coefs, intercepts)):
        h = h @ np.asarray(W, dtype=np.float64) + np.asarray(b, dtype=np.float64)
        if i < len(coefs) - 1:
            np.maximum(h, 0.0, out=h)
    h -= h.max(axis=1, keepdims=True)
    logp = h - np.log(np.exp(h).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(y.size), y].mean())


# --- peers --------------------------------------------------------------------------

class Peer:
    """A trainer under test.

    ``setup`` builds the model from the shared initial weights and compiles
    (warm-up); ``train(epochs)`` is the timed region and returns only when the
    work is done; ``check`` trains one epoch from the initial weights on the
    check data and returns ``(epoch_loss, coefs, intercepts)``.
    """

    name = "?"
    short = "?"

    def setup(self, case, X, y, coefs, intercepts, lr, threads):
        raise NotImplementedError

    def train(self, epochs):
        raise NotImplementedError

    def check(self, X, y, coefs, intercepts):
        raise NotImplementedError

    def reset(self, coefs, intercepts):
        """Put the initial weights back (before every timing: each does the same work)."""

    def close(self):
        """Drop the model and data (frees memory between cases)."""
        self.__dict__.clear()


def fastbp_net(layers, coefs=None, intercepts=None, threads=None):
    """A ``fastbp.MLP`` of the comparison's kind, holding the given weights."""
    import fastbp
    net = fastbp.MLP(list(layers), activation="relu", loss="softmax_cross_entropy",
                     dtype="float32", random_state=SEED, n_threads=threads)
    if coefs is not None:
        net.coefs_ = coefs
        net.intercepts_ = intercepts
    return net


def fastbp_fit_kwargs(batch, lr=LR, epochs=1):
    """``MLP.fit`` arguments of the comparison: plain SGD, no shuffling."""
    return dict(epochs=epochs, batch_size=batch, optimizer="sgd", lr=lr, momentum=0.0,
                shuffle=False)


class FastbpEpochs:
    """Training epochs of a fastbp network on data validated once.

    The constructor builds the network from the given weights and trains one
    epoch with ``fit(..., warm_start=True)`` (this compiles, or loads from
    Numba's cache). Calls then run the model's epoch driver on data validated
    once (``MLP._prepare`` / ``MLP._train``, what ``fit`` runs after
    validation). Without those internals they fall back to one ``partial_fit``
    per epoch; ``via`` says which is used.
    """

    def __init__(self, layers, batch, X, y, coefs, intercepts, lr=LR, threads=None):
        self.X, self.y = X, y
        self.net = fastbp_net(layers, coefs, intercepts, threads)
        self.net.fit(X, y, warm_start=True, **fastbp_fit_kwargs(batch, lr))
        self.data, self.via = None, "partial_fit"
        if hasattr(self.net, "_prepare") and hasattr(self.net, "_train"):
            try:
                data = self.net._prepare(X, y)
                self.net._train(data, 1, None, False)
                self.data, self.via = data, "MLP._train"
            except Exception:   # the internals changed: use the public API
                pass

    def __call__(self, epochs=1):
        if self.data is not None:
            self.net._train(self.data, epochs, None, False)
        else:
            for _ in range(epochs):
                self.net.partial_fit(self.X, self.y)


class FastbpPeer(Peer):
    """``fastbp.MLP`` with ``fit(optimizer="sgd", momentum=0.0, shuffle=False)``,
    timed through :class:`FastbpEpochs`."""

    name, short = "fastbp", "fastbp"

    @staticmethod
    def version():
        import fastbp
        return fastbp.__version__

    def setup(self, case, X, y, coefs, intercepts, lr, threads):
        self.layers, self.batch, self.lr = case.layers, case.batch, lr
        self.threads = threads
        self.epochs = FastbpEpochs(case.layers, case.batch, X, y, coefs, intercepts, lr,
                                   threads)
        self.via = self.epochs.via

    def train(self, epochs):
        self.epochs(epochs)

    def reset(self, coefs, intercepts):
        self.epochs.net.coefs_ = coefs
        self.epochs.net.intercepts_ = intercepts

    def check(self, X, y, coefs, intercepts):
        net = fastbp_net(self.layers, coefs, intercepts, self.threads)
        net.fit(X, y, warm_start=True, **fastbp_fit_kwargs(self.batch, self.lr))
        return net.history_["loss"][-1], list(net.coefs_), list(net.intercepts_)


class TorchPeer(Peer):
    """A PyTorch eager loop: ``nn.Linear`` + ``nn.ReLU``, ``CrossEntropyLoss``,
    ``optim.SGD``."""

    name, short = "PyTorch", "torch"

    @staticmethod
    def version():
        import torch
        return torch.__version__

    def _model(self, coefs, intercepts):
        import torch
        from torch import nn
        modules = []
        for i, (W, b) in enumerate(zip(coefs, intercepts)):
            linear = nn.Linear(W.shape[0], W.shape[1])
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(W.T)))
                linear.bias.copy_(torch.from_numpy(b))
            modules.append(linear)
            if i < len(coefs) - 1:
                modules.append(nn.ReLU())
        model = nn.Sequential(*modules)
        return model, torch.optim.SGD(model.parameters(), lr=self.lr, momentum=0.0)

    def _batches(self, X, y):
        import torch
        return list(zip(torch.from_numpy(X).split(self.batch),
                        torch.from_numpy(y).split(self.batch)))

    def _epoch(self, model, optimizer, batches, track=False):
        criterion = self.criterion
        total = 0.0
        for xb, yb in batches:
            loss = criterion(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if track:
                total += loss.item() * xb.shape[0]
        return total

    def setup(self, case, X, y, coefs, intercepts, lr, threads):
        import torch
        torch.set_num_threads(threads)
        self.batch, self.lr = case.batch, lr
        self.criterion = torch.nn.CrossEntropyLoss()
        self.model, self.optimizer = self._model(coefs, intercepts)
        self.batches = self._batches(X, y)
        self._epoch(self.model, self.optimizer, self.batches[:8])    # warm-up

    def train(self, epochs):
        for _ in range(epochs):
            self._epoch(self.model, self.optimizer, self.batches)

    def reset(self, coefs, intercepts):
        import torch
        linears = [m for m in self.model if hasattr(m, "weight")]
        with torch.no_grad():
            for m, W, b in zip(linears, coefs, intercepts):
                m.weight.copy_(torch.from_numpy(np.ascontiguousarray(W.T)))
                m.bias.copy_(torch.from_numpy(b))

    def check(self, X, y, coefs, intercepts):
        model, optimizer = self._model(coefs, intercepts)
        total = self._epoch(model, optimizer, self._batches(X, y), track=True)
        linears = [m for m in model if hasattr(m, "weight")]
        return (total / X.shape[0], [m.weight.detach().numpy().T.copy() for m in linears],
                [m.bias.detach().numpy().copy() for m in linears])


class JaxPeer(Peer):
    """JAX: one jit-compiled ``lax.scan`` over the epoch's mini-batches (plain SGD)."""

    name, short = "JAX", "jax"

    @staticmethod
    def version():
        import jax
        return jax.__version__

    def _compile(self, n_layers, lr):
        import jax
        import jax.numpy as jnp

        def loss_fn(params, xb, yb):
            h = xb
            for i, (W, b) in enumerate(params):
                h = h @ W + b
                if i < n_layers - 1:
                    h = jax.nn.relu(h)
            logp = jax.nn.log_softmax(h)
            return -jnp.mean(jnp.take_along_axis(logp, yb[:, None], axis=1))

        def step(params, batch):
            loss, grads = jax.value_and_grad(loss_fn)(params, *batch)
            return jax.tree_util.tree_map(lambda p, g: p - lr * g, params, grads), loss

        def epoch(params, Xb, Yb):
            params, losses = jax.lax.scan(step, params, (Xb, Yb))
            return params, jnp.mean(losses)

        return jax.jit(epoch)

    def _device_data(self, X, y):
        import jax.numpy as jnp
        nb = X.shape[0] // self.batch
        return (jnp.asarray(X.reshape(nb, self.batch, X.shape[1])),
                jnp.asarray(y.reshape(nb, self.batch).astype(np.int32)))

    @staticmethod
    def _params(coefs, intercepts):
        import jax.numpy as jnp
        return tuple((jnp.asarray(W), jnp.asarray(b)) for W, b in zip(coefs, intercepts))

    def setup(self, case, X, y, coefs, intercepts, lr, threads):
        import jax
        if X.shape[0] % case.batch:
            raise ValueError("the JAX peer needs n_samples to be a multiple of the batch")
        self.batch = case.batch
        self.epoch = self._compile(len(coefs), lr)
        self.Xb, self.Yb = self._device_data(X, y)
        self.params = self._params(coefs, intercepts)
        self.params, loss = self.epoch(self.params, self.Xb, self.Yb)   # compiles
        jax.block_until_ready((self.params, loss))

    def train(self, epochs):
        import jax
        params = self.params
        for _ in range(epochs):
            params, loss = self.epoch(params, self.Xb, self.Yb)
        jax.block_until_ready((params, loss))
        self.params = params

    def reset(self, coefs, intercepts):
        import jax
        self.params = jax.block_until_ready(self._params(coefs, intercepts))

    def check(self, X, y, coefs, intercepts):
        params, loss = self.epoch(self._params(coefs, intercepts), *self._device_data(X, y))
        return (float(loss), [np.asarray(W) for W, _ in params],
                [np.asarray(b) for _, b in params])


class SklearnPeer(Peer):
    """scikit-learn ``MLPClassifier(solver="sgd", momentum=0, shuffle=False)``, one
    ``partial_fit`` per epoch."""

    name, short = "scikit-learn", "sklearn"

    @staticmethod
    def version():
        import sklearn
        return sklearn.__version__

    def _model(self, coefs, intercepts, X, y):
        from sklearn.neural_network import MLPClassifier
        clf = MLPClassifier(hidden_layer_sizes=tuple(self.layers[1:-1]), activation="relu",
                            solver="sgd", alpha=0.0, batch_size=self.batch,
                            learning_rate="constant", learning_rate_init=self.lr,
                            momentum=0.0, nesterovs_momentum=False, max_iter=1,
                            shuffle=False, random_state=SEED)
        # the first partial_fit initialises; then the weights are overwritten in
        # place (the optimizer holds references to these very arrays)
        clf.partial_fit(X[:self.batch], y[:self.batch], classes=np.arange(self.layers[-1]))
        for dst, src in zip(clf.coefs_ + clf.intercepts_, list(coefs) + list(intercepts)):
            dst[...] = src
        return clf

    def setup(self, case, X, y, coefs, intercepts, lr, threads):
        self.layers, self.batch, self.lr = case.layers, case.batch, lr
        self.X, self.y = X, y
        self.clf = self._model(coefs, intercepts, X, y)
        self.clf.partial_fit(X[:8 * self.batch], y[:8 * self.batch])   # warm-up

    def train(self, epochs):
        for _ in range(epochs):
            self.clf.partial_fit(self.X, self.y)

    def reset(self, coefs, intercepts):
        for dst, src in zip(self.clf.coefs_ + self.clf.intercepts_,
                            list(coefs) + list(intercepts)):
            dst[...] = src

    def check(self, X, y, coefs, intercepts):
        clf = self._model(coefs, intercepts, X, y)
        clf.partial_fit(X, y)
        return (clf.loss_, [W.copy() for W in clf.coefs_],
                [b.copy() for b in clf.intercepts_])


class Roofline(Peer):
    """The epoch's matrix products alone, in NumPy's BLAS (float32, ``out=``).

    Per batch: forward ``A_l @ W_l`` for every layer, input deltas
    ``D_l @ W_l.T`` for every layer but the first, weight gradients
    ``A_l.T @ D_l`` for every layer. Arrays are allocated once; the first
    layer's ``A`` is the batch's rows of ``X``.
    """

    name, short = "BLAS roofline", "roofline"

    @staticmethod
    def version():
        return np.__version__

    def setup(self, case, X, y, coefs, intercepts, lr, threads):
        bs, layers = case.batch, case.layers
        rng = np.random.default_rng(SEED)
        self.X, self.batch = X, bs
        self.W = [np.ascontiguousarray(W) for W in coefs]
        self.A = [None] + [rng.standard_normal((bs, n), dtype=np.float32)
                           for n in layers[1:-1]]
        self.Z = [np.empty((bs, n), dtype=np.float32) for n in layers[1:]]
        self.D = [rng.standard_normal((bs, n), dtype=np.float32) for n in layers[1:]]
        self.Dprev = [np.empty((bs, n), dtype=np.float32) for n in layers[:-1]]
        self.G = [np.empty_like(W) for W in coefs]
        self.train(1)

    def train(self, epochs):
        matmul, X, bs = np.matmul, self.X, self.batch
        W, A, Z, D, Dprev, G = self.W, self.A, self.Z, self.D, self.Dprev, self.G
        n_layers = len(W)
        for _ in range(epochs):
            for lo in range(0, X.shape[0] - bs + 1, bs):
                A[0] = X[lo:lo + bs]
                for layer in range(n_layers):
                    matmul(A[layer], W[layer], out=Z[layer])
                for layer in range(n_layers - 1, -1, -1):
                    if layer > 0:
                        matmul(D[layer], W[layer].T, out=Dprev[layer])
                    matmul(A[layer].T, D[layer], out=G[layer])

    def check(self, X, y, coefs, intercepts):
        return None


class ScipyRoofline(Roofline):
    """The same products in SciPy's BLAS (``scipy.linalg.blas.sgemm``), the library
    fastbp's kernels call through Numba. Row-major products are computed as
    column-major ones on transposed views, written in place (no copies)."""

    name, short = "BLAS roofline (SciPy)", "roofline_scipy"

    @staticmethod
    def version():
        import scipy
        return scipy.__version__

    def setup(self, case, X, y, coefs, intercepts, lr, threads):
        from scipy.linalg.blas import sgemm
        self.sgemm = sgemm
        super().setup(case, X, y, coefs, intercepts, lr, threads)
        # the in-place contract this relies on: results land in the given arrays
        bs, W = self.batch, self.W
        A0 = X[:bs]
        expect = (A0 @ W[0], self.D[0].T @ A0)
        self.train(1, stop=bs)
        for got, want in zip((self.Z[0], self.G[0].T), expect):
            if not np.allclose(got, want, rtol=1e-3, atol=1e-3):
                raise RuntimeError("scipy.linalg.blas.sgemm did not write in place")

    def train(self, epochs, stop=None):
        sgemm, X, bs = self.sgemm, self.X, self.batch
        W, A, Z, D, Dprev, G = self.W, self.A, self.Z, self.D, self.Dprev, self.G
        n_layers = len(W)
        stop = X.shape[0] - bs + 1 if stop is None else stop
        for _ in range(epochs):
            for lo in range(0, stop, bs):
                A[0] = X[lo:lo + bs]
                for layer in range(n_layers):
                    # Z = A @ W   <=>   Z.T = W.T @ A.T (column-major)
                    sgemm(1.0, W[layer].T, A[layer].T, 0.0, Z[layer].T, overwrite_c=1)
                for layer in range(n_layers - 1, -1, -1):
                    if layer > 0:
                        # Dprev = D @ W.T   <=>   Dprev.T = W @ D.T
                        sgemm(1.0, W[layer].T, D[layer].T, 0.0, Dprev[layer].T,
                              trans_a=1, overwrite_c=1)
                    # G = A.T @ D   <=>   G.T = D.T @ A
                    sgemm(1.0, D[layer].T, A[layer].T, 0.0, G[layer].T, trans_b=1,
                          overwrite_c=1)


PEERS = {"fastbp": FastbpPeer, "torch": TorchPeer, "jax": JaxPeer, "sklearn": SklearnPeer}
PEER_MODULES = {"fastbp": "fastbp", "torch": "torch", "jax": "jax", "sklearn": "sklearn"}


# --- running ------------------------------------------------------------------------

@dataclass
class Result:
    """Measurements of one case."""

    case: Case
    #: peer short name -> samples per second (best timing)
    rate: dict = field(default_factory=dict)
    #: peer short name -> epochs per timing
    epochs: dict = field(default_factory=dict)
    #: peer short name -> (epoch loss, final loss) after one epoch on the check data
    loss: dict = field(default_factory=dict)
    #: peer short name -> why it was skipped or failed
    notes: dict = field(default_factory=dict)
    #: peer short name -> every timing's seconds
    timings: dict = field(default_factory=dict)
    #: peer short name -> CPU load (cores) of other processes during its best timing
    load: dict = field(default_factory=dict)
    #: peer short name -> CPU cores this process kept busy during its best timing
    cores: dict = field(default_factory=dict)

    def other_load(self):
        """Largest load of other processes during a best timing (None if unknown)."""
        values = [v for v in self.load.values() if v is not None]
        return max(values) if values else None

    def spread(self):
        """Largest median / best timing ratio over the peers (1.0: no noise)."""
        return max((float(np.median(t)) / min(t) for t in self.timings.values()),
                   default=1.0)

    def ratio(self, peer):
        """fastbp samples/s over ``peer``'s (None if either is missing)."""
        if "fastbp" in self.rate and peer in self.rate:
            return self.rate["fastbp"] / self.rate[peer]
        return None

    def share(self, roofline="roofline"):
        """roofline time / fastbp time (= fastbp samples/s / roofline samples/s)."""
        return self.ratio(roofline)

    def agrees(self, peer):
        """True/False if ``peer``'s losses match fastbp's; None if not measured."""
        if "fastbp" not in self.loss or peer not in self.loss:
            return None
        return all(math.isclose(a, b, rel_tol=LOSS_RTOL)
                   for a, b in zip(self.loss[peer], self.loss["fastbp"]))


def available_peers(names, notes):
    """The peer classes among ``names`` whose library imports; the rest go to ``notes``."""
    import importlib
    found = {}
    for name in names:
        try:
            importlib.import_module(PEER_MODULES[name])
        except Exception as exc:   # not installed, or broken
            notes[name] = f"{PEERS[name].name} skipped: {type(exc).__name__}: {exc}"
            continue
        found[name] = PEERS[name]
    return found


def configure_threads(threads):
    """Thread settings that must precede the peers' imports (JAX reads XLA_FLAGS once)."""
    if threads == 1 and "jax" not in sys.modules:
        flags = os.environ.get("XLA_FLAGS", "")
        if "intra_op_parallelism_threads" not in flags:
            os.environ["XLA_FLAGS"] = (flags + " --xla_cpu_multi_thread_eigen=false "
                                       "intra_op_parallelism_threads=1").strip()


def _cpu_ticks():
    """``(busy ticks of the whole machine, ticks of this process)``, or None off Linux.

    Busy includes steal time (the hypervisor running someone else).
    """
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        with open("/proc/self/stat") as f:
            own = f.read().rsplit(")", 1)[1].split()
    except (OSError, ValueError, IndexError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)   # idle + iowait
    busy = sum(fields[:8]) - idle                                # up to steal
    return busy, int(own[11]) + int(own[12])                    # utime + stime


def _timed(fn, *args):
    """``(seconds, other_load, own_cores)`` of ``fn(*args)``: its wall time, the CPU
    load of everything else on the machine meanwhile and this process's own load
    (its busy threads), both in cores (None if unknown)."""
    before = _cpu_ticks()
    start = time.perf_counter()
    fn(*args)
    elapsed = time.perf_counter() - start
    after = _cpu_ticks()
    if before is None or after is None or elapsed <= 0:
        return elapsed, None, None
    tick = os.sysconf("SC_CLK_TCK") * elapsed
    own = after[1] - before[1]
    other = (after[0] - before[0]) - own
    return elapsed, max(0.0, other / tick), own / tick


def run_case(case, peer_classes, repeat=5, min_time=0.3, threads=1, check=True,
             roofline=True, settle=SETTLE, log=None):
    """Set up every peer on ``case``, check losses, and time them interleaved."""
    from threadpoolctl import threadpool_limits

    result = Result(case)
    X, y = make_data(case.layers, case.n_samples)
    coefs, intercepts = make_weights(case.layers)
    peers = {}
    with threadpool_limits(limits=threads, user_api="blas"):
        classes = dict(peer_classes)
        if roofline:
            classes["roofline"] = Roofline
            classes["roofline_scipy"] = ScipyRoofline
        for key, cls in classes.items():
            peer = cls()
            try:
                start = time.perf_counter()
                peer.setup(case, X, y, coefs, intercepts, LR, threads)
                if log:
                    log(f"  {cls.name}: set up and warmed up in "
                        f"{time.perf_counter() - start:.1f} s")
            except Exception as exc:
                result.notes[key] = f"{cls.name} failed on {case.key}: {exc!r}"
                continue
            peers[key] = peer
            if getattr(peer, "via", "MLP._train") != "MLP._train":
                result.notes[key + "-via"] = (f"{cls.name} timed through {peer.via} "
                                              "(its epoch driver was not found)")

        if check:
            Xc, yc = X[:case.n_check], y[:case.n_check]
            for key, peer in peers.items():
                if key.startswith("roofline"):
                    continue
                try:
                    epoch_loss, c, b = peer.check(Xc, yc, coefs, intercepts)
                    result.loss[key] = (float(epoch_loss), reference_loss(c, b, Xc, yc))
                except Exception as exc:
                    result.notes[key] = f"{peer.name} check failed on {case.key}: {exc!r}"

        # calibrate: epochs per timing so that each timing is >= min_time
        for key, peer in peers.items():
            peer.reset(coefs, intercepts)
            one = max(_timed(peer.train, 1)[0], 1e-6)
            result.epochs[key] = max(1, min(10000, math.ceil(min_time / one)))
        result.timings = {key: [] for key in peers}
        loads = {key: [] for key in peers}
        for _ in range(repeat):
            for key, peer in peers.items():
                peer.reset(coefs, intercepts)
                time.sleep(settle)
                seconds, load, own = _timed(peer.train, result.epochs[key])
                result.timings[key].append(seconds)
                loads[key].append((load, own))
        for key in peers:
            best = int(np.argmin(result.timings[key]))
            seconds = result.timings[key][best]
            result.rate[key] = result.epochs[key] * case.n_samples / seconds
            result.load[key], result.cores[key] = loads[key][best]
    for peer in peers.values():
        peer.close()
    return result


def run(cases, peers=("fastbp", "torch", "jax", "sklearn"), repeat=5, min_time=0.3,
        threads=None, check=True, roofline=True, settle=SETTLE, log=print):
    """Run ``cases`` (Case objects); returns ``(results, notes)``."""
    threads = threads or cpu_count()
    configure_threads(threads)
    notes = {}
    peer_classes = available_peers(peers, notes)
    if "fastbp" not in peer_classes:
        raise RuntimeError(notes.get("fastbp", "fastbp is required"))
    for note in notes.values():
        if log:
            log(note)
    results = []
    for case in cases:
        if log:
            log(f"{case.title} {case.label} batch {case.batch}: {case.n_samples} samples")
        results.append(run_case(case, peer_classes, repeat, min_time, threads, check,
                                roofline, settle, log))
    return results, notes


# --- targets ------------------------------------------------------------------------

def targets(results):
    """The performance targets: list of ``(case, target, value, passed)``.

    ``passed`` is None when a peer the target needs was not measured.
    """
    rows = []
    peers = ("torch", "jax", "sklearn")
    for r in results:
        k = r.case.key
        fast = r.rate.get("fastbp")
        peer_rates = [r.rate[p] for p in peers if p in r.rate]
        goals = []
        if peer_rates:
            fastest = max((p for p in peers if p in r.rate), key=lambda p: r.rate[p])
            goal = 1.1 * r.rate[fastest]
            if "roofline" in r.rate and 0.95 * r.rate["roofline"] < goal:
                goals.append(("≥ 95% of roofline (lower than 1.1x fastest peer)",
                              f"{r.share():.0%} ({r.ratio(fastest):.2f}x "
                              f"{PEERS[fastest].name})", fast >= 0.95 * r.rate["roofline"]))
            else:
                goals.append((f"≥ 1.1x fastest peer ({PEERS[fastest].name})",
                              f"{r.ratio(fastest):.2f}x", fast >= goal))
        else:
            goals.append(("≥ 1.1x fastest peer", "no peer measured", None))
        if k == "online":
            goals.append(_ratio_goal(r, "torch", 100.0))
            goals.append(_ratio_goal(r, "jax", 1.3))
        if k == "small":
            goals.append(_ratio_goal(r, "jax", 1.5))
        if k in ("mnist128", "wide"):
            share = r.share()
            goals.append(("≥ 85% of roofline", "n/a" if share is None else f"{share:.0%}",
                          None if share is None else share >= 0.85))
        rows.extend((r.case, text, value, ok) for text, value, ok in goals)
    return rows


def _ratio_goal(r, peer, factor):
    ratio = r.ratio(peer)
    text = f"≥ {factor:g}x {PEERS[peer].name}"
    return text, ("n/a" if ratio is None else f"{ratio:.2f}x"), \
        (None if ratio is None else ratio >= factor)


# --- reporting ----------------------------------------------------------------------

def _rate(x):
    if x is None:
        return "-"
    if x >= 1e6:
        return f"{x / 1e6:.2f}M"
    if x >= 1e4:
        return f"{x / 1e3:.0f}k"
    if x >= 1e3:
        return f"{x / 1e3:.1f}k"
    return f"{x:.0f}"


def _mark(ok):
    return "-" if ok is None else ("✓" if ok else "✗")


def throughput_rows(results):
    """Header and rows of the main table (strings)."""
    header = ["case", "layers", "batch", "fastbp", "PyTorch", "fastbp/PyTorch", "JAX",
              "fastbp/JAX", "sklearn", "fastbp/sklearn", "roofline", "roofline share",
              "roofline (SciPy BLAS)", "share (SciPy)", "loss = PyTorch", "other load"]
    rows = []
    for r in results:
        row = [r.case.title, r.case.label, str(r.case.batch), _rate(r.rate.get("fastbp"))]
        for p in ("torch", "jax", "sklearn"):
            ratio = r.ratio(p)
            row += [_rate(r.rate.get(p)), "-" if ratio is None else f"{ratio:.2f}x"]
        for roofline in ("roofline", "roofline_scipy"):
            share = r.share(roofline)
            row += [_rate(r.rate.get(roofline)), "-" if share is None else f"{share:.0%}"]
        row.append(_mark(r.agrees("torch")))
        load = r.other_load()
        row.append("-" if load is None else f"{load:.2f}")
        rows.append(row)
    return header, rows


def check_rows(results):
    """Per peer: loss agreement with fastbp (relative difference) and cores used."""
    header = ["case", "batch", "fastbp epoch loss", "fastbp final loss", "PyTorch",
              "JAX", "sklearn", "cores used: fastbp/PyTorch/JAX/sklearn/rooflines"]
    rows = []
    for r in results:
        fb = r.loss.get("fastbp")
        row = [r.case.title, str(r.case.batch),
               "-" if fb is None else f"{fb[0]:.6f}", "-" if fb is None else f"{fb[1]:.6f}"]
        for p in ("torch", "jax", "sklearn"):
            if p in r.loss and fb is not None:
                diff = max(abs(a - b) / abs(b) for a, b in zip(r.loss[p], fb))
                row.append(f"{_mark(r.agrees(p))} {diff:.1e}")
            else:
                row.append("-")
        row.append(" / ".join("-" if r.cores.get(p) is None else f"{r.cores[p]:.1f}"
                              for p in ("fastbp", "torch", "jax", "sklearn", "roofline",
                                        "roofline_scipy")))
        rows.append(row)
    return header, rows


def target_rows(results):
    header = ["case", "batch", "target", "value", "pass"]
    return header, [[c.title, str(c.batch), text, value, _mark(ok)]
                    for c, text, value, ok in targets(results)]


def format_text(header, rows):
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h)
              for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows]
    return "\n".join(lines)


def format_markdown(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_count():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def blas_info():
    """One line per loaded BLAS/OpenMP library: what threadpoolctl sees."""
    from threadpoolctl import threadpool_info
    lines = []
    for lib in threadpool_info():
        lines.append(f"{lib.get('internal_api')} {lib.get('version')} "
                     f"kernel={lib.get('architecture', '-')} "
                     f"threads={lib.get('num_threads')} "
                     f"({os.path.basename(lib.get('filepath', ''))})")
    return lines


def _limited_blas_info(threads):
    from threadpoolctl import threadpool_limits
    with threadpool_limits(limits=threads, user_api="blas"):
        return blas_info()


def environment(threads, peers):
    """Date, machine and versions, as ``(label, value)`` pairs."""
    import importlib
    versions = [f"Python {platform.python_version()}", f"NumPy {np.__version__}"]
    for mod, label in (("numba", "Numba"), ("scipy", "SciPy")):
        try:
            versions.append(f"{label} {importlib.import_module(mod).__version__}")
        except Exception:
            pass
    for key, cls in PEERS.items():
        if key in peers:
            versions.append(fastbp_source() if key == "fastbp"
                            else f"{cls.name} {cls.version()}")
    env = " ".join(f"{v}={os.environ[v]}" for v in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE",
                                                    "OMP_NUM_THREADS") if v in os.environ)
    return [("date", datetime.datetime.now().strftime("%Y-%m-%d %H:%M")),
            ("cpu", f"{cpu_model()}, {cpu_count()} cores ({platform.machine()})"),
            ("threads", str(threads)),
            ("versions", ", ".join(versions)),
            ("BLAS", "; ".join(_limited_blas_info(threads))),
            ("environment", env or "OPENBLAS_CORETYPE, OPENBLAS_L2_SIZE unset")]


TABLE_NOTE = ("samples/s, best of {repeat} timings of >= {min_time:g} s each; ratios are "
              "fastbp / peer (> 1: fastbp faster); roofline: NumPy BLAS time of the same "
              "matrix products alone (at small batches it is bound by NumPy's per-call "
              "overhead, not by BLAS), share = roofline time / fastbp time; roofline "
              "(SciPy BLAS): the same in the BLAS that fastbp calls (SciPy's OpenBLAS, "
              "through scipy.linalg.blas.sgemm), which may be another version than "
              "NumPy's; "
              "loss = PyTorch: both losses after one epoch from the same weights agree to "
              "rtol {rtol:g}; other load: CPU cores used by other processes during the "
              "best timings (above {busy:g} the numbers are suspect).")


def _name(case):
    return f"{case.title} ({case.label}, batch {case.batch})"


def report(results, notes, env, repeat, min_time, command):
    """The full text report and its markdown version."""
    tables = [("Training throughput", throughput_rows(results)),
              ("Checks: losses after one epoch from the same weights (relative difference "
               "to fastbp), CPU cores busy during the best timings", check_rows(results)),
              ("Targets", target_rows(results))]
    note = TABLE_NOTE.format(repeat=repeat, min_time=min_time, rtol=LOSS_RTOL, busy=BUSY)
    extra = list(notes.values()) + [n for r in results for n in r.notes.values()]
    extra += [f"noisy: {_name(r.case)}: a peer's median timing is {r.spread():.2f}x its "
              "best; rerun with a larger --repeat" for r in results if r.spread() > NOISY]
    extra += [f"contended: {_name(r.case)}: other processes used {r.other_load():.2f} "
              "cores during a best timing; rerun on a quiet machine"
              for r in results if (r.other_load() or 0.0) > BUSY]
    text = [f"{label}: {value}" for label, value in env]
    md = [f"Measured with `{command}`.", ""] + [f"- **{label}**: {value}"
                                                  for label, value in env]
    for title, (header, rows) in tables:
        text += ["", title, format_text(header, rows)]
        md += ["", f"**{title}**", "", format_markdown(header, rows)]
    text += ["", note]
    md += ["", note]
    if extra:
        text += [""] + extra
        md += [""] + [f"- {n}" for n in extra]
    return "\n".join(text), "\n".join(md) + "\n"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default=",".join(CASES),
                        help=f"comma-separated subset of {','.join(CASES)}")
    parser.add_argument("--peers", default="torch,jax,sklearn",
                        help="comma-separated subset of torch,jax,sklearn "
                             "(fastbp always runs)")
    parser.add_argument("--repeat", type=int, default=5,
                        help="timings per peer; the best counts")
    parser.add_argument("--min-time", type=float, default=0.3,
                        help="minimum seconds per timing (more epochs if needed)")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for every peer (default: every CPU)")
    parser.add_argument("--no-check", action="store_true", help="skip the loss check")
    parser.add_argument("--no-roofline", action="store_true", help="skip the BLAS roofline")
    parser.add_argument("--markdown", metavar="PATH",
                        help="also write the tables as markdown")
    parser.add_argument("--sklearn-digits", action="store_true",
                        help="instead, fastbp.MLPClassifier against scikit-learn's on the "
                             "digits (bench/sklearn_digits.py with --repeat and --threads)")
    return parser.parse_args(argv)


def _options(argv):
    """The command-line options that shape the results (not where they are written)."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--markdown":
            skip = True
        elif not arg.startswith("--markdown="):
            kept.append(arg)
    return kept


def fastbp_source():
    """``fastbp VERSION`` and, when it is imported from a git checkout, its commit."""
    import subprocess
    import fastbp
    where = os.path.dirname(os.path.abspath(fastbp.__file__))
    text = f"fastbp {fastbp.__version__}"
    try:
        top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=where,
                             capture_output=True, text=True, timeout=10)
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=where,
                                capture_output=True, text=True, timeout=10)
        in_checkout = top.returncode == 0 and os.path.samefile(
            top.stdout.strip(), os.path.dirname(where))
        if in_checkout and commit.returncode == 0:
            changed = subprocess.run(["git", "status", "--porcelain", "--", "."], cwd=where,
                                     capture_output=True, text=True, timeout=10).stdout
            text += f" (commit {commit.stdout.strip()}{', changed' if changed else ''})"
    except (OSError, subprocess.SubprocessError):
        pass
    return text


def main(argv=None):
    args = parse_args(argv)
    if args.sklearn_digits:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import sklearn_digits
        sklearn_digits.main(["--repeat", str(args.repeat)]
                            + (["--threads", str(args.threads)] if args.threads else []))
        return
    keys = [k.strip() for k in args.cases.split(",") if k.strip()]
    unknown = [k for k in keys if k not in CASES]
    if unknown:
        sys.exit(f"unknown case(s) {unknown}; choose from {list(CASES)}")
    peers = ["fastbp"] + [p.strip() for p in args.peers.split(",")
                          if p.strip() and p.strip() != "fastbp"]
    bad = [p for p in peers if p not in PEERS]
    if bad:
        sys.exit(f"unknown peer(s) {bad}; choose from {list(PEERS)}")
    threads = args.threads or cpu_count()
    warnings.filterwarnings("ignore", category=UserWarning, module="torch")
    command = " ".join(["python bench/compare.py"] + _options(sys.argv[1:] if argv is None
                                                               else argv))
    start = time.perf_counter()
    results, notes = run([CASES[k] for k in keys], peers, args.repeat, args.min_time,
                         threads, not args.no_check, not args.no_roofline)
    measured = [p for p in peers if p not in notes]
    env = environment(threads, measured)
    text, md = report(results, notes, env, args.repeat, args.min_time, command)
    print()
    print(text)
    print(f"\ntotal {time.perf_counter() - start:.0f} s")
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(md)
        print(f"markdown written to {args.markdown}")


if __name__ == "__main__":
    # run as a script from a checkout: measure this checkout's fastbp, not an
    # installed copy that may be of another version
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    main()
