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


def initialize_inplace(params, offsets, sizes, scheme, rng):
    """Fill ``params`` (shape (P,)) with freshly drawn weights and zero biases.

    This runs once per model, not per step, so it is plain NumPy: a Numba
    version cost about 0.5 s of compilation in every fresh process (measured
    with an empty cache), for no speed that matters.

    Parameters
    ----------
    params : ndarray, shape (P,)
        Overwritten.
    offsets : ndarray of int64, shape (L,)
    sizes : ndarray of int64, shape (L + 1,)
    scheme : Initializer
    rng : numpy.random.Generator
        Same seed, same weights, bit for bit.
    """
    for layer in range(len(sizes) - 1):
        fan_in, fan_out = int(sizes[layer]), int(sizes[layer + 1])
        fan = 0.5 * (fan_in + fan_out) if scheme.fan_average else float(fan_in)
        std = math.sqrt(scheme.gain / fan)
        start = offsets[layer]
        n_weights = fan_in * fan_out
        if scheme.uniform:
            bound = math.sqrt(3.0) * std
            draw = rng.uniform(-bound, bound, n_weights)
        else:
            draw = std * rng.standard_normal(n_weights)
        params[start:start + n_weights] = draw
        params[start + n_weights:start + n_weights + fan_out] = 0.0
