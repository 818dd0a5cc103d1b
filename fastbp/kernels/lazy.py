"""Lazy momentum steps for the rows of the first layer whose input is 0.

At batch size 1 most of an SGD step's time goes to the first layer's weights
and velocities. Row ``i`` of ``W_0`` gets the data gradient ``a d`` with
``a = x_i / S`` (``d`` the layer's output delta), so a row whose input is 0
gets none, and its step is one linear map of each element ``(w, v)``, the
same for every element and every step. With ``c = lr * l2`` (``l2 = alpha /
S``) the momentum step ``v' = mu v - lr (g + l2 w)`` is

    v' = mu v - c w - lr a d
    w' = w + v'                  = (1 - c) w + mu v - lr a d            (momentum)
    w' = w + mu v' - lr (a d + l2 w)
                                 = (1 - c - mu c) w + mu^2 v - lr (1 + mu) a d   (Nesterov)

that is ``(w', v') = M (w, v) - (gamma, lr) a d`` with a 2x2 matrix ``M``
and ``gamma = lr (1 + mu)`` with Nesterov, ``lr`` without. A row whose input
is 0 is not touched: it records the step ``since[i]`` its stored elements
belong to, and when its input is next non-zero, ``k`` steps later, its
catch-up and its step are one pass:

    (w', v') = M^(k+1) (w, v) - (gamma, lr) a d

with ``M^(k+1)`` from a table of powers. Rows are also brought up to date
when their lag reaches :data:`MAX_LAG` (so the table stays small) and at the
end of the epoch, and the result is scikit-learn's steps up to rounding.

Two more things read ``W_0`` between its steps, and both take the lag into
account:

* the next sample's first product ``x_next @ W_0``, formed during the step
  (see ``optimizers.update_layer_outer_inplace``): a row brought up to date
  adds its new ``w'``, a row left behind adds ``(M^(k+1))_11 w +
  (M^(k+1))_12 v``;
* the L2 term of the loss, ``||W_0||^2`` at every step: each row keeps the
  sums ``Sww, Swv, Svv`` of ``w^2, w v, v^2`` over its stored elements, so
  its current squared norm is ``m11^2 Sww + 2 m11 m12 Swv + m12^2 Svv`` with
  ``(m11, m12)`` the first row of ``M^k``. (A row whose next input is known
  to be non-zero keeps only ``Sww``: it is touched again at lag 0.)

The training epoch takes this path for single-sample SGD steps with
momentum, without clipping, when all samples have the same weight (so ``M``
is constant; :func:`takes_lazy_rows`). It pays at any fraction of zero inputs: the
step of a row brought up to date is one pass that also adds its share of the
next first product, where the plain fused step forms the gradient, then steps,
then adds. Measured per sample against the plain fused step (64-100-10,
Nesterov, best of three alternating runs): 0.99x the time with no zero
inputs, 0.93x with 30% of them 0 at random, 0.84x with 50%; on the digits
(49% zeros, most in the same pixels) 0.72x.
"""

import numpy as np

from ..config import jit
from .dtypes import like
from .optimizers import step_constants, update_segment
from .views import segment

#: Most steps a row is left behind; the table of powers has ``MAX_LAG + 2``
#: entries (8 KiB in float64).
MAX_LAG = 254

# columns of a row of the table of powers, and of the row sums
M11, M12, M21, M22 = range(4)
SWW, SWV, SVV = range(3)


@jit
def takes_lazy_rows(sw, order):
    """Whether an epoch over ``order`` at batch size 1 takes lazy rows: when all
    its samples have the same positive weight, so that ``M`` is the same at every
    step."""
    if order.size < 3:
        return False
    weight = sw[order[0]]
    if not weight > 0.0:
        return False
    for k in range(order.size):
        if sw[order[k]] != weight:
            return False
    return True


