"""One knob, ``n_threads``, for Numba's threads and the BLAS threads."""

import contextlib
import os
import threading

import numba
import numpy as np
import scipy.linalg.cython_blas  # noqa: F401  (loads the BLAS the kernels call)
from threadpoolctl import ThreadpoolController

from .config import cpu_count, parallel_jit


def resolve_n_threads(n_threads):
    """``None`` or ``-1`` mean every CPU this process may use, else ``n_threads``;
    at least 1 and at most Numba's ``NUMBA_NUM_THREADS``."""
    if n_threads is None or n_threads == -1:
        return min(cpu_count(), numba.config.NUMBA_NUM_THREADS)
    return max(1, min(int(n_threads), numba.config.NUMBA_NUM_THREADS))


_controller = None


def _blas_controller():
    """A cached ``ThreadpoolController`` (building one scans the loaded libraries)."""
    global _controller
    if _controller is None:
        _controller = ThreadpoolController()
    return _controller


#: Matrix products of fewer multiply-adds than this run single-threaded BLAS.
#: OpenBLAS threads every sgemm above 262,144 multiply-adds; measured on an
#: idle 2-core machine, a 784-256-128-10 network at batch 32 (largest product
#: 6.4M) trained 88k samples/s with one BLAS thread and 81k with two, while at
#: batch 128 (25.7M) two threads won (142k against 111k).
BLAS_THREADING_MIN_WORK = 16_000_000


def product_work(sizes, rows):
    """Multiply-adds of the largest product of a pass over ``rows`` samples."""
    return rows * max(a * b for a, b in zip(sizes[:-1], sizes[1:]))


@contextlib.contextmanager
def thread_limits(n_threads, work=None):
    """Run the block with ``n_threads`` Numba threads and as many BLAS threads.

    Parameters
    ----------
    n_threads : int or None
        See :func:`resolve_n_threads`.
    work : int or None
        Multiply-adds of the largest matrix product the block runs (see
        :func:`product_work`); below ``BLAS_THREADING_MIN_WORK`` BLAS runs
        one thread, since waking its threads costs more than they save.

    Parallel kernels that call BLAS inside a ``prange`` run under ``work=0``,
    so BLAS is single-threaded there and the two pools are never both at full
    width.
    """
    n = resolve_n_threads(n_threads)
    blas = 1 if work is not None and work < BLAS_THREADING_MIN_WORK else n
    previous = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        with _blas_controller().limit(limits=blas, user_api="blas"):
            yield n
    finally:
        numba.set_num_threads(previous)


@parallel_jit
def _launch(out):
    for i in numba.prange(out.size):
        out[i] = i


#: ``(pid, cheap)``: the process that first launched Numba's threads from fastbp,
#: and whether its threading layer launches cheaply.
_pool = None


def _thread_pool():
    """Start Numba's thread pool in this process if fastbp has not yet; ``_pool``."""
    global _pool
    if _pool is None:
        _launch(np.zeros(2))
        _pool = (os.getpid(), numba.threading_layer() in ("omp", "tbb"))
    return _pool


def can_launch_parallel():
    """Whether a kernel may launch Numba threads from here.

    Only from the main thread, so that threads already running fits or
    predictions in parallel (a grid search, say) are not oversubscribed, and
    not in a child forked from a process whose thread pool fastbp had started:
    GNU OpenMP's pool does not survive ``fork`` (Numba stops such a child).
    """
    return threading.current_thread() is threading.main_thread() \
        and _thread_pool()[0] == os.getpid()


def can_split_batches():
    """Whether a training kernel may split its batches among Numba threads here.

    As :func:`can_launch_parallel`, and only with the OpenMP or TBB threading
    layer, where a parallel launch costs about a microsecond (Numba's fallback
    layer, ``workqueue``, measured 130 microseconds per launch, more than the
    split saves).
    """
    return can_launch_parallel() and _thread_pool()[1]
