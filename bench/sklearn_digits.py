"""fastbp.MLPClassifier against scikit-learn's on the digits data.

    python bench/sklearn_digits.py [--repeat N] [--seeds S] [--settings defaults,sgd]
                                   [--epochs E] [--threads T]

Digits as scikit-learn ships them (raw 0-16 features), a stratified 75/25 split;
two settings: scikit-learn's defaults (adam, batch 200) and ``solver="sgd",
batch_size=1`` (Nesterov momentum 0.9, ``alpha=1e-4``). Fits of the two
libraries alternate; each time is the best of the repeats. Prints the fit time,
the epochs each ran (their stopping rules are the same, their trajectories
round differently), the held-out accuracy, and the speed-ups of the whole fit
and per epoch. With ``--seeds S`` it fits ``random_state`` 0 to S-1 and adds
a line of totals: the epochs a fit runs before its loss stops improving vary
from seed to seed for both libraries (batch-1 training amplifies any rounding
difference), so one seed's fit ratio is partly luck; ``--epochs N`` makes
both run exactly N epochs, a fit ratio at equal work. Each fit starts after a pause of ``SETTLE`` seconds, so that
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

#: The settings compared: label and the constructor parameters both libraries get.
SETTINGS = {"defaults": ("defaults", dict()),
            "sgd": ("sgd, batch_size=1", dict(solver="sgd", batch_size=1))}


def digits_split():
    """``X_train, X_test, y_train, y_test``: the digits, a stratified 75/25 split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    return train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)


def fixed_epochs(params, epochs):
    """``params`` made to run exactly ``epochs`` epochs (no earlier stop on the loss)."""
    return dict(params, max_iter=epochs, n_iter_no_change=epochs)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="fits per library (best)")
    parser.add_argument("--seeds", type=int, default=1,
                        help="random_state 0..N-1 of both; a last line sums them")
    parser.add_argument("--settings", default="defaults,sgd",
                        help="comma-separated: defaults, sgd")
    parser.add_argument("--epochs", type=int, default=None,
                        help="run exactly this many epochs (max_iter = n_iter_no_change "
                             "= N) instead of stopping on the loss")
    parser.add_argument("--threads", type=int, default=None,
                        help="BLAS and Numba threads of both (default: every CPU)")
    args = parser.parse_args(argv)

    from sklearn.neural_network import MLPClassifier as SklearnMLP
    from threadpoolctl import threadpool_limits

    from fastbp import MLPClassifier as FastbpMLP

    warnings.simplefilter("ignore")   # both stop at max_iter on some settings
    X_train, X_test, y_train, y_test = digits_split()
    chosen = [SETTINGS[key] for key in args.settings.split(",")]
    if args.epochs:
        chosen = [(f"{label}, {args.epochs} epochs", fixed_epochs(params, args.epochs))
                  for label, params in chosen]
    for _, params in chosen:
        # outside the timings: compile fastbp's kernels and start its thread pool
        # (a fit of 50 samples would not split its batches, so the first timed fit
        # would start the pool)
        FastbpMLP(**dict(params, max_iter=1, n_threads=args.threads)).fit(X_train, y_train)
    for label, params in chosen:
        totals = {"fastbp": [0.0, 0, 0.0], "sklearn": [0.0, 0, 0.0]}  # time, epochs, acc
        for seed in range(args.seeds):
            seeded = dict(params, random_state=seed)
            best, models = {}, {}
            for _ in range(args.repeat):
                for name, cls, kwargs in (
                        ("fastbp", FastbpMLP, dict(seeded, n_threads=args.threads)),
                        ("sklearn", SklearnMLP, seeded)):
                    time.sleep(SETTLE)
                    with threadpool_limits(args.threads):
                        start = time.perf_counter()
                        models[name] = cls(**kwargs).fit(X_train, y_train)
                        elapsed = time.perf_counter() - start
                    best[name] = min(best.get(name, float("inf")), elapsed)
            for name, model in models.items():
                totals[name][0] += best[name]
                totals[name][1] += model.n_iter_
                totals[name][2] += model.score(X_test, y_test) / args.seeds
            _report(f"{label}, seed {seed}" if args.seeds > 1 else label,
                    *(best[name] for name in ("fastbp", "sklearn")),
                    *(models[name].n_iter_ for name in ("fastbp", "sklearn")),
                    *(models[name].score(X_test, y_test) for name in ("fastbp", "sklearn")))
        if args.seeds > 1:
            (fb_t, fb_n, fb_a), (sk_t, sk_n, sk_a) = totals["fastbp"], totals["sklearn"]
            _report(f"{label}, seeds 0-{args.seeds - 1}", fb_t, sk_t, fb_n, sk_n, fb_a,
                    sk_a, mean_accuracy=True)


def _report(label, fb_time, sk_time, fb_epochs, sk_epochs, fb_acc, sk_acc,
            mean_accuracy=False):
    per_epoch = (sk_time / sk_epochs) / (fb_time / fb_epochs)
    accuracy = "mean held-out accuracy" if mean_accuracy else "held-out accuracy"
    print(f"{label:30s} fastbp {fb_time:6.3f} s ({fb_epochs:3d} epochs, {accuracy} "
          f"{fb_acc:.4f}) | sklearn {sk_time:6.3f} s ({sk_epochs:3d} epochs, {sk_acc:.4f}) "
          f"| fit {sk_time / fb_time:4.1f}x, per epoch {per_epoch:4.1f}x", flush=True)


if __name__ == "__main__":
    # run from a checkout: measure this checkout's fastbp
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    main()