@jit
def step_powers(lr, mu, nesterov, l2, like_params, count=MAX_LAG + 2):
    """The table ``M^k``, ``k = 0 .. count - 1``, of the step matrix ``M``.

    Returns
    -------
    ndarray, shape (count, 4), dtype of ``like_params``
        Row ``k`` holds ``M^k`` as ``m11, m12, m21, m22`` (see the module
        docstring), computed in float64. The lazy rows need ``MAX_LAG + 2``.
    """
    c = lr * l2
    if nesterov:
        a11, a12 = 1.0 - c - mu * c, mu * mu
    else:
        a11, a12 = 1.0 - c, mu
    a21, a22 = -c, mu
    powers = np.empty((count, 4), like_params.dtype)
    p11, p12, p21, p22 = 1.0, 0.0, 0.0, 1.0
    for k in range(count):
        powers[k, M11] = p11
        powers[k, M12] = p12
        powers[k, M21] = p21
        powers[k, M22] = p22
        p11, p12, p21, p22 = (a11 * p11 + a12 * p21, a11 * p12 + a12 * p22,
                              a21 * p11 + a22 * p21, a21 * p12 + a22 * p22)
    return powers


@jit
def _rows(params, state1, start, n_out, i):
    """Row ``i`` of a weight matrix of width ``n_out`` at ``start``, and its velocity."""
    offset = start + i * n_out
    return segment(params, offset, n_out), segment(state1, offset, n_out)


@jit
def _store_row_sums(W, V, sums, i):
    """``sums[i] = Sww, Swv, Svv`` of the row ``W`` and its velocity ``V``."""
    sww = like(0.0, W)
    swv = like(0.0, W)
    svv = like(0.0, W)
    for j in range(W.size):
        sww += W[j] * W[j]
        swv += W[j] * V[j]
        svv += V[j] * V[j]
    sums[i, SWW] = sww
    sums[i, SWV] = swv
    sums[i, SVV] = svv


@jit
def _bring_up_to_date(W, V, sums, i, m):
    """``(w, v) <- M^k (w, v)`` on row ``i`` (``m``: row ``k`` of the table of
    powers); refreshes its sums."""
    m11, m12, m21, m22 = m[M11], m[M12], m[M21], m[M22]
    for j in range(W.size):
        w = W[j]
        v = V[j]
        W[j] = m11 * w + m12 * v
        V[j] = m21 * w + m22 * v
    _store_row_sums(W, V, sums, i)


@jit
def start_lazy_rows(params, state1, start, n_in, n_out, since, sums, k):
    """Mark every row of the weights at ``start`` as up to date at step ``k``."""
    for i in range(n_in):
        W, V = _rows(params, state1, start, n_out, i)
        since[i] = k
        _store_row_sums(W, V, sums, i)


@jit
def catch_up_lazy_rows(params, state1, start, n_in, n_out, since, sums, powers, k):
    """Bring every row left behind up to date at step ``k``."""
    for i in range(n_in):
        lag = k - since[i]
        if lag > 0:
            W, V = _rows(params, state1, start, n_out, i)
            _bring_up_to_date(W, V, sums, i, powers[lag])
            since[i] = k


@jit
def lazy_weight_sq(params, state1, start, n_in, n_out, since, sums, powers, k):
    """``||W||^2`` at step ``k``, from the row sums; first brings the rows whose
    lag has reached :data:`MAX_LAG` up to date."""
    total = 0.0
    for i in range(n_in):
        lag = k - since[i]
        if lag >= MAX_LAG:
            W, V = _rows(params, state1, start, n_out, i)
            _bring_up_to_date(W, V, sums, i, powers[lag])
            since[i] = k
            lag = 0
        if lag == 0:
            total += sums[i, SWW]
        else:
            m11 = powers[lag, M11]
            m12 = powers[lag, M12]
            total += (m11 * m11 * sums[i, SWW] + 2.0 * m11 * m12 * sums[i, SWV]
                      + m12 * m12 * sums[i, SVV])
    return total


