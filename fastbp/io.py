"""Model files: :func:`save` and :func:`load` fastbp models without pickle.

Supported models are :class:`fastbp.MLP` and the scikit-learn estimators of
:mod:`fastbp.sklearn` (``fastbp.MLPClassifier``, ``fastbp.MLPRegressor``).

File format, version 1
----------------------
A model file is a NumPy ``.npz`` archive: an uncompressed zip of ``.npy``
arrays as written by :func:`numpy.savez`. It is read back with
``allow_pickle=False`` and every value is rebuilt from plain data, so loading
a file never runs code from it. The archive holds:

``fastbp_meta``
    A 1-element unicode array holding one JSON object (Python's JSON dialect:
    non-finite floats are written ``NaN``/``Infinity``)::

        {"format": "fastbp-model",       # identifies fastbp model files
         "format_version": 1,            # readers refuse versions they do not know
         "fastbp_version": "0.1.0",      # the writer, for information
         "kind": "MLP",                  # or an estimator class of fastbp.sklearn
         "network": {"params": {...},    # MLP constructor arguments
                     "history": {...}},  # MLP.history_
         "estimator": {"params": {...},      # get_params(), estimators only
                       "attributes": {...}}, # fitted attributes, estimators only
         "info": {...}}                  # free JSON object given to save(info=...)

``network/params``
    The network's flat parameter buffer ``params_``, in the model's dtype.

``estimator/<name>``, ``estimator/param/<name>``, ``network/param/<name>``
    Arrays and NumPy scalars referenced from the JSON (see below): fitted
    attributes, and constructor parameters of the estimator and of the
    network; ``/<i>`` is appended for the items of a list or tuple.

Values in ``params`` and ``attributes`` are JSON values (``null``, booleans,
numbers, strings, lists), or one-key objects: ``{"tuple": [...]}`` for a
tuple, ``{"dtype": "float32"}`` for a NumPy dtype, ``{"array": KEY}`` for an
array (or NumPy scalar, stored 0-d) kept in the archive under ``KEY``, with
``"object": true`` added for an object array of strings.

Loading gives back the same weights bit for bit, the same history and the same
predictions. A loaded model can keep training (``fit(..., warm_start=True)``
or ``partial_fit``) from its stored weights with a fresh optimizer state:
momentum and Adam moments are not stored. An :class:`MLP` whose
``random_state`` is a ``numpy.random.Generator`` is stored with
``random_state=None``.

Writing is atomic: the archive goes to a temporary file in the target's
directory, is flushed to disk and then renamed over the target, so a crash
never leaves a half-written model file behind.
"""

import inspect
import json
import os
import secrets
import zipfile
import zlib

import numpy as np

from . import __version__
from .model import MLP

#: Identifies fastbp model files (the ``format`` field of the metadata).
FORMAT_NAME = "fastbp-model"
#: The file format version this fastbp writes; it reads versions 1 to this one.
FORMAT_VERSION = 1

_META_KEY = "fastbp_meta"
_PARAMS_KEY = "network/params"
_ZIP_MAGIC = b"PK\x03\x04"
_NPY_MAGIC = b"\x93NUMPY"
_STORABLE_KINDS = "biufcUSMm"


class ModelFileError(ValueError):
    """A file is not a readable fastbp model file; the message says why."""


class _Unsupported(ValueError):
    """A well-formed file asks for something this fastbp does not have."""


# --- saving -----------------------------------------------------------------------

def save(model, path, info=None):
    """Write ``model`` to ``path`` as a fastbp model file (atomically).

    Parameters
    ----------
    model : fastbp.MLP, fastbp.MLPClassifier or fastbp.MLPRegressor
        A fitted estimator, or a network (trained or not).
    path : str or os.PathLike
        Where to write; used exactly as given (``.npz`` is the customary
        suffix). An existing file is replaced.
    info : dict or None
        Extra JSON-serialisable data kept with the model (``fastbp train``
        keeps its data description, class labels and training summary here);
        read it back with ``load(path, return_info=True)``.

    Returns
    -------
    str
        The path written.

    Raises
    ------
    TypeError
        ``model`` is not a supported model, or holds a value the format
        cannot store (for instance a ``RandomState`` as ``random_state``).
    ValueError
        An estimator is not fitted.
    """
    meta, arrays = _encode_model(model)
    if info is not None and not isinstance(info, dict):
        raise TypeError(f"info must be a dict of JSON values; got {type(info).__name__}.")
    meta["info"] = info if info is not None else {}
    try:
        text = json.dumps(meta, default=_json_default)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"info must hold only JSON values: {exc}") from None
    arrays[_META_KEY] = np.array([text])
    path = os.fspath(path)
    _write_atomic(path, arrays)
    return path


