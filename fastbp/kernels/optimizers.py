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

The update applies the *effective* gradient ``scale * clip(g + l2 * W)`` on
the fly, so the L2 term, clipping by value and the update are one pass over
the buffers. :func:`gradient_norms` measures per-layer norms and the global
norm (for clipping by norm, the ``scale``) without writing anything, and runs
only on the steps that need it.

Hyperparameters travel as one float64 array indexed by the constants below.
"""

import math
from typing import NamedTuple

import numpy as np

from ..config import jit
from .dtypes import like, tiny
from .views import segment


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
def gradient_norms(grads, params, offsets, sizes, l2, clip_value, norms, measure):
    """Norms of the effective gradient ``clip(g + l2 * W)``, without writing it.

    The effective gradient of layer ``l`` is ``clip(g_W + l2 * W_l)`` for its
    weights and ``clip(g_b)`` for its bias (``clip`` to ``[-clip_value,
    clip_value]``, none when ``clip_value == 0``): what :func:`update_inplace`
    applies, before its global-norm scale.

    Parameters
    ----------
    grads, params : ndarray, shape (P,)
        Flat gradient and parameter buffers.
    offsets : ndarray of int64, shape (L,)
        Start of layer ``l`` (its weights, then its bias) in the flat buffers.
    sizes : ndarray of int64, shape (L + 1,)
        Layer widths.
    l2 : float
        Coefficient of ``W`` in the gradient (``alpha / sum of sample weights``).
    clip_value : float
    norms : ndarray of float64, shape (L,)
        When ``measure``, overwritten with each layer's norm before clipping.
    measure : bool

    Returns
    -------
    float
        Squared global norm after clipping by value.
    """
    bound = like(clip_value if clip_value > 0.0 else math.inf, grads)
    total = 0.0
    for layer in range(sizes.size - 1):
        raw = like(0.0, grads)
        clipped = like(0.0, grads)
        for coef, (G, W) in ((like(l2, grads), _weights(grads, params, offsets, sizes, layer)),
                             (like(0.0, grads), _biases(grads, params, offsets, sizes, layer))):
            for i in range(G.size):
                g = G[i] + coef * W[i]
                raw += g * g
                g = min(max(g, -bound), bound)
                clipped += g * g
        if measure:
            norms[layer] = math.sqrt(raw)
        total += clipped
    return total


@jit
def _weights(grads, params, offsets, sizes, layer):
    """Layer ``layer``'s weight segments of ``grads`` and ``params`` (flat views)."""
    n = sizes[layer] * sizes[layer + 1]
    return segment(grads, offsets[layer], n), segment(params, offsets[layer], n)


@jit
def _biases(grads, params, offsets, sizes, layer):
    """Layer ``layer``'s bias segments of ``grads`` and ``params`` (flat views)."""
    start = offsets[layer] + sizes[layer] * sizes[layer + 1]
    n = sizes[layer + 1]
    return segment(grads, start, n), segment(params, start, n)


@jit
def add_l2_inplace(grads, params, offsets, sizes, l2):
    """``g_W <- g_W + l2 * W`` for every layer, in place."""
    coef = like(l2, grads)
    for layer in range(sizes.size - 1):
        G, W = _weights(grads, params, offsets, sizes, layer)
        for i in range(G.size):
            G[i] += coef * W[i]


@jit
def _clip_with_l2(G, P, coef, bound):
    """``G <- clip(G + coef * P, -bound, bound)``: the L2 term goes in before clipping."""
    for i in range(G.size):
        G[i] = min(max(G[i] + coef * P[i], -bound), bound)


@jit
def flush_subnormals_inplace(state):
    """Set the elements of ``state`` below the smallest normal float to 0.

    The velocity (or Adam moment) of a parameter whose gradient stays 0, such
    as the bias of a dead ReLU unit, decays geometrically into subnormals and
    then stays there, and every step through a subnormal takes a slow path on
    x86: digits at batch 1 went from 5.5 to 7.2 microseconds per sample once 35
    such velocities had sunk. The training epochs call this once at their end;
    a flushed value stays 0. Adding a subnormal to a parameter changes nothing
    unless the parameter itself is below ~1e-292, so the parameters are as
    without the flush. (Flushing in the update loop itself cost more than it
    saved.)
    """
    smallest = tiny(state)
    zero = like(0.0, state)
    for i in range(state.size):
        if abs(state[i]) < smallest:
            state[i] = zero