@jit
def lazy_layer_step(params, state1, start, A, D, col_sums, inv_sw, hyper, t, since, sums,
                    powers, g, A_next, Z_next):
    """Step ``t`` of a layer from one sample with lazy rows: the counterpart of
    ``optimizers.update_layer_outer_inplace`` for SGD with momentum.

    Parameters
    ----------
    params, state1 : ndarray, shape (P,)
        Flat parameters and velocities, in place.
    start : int
        Offset of the layer's weights ``W`` (shape ``(n_in, n_out)``), then bias.
    A : ndarray, shape (1, n_in)
        The sample's input.
    D : ndarray, shape (1, n_out)
        Gradient of its weighted loss with respect to the layer's outputs.
    col_sums : ndarray, shape (n_out,)
        ``D[0]``, the bias gradient times ``S``.
    inv_sw : float
        ``1 / S``.
    hyper : ndarray of float64
        See ``optimizers.hyperparameters``.
    t : int
        The step: ``W`` goes from ``W(t)`` to ``W(t + 1)``.
    since : ndarray of int64, shape (n_in,)
        Step each row's stored elements belong to (in place).
    sums : ndarray of float64, shape (n_in, 3)
        ``Sww, Swv, Svv`` of each row's stored elements (in place).
    powers : ndarray, shape (MAX_LAG + 2, 4)
        As :func:`step_powers` returns.
    g : ndarray, shape (>= n_out,)
        Scratch space.
    A_next : ndarray, shape (rows_next, n_in)
        Input of the next batch: one sample, or no rows.
    Z_next : ndarray, shape (rows_next, n_out)
        Overwritten with ``A_next @ W(t + 1)``.

    Returns
    -------
    float
        ``||W(t)||^2``.
    """
    n_in = A.shape[1]
    n_out = D.shape[1]
    lr, mu, nesterov, beta1, beta2, eps, step, one = step_constants(hyper, 0, t, 1.0,
                                                                     params)
    weight_sq = lazy_weight_sq(params, state1, start, n_in, n_out, since, sums, powers, t)
    gamma = lr * (one + mu) if nesterov else lr
    _lazy_weights_step(params, state1, start, n_in, n_out, A, D, like(inv_sw, params), lr,
                       gamma, since, sums, powers, t, A_next, Z_next)
    # the bias: a plain momentum step
    scale = like(inv_sw, params)
    G = segment(g, 0, n_out)
    for j in range(n_out):
        G[j] = col_sums[j] * scale
    bias = start + n_in * n_out
    update_segment(segment(params, bias, n_out), G, segment(state1, bias, n_out),
                    segment(state1, bias, 0), like(0.0, params), 0, lr, mu, nesterov, beta1,
                    beta2, eps, step, one)
    return weight_sq


@jit
def _lazy_weights_step(params, state1, start, n_in, n_out, A, D, inv_sw, lr, gamma, since,
                       sums, powers, t, A_next, Z_next):
    """The weights' part of :func:`lazy_layer_step`.

    Rows whose input ``A[0, i]`` is non-zero are brought up to date and
    stepped; the others are left behind. ``lr`` and ``gamma`` are the
    coefficients of ``a d`` in ``v'`` and ``w'`` (module docstring).
    """
    zero = like(0.0, params)
    with_next = A_next.shape[0] > 0
    for j in range(Z_next.shape[1] if with_next else 0):
        Z_next[0, j] = zero
    for i in range(n_in):
        xi = A[0, i]
        xn = A_next[0, i] if with_next else zero
        if xi == zero and xn == zero:
            continue
        W, V = _rows(params, state1, start, n_out, i)
        m = powers[t - since[i] + 1]
        m11, m12, m21, m22 = m[M11], m[M12], m[M21], m[M22]
        if xi == zero:
            # left behind: add the row as it is at step t + 1
            c11 = xn * m11
            c12 = xn * m12
            for j in range(n_out):
                Z_next[0, j] += c11 * W[j] + c12 * V[j]
            continue
        a = xi * inv_sw
        aw = -gamma * a
        av = -lr * a
        since[i] = t + 1
        sww = like(0.0, W)
        if xn != zero:
            # touched again at the next step, at lag 0: only Sww is read
            for j in range(n_out):
                w = W[j]
                v = V[j]
                w_new = m11 * w + m12 * v + aw * D[0, j]
                V[j] = m21 * w + m22 * v + av * D[0, j]
                W[j] = w_new
                sww += w_new * w_new
                Z_next[0, j] += xn * w_new
        else:
            swv = like(0.0, W)
            svv = like(0.0, W)
            for j in range(n_out):
                w = W[j]
                v = V[j]
                w_new = m11 * w + m12 * v + aw * D[0, j]
                v_new = m21 * w + m22 * v + av * D[0, j]
                W[j] = w_new
                V[j] = v_new
                sww += w_new * w_new
                swv += w_new * v_new
                svv += v_new * v_new
            sums[i, SWV] = swv
            sums[i, SVV] = svv
        sums[i, SWW] = sww
