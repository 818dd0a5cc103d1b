"""Keep float32 math in float32: cast Python constants to a kernel's dtype.

In Numba, as in NumPy, ``float32 * 0.5`` is a float64; in an inner loop that
halves the SIMD width and converts every element twice. Kernels write
``like(0.5, x)`` instead, a float of the same precision as ``x`` (a scalar or
an array).
"""

import numpy as np
from numba import types
from numba.extending import overload


def like(value, reference):
    """``value`` as a float of the precision of ``reference`` (scalar or array)."""
    dtype = getattr(reference, "dtype", np.asarray(reference).dtype)
    return dtype.type(value)


@overload(like)
def _like_overload(value, reference):
    dtype = reference.dtype if isinstance(reference, types.Array) else reference
    if dtype == types.float32:
        return lambda value, reference: np.float32(value)
    return lambda value, reference: np.float64(value)


def log_tiny(reference):
    """``log`` of the smallest normal float of ``reference``'s precision.

    ``exp(t)`` below it is subnormal: slow to compute with on x86, and in a
    softmax far below any rounding of the probabilities that matter.
    """
    dtype = getattr(reference, "dtype", np.asarray(reference).dtype)
    return dtype.type(np.log(np.finfo(dtype).tiny))


_LOG_TINY32 = np.float32(np.log(np.finfo(np.float32).tiny))
_LOG_TINY64 = np.float64(np.log(np.finfo(np.float64).tiny))


@overload(log_tiny)
def _log_tiny_overload(reference):
    dtype = reference.dtype if isinstance(reference, types.Array) else reference
    if dtype == types.float32:
        return lambda reference: _LOG_TINY32
    return lambda reference: _LOG_TINY64
