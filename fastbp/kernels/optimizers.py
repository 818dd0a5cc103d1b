"""In-place parameter updates over the flat parameter buffer.

The updates follow scikit-learn's formulation, so that fastbp's estimators
reproduce its results:

* ``sgd``:  ``v <- mu * v - lr * g``; then ``p <- p + v``, or with Nesterov
  momentum ``p <- p + mu * v - lr * g``. With ``mu == 0`` this is plain
  ``p <- p - lr * g`` and needs no state (the training loop then fuses the
  update into the weight-gradient product, see ``train.py``).
* ``adam``: ``m <- b1 m + (1 - b1) g``; ``v <- b2 v + (1 - b2) g**2``;
  ``p <- p - lr_t * m / (sqrt(v) + eps)`` with
  ``lr_t = lr * sqrt(1 - b2**t) / (1 - b1**t)``.

Gradient post-processing, :func:`finish_gradients_inplace`, runs before the
update when needed: it adds the L2 term, clips each element to
``[-clip_value, clip_value]`` and measures per-layer norms. Clipping by global
norm is a scale factor applied inside the update.

Hyperparameters travel as one float64 array indexed by the constants below.
"""

import math
from typing import NamedTuple

import numpy as np

from ..config import jit
from .dtypes import like


class Optimizer(NamedTuple):
    """One optimizer: its kernel code and how many state buffers it keeps."""

    code: int
    n_state: int


OPTIMIZERS = {
    "sgd": Optimizer(0, 1),
    "adam": Optimizer(1, 2),
}

# indices into the hyperparameter array
LR, MOMENTUM, NESTEROV, BETA1, BETA2, EPSILON, L2, CLIP_NORM, CLIP_VALUE = range(9)
N_HYPER = 9


def hyperparameters(lr, momentum=0.0, nesterov=False, beta1=0.9, beta2=0.999,
                    epsilon=1e-8, l2=0.0, clip_norm=None, clip_value=None):
    """Pack hyperparameters into the float64 array the kernels read (0 = no clipping)."""
    hyper = np.zeros(N_HYPER)
    hyper[LR] = lr
    hyper[MOMENTUM] = momentum
    hyper[NESTEROV] = float(bool(nesterov))
    hyper[BETA1] = beta1
    hyper[BETA2] = beta2
    hyper[EPSILON] = epsilon
    hyper[L2] = l2
    hyper[CLIP_NORM] = clip_norm or 0.0
    hyper[CLIP_VALUE] = clip_value or 0.0
    return hyper


@jit
def finish_gradients_inplace(grads, params, offsets, sizes, l2, clip_value,
                             norms, measure):
    """Add the L2 term, clip by value and measure norms, in one pass.

    Per layer, ``g_W <- clip(g_W + l2 * W)`` and ``g_b <- clip(g_b)``.

    Parameters
    ----------
    grads, params : ndarray, shape (P,)
        Flat gradient (updated in place) and parameter buffers.
    offsets : ndarray of int64, shape (L,)
        Start of layer ``l`` (its weights, then its bias) in the flat buffers.
    sizes : ndarray of int64, shape (L + 1,)
        Layer widths.
    l2 : float
        Coefficient of ``W`` in the gradient (``alpha / sum of sample weights``).
    clip_value : float
        Clip bound, 0 for none.
    norms : ndarray of float64, shape (L,)
        When ``measure``, overwritten with each layer's gradient norm before clipping.
    measure : bool

    Returns
    -------
    float
        Squared global norm of the gradient after clipping by value.
    """
    coef = like(l2, grads)
    bound = like(clip_value, grads)
    total = 0.0
    for layer in range(sizes.size - 1):
        start = offsets[layer]
        n_weights = sizes[layer] * sizes[layer + 1]
        stop = start + n_weights + sizes[layer + 1]
        raw = 0.0
        clipped = 0.0
        for i in range(start, stop):
            g = grads[i]
            if coef != 0.0 and i < start + n_weights:
                g += coef * params[i]
            raw += g * g
            if bound > 0.0:
                g = min(max(g, -bound), bound)
            clipped += g * g
            grads[i] = g
        if measure:
            norms[layer] = math.sqrt(raw)
        total += clipped
    return total


@jit
def update_inplace(params, grads, state1, state2, code, hyper, t, scale):
    """Apply one optimizer step to the flat buffers, in place.

    Parameters
    ----------
    params : ndarray, shape (P,)
        Updated in place.
    grads : ndarray, shape (P,)
        Gradient; multiplied by ``scale`` (global-norm clipping) on the fly.
    state1, state2 : ndarray, shape (P,) or (0,)
        Optimizer state (velocity; Adam's first and second moments), in place.
    code : int
        ``OPTIMIZERS[name].code``.
    hyper : ndarray of float64, shape (N_HYPER,)
    t : int
        Step number, starting at 1 (Adam's bias correction).
    scale : float
        Factor applied to the gradient.
    """
    n = params.size
    if code == 0:
        lr = like(hyper[LR] * scale, params)
        mu = like(hyper[MOMENTUM], params)
        if mu == 0.0:
            for i in range(n):
                params[i] -= lr * grads[i]
        elif hyper[NESTEROV] != 0.0:
            for i in range(n):
                v = mu * state1[i] - lr * grads[i]
                state1[i] = v
                params[i] += mu * v - lr * grads[i]
        else:
            for i in range(n):
                v = mu * state1[i] - lr * grads[i]
                state1[i] = v
                params[i] += v
    elif code == 1:
        b1 = hyper[BETA1]
        b2 = hyper[BETA2]
        lr_t = hyper[LR] * math.sqrt(1.0 - b2 ** t) / (1.0 - b1 ** t)
        step = like(lr_t, params)
        beta1 = like(b1, params)
        beta2 = like(b2, params)
        one = like(1.0, params)
        eps = like(hyper[EPSILON], params)
        g_scale = like(scale, params)
        for i in range(n):
            g = g_scale * grads[i]
            m = beta1 * state1[i] + (one - beta1) * g
            v = beta2 * state2[i] + (one - beta2) * g * g
            state1[i] = m
            state2[i] = v
            params[i] -= step * m / (math.sqrt(v) + eps)
