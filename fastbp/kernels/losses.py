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
def _row_sum(Z, i):
    """``sum(Z[i])``."""
    s = like(0.0, Z)
    for j in range(Z.shape[1]):
        s += Z[i, j]
    return s


#: Blocks of at least this many rows exponentiate as one vectorised loop over the
#: block (:func:`_shifted_exp_block`); fewer rows call the C library's ``exp``
#: row by row (:func:`_shifted_exp_row`), which measured faster for one row of
#: 10 classes (float32, softmax loss included: 95 ns against 128 ns).
BLOCK_ROWS = 4


@jit
def _shifted_exp_row(Z, out, i):
    """``out[i] = exp(Z[i] - m)`` with ``m = max(Z[i])``; returns ``m`` and ``sum(out[i])``.

    The shift keeps every exponent <= 0, so nothing overflows: softmax is
    ``out[i] / sum`` and log-sum-exp is ``m + log(sum)`` (``sum >= 1``).
    ``out`` may be ``Z``.
    """
    m = _row_max(Z, i)
    s = like(0.0, Z)
    cutoff = log_tiny(Z)
    zero = like(0.0, Z)
    for j in range(Z.shape[1]):
        t = Z[i, j] - m
        # exponentials below the smallest normal float are flushed to zero: a
        # subnormal would slow every product it enters (a fitted network
        # trained 2.6x slower per sample) for no change in any rounded result
        e = math.exp(t) if t > cutoff else zero
        out[i, j] = e
        s += e
    return m, s


@jit
def _shifted_exp_block(Z, out):
    """:func:`_shifted_exp_row` on every row, its exponentials as one loop over the
    block, which vectorises (a row is only a few classes); returns nothing (the
    row maxima and sums are :func:`_row_max` of ``Z`` and :func:`_row_sum` of
    ``out``). Flushes as :func:`_shifted_exp_row` does."""
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
        flat[q] = like(exp(t), Z) if t > cutoff else zero


@jit
def _softmax_row_loss(Z, Y, sw, idx, delta, i, m, s):
    """Row ``i`` of the softmax loss, from ``delta[i] = exp(Z[i] - m)`` and its sum
    ``s``: returns ``w * (m + log(s) - Z[i, target])`` and turns ``delta[i]`` into
    ``w * (softmax(Z[i]) - onehot(target))``."""
    w = sw[idx[i]]
    target = int(Y[idx[i], 0])
    scale = w / s
    for j in range(Z.shape[1]):
        delta[i, j] *= scale
    delta[i, target] -= w
    return w * (m + math.log(s) - Z[i, target])


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
        if n < BLOCK_ROWS:
            for i in range(n):
                m, s = _shifted_exp_row(Z, delta, i)
                total += _softmax_row_loss(Z, Y, sw, idx, delta, i, m, s)
            return total
        _shifted_exp_block(Z, delta)
        for i in range(n):
            total += _softmax_row_loss(Z, Y, sw, idx, delta, i, _row_max(Z, i),
                                       _row_sum(delta, i))
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
        if n >= BLOCK_ROWS:
            _shifted_exp_block(Z, Z)
        for i in range(n):
            s = _row_sum(Z, i) if n >= BLOCK_ROWS else _shifted_exp_row(Z, Z, i)[1]
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
