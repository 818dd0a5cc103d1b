"""Data sets for the command line: the bundled digits, ``.npz`` and ``.csv`` files.

Every reader returns a :class:`Dataset` of finite float features and raw targets
(labels keep their type: strings, arbitrary integers), or raises ``ValueError``
with a one-line message naming the file and what is wrong in it (``OSError``
when the file cannot be opened or read).
"""

import csv
import os
import re
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from . import validation as v

#: The name that selects scikit-learn's bundled handwritten digits.
DIGITS = "digits"

_INT = re.compile(r"^[+-]?\d+$")


@dataclass
class Dataset:
    """Features and targets read from one source.

    Attributes
    ----------
    X : ndarray of float64, shape (n_samples, n_features)
    y : ndarray or None
        Targets, shape (n_samples,) or (n_samples, n_outputs); integer, float
        or string labels as found in the source. ``None`` when the source has
        no targets.
    name : str
        The source, as given.
    feature_names : list of str or None
        Column names of a CSV; ``None`` for other sources.
    target : str or None
        The target column of a CSV.
    """

    X: np.ndarray
    y: np.ndarray
    name: str
    feature_names: list = None
    target: str = None


def load_dataset(source, target=None, features=None, need_y=True):
    """Read ``source``: ``"digits"``, a ``.npz`` with ``X`` and ``y``, or a ``.csv``.

    Parameters
    ----------
    source : str
        ``"digits"`` (scikit-learn's 8x8 handwritten digits, scaled to [0, 1],
        no download), a path ending in ``.npz`` (arrays ``X`` and ``y``) or in
        ``.csv`` (a header row of column names, one sample per row).
    target : str or None
        The CSV column holding the target; every other column is a feature.
    features : list of str or None
        CSV columns to use as features, in this order (a trained model's);
        ``None`` uses every column but ``target``.
    need_y : bool
        Require targets (training); without, ``y`` is read when present.

    Returns
    -------
    Dataset
    """
    if source == DIGITS:
        from sklearn.datasets import load_digits
        X, y = load_digits(return_X_y=True)
        return Dataset(X / 16.0, y, DIGITS)
    extension = os.path.splitext(source)[1].lower()
    if extension == ".npz":
        return _load_npz(source, need_y)
    if extension == ".csv":
        return _load_csv(source, target, features, need_y)
    raise ValueError(f"{source}: unknown data source; use 'digits', a .npz file (arrays "
                     "X and y) or a .csv file with a header row.")


def is_classification(y):
    """Whether targets ``y`` are class labels: 1-D integers, booleans or strings."""
    return y.ndim == 1 and y.dtype.kind in "biuUSO"


@contextmanager
def _reading_npz(path):
    """Failures to read the archive at ``path`` as one ``ValueError`` (a missing or
    inaccessible file keeps its ``OSError``)."""
    try:
        yield
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path} is not a readable .npz archive: {exc}") from None


def _load_npz(path, need_y):
    with _reading_npz(path):
        archive = np.load(path, allow_pickle=False)
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"{path} holds a single array; save features and targets with "
                         "numpy.savez(path, X=X, y=y).")
    with archive:
        if "X" not in archive.files or (need_y and "y" not in archive.files):
            wanted = "X and y" if need_y else "X"
            raise ValueError(f"{path} must hold arrays named {wanted}; it has "
                             f"{sorted(archive.files)}.")
        with _reading_npz(path):
            X = archive["X"]
            y = archive["y"] if "y" in archive.files else None
    X = v.check_features(X, np.float64, name=f"{path}: X")
    if y is not None:
        y = _check_targets(path, y, X.shape[0])
    return Dataset(X, y, path)


def _check_targets(path, y, n_samples):
    if y.ndim not in (1, 2) or y.shape[0] != n_samples:
        raise ValueError(f"{path}: y must have one row per sample of X ({n_samples}); "
                         f"got shape {y.shape}.")
    if y.dtype.kind == "f":
        v.check_finite(f"{path}: y", y)
    elif y.dtype.kind not in "biuUS":
        raise ValueError(f"{path}: y must hold real numbers or strings; got dtype {y.dtype}.")
    return y


def _load_csv(path, target, features, need_y):
    header, rows, lines = _read_csv(path)
    if target is not None and target not in header:
        if need_y:
            raise ValueError(f"{path} has no column {target!r}; its columns are "
                             f"{_names(header)}.")
        target = None
    if target is None and need_y:
        raise ValueError(f"{path}: name the target column with --target; its columns "
                         f"are {_names(header)}.")
    if features is None:
        features = [name for name in header if name != target]
    missing = [name for name in features if name not in header]
    if missing:
        raise ValueError(f"{path} lacks the feature column(s) {_names(missing)} the model "
                         "was trained on.")
    if not features:
        raise ValueError(f"{path} has no feature columns besides the target {target!r}.")
    index = {name: i for i, name in enumerate(header)}
    X = np.empty((len(rows), len(features)))
    for j, name in enumerate(features):
        X[:, j] = _float_column(path, name, [row[index[name]] for row in rows], lines)
    y = None
    if target is not None:
        y = _target_column(path, target, [row[index[target]] for row in rows], lines)
    return Dataset(X, y, path, list(features), target)


def _read_csv(path):
    """Header, rows (lists of strings) and the line number of each row."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None:
                raise ValueError(f"{path} is empty; a CSV needs a header row of column "
                                 "names.")
            header = [name.strip() for name in header]
            duplicates = sorted({name for name in header if header.count(name) > 1})
            if duplicates:
                raise ValueError(f"{path}: the header repeats column(s) "
                                 f"{_names(duplicates)}.")
            rows, lines = [], []
            for row in reader:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                if len(row) != len(header):
                    raise ValueError(f"{path} is malformed: line {reader.line_num} has "
                                     f"{len(row)} field(s), the header has "
                                     f"{len(header)}.")
                rows.append(row)
                lines.append(reader.line_num)
    except csv.Error as exc:
        raise ValueError(f"{path} is malformed: {exc}.") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not a UTF-8 text CSV file.") from None
    if not rows:
        raise ValueError(f"{path} has a header but no data rows.")
    return header, rows, lines


def _float_column(path, name, values, lines):
    """A feature column as finite floats; errors name the line and the column."""
    try:
        column = np.array(values, dtype=np.float64)
    except ValueError:
        column = None
    if column is not None and np.isfinite(column).all():
        return column
    # find the first bad value, to name its line
    for i, (value, line) in enumerate(zip(values, lines)):
        if column is None:
            try:
                float(value)
                continue
            except ValueError:
                what = "is empty (missing values are not supported)" \
                    if not value.strip() else f"holds {value!r}, not a number"
        elif np.isfinite(column[i]):
            continue
        else:
            what = f"holds {value.strip()}; remove or impute non-finite values"
        raise ValueError(f"{path}, line {line}: column {name!r} {what}.")
    return column


def _target_column(path, name, values, lines):
    """Integers, else floats, else strings (class labels)."""
    for value, line in zip(values, lines):
        if not value.strip():
            raise ValueError(f"{path}, line {line}: the target {name!r} is empty "
                             "(missing values are not supported).")
    if all(_INT.match(value.strip()) for value in values):
        try:
            return np.array([int(value) for value in values], dtype=np.int64)
        except OverflowError:
            pass
    try:
        y = np.array(values, dtype=np.float64)
    except ValueError:
        return np.array([value.strip() for value in values])
    v.check_finite(f"{path}: target {name!r}", y)
    return y


def _names(names):
    return ", ".join(repr(name) for name in names)
