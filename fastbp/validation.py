"""Checks of everything a user can get wrong, before any kernel runs.

Each check raises ``TypeError`` (wrong kind of object) or ``ValueError``
(right kind, wrong value) with a message that says what was wrong and what to
do, and returns the value in the form the kernels trust.
"""

import numbers

import numpy as np


def check_choice(name, value, choices, aliases=None):
    """The canonical spelling of ``value``, one of ``choices`` (or an alias)."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, one of {sorted(choices)}; "
                        f"got {value!r}.")
    key = value.lower()
    key = (aliases or {}).get(key, key)
    if key not in choices:
        raise ValueError(f"Unknown {name} {value!r}; choose one of {sorted(choices)}.")
    return key


def check_int(name, value, low=None, high=None):
    """``value`` as an ``int`` in ``[low, high]`` (bools are refused)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer; got {value!r}.")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name} must be in [{low}, {high if high is not None else 'inf'}]"
                         f"; got {value}.")
    return value


def check_float(name, value, low=None, high=None, low_open=False, high_open=False,
                allow_none=False):
    """``value`` as a finite ``float`` in the given interval (``None`` if allowed)."""
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {value!r}.")
    value = float(value)
    lo = "(" if low_open else "["
    hi = ")" if high_open else "]"
    interval = f"{lo}{low if low is not None else '-inf'}, " \
               f"{high if high is not None else 'inf'}{hi}"
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, in {interval}; got {value}.")
    if low is not None and (value < low or (low_open and value == low)):
        raise ValueError(f"{name} must be in {interval}; got {value}.")
    if high is not None and (value > high or (high_open and value == high)):
        raise ValueError(f"{name} must be in {interval}; got {value}.")
    return value


def as_numeric_array(name, data):
    """``data`` as a NumPy array of real numbers (bool and int included)."""
    if data is None:
        raise ValueError(f"{name} is None; pass an array of numbers.")
    try:
        array = np.asarray(data)
    except Exception as exc:  # ragged lists, unconvertible objects
        raise ValueError(f"{name} could not be converted to an array: {exc}") from None
    if array.dtype.kind == "O":
        try:
            array = array.astype(np.float64)
        except (TypeError, ValueError):
            raise TypeError(f"{name} must contain only numbers; got objects such as "
                            f"{array.flat[0]!r}.") from None
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{name} must contain real numbers; got dtype {array.dtype}.")
    return array


def check_finite(name, array):
    """Raise ``ValueError`` if ``array`` holds NaN or inf, naming the first one."""
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        bad = np.argwhere(~np.isfinite(array))[0]
        value = array[tuple(bad)]
        where = ", ".join(str(i) for i in bad)
        raise ValueError(f"{name} contains {'NaN' if np.isnan(value) else 'infinity'} "
                         f"(first at index [{where}]); remove or impute non-finite "
                         "values before training.")


def writeable_native(array):
    """``array``, copied if it is read-only or not in native byte order.

    Numba compiles separate machine code for read-only arrays: accepting one
    as it is would cost a second compilation of every kernel (seconds), far
    more than the copy.
    """
    if array.dtype.byteorder not in "=|":
        return array.astype(array.dtype.newbyteorder("="))
    return array if array.flags.writeable else array.copy()


def check_features(X, dtype, n_features=None, name="X"):
    """``X`` as a finite C-contiguous 2-D array of ``dtype``, native byte order.

    Non-contiguous, Fortran-ordered, read-only, big-endian and integer arrays
    are accepted (copied when needed). ``n_features`` is the expected number
    of columns.
    """
    array = as_numeric_array(name, X)
    if array.ndim != 2:
        hint = (" Reshape it with X.reshape(-1, 1) for one feature or "
                "X.reshape(1, -1) for one sample." if array.ndim == 1 else "")
        raise ValueError(f"{name} must be 2-D (n_samples, n_features); got "
                         f"{array.ndim}-D with shape {array.shape}.{hint}")
    if array.shape[0] == 0:
        raise ValueError(f"{name} has 0 samples; at least 1 is required.")
    if array.shape[1] == 0:
        raise ValueError(f"{name} has 0 features; at least 1 is required.")
    if n_features is not None and array.shape[1] != n_features:
        raise ValueError(f"{name} has {array.shape[1]} features, but the model "
                         f"expects {n_features}.")
    with np.errstate(over="ignore"):  # values too large for dtype become inf, caught below
        out = writeable_native(np.ascontiguousarray(array, dtype=dtype))
    check_finite(name, out)  # NaN and inf, and values too large for float32
    return out


def check_sample_weight(sample_weight, n_samples, dtype):
    """Sample weights as a finite, non-negative 1-D array of ``dtype``; ones if None."""
    if sample_weight is None:
        return np.ones(n_samples, dtype=dtype)
    sw = as_numeric_array("sample_weight", sample_weight)
    if sw.ndim == 0:
        sw = np.full(n_samples, float(sw))
    if sw.ndim != 1 or sw.shape[0] != n_samples:
        raise ValueError(f"sample_weight must have shape ({n_samples},), one weight per "
                         f"sample; got shape {sw.shape}.")
    # checked in the model's dtype: weights too large for float32 become inf there,
    # and weights too small for it 0
    with np.errstate(over="ignore", under="ignore"):
        sw = writeable_native(np.ascontiguousarray(sw, dtype=dtype))
    check_finite("sample_weight", sw)
    if (sw < 0).any():
        raise ValueError("sample_weight must be non-negative.")
    if not sw.any():
        raise ValueError("sample_weight sums to zero; at least one sample needs a "
                         "positive weight.")
    return sw
