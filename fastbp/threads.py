"""One knob, ``n_threads``, for Numba's threads and the BLAS threads."""

import contextlib

import numba
import scipy.linalg.cython_blas  # noqa: F401  (loads the BLAS the kernels call)
from threadpoolctl import ThreadpoolController

from .config import cpu_count


def resolve_n_threads(n_threads):
    """``None`` or ``-1`` mean every CPU this process may use; else 1..#CPUs."""
    available = cpu_count()
    if n_threads is None or n_threads == -1:
        return min(available, numba.config.NUMBA_NUM_THREADS)
    return max(1, min(int(n_threads), numba.config.NUMBA_NUM_THREADS))


_controller = None


def _blas_controller():
    """A cached ``ThreadpoolController`` (building one scans the loaded libraries)."""
    global _controller
    if _controller is None:
        _controller = ThreadpoolController()
    return _controller


@contextlib.contextmanager
def thread_limits(n_threads):
    """Run the block with ``n_threads`` Numba threads and ``n_threads`` BLAS threads.

    Parallel kernels that call BLAS inside a ``prange`` limit BLAS to one
    thread themselves (see :func:`blas_single_threaded`), so the two pools are
    never both at full width.
    """
    n = resolve_n_threads(n_threads)
    previous = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        with _blas_controller().limit(limits=n, user_api="blas"):
            yield n
    finally:
        numba.set_num_threads(previous)


def blas_single_threaded():
    """Context manager: BLAS runs one thread (around ``prange`` loops that call it)."""
    return _blas_controller().limit(limits=1, user_api="blas")
