"""Numba kernels: they trust their inputs, allocate nothing per step.

Numba's on-disk cache checks only the source file of each cached function,
not the files of the functions it calls and compiled into itself: after an
edit of ``losses.py``, the cached training epoch in ``train.py`` would still
run the old loss. So the cache is keyed on all kernel sources together: when
any of them changed, every cached kernel next to them is dropped.
"""

import os

from ..config import purge_stale_cache

purge_stale_cache(os.path.dirname(__file__))