@jit
def update_segment(P, G, S1, S2, l2, code, lr, mu, nesterov, beta1, beta2, eps, step,
                    scale):
    """:func:`update_inplace` on one segment (views), constants in the dtype.

    Returns ``sum(P**2)`` before the update, a by-product of the pass.
    """
    one = like(1.0, P)
    sq = like(0.0, P)
    if code == 0:
        if mu == 0.0:
            for i in range(P.size):
                p = P[i]
                sq += p * p
                P[i] = p - lr * (G[i] + l2 * p)
        elif nesterov:
            for i in range(P.size):
                p = P[i]
                sq += p * p
                g = G[i] + l2 * p
                v = mu * S1[i] - lr * g
                S1[i] = v
                P[i] = p + mu * v - lr * g
        else:
            for i in range(P.size):
                p = P[i]
                sq += p * p
                v = mu * S1[i] - lr * (G[i] + l2 * p)
                S1[i] = v
                P[i] = p + v
    else:
        for i in range(P.size):
            p = P[i]
            sq += p * p
            g = scale * (G[i] + l2 * p)
            m = beta1 * S1[i] + (one - beta1) * g
            v = beta2 * S2[i] + (one - beta2) * g * g
            S1[i] = m
            S2[i] = v
            P[i] = p - step * m / (math.sqrt(v) + eps)
    return sq


@jit
def update_inplace(params, grads, state1, state2, offsets, sizes, code, hyper, t, scale,
                   l2):
    """Apply one optimizer step to the flat buffers, in place.

    The step uses the effective gradient ``scale * clip(g + l2 * W)`` (no L2
    term on biases; ``clip`` by ``hyper[CLIP_VALUE]``). Without clipping by
    value it is computed on the fly, so the L2 term and the update are one
    pass; with it, ``grads`` is first overwritten with the clipped gradient.

    Parameters
    ----------
    params : ndarray, shape (P,)
        Updated in place.
    grads : ndarray, shape (P,)
        Gradient of the data term (overwritten only when clipping by value).
    state1, state2 : ndarray, shape (P,) or (0,)
        Optimizer state (velocity; Adam's first and second moments), in place.
    offsets, sizes : as in :func:`gradient_norms`
    code : int
        ``OPTIMIZERS[name].code``.
    hyper : ndarray of float64, shape (N_HYPER,)
    t : int
        Step number, starting at 1 (Adam's bias correction).
    scale : float
        Global-norm clipping factor.
    l2 : float
        Coefficient of ``W`` in the gradient.

    Returns
    -------
    float
        ``sum_l ||W_l||^2`` before the step (for the L2 term of the loss).
    """
    return update_range_inplace(params, grads, state1, state2, offsets, sizes, code, hyper,
                                t, scale, l2, 0, params.size)


@jit
def update_range_inplace(params, grads, state1, state2, offsets, sizes, code, hyper, t,
                         scale, l2, lo, hi):
    """:func:`update_inplace` on the elements ``lo .. hi - 1`` of the flat buffers only.

    Disjoint ranges can be updated by parallel threads. Returns the part of
    ``sum_l ||W_l||^2`` (before the step) that lies in the range.
    """
    clip_value = hyper[CLIP_VALUE]
    bound = like(clip_value, params)
    zero = like(0.0, params)
    lr, mu, nesterov, beta1, beta2, eps, step, g_scale = step_constants(hyper, code, t,
                                                                         scale, params)
    n_state1 = state1.size > 0
    n_state2 = state2.size > 0
    weight_sq = 0.0
    for layer in range(sizes.size - 1):
        n_weights = sizes[layer] * sizes[layer + 1]
        for is_weight, first, n in ((True, offsets[layer], n_weights),
                                    (False, offsets[layer] + n_weights, sizes[layer + 1])):
            start = max(first, lo)
            n = min(first + n, hi) - start
            if n <= 0:
                continue
            P = segment(params, start, n)
            G = segment(grads, start, n)
            coef = like(l2, params) if is_weight else zero
            if clip_value > 0.0:
                _clip_with_l2(G, P, coef, bound)
                coef = zero
            sq = update_segment(P, G, segment(state1, start, n if n_state1 else 0),
                                 segment(state2, start, n if n_state2 else 0), coef, code,
                                 lr, mu, nesterov, beta1, beta2, eps, step, g_scale)
            if is_weight:
                weight_sq += sq
    return weight_sq