def _write_atomic(path, arrays):
    """Write ``arrays`` with ``numpy.savez`` to a temporary file, then rename it."""
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory,
                       f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable (POSIX); harmless where unsupported
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def _encode_model(model):
    """The metadata dict and the arrays of ``model``."""
    arrays = {}
    if isinstance(model, MLP):
        return {**_header("MLP"), "network": _encode_network(model, arrays)}, arrays
    cls = _estimator_class(type(model).__name__)
    if cls is None or type(model) is not cls:
        raise TypeError("fastbp.save supports fastbp.MLP, fastbp.MLPClassifier and "
                        f"fastbp.MLPRegressor; got {type(model).__module__}."
                        f"{type(model).__qualname__}.")
    network = getattr(model, "_network", None)
    if not isinstance(network, MLP):
        raise ValueError(f"This {type(model).__name__} is not fitted yet; call fit "
                         "before saving it.")
    params = {name: _encode(value, f"estimator/param/{name}", arrays)
              for name, value in model.get_params(deep=False).items()}
    attributes = {name: _encode(value, f"estimator/{name}", arrays)
                  for name, value in vars(model).items()
                  if name.endswith("_") and not name.startswith("_")}
    return {**_header(type(model).__name__), "network": _encode_network(network, arrays),
            "estimator": {"params": params, "attributes": attributes}}, arrays


def _header(kind):
    return {"format": FORMAT_NAME, "format_version": FORMAT_VERSION,
            "fastbp_version": __version__, "kind": kind}


def _constructor_names():
    return [name for name in inspect.signature(MLP.__init__).parameters if name != "self"]


def _encode_network(net, arrays):
    """The JSON description of an :class:`MLP`; its parameters go into ``arrays``."""
    params = {}
    for name in _constructor_names():
        value = getattr(net, name)
        if name == "random_state" and isinstance(value, np.random.Generator):
            value = None
        params[name] = _encode(value, f"network/param/{name}", arrays)
    arrays[_PARAMS_KEY] = net.params_
    return {"params": params, "history": net.history_}


