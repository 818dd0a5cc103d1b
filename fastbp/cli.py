"""The ``fastbp`` command line: ``train``, ``predict``, ``info`` and ``plot``.

``fastbp train`` with no arguments trains on the handwritten digits bundled with
scikit-learn. This module only translates between the command line and the
library: data comes from :mod:`fastbp.data`, training is ``MLP.fit``, model
files come from :mod:`fastbp.io`, images from :mod:`fastbp.plotting`.

Every error the user can fix (a bad path, a malformed file, a bad option value)
is one line on stderr and exit status 2; a diverging loss exits with 1.
"""

import argparse
import csv
import dataclasses
import os
import sys
import time
import warnings
from typing import NamedTuple

import numpy as np

from . import __version__, io
from . import validation as v
from .data import DIGITS, is_classification, load_dataset
from .kernels import activations, initializers, losses, optimizers
from .model import DTYPES, MLP, InterruptedTrainingWarning, TrainConfig
from .plotting import plot_history, require_matplotlib
from .progress import EpochProgress

PROG = "fastbp"

#: Learning rate of each optimizer when ``--lr`` is not given.
DEFAULT_LR = {"sgd": 0.05, "adam": 0.001}

_CLASSIFICATION = ("softmax_cross_entropy", "binary_cross_entropy")


# --- the parser -------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors on one line."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _layer_sizes(text):
    """``"256,128"`` as ``(256, 128)``; an empty string is no hidden layer."""
    try:
        sizes = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"hidden layer sizes must be comma-separated integers such as 256,128; "
            f"got {text!r}") from None
    if any(size < 1 for size in sizes):
        raise argparse.ArgumentTypeError(
            f"hidden layer sizes must be positive; got {text!r}")
    return sizes


def build_parser():
    """The ``fastbp`` argument parser with its four commands."""
    parser = _Parser(prog=PROG, description="Train multilayer perceptrons fast on CPUs.")
    parser.add_argument("--version", action="version", version=f"fastbp {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    train = commands.add_parser(
        "train", help="train a network and report its held-out accuracy (or R^2)",
        description="Train a multilayer perceptron. Without arguments: the handwritten "
                    "digits bundled with scikit-learn.")
    train.set_defaults(run=_train)
    train.add_argument("data", nargs="?", default=DIGITS,
                       help="'digits' (default), a .npz with arrays X and y, or a .csv "
                            "with a header row")
    train.add_argument("--target", metavar="COLUMN", help="the target column of a CSV")
    train.add_argument("--hidden", type=_layer_sizes, default=(256,), metavar="SIZES",
                       help="hidden layer widths, comma-separated (default 256; '' for "
                            "none)")
    train.add_argument("--activation", default="relu",
                       help=f"one of {', '.join(activations.ACTIVATIONS)} (default relu)")
    train.add_argument("--loss", default="auto",
                       help=f"auto (softmax_cross_entropy for integer or text labels, "
                            f"else mse) or one of {', '.join(losses.LOSSES)}")
    train.add_argument("--init", default="auto",
                       help=f"auto or one of {', '.join(initializers.INITIALIZERS)}")
    train.add_argument("--optimizer", default="adam",
                       help=f"one of {', '.join(optimizers.OPTIMIZERS)} (default adam)")
    train.add_argument("--epochs", type=int, default=40, help="default 40")
    train.add_argument("--batch-size", type=int, default=32, help="default 32")
    train.add_argument("--lr", type=float, default=None,
                       help="learning rate (default 0.05 for sgd, 0.001 for adam)")
    train.add_argument("--momentum", type=float, default=0.9,
                       help="SGD momentum (default 0.9)")
    train.add_argument("--alpha", type=float, default=0.0, help="L2 penalty (default 0)")
    train.add_argument("--clip-norm", type=float, default=None,
                       help="clip each step's gradient to this global L2 norm")
    train.add_argument("--clip-value", type=float, default=None,
                       help="clip each gradient element to [-value, value]")
    train.add_argument("--validation-fraction", type=float, default=0.2, metavar="F",
                       help="held-out fraction (stratified for classification) scored "
                            "every epoch and at the end (default 0.2; 0 for none)")
    train.add_argument("--seed", type=int, default=0,
                       help="seeds the weights, the shuffling and the split (default 0)")
    train.add_argument("--dtype", default="float32", choices=sorted(DTYPES),
                       help="default float32")
    train.add_argument("--threads", type=int, default=None,
                       help="threads for Numba and BLAS (default: all CPUs)")
    train.add_argument("--save", metavar="PATH", help="write the trained model here (.npz)")
    train.add_argument("--plot", metavar="PATH",
                       help="write the loss and gradient-norm curves here (.png)")
    train.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                       help="a progress bar on stderr (default: when stderr is a terminal)")

    predict = commands.add_parser(
        "predict", help="predict with a saved model, as CSV",
        description="Write one prediction per sample as CSV (class labels as they were "
                    "in the training data).")
    predict.set_defaults(run=_predict)
    predict.add_argument("model", help="a model file written by fastbp train --save")
    predict.add_argument("data", help="'digits', a .npz with array X, or a .csv")
    predict.add_argument("--target", metavar="COLUMN",
                         help="a CSV column to leave out of the features")
    predict.add_argument("--out", metavar="PATH", help="write here instead of stdout")

    info = commands.add_parser("info", help="show a saved model's architecture and "
                                            "training summary")
    info.set_defaults(run=_info)
    info.add_argument("model")

    plot = commands.add_parser("plot", help="draw a saved model's training curves")
    plot.set_defaults(run=_plot)
    plot.add_argument("model")
    plot.add_argument("path", help="the image to write (.png)")
    return parser


