"""Seeded weight initialisation into the flat parameter buffer.

Every scheme draws ``W_l`` with variance ``gain / fan`` and sets biases to 0:

================  ======  ======================  =================
name              gain    fan                     distribution
================  ======  ======================  =================
``he_normal``     2       fan_in                  normal
``he_uniform``    2       fan_in                  uniform
``glorot_normal`` 1       (fan_in + fan_out) / 2  normal
``glorot_uniform``1       (fan_in + fan_out) / 2  uniform
``lecun_normal``  1       fan_in                  normal
``lecun_uniform`` 1       fan_in                  uniform
================  ======  ======================  =================

A normal draw has standard deviation ``sqrt(gain / fan)``; a uniform one is
on ``[-r, r]`` with ``r = sqrt(3 * gain / fan)``, which has the same variance.
"""

import math
from typing import NamedTuple

import numpy as np

from ..config import jit


class Initializer(NamedTuple):
    """One scheme: variance ``gain / fan``; ``fan_average`` selects the Glorot fan."""

    gain: float
    fan_average: bool
    uniform: bool


INITIALIZERS = {
    "he_normal": Initializer(2.0, False, False),
    "he_uniform": Initializer(2.0, False, True),
    "glorot_normal": Initializer(1.0, True, False),
    "glorot_uniform": Initializer(1.0, True, True),
    "lecun_normal": Initializer(1.0, False, False),
    "lecun_uniform": Initializer(1.0, False, True),
}

#: Other accepted spellings.
ALIASES = {"xavier_normal": "glorot_normal", "xavier_uniform": "glorot_uniform",
           "kaiming_normal": "he_normal", "kaiming_uniform": "he_uniform"}


@jit
def initialize_inplace(params, offsets, sizes, gain, fan_average, uniform, seed):
    """Fill ``params`` (shape (P,)) with freshly drawn weights and zero biases.

    Parameters
    ----------
    params : ndarray, shape (P,)
        Overwritten.
    offsets : ndarray of int64, shape (L,)
    sizes : ndarray of int64, shape (L + 1,)
    gain : float
    fan_average, uniform : bool
    seed : int
        Same seed, same weights, bit for bit.
    """
    np.random.seed(seed)
    for layer in range(sizes.size - 1):
        fan_in = sizes[layer]
        fan_out = sizes[layer + 1]
        fan = 0.5 * (fan_in + fan_out) if fan_average else float(fan_in)
        std = math.sqrt(gain / fan)
        start = offsets[layer]
        n_weights = fan_in * fan_out
        if uniform:
            bound = math.sqrt(3.0) * std
            for i in range(start, start + n_weights):
                params[i] = np.random.uniform(-bound, bound)
        else:
            for i in range(start, start + n_weights):
                params[i] = std * np.random.standard_normal()
        params[start + n_weights:start + n_weights + fan_out] = 0.0