def _encode(value, key, arrays):
    """``value`` as JSON data; arrays and NumPy scalars are stored in ``arrays``."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (np.ndarray, np.generic)):
        array = np.asarray(value)
        tag = {"array": key}
        if array.dtype.kind == "O":
            if not all(isinstance(x, str) for x in array.flat):
                raise TypeError(f"Cannot store {key}: an object array holding "
                                "non-strings.")
            array = array.astype(str)
            tag["object"] = True
        elif array.dtype.kind not in _STORABLE_KINDS:
            raise TypeError(f"Cannot store {key}: arrays of dtype {array.dtype} are not "
                            "supported.")
        arrays[key] = array
        return tag
    if type(value) in (int, float):
        return value
    if isinstance(value, np.dtype):
        return {"dtype": value.name}
    if isinstance(value, list):
        return [_encode(x, f"{key}/{i}", arrays) for i, x in enumerate(value)]
    if isinstance(value, tuple):
        return {"tuple": [_encode(x, f"{key}/{i}", arrays) for i, x in enumerate(value)]}
    raise TypeError(f"Cannot store {key}: values of type {type(value).__name__} are not "
                    "supported (numbers, strings, None, lists, tuples and arrays are).")


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


# --- loading ----------------------------------------------------------------------

def load(path, return_info=False):
    """Read a model written by :func:`save`.

    Parameters
    ----------
    path : str or os.PathLike
    return_info : bool
        Also return the ``info`` dict given to :func:`save` (``{}`` if none).

    Returns
    -------
    model : fastbp.MLP, fastbp.MLPClassifier or fastbp.MLPRegressor
        With the saved weights (bit for bit), history and fitted attributes;
        it can be trained further with a fresh optimizer state.
    info : dict
        Only with ``return_info=True``.

    Raises
    ------
    ModelFileError
        The file is not a fastbp model file, is truncated or corrupted, or was
        written by a newer fastbp; the message says which.
    OSError
        The file cannot be opened (missing, unreadable).
    """
    path = os.fspath(path)
    meta, arrays = _read(path)
    try:
        model = _decode_model(meta, arrays)
        info = meta.get("info", {})
        if not isinstance(info, dict):
            raise ValueError("'info' is not a JSON object")
    except _Unsupported as exc:
        raise ModelFileError(f"{path} cannot be loaded: {exc}.") from None
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        raise ModelFileError(f"{path} is a damaged fastbp model file: "
                             f"{_reason(exc)}.") from None
    return (model, info) if return_info else model


def _reason(exc):
    if isinstance(exc, KeyError):
        return f"missing entry {exc.args[0]!r}"
    return str(exc).rstrip(".")


def _read(path):
    """The metadata and every array of the model file at ``path``."""
    with open(path, "rb") as f:
        head = f.read(8)
        if not head:
            raise ModelFileError(f"{path} is empty, not a fastbp model file.")
        if head.startswith(_NPY_MAGIC):
            raise ModelFileError(f"{path} is a single NumPy array (.npy), not a fastbp "
                                 "model file.")
        if not head.startswith(_ZIP_MAGIC):
            raise ModelFileError(f"{path} is not a fastbp model file (it is not an .npz "
                                 "archive).")
        f.seek(0)
        if not zipfile.is_zipfile(f):
            raise ModelFileError(f"{path} is truncated or damaged: its zip archive has "
                                 "no readable directory.")
        f.seek(0)
        try:
            with np.load(f, allow_pickle=False) as npz:
                if _META_KEY not in npz.files:
                    raise ModelFileError(
                        f"{path} is an .npz archive but not a fastbp model file (it has "
                        f"no '{_META_KEY}' entry; found {sorted(npz.files)[:5]}).")
                meta = _parse_meta(path, npz[_META_KEY])
                arrays = {key: npz[key] for key in npz.files if key != _META_KEY}
        except ModelFileError:
            raise
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError,
                UnicodeDecodeError, NotImplementedError, RuntimeError, MemoryError) as exc:
            raise ModelFileError(f"{path} is corrupted: {_reason(exc)}.") from None
    return meta, arrays


def _parse_meta(path, entry):
    """The checked metadata dict from the ``fastbp_meta`` array."""
    if entry.dtype.kind != "U" or entry.shape != (1,):
        raise ModelFileError(f"{path} is corrupted: its metadata entry is not a JSON "
                             "string.")
    try:
        meta = json.loads(str(entry[0]))
    except ValueError as exc:
        raise ModelFileError(f"{path} is corrupted: its metadata is not valid JSON "
                             f"({exc}).") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise ModelFileError(f"{path} is not a fastbp model file (its metadata does not "
                             f"say format {FORMAT_NAME!r}).")
    version = meta.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ModelFileError(f"{path} is corrupted: bad format_version {version!r}.")
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path} was written by a newer fastbp ({meta.get('fastbp_version', '?')}, "
            f"model format version {version}); this fastbp {__version__} reads "
            f"format versions up to {FORMAT_VERSION}. Upgrade fastbp to load it.")
    return meta


def _decode_model(meta, arrays):
    kind = meta["kind"]
    net = _decode_network(meta["network"], arrays)
    if kind == "MLP":
        return net
    cls = _estimator_class(kind) if isinstance(kind, str) else None
    if cls is None:
        raise _Unsupported(f"unknown model kind {kind!r}; this fastbp knows MLP and the "
                           "estimators of fastbp.sklearn")
    estimator = meta["estimator"]
    model = cls(**_decode_mapping(estimator["params"], arrays))
    for name, value in _decode_mapping(estimator["attributes"], arrays).items():
        if not (name.endswith("_") and not name.startswith("_")):
            raise ValueError(f"bad attribute name {name!r}")
        setattr(model, name, value)
    model._network = net
    return model


def _decode_network(network, arrays):
    params = _decode_mapping(network["params"], arrays)
    unknown = sorted(set(params) - set(_constructor_names()))
    if unknown:
        raise _Unsupported(f"the network uses parameter(s) {unknown} that fastbp "
                           f"{__version__} does not know; upgrade fastbp to load it")
    net = MLP(**params)
    weights = arrays[_PARAMS_KEY]
    if weights.dtype != net.params_.dtype or weights.shape != net.params_.shape:
        raise ValueError(f"the parameter array has dtype {weights.dtype} and shape "
                         f"{weights.shape}, but layers {list(net.layer_sizes)} need "
                         f"{net.params_.dtype} and {net.params_.shape}")
    net.params_[...] = weights
    history = network["history"]
    if not isinstance(history, dict) or not all(isinstance(h, list)
                                                for h in history.values()):
        raise ValueError("the training history is not a JSON object of lists")
    net.history_ = history
    return net


def _decode_mapping(mapping, arrays):
    if not isinstance(mapping, dict):
        raise ValueError(f"expected a JSON object, got {type(mapping).__name__}")
    return {str(name): _decode(value, arrays) for name, value in mapping.items()}


def _decode(value, arrays):
    """Inverse of :func:`_encode`."""
    if isinstance(value, list):
        return [_decode(x, arrays) for x in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"tuple"}:
        return tuple(_decode(x, arrays) for x in value["tuple"])
    if set(value) == {"dtype"} and isinstance(value["dtype"], str):
        return np.dtype(value["dtype"])
    if set(value) in ({"array"}, {"array", "object"}):
        array = arrays[value["array"]]
        if value.get("object"):
            return array.astype(object)
        return array[()] if array.ndim == 0 else array
    raise ValueError(f"unknown value encoding {sorted(value)}")


def _estimator_class(name):
    """The estimator class ``name`` of :mod:`fastbp.sklearn`, or ``None``."""
    try:
        from . import sklearn as estimators
    except ImportError:
        return None
    cls = getattr(estimators, name, None)
    if isinstance(cls, type) and hasattr(cls, "get_params") \
            and cls.__module__ == estimators.__name__:
        return cls
    return None
