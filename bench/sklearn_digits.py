"""fastbp.MLPClassifier against scikit-learn's on the digits data.

    python bench/sklearn_digits.py [--repeat N] [--threads T]

Digits as scikit-learn ships them (raw 0-16 features), a stratified 75/25 split;
two settings: scikit-learn's defaults (adam, batch 200) and ``solver="sgd",
batch_size=1`` (Nesterov momentum 0.9, ``alpha=1e-4``). Fits of the two
libraries alternate; each time is the best of the repeats. Prints the fit time,
the epochs each ran (their stopping rules are the same, their trajectories
round differently), the held-out accuracy, and the speed-ups of the whole fit
and per epoch. Each fit starts after a pause of ``SETTLE`` seconds, so that
the worker threads of the previous fit's thread pools (OpenBLAS's and
OpenMP's spin for a while after their last task) have gone idle and do not
compete with it for the cores.
"""

import argparse
import os
import sys
import time
import warnings

#: Seconds of pause before each fit (see the module docstring).
SETTLE = 0.5


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="fits per library (best)")
    parser.add_argument("--threads", type=int, default=None,
                        help="BLAS and Numba threads of both (default: every CPU)")
    args = parser.parse_args(argv)

    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier as SklearnMLP
    from threadpoolctl import threadpool_limits

    from fastbp import MLPClassifier as FastbpMLP

    warnings.simplefilter("ignore")   # both stop at max_iter on some settings
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, stratify=y,
                                                        random_state=0)
    settings = [("defaults", dict(random_state=0)),
                ("sgd, batch_size=1", dict(random_state=0, solver="sgd", batch_size=1))]
    for _, params in settings:   # compile fastbp's kernels outside the timings
        FastbpMLP(**dict(params, max_iter=1)).fit(X_train[:50], y_train[:50])
    for label, params in settings:
        best, models = {}, {}
        for _ in range(args.repeat):
            for name, cls, kwargs in (("fastbp", FastbpMLP, dict(params, n_threads=args.threads)),
                                      ("sklearn", SklearnMLP, params)):
                time.sleep(SETTLE)
                with threadpool_limits(args.threads):
                    start = time.perf_counter()
                    models[name] = cls(**kwargs).fit(X_train, y_train)
                    elapsed = time.perf_counter() - start
                best[name] = min(best.get(name, float("inf")), elapsed)
        fb, sk = models["fastbp"], models["sklearn"]
        per_epoch = (best["sklearn"] / sk.n_iter_) / (best["fastbp"] / fb.n_iter_)
        print(f"{label:18s} fastbp {best['fastbp']:6.3f} s ({fb.n_iter_:3d} epochs, held-out "
              f"accuracy {fb.score(X_test, y_test):.4f}) | sklearn {best['sklearn']:6.3f} s "
              f"({sk.n_iter_:3d} epochs, {sk.score(X_test, y_test):.4f}) | fit "
              f"{best['sklearn'] / best['fastbp']:4.1f}x, per epoch {per_epoch:4.1f}x",
              flush=True)


if __name__ == "__main__":
    # run from a checkout: measure this checkout's fastbp
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    main()
