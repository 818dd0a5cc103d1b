"""Losses with their output activation, fused with the output gradient.

Each loss works on the logits ``Z`` of the last layer (its pre-activations) and
pairs with a canonical output activation ``g``, for which the gradient of the
loss with respect to ``Z`` is ``g(Z) - Y``:

================================  ==================  ==================================
name                              output ``g``        per-sample loss
================================  ==================  ==================================
``softmax_cross_entropy``         softmax             ``logsumexp(z) - z[y]``
``binary_cross_entropy``          logistic            ``sum_j softplus(z_j) - y_j z_j``
``mse``                           identity            ``0.5 * sum_j (z_j - y_j)**2``
``poisson``                       exp                 ``sum_j exp(z_j) - y_j z_j + y_j log y_j - y_j``
================================  ==================  ==================================

All are computed from logits in a numerically stable form (log-sum-exp,
``softplus(z) = max(z, 0) + log1p(exp(-|z|))``), so no probability is ever
clipped. Targets ``Y`` are stored in the model's float dtype: for the softmax
loss, one column holding the integer class index.
"""

import math
from typing import NamedTuple

from ..config import jit
from .activations import logistic, softplus
from .dtypes import like, log_tiny
from .exp import exp


class Loss(NamedTuple):
    """One loss: its kernel code and the name of its output activation."""

    code: int
    output_activation: str


LOSSES = {
    "softmax_cross_entropy": Loss(0, "softmax"),
    "binary_cross_entropy": Loss(1, "logistic"),
    "mse": Loss(2, "identity"),
    "poisson": Loss(3, "exp"),
}

#: Other accepted spellings.
ALIASES = {
    "cross_entropy": "softmax_cross_entropy",
    "log_loss": "softmax_cross_entropy",
    "bce": "binary_cross_entropy",
    "squared_error": "mse",
}


@jit
def _row_max(Z, i):
    """``max(Z[i])``."""
    m = Z[i, 0]
    for j in range(1, Z.shape[1]):
        m = max(m, Z[i, j])
    return m


@jit
def _shifted_exp_rows(Z, out):
    """``out[i] = exp(Z[i] - max(Z[i]))`` for every row; returns ``out`` flat.

    The shift keeps every exponent <= 0, so nothing overflows: softmax is
    ``out[i] / sum(out[i])`` and log-sum-exp is ``max(Z[i]) + log(sum(out[i]))``
    (the sum is >= 1). The exponentials run as one loop over the whole block,
    which vectorises (a row is only a few classes). ``out`` may be ``Z``.
    """
    n, k = Z.shape
    for i in range(n):
        m = _row_max(Z, i)
        for j in range(k):
            out[i, j] = Z[i, j] - m
    flat = out.reshape(n * k)
    cutoff = log_tiny(Z)
    zero = like(0.0, Z)
    for q in range(flat.size):
        t = flat[q]
        # exponentials below the smallest normal float are flushed to zero: a
        # subnormal would slow every product it enters (a fitted network
        # trained 2.6x slower per sample) for no change in any rounded result
        flat[q] = like(exp(t), Z) if t > cutoff else zero
    return flat


@jit
def loss_delta_inplace(Z, Y, sw, idx, delta, code):
    """Sum of weighted per-sample losses; writes the output gradient into ``delta``.

    Parameters
    ----------
    Z : ndarray, shape (n, k)
        Logits of the last layer.
    Y : ndarray, shape (N, t)
        Targets of the whole data set: ``t == 1`` class indices for the
        softmax loss, else ``t == k``.
    sw : ndarray, shape (N,)
        Sample weights of the whole data set.
    idx : ndarray of int64, shape (n,)
        Row ``i`` of ``Z`` belongs to sample ``idx[i]``.
    delta : ndarray, shape (n, k)
        Overwritten with ``sw[s] * (g(Z[i]) - Y[s])``, ``s = idx[i]``: the gradient of
        ``sum_i sw[i] * loss_i`` with respect to ``Z``.
    code : int
        ``LOSSES[name].code``.

    Returns
    -------
    float
        ``sum_i sw[idx[i]] * loss_i``, accumulated in float64.
    """
    n, k = Z.shape
    total = 0.0
    if code == 0:
        _shifted_exp_rows(Z, delta)
        for i in range(n):
            s = like(0.0, Z)
            for j in range(k):
                s += delta[i, j]
            w = sw[idx[i]]
            target = int(Y[idx[i], 0])
            total += w * (_row_max(Z, i) + math.log(s) - Z[i, target])
            scale = w / s
            for j in range(k):
                delta[i, j] *= scale
            delta[i, target] -= w
    elif code == 1:
        for i in range(n):
            w = sw[idx[i]]
            row = idx[i]
            acc = 0.0
            for j in range(k):
                z = Z[i, j]
                y = Y[row, j]
                acc += softplus(z) - y * z
                delta[i, j] = w * (logistic(z) - y)
            total += w * acc
    elif code == 2:
        for i in range(n):
            w = sw[idx[i]]
            row = idx[i]
            acc = 0.0
            for j in range(k):
                residual = Z[i, j] - Y[row, j]
                acc += residual * residual
                delta[i, j] = w * residual
            total += 0.5 * w * acc
    elif code == 3:
        for i in range(n):
            w = sw[idx[i]]
            row = idx[i]
            acc = 0.0
            for j in range(k):
                z = Z[i, j]
                y = Y[row, j]
                mu = like(exp(z), Z)
                acc += mu - y * z - y
                if y > 0.0:
                    acc += y * math.log(y)
                delta[i, j] = w * (mu - y)
            total += w * acc
    return total


@jit
def output_activation_inplace(Z, code):
    """Overwrite logits ``Z`` (shape (n, k)) with the loss's output activation."""
    n, k = Z.shape
    if code == 0:
        _shifted_exp_rows(Z, Z)
        for i in range(n):
            s = like(0.0, Z)
            for j in range(k):
                s += Z[i, j]
            inv = like(1.0, Z) / s
            for j in range(k):
                Z[i, j] *= inv
    elif code == 1:
        for i in range(n):
            for j in range(k):
                Z[i, j] = logistic(Z[i, j])
    elif code == 3:
        for i in range(n):
            for j in range(k):
                Z[i, j] = like(exp(Z[i, j]), Z)
