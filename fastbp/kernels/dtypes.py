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


def _dtype_constant(name, doc, of_dtype):
    """A function ``name(reference)`` giving ``of_dtype(dtype)`` in the dtype of
    ``reference`` (a scalar or an array), in Python and inside kernels."""
    values = {np.dtype(t): t(of_dtype(t)) for t in (np.float32, np.float64)}

    def constant(reference):
        return values[np.dtype(getattr(reference, "dtype", np.asarray(reference).dtype))]

    value32, value64 = values[np.dtype(np.float32)], values[np.dtype(np.float64)]

    @overload(constant)
    def _overload(reference):
        dtype = reference.dtype if isinstance(reference, types.Array) else reference
        if dtype == types.float32:
            return lambda reference: value32
        return lambda reference: value64

    constant.__name__ = constant.__qualname__ = name
    constant.__doc__ = doc
    return constant


tiny = _dtype_constant("tiny", """The smallest normal float of ``reference``'s precision.

    Below it floats are subnormal: on x86 every operation that reads or writes
    one takes a slow path (about a hundred cycles).
    """, lambda t: np.finfo(t).tiny)

log_tiny = _dtype_constant("log_tiny", """``log`` of :func:`tiny`.

    ``exp(t)`` below it is subnormal, and in a softmax far below any rounding of
    the probabilities that matter.
    """, lambda t: np.log(np.finfo(t).tiny))