# --- entry point ------------------------------------------------------------------

def main(argv=None):
    """Run the ``fastbp`` command line; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if not hasattr(args, "run"):
            parser.error("choose a command: train, predict, info or plot")
    except SystemExit as exc:  # --help, --version, or a usage error already printed
        return exc.code
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            return args.run(args)
        except KeyboardInterrupt:
            print(f"{PROG}: interrupted", file=sys.stderr)
            return 130
        except BrokenPipeError:
            sys.stdout = open(os.devnull, "w")  # the reader went away; stay quiet
            return 1
        except FloatingPointError as exc:
            _print_error(exc)
            return 1
        except (ValueError, TypeError, OSError, ImportError) as exc:
            _print_error(exc)
            return 2


def _message(exc):
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return " ".join(str(exc).split())


def _print_error(exc):
    print(f"{PROG}: error: {_message(exc)}", file=sys.stderr)


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"{PROG}: warning: {' '.join(str(message).split())}", file=sys.stderr)


# --- train ------------------------------------------------------------------------

def _train(args):
    if args.plot:
        require_matplotlib()
    activation = v.check_choice("--activation", args.activation, activations.ACTIVATIONS,
                                activations.ALIASES)
    loss = None if args.loss == "auto" else v.check_choice(
        "--loss", args.loss, losses.LOSSES, losses.ALIASES)
    optimizer = v.check_choice("--optimizer", args.optimizer, optimizers.OPTIMIZERS)
    config = TrainConfig(batch_size=args.batch_size, optimizer=optimizer,
                         lr=DEFAULT_LR[optimizer] if args.lr is None else args.lr,
                         alpha=args.alpha, momentum=args.momentum,
                         clip_norm=args.clip_norm, clip_value=args.clip_value).checked()
    epochs = v.check_int("--epochs", args.epochs, low=1)
    v.check_int("--seed", args.seed, low=0)
    fraction = v.check_float("--validation-fraction", args.validation_fraction, low=0.0,
                             high=1.0, high_open=True)

    data = load_dataset(args.data, target=args.target)
    if loss is None:
        loss = "softmax_cross_entropy" if is_classification(data.y) else "mse"
    y, classes = _encode_targets(data, loss)
    n_outputs = (len(classes) if loss == "softmax_cross_entropy" else 1) \
        if classes is not None else (1 if y.ndim == 1 else y.shape[1])
    X_train, X_val, y_train, y_val = _split(data.X, y, fraction, classes is not None,
                                            args.seed)
    net = MLP([data.X.shape[1], *args.hidden, n_outputs], activation=activation,
              loss=loss, init=args.init, dtype=args.dtype, random_state=args.seed,
              n_threads=args.threads)

    compile_seconds = _compile_kernels(net, X_train, y_train, config)
    show = sys.stderr.isatty() if args.progress is None else args.progress
    with EpochProgress(epochs, show, "acc" if loss in _CLASSIFICATION else "r2") as bar:
        result = _fit(net, X_train, y_train, epochs, config,
                      None if X_val is None else (X_val, y_val), bar.update)
    if result.interrupted:
        print(f"{PROG}: interrupted after {result.epochs} of {epochs} epoch(s); keeping "
              "the weights of the last completed epoch", file=sys.stderr)

    scored = (X_val, y_val, "held-out") if X_val is not None \
        else (X_train, y_train, "train set")
    info = _training_info(net, data, classes, config, result, X_train.shape[0], scored,
                          args)
    info["training"]["compile_seconds"] = compile_seconds
    rows = describe(net, info)
    if args.save:
        io.save(net, args.save, info=info)
        rows.append(("model", f"saved to {args.save}"))
    else:
        rows.append(("model", "not saved (pass --save PATH to keep it)"))
    if args.plot:
        plot_history(net.history_, args.plot, title=_title(net, info))
        rows.append(("plot", f"saved to {args.plot}"))
    _print_rows(rows)
    return 130 if result.interrupted else 0


def _compile_kernels(net, X, y, config):
    """Compile (or load from Numba's cache) every kernel training will run; seconds taken.

    A throwaway copy of ``net`` trains one epoch on one batch, scored on it as
    validation data (a batch of the real size, so that it is split among the
    threads as the real batches are), so that the timings of the real run are
    of training alone: on a first run the compilation takes seconds, afterwards
    it is read from the cache in milliseconds.
    """
    start = time.perf_counter()
    scratch = MLP(net.layer_sizes, activation=net.activation, loss=net.loss,
                  init=net.init, dtype=net.dtype, random_state=0, n_threads=net.n_threads)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batch = slice(0, max(config.batch_size, 2))
        scratch.fit(X[batch], y[batch], epochs=1, validation_data=(X[batch], y[batch]),
                    **dataclasses.asdict(config))
    return time.perf_counter() - start


class _Run(NamedTuple):
    """What :func:`_fit` did."""

    epochs: int         # completed (fewer than asked if interrupted)
    seconds: float      # wall-clock time of MLP.fit, validation scoring included
    interrupted: bool   # Ctrl-C stopped training; the model keeps its last epoch


def _fit(net, X, y, epochs, config, validation_data, on_epoch):
    """``net.fit`` from fresh weights, calling ``on_epoch(net)`` after every epoch.

    ``MLP.fit`` turns Ctrl-C into an :class:`InterruptedTrainingWarning` and
    returns with the last completed epoch: that warning is taken here as the
    sign of an interruption, and every other warning is passed on.
    """
    caught = []
    start = time.perf_counter()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", InterruptedTrainingWarning)
            net.fit(X, y, epochs=epochs, validation_data=validation_data,
                    callback=on_epoch, **dataclasses.asdict(config))
    finally:
        seconds = time.perf_counter() - start
        interrupted = False
        for w in caught:
            if issubclass(w.category, InterruptedTrainingWarning):
                interrupted = True
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno,
                                       source=w.source)
    return _Run(len(net.history_["loss"]), seconds, interrupted)


def _training_info(net, data, classes, config, result, n_train, scored, args):
    """What ``fastbp train`` stores with the model and ``fastbp info`` shows."""
    X_scored, y_scored, on = scored
    samples = n_train * result.epochs
    return {
        "data": data.name, "n_samples": int(data.X.shape[0]),
        "n_features": int(data.X.shape[1]), "features": data.feature_names,
        "target": data.target, "classes": None if classes is None else classes.tolist(),
        "training": {
            "epochs": result.epochs, "epochs_requested": args.epochs,
            "interrupted": result.interrupted, "n_train": int(n_train),
            "validation_fraction": args.validation_fraction, "seed": args.seed,
            "config": dataclasses.asdict(config), "seconds": result.seconds,
            "samples_per_sec": _rate(samples, result.seconds),
            "pass_samples_per_sec": _rate(samples, sum(net.history_["epoch_time"]))},
        "score": {"name": "accuracy" if net.loss in _CLASSIFICATION else "R^2",
                  "on": on, "n": int(X_scored.shape[0]),
                  "value": net.score(X_scored, y_scored)},
    }


def _rate(samples, seconds):
    return samples / seconds if seconds > 0 else None


def _encode_targets(data, loss):
    """Targets in the form ``loss`` trains on, and the class labels (or None)."""
    y = data.y
    if loss == "softmax_cross_entropy" or (loss == "binary_cross_entropy" and y.ndim == 1):
        if y.ndim != 1:
            raise ValueError(f"{loss} needs one class label per sample; the targets of "
                             f"{data.name} have shape {y.shape}.")
        classes, codes = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(f"The targets of {data.name} hold a single class "
                             f"({classes[0].item()!r}); classification needs at least two.")
        if loss == "binary_cross_entropy" and len(classes) != 2:
            raise ValueError(f"binary_cross_entropy with one label per sample needs two "
                             f"classes; {data.name} has {len(classes)}. Use "
                             "softmax_cross_entropy.")
        return codes.reshape(-1), classes
    if y.dtype.kind in "US":
        raise ValueError(f"{loss} needs numeric targets; those of {data.name} are text. "
                         "Use --loss softmax_cross_entropy for class labels.")
    return y.astype(np.float64), None


def _split(X, y, fraction, stratify, seed):
    """``X_train, X_val, y_train, y_val``; no validation part when ``fraction`` is 0."""
    if fraction == 0:
        return X, None, y, None
    from sklearn.model_selection import train_test_split
    return train_test_split(X, y, test_size=fraction, random_state=seed,
                            stratify=y if stratify else None)


# --- predict, info, plot ----------------------------------------------------------

def _network(model):
    return model if isinstance(model, MLP) else model._network


def _predict(args):
    model, info = io.load(args.model, return_info=True)
    data = load_dataset(args.data, target=args.target or info.get("target"),
                        features=info.get("features"), need_y=False)
    prediction = np.asarray(model.predict(data.X))
    if info.get("classes") is not None and isinstance(model, MLP):
        prediction = np.asarray(info["classes"])[prediction]
    rows = prediction.reshape(prediction.shape[0], -1)
    header = ["prediction"] if prediction.ndim == 1 else \
        [f"prediction_{j}" for j in range(rows.shape[1])]
    if args.out:
        with open(args.out, "w", newline="", encoding="utf-8") as f:
            _write_csv(f, header, rows)
        print(f"wrote {rows.shape[0]:,} predictions to {args.out}")
    else:
        _write_csv(sys.stdout, header, rows)
    return 0


def _write_csv(stream, header, rows):
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([str(x) for x in row] for row in rows)


def _info(args):
    model, info = io.load(args.model, return_info=True)
    rows = [("file", args.model)]
    if not isinstance(model, MLP):
        rows.append(("estimator", " ".join(repr(model).split())))
    _print_rows(rows + describe(_network(model), info))
    return 0


def _plot(args):
    require_matplotlib()   # before reading the model: the missing package comes first
    model, info = io.load(args.model, return_info=True)
    net = _network(model)
    plot_history(net.history_, args.path, title=_title(net, info))
    print(f"plot saved to {args.path}")
    return 0


# --- summaries --------------------------------------------------------------------

def describe(net, info):
    """Summary rows ``(label, text)`` of a network and the ``info`` saved with it.

    ``fastbp train`` prints them at the end and ``fastbp info`` prints them for
    a saved model; ``info`` may be empty (a model saved with ``fastbp.save``).
    """
    rows = []
    if info.get("data"):
        text = (f"{info['data']}: {info['n_samples']:,} samples, "
                f"{info['n_features']} features")
        if info.get("classes") is not None:
            text += f", {len(info['classes'])} classes"
        if info.get("target"):
            text += f", target {info['target']!r}"
        rows.append(("data", text))
    if info.get("classes") is not None:
        rows.append(("classes", _shorten(info["classes"])))
    rows.append(("network", f"{_widths(net)} {net.activation}, "
                            f"{net.loss}, {net.dtype.name}, {net.params_.size:,} "
                            "parameters"))
    training = info.get("training")
    if training:
        epochs = f"{training['epochs']} epochs"
        if training.get("interrupted"):
            epochs += f" (interrupted, of {training['epochs_requested']})"
        rows.append(("training", f"{epochs} of {_optimizer(training['config'])} on "
                                 f"{training['n_train']:,} samples"))
        text = f"{training['seconds']:.2f} s"
        if training.get("samples_per_sec"):
            text += f", {training['samples_per_sec']:,.0f} samples/s"
            if training.get("pass_samples_per_sec"):
                text += (f" ({training['pass_samples_per_sec']:,.0f} in the training "
                         "passes alone)")
        rows.append(("time", text))
        if training.get("compile_seconds") is not None:
            rows.append(("kernels", f"{training['compile_seconds']:.2f} s before training to "
                                    "compile them (a first run) or load them from the "
                                    "cache"))
    history = net.history_
    if history.get("loss"):
        text = f"{history['loss'][-1]:.4f} after epoch {len(history['loss'])}"
        if history.get("val_loss") and history["val_loss"][-1] is not None:
            text += f" (validation {history['val_loss'][-1]:.4f})"
        rows.append(("loss", text))
    else:
        rows.append(("loss", "not trained yet"))
    score = info.get("score")
    if score:
        rows.append((score["on"], f"{score['name']} {score['value']:.4f} on "
                                  f"{score['n']:,} samples"))
    return rows


def _optimizer(config):
    text = f"{config['optimizer']} (lr {config['lr']:g}"
    if config["optimizer"] == "sgd" and config["momentum"]:
        text += f", momentum {config['momentum']:g}"
    if config["alpha"]:
        text += f", alpha {config['alpha']:g}"
    for name in ("clip_norm", "clip_value"):
        if config.get(name) is not None:
            text += f", {name} {config[name]:g}"
    return text + f"), batch {config['batch_size']}"


def _shorten(values, limit=12):
    shown = [str(x) for x in values[:limit]]
    return ", ".join(shown) + (f", ... ({len(values)} in all)" if len(values) > limit
                               else "")


def _widths(net):
    """Layer widths as ``64-256-10``."""
    return "-".join(map(str, net.layer_sizes))


def _title(net, info):
    source = f" on {info['data']}" if info.get("data") else ""
    return f"fastbp {_widths(net)} {net.activation}{source}"


def _print_rows(rows):
    width = max(len(label) for label, _ in rows) + 2
    for label, text in rows:
        print(f"{label:<{width}}{text}")
