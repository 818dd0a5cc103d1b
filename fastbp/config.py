"""Compile options for every Numba kernel of fastbp, in one place.

Every kernel is compiled through :func:`jit` or :func:`parallel_jit`, with
:data:`JIT_OPTIONS`; the few that override one (``inline="always"`` for a call
per batch, ``exp``'s narrower fast-math flags) say why where they do.

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

import glob
import hashlib
import os

import numba

#: LLVM fast-math flags: everything but ``nnan`` and ``ninf``.
FASTMATH_FLAGS = {"nsz", "arcp", "contract", "afn", "reassoc"}

#: Options of every kernel, serial and parallel (overridable per kernel).
JIT_OPTIONS = dict(
    cache=True,
    nogil=True,
    fastmath=FASTMATH_FLAGS,
    error_model="numpy",
    boundscheck=False,
)

def jit(func=None, **overrides):
    """``numba.njit`` with fastbp's options (serial)."""
    options = dict(JIT_OPTIONS, **overrides)
    if func is None:
        return numba.njit(**options)
    return numba.njit(**options)(func)


def parallel_jit(func=None, **overrides):
    """``numba.njit`` with fastbp's options and ``parallel=True`` (``prange`` loops)."""
    return jit(func, parallel=True, **overrides)


def cpu_count():
    """Number of CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def purge_stale_cache(kernel_dir):
    """Drop Numba's cached kernels in ``kernel_dir`` if any kernel source changed.

    A digest of every ``*.py`` in ``kernel_dir`` is kept beside the cache; on a
    mismatch the ``*.nbi``/``*.nbc`` files are removed, so that no cached kernel
    holds an old copy of a function it calls from another file. Only the
    default cache location is handled (``NUMBA_CACHE_DIR`` unset); failures
    (a read-only install) are ignored: the cache is then as Numba keeps it.
    """
    if numba.config.CACHE_DIR:
        return
    digest = hashlib.sha256()
    for path in sorted(glob.glob(os.path.join(kernel_dir, "*.py"))):
        with open(path, "rb") as source:
            digest.update(source.read())
    cache = os.path.join(kernel_dir, "__pycache__")
    stamp = os.path.join(cache, "fastbp-kernels.sha256")
    try:
        with open(stamp) as handle:
            if handle.read() == digest.hexdigest():
                return
    except OSError:
        pass
    try:
        for path in glob.glob(os.path.join(cache, "*.nb[ic]")):
            os.remove(path)
        os.makedirs(cache, exist_ok=True)
        with open(stamp, "w") as handle:
            handle.write(digest.hexdigest())
    except OSError:
        pass
