"""asv benchmarks of fastbp: training epochs, inference, memory and compile time.

The cases are those of ``bench/compare.py`` (float32, ReLU, softmax
cross-entropy, plain SGD, no shuffling) with smaller epochs, so that a quick
run stays quick, and the scikit-learn estimator on the digits with the
settings of ``bench/sklearn_digits.py`` (``TimeSklearnDigits``). Building the network, generating the data and compiling
happen in ``setup``; the timed functions run one training epoch (or one
inference pass) on data validated once. Compile time is measured on purpose,
in fresh interpreters (``TrackCompile``).
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
import warnings
from dataclasses import replace

from . import compare, sklearn_digits

#: Benchmark cases by key: compare.py's cases with asv-sized epochs (about
#: 10-100 ms each).
CASES = {
    "online": replace(compare.CASES["online"], n_samples=2048),
    "small": replace(compare.CASES["small"], n_samples=16384),
    "mnist32": replace(compare.CASES["mnist32"], n_samples=4096),
    "mnist128": replace(compare.CASES["mnist128"], n_samples=8192),
    "wide": replace(compare.CASES["wide"], n_samples=2048),
}

#: Epochs after which the online case fits its noise-free data (TimeEpochFitted).
FITTED_EPOCHS = 60

#: Epochs of each fit of ``TimeSklearnDigits``.
DIGITS_EPOCHS = 5

#: Rows of the inference benchmarks.
PREDICT_ROWS = 10_000

#: The fresh interpreter of the compile-time benchmarks: imports fastbp,
#: trains one epoch with ``fit``'s defaults, then says so.
FIRST_EPOCH_SCRIPT = """
import numpy as np
import fastbp
rng = np.random.default_rng(0)
X = rng.standard_normal((512, 64), dtype=np.float32)
y = rng.integers(0, 10, 512)
fastbp.MLP([64, 32, 10], activation="relu", loss="softmax_cross_entropy",
           dtype="float32", random_state=0).fit(X, y, epochs=1, batch_size=32)
print("first epoch done", flush=True)
"""


def make_net(case, threads=None):
    """A fastbp network of ``case``'s shape with compare.py's initial weights."""
    return compare.fastbp_net(case.layers, *compare.make_weights(case.layers),
                              threads=threads)


def fit_kwargs(case, epochs=1):
    return compare.fastbp_fit_kwargs(case.batch, epochs=epochs)


def epoch_runner(case, threads=None):
    """``run(epochs=1)`` trains ``case``'s network on its data (compiled already)."""
    X, y = compare.make_data(case.layers, case.n_samples)
    return compare.FastbpEpochs(case.layers, case.batch, X, y,
                                *compare.make_weights(case.layers), threads=threads)


def best_seconds(fn, repeat=3, min_time=0.05):
    """Best seconds per call of ``fn()``: ``repeat`` rounds of enough calls to last
    ``min_time``."""
    start = time.perf_counter()
    fn()
    once = max(time.perf_counter() - start, 1e-9)
    number = max(1, int(min_time / once))
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - start) / number)
    return best


def first_epoch_seconds(cache_dir=None):
    """Seconds from starting a fresh interpreter to the end of its first epoch.

    ``cache_dir`` becomes ``NUMBA_CACHE_DIR`` (None: the default cache). The
    child imports the same fastbp as this process.
    """
    import fastbp
    env = dict(os.environ)
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = cache_dir
    root = os.path.dirname(os.path.dirname(os.path.abspath(fastbp.__file__)))
    env["PYTHONPATH"] = os.pathsep.join([root] + ([env["PYTHONPATH"]]
                                                  if env.get("PYTHONPATH") else []))
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-c", FIRST_EPOCH_SCRIPT], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = child.stdout.readline()
    elapsed = time.perf_counter() - start
    _, err = child.communicate()
    if child.returncode != 0 or not line.startswith("first epoch done"):
        raise RuntimeError(f"the first-epoch child failed ({child.returncode}): {err}")
    return elapsed


class TimeEpoch:
    """One training epoch (all mini-batches: forward, backward, SGD update)."""

    params = [list(CASES)]
    param_names = ["case"]
    timeout = 300

    def setup(self, key):
        self.run = epoch_runner(CASES[key])

    def time_epoch(self, key):
        self.run()

    def track_samples_per_sec(self, key):
        return CASES[key].n_samples / best_seconds(self.run)

    track_samples_per_sec.unit = "samples/s"


class TimeEpochFitted:
    """One online-SGD epoch of a network that already fits its (noise-free) data.

    Its softmax outputs underflow into subnormal floats, which the CPU processes
    many times slower unless the kernels flush them to zero; compare with
    ``TimeEpoch.time_epoch('online')`` (half the samples, noisy labels).
    """

    timeout = 300

    def setup(self):
        case = compare.CASES["online"]
        X, y = compare.make_data(case.layers, case.n_samples, label_noise=0.0)
        self.run = compare.FastbpEpochs(case.layers, case.batch, X, y,
                                        *compare.make_weights(case.layers))
        self.run(FITTED_EPOCHS)

    def time_epoch_fitted(self):
        self.run()


