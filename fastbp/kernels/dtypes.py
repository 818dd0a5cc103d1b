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