@jit
def step_constants(hyper, code, t, scale, params):
    """The constants of step ``t`` in the dtype of ``params``, as :func:`update_segment`
    takes them: ``lr, mu, nesterov, beta1, beta2, eps, step, scale``, where ``step``
    is Adam's bias-corrected rate ``lr * sqrt(1 - beta2**t) / (1 - beta1**t)`` (0
    for SGD, which spares its two powers)."""
    b1 = hyper[BETA1]
    b2 = hyper[BETA2]
    step = hyper[LR] * math.sqrt(1.0 - b2 ** t) / (1.0 - b1 ** t) if code == 1 else 0.0
    return (like(hyper[LR] * scale, params), like(hyper[MOMENTUM], params),
            hyper[NESTEROV] != 0.0, like(b1, params), like(b2, params),
            like(hyper[EPSILON], params), like(step, params), like(scale, params))


#: Elements of the gradient :func:`update_layer_outer_inplace` forms at a time
#: (whole rows of ``W``; 8 KiB in float64, so it stays in the L1 cache).
OUTER_CHUNK = 1024


@jit
def update_layer_outer_inplace(params, state1, state2, start, A, D, col_sums, inv_sw,
                               code, hyper, t, l2, g, A_next, Z_next):
    """One optimizer step of one layer whose weight gradient is a few outer products.

    The layer's gradient ``(A.T @ D) * inv_sw`` (bias: ``col_sums * inv_sw``) is
    formed a chunk of rows of ``W`` at a time in ``g`` and applied at once, so
    for a small batch the step reads and writes each parameter and its state
    once and no gradient buffer goes through memory. The arithmetic is
    :func:`update_inplace`'s, without clipping by norm (``scale = 1``).

    Parameters
    ----------
    params, state1, state2 : flat buffers as in :func:`update_inplace`
    start : int
        Offset of the layer's weights ``W`` (shape ``(n_in, n_out)``), then bias.
    A : ndarray, shape (rows, n_in)
        The layer's input batch.
    D : ndarray, shape (rows, n_out)
        Gradient of the summed weighted loss with respect to the layer's outputs.
    col_sums : ndarray, shape (n_out,)
        ``sum_i D[i]``.
    inv_sw : float
        ``1 / S``.
    code, hyper, t : as in :func:`update_inplace`
    l2 : float
        Coefficient of ``W`` in the gradient.
    g : ndarray, shape (max(OUTER_CHUNK, n_out),)
        Scratch space.
    A_next : ndarray, shape (rows_next, n_in)
        Input of the next batch (``rows_next`` may be 0).
    Z_next : ndarray, shape (rows_next, n_out)
        Overwritten with ``A_next @ W`` for the updated ``W``, each row of ``W``
        read while the step has it in cache (rows whose input is 0 skipped):
        the next batch's product through this layer, without its bias.

    Returns
    -------
    float
        ``||W||^2`` before the step.
    """
    rows, n_in = A.shape
    n_out = D.shape[1]
    lr, mu, nesterov, beta1, beta2, eps, step, one = step_constants(hyper, code, t, 1.0,
                                                                     params)
    clip_value = hyper[CLIP_VALUE]
    bound = like(clip_value, params)
    scale = like(inv_sw, params)
    coef = like(l2, params)
    zero = like(0.0, params)
    per_chunk = max(1, OUTER_CHUNK // n_out)
    with_state1 = state1.size > 0
    with_state2 = state2.size > 0
    weight_sq = 0.0
    rows_next = A_next.shape[0]
    for r in range(rows_next):
        for j in range(n_out):
            Z_next[r, j] = zero
    for first in range(0, n_in + 1, per_chunk):
        # rows first..last-1 of [W; b], contiguous in the flat buffers
        last = min(first + per_chunk, n_in + 1)
        n = (last - first) * n_out
        offset = start + first * n_out
        P = segment(params, offset, n)
        for i in range(first, last):
            G = segment(g, (i - first) * n_out, n_out)
            if i == n_in:       # the bias row: sum_i D[i] / S
                for j in range(n_out):
                    G[j] = col_sums[j] * scale
                continue
            a = A[0, i] * scale     # row i of W: (A[:, i] @ D) / S
            for j in range(n_out):
                G[j] = a * D[0, j]
            for r in range(1, rows):
                a = A[r, i] * scale
                for j in range(n_out):
                    G[j] += a * D[r, j]
        G = segment(g, 0, n)
        weight_rows = min(last, n_in) - first
        l2_coef = coef
        if clip_value > 0.0:
            split = weight_rows * n_out    # the bias row has no L2 term
            _clip_with_l2(segment(G, 0, split), segment(P, 0, split), coef, bound)
            _clip_with_l2(segment(G, split, n - split), segment(P, split, n - split), zero,
                          bound)
            l2_coef = zero
        if weight_rows < last - first and weight_rows > 0:
            # the chunk ends with the bias row, which has no L2 term: update apart
            split = weight_rows * n_out
            weight_sq += update_segment(
                segment(P, 0, split), segment(G, 0, split),
                segment(state1, offset, split if with_state1 else 0),
                segment(state2, offset, split if with_state2 else 0), l2_coef, code, lr,
                mu, nesterov, beta1, beta2, eps, step, one)
            offset += split
            P = segment(P, split, n_out)
            G = segment(G, split, n_out)
            n = n_out
            weight_rows = 0
        sq = update_segment(P, G, segment(state1, offset, n if with_state1 else 0),
                             segment(state2, offset, n if with_state2 else 0),
                             l2_coef if weight_rows > 0 else zero, code, lr, mu, nesterov,
                             beta1, beta2, eps, step, one)
        if weight_rows > 0:
            weight_sq += sq
        for r in range(rows_next):
            _add_rows_product(Z_next, A_next, r, params, start, n_out, first,
                              min(last, n_in))
    return weight_sq


@jit
def _add_rows_product(Z, A, r, params, start, n_out, first, last):
    """``Z[r] += A[r, first:last] @ W[first:last]`` for ``W`` of width ``n_out`` at
    ``start`` in ``params``.

    Four rows of ``W`` per pass over ``Z[r]`` (a quarter of its loads and
    stores); a group whose inputs are all 0 is skipped.
    """
    zero = like(0.0, Z)
    i = first
    while i < last:
        if last - i >= 4:
            a0, a1, a2, a3 = A[r, i], A[r, i + 1], A[r, i + 2], A[r, i + 3]
            if a0 != zero or a1 != zero or a2 != zero or a3 != zero:
                W0 = segment(params, start + i * n_out, n_out)
                W1 = segment(params, start + (i + 1) * n_out, n_out)
                W2 = segment(params, start + (i + 2) * n_out, n_out)
                W3 = segment(params, start + (i + 3) * n_out, n_out)
                for j in range(n_out):
                    Z[r, j] += a0 * W0[j] + a1 * W1[j] + a2 * W2[j] + a3 * W3[j]
            i += 4
        else:
            a0 = A[r, i]
            if a0 != zero:
                W0 = segment(params, start + i * n_out, n_out)
                for j in range(n_out):
                    Z[r, j] += a0 * W0[j]
            i += 1