class TimePartialFit:
    """``partial_fit``: one epoch through the public API (validation included)."""

    params = [["online", "mnist128"]]
    param_names = ["case"]

    def setup(self, key):
        self.run = epoch_runner(CASES[key])

    def time_partial_fit(self, key):
        self.run.net.partial_fit(self.run.X, self.run.y)


class TimeSklearnDigits:
    """``fastbp.MLPClassifier.fit`` on the digits, ``DIGITS_EPOCHS`` epochs exactly,
    with scikit-learn's defaults (Adam, batches of 200) and with ``solver="sgd",
    batch_size=1``; and its speed-up over scikit-learn's ``MLPClassifier`` in
    the same process, a ratio that the load of the machine affects less than a
    time."""

    params = [list(sklearn_digits.SETTINGS)]
    param_names = ["setting"]
    timeout = 300

    def setup(self, key):
        warnings.simplefilter("ignore")   # ConvergenceWarning: max_iter is reached
        self.X, _, self.y, _ = sklearn_digits.digits_split()
        self.settings = sklearn_digits.fixed_epochs(sklearn_digits.SETTINGS[key][1],
                                                    DIGITS_EPOCHS)
        self.fit_with("fastbp")   # compiles

    def fit_with(self, library):
        """One fit with ``library``'s estimator ("fastbp" or "sklearn")."""
        if library == "fastbp":
            from fastbp import MLPClassifier
        else:
            from sklearn.neural_network import MLPClassifier
        return MLPClassifier(**self.settings, random_state=0).fit(self.X, self.y)

    def time_fit(self, key):
        self.fit_with("fastbp")

    def track_speedup_over_sklearn(self, key):
        fastbp_seconds = best_seconds(lambda: self.fit_with("fastbp"), repeat=3)
        sklearn_seconds = best_seconds(lambda: self.fit_with("sklearn"), repeat=2)
        return sklearn_seconds / fastbp_seconds

    track_speedup_over_sklearn.unit = "x"


class TimePredict:
    """Inference: ``predict`` on 10,000 rows."""

    params = [["small", "mnist128", "wide"]]
    param_names = ["case"]

    def setup(self, key):
        case = CASES[key]
        self.X, _ = compare.make_data(case.layers, PREDICT_ROWS)
        self.net = make_net(case)
        self.net.predict(self.X)   # compiles, starts the thread pools

    def time_predict(self, key):
        self.net.predict(self.X)

    def track_predict_rows_per_sec(self, key):
        return PREDICT_ROWS / best_seconds(lambda: self.net.predict(self.X))

    track_predict_rows_per_sec.unit = "rows/s"


class PeakMemFit:
    """Peak memory of the whole process around ``fit`` (1 and 20 epochs: no growth).

    ``setup_cache`` compiles in its own process, so this process loads the
    kernels from Numba's cache instead of compiling them.
    """

    params = [["mnist128", "wide"], [1, 20]]
    param_names = ["case", "epochs"]
    timeout = 300

    def setup_cache(self):
        for key in self.params[0]:
            case = replace(CASES[key], n_samples=2 * CASES[key].batch)
            X, y = compare.make_data(case.layers, case.n_samples)
            make_net(case).fit(X, y, **fit_kwargs(case))

    def setup(self, key, epochs):
        self.case = CASES[key]
        self.X, self.y = compare.make_data(self.case.layers, self.case.n_samples)

    def peakmem_fit(self, key, epochs):
        make_net(self.case).fit(self.X, self.y, **fit_kwargs(self.case, epochs))

    def track_fit_allocated_mib(self, key, epochs):
        """Peak of the memory ``fit`` allocates (tracemalloc: NumPy and Python)."""
        net = make_net(self.case)
        tracemalloc.start()
        try:
            net.fit(self.X, self.y, **fit_kwargs(self.case, epochs))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        return peak / 2**20

    track_fit_allocated_mib.unit = "MiB"


class TrackCompile:
    """Seconds from interpreter start to the end of the first epoch, import included.

    Cold: an empty Numba cache (``NUMBA_CACHE_DIR`` is a new temporary
    directory), so every kernel compiles. Warm: the same after one run has
    filled the cache.
    """

    timeout = 600
    unit = "s"
    number = 1
    repeat = 1

    def setup(self):
        self.cache_dir = tempfile.mkdtemp(prefix="fastbp-numba-cache-")

    def teardown(self):
        shutil.rmtree(self.cache_dir, ignore_errors=True)

    def track_first_epoch_cold_cache(self):
        return first_epoch_seconds(self.cache_dir)

    def track_first_epoch_warm_cache(self):
        first_epoch_seconds(self.cache_dir)   # fills the cache
        return first_epoch_seconds(self.cache_dir)
