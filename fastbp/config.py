"""Compile options for every Numba kernel of fastbp, in one place.

Every kernel is compiled with :data:`JIT_OPTIONS`; nothing else in the package
passes options to ``numba.njit``.

* ``cache=True``: compiled machine code is stored next to the sources, so a
  second process skips compilation.
* ``fastmath``: a flag set that allows re-association (vectorised reductions),
  fused multiply-add and approximate functions, but *keeps* NaN and inf
  semantics (no ``nnan``/``ninf``), so the finiteness checks of the training
  loop cannot be optimised away.
* ``error_model="numpy"``: division by zero gives inf/NaN instead of raising,
  which keeps exception-handling code out of the inner loops.
* ``boundscheck=False``: kernels trust their inputs; ``fastbp.model`` validates.
"""

import os

import numba

#: LLVM fast-math flags: everything but ``nnan`` and ``ninf``.
FASTMATH_FLAGS = {"nsz", "arcp", "contract", "afn", "reassoc"}

#: Options shared by every serial kernel.
JIT_OPTIONS = dict(
    cache=True,
    nogil=True,
    fastmath=FASTMATH_FLAGS,
    error_model="numpy",
    boundscheck=False,
)

#: Options of the kernels with ``prange`` loops.
PARALLEL_JIT_OPTIONS = dict(JIT_OPTIONS, parallel=True)


def jit(func=None, **overrides):
    """``numba.njit`` with fastbp's options (serial)."""
    options = dict(JIT_OPTIONS, **overrides)
    if func is None:
        return numba.njit(**options)
    return numba.njit(**options)(func)


def parallel_jit(func=None, **overrides):
    """``numba.njit`` with fastbp's options and ``parallel=True``."""
    options = dict(PARALLEL_JIT_OPTIONS, **overrides)
    if func is None:
        return numba.njit(**options)
    return numba.njit(**options)(func)


def cpu_count():
    """Number of CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1
