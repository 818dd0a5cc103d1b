"""Forward pass, backward pass and whole training epochs over flat buffers.

Data layout (all C-contiguous, all in the model's float dtype):

* ``params``/``grads``, shape (P,): layer ``l`` occupies
  ``[offsets[l], offsets[l] + n_l * n_{l+1} + n_{l+1})``: its weights ``W_l``
  (shape ``(n_l, n_{l+1})``, row-major) followed by its bias ``b_l``.
* ``acts``/``deltas``/``pre``, flat work buffers: layer ``l``'s block of
  ``rows`` samples starts at ``a_off[l]`` and holds a ``(rows, n_l)`` matrix:
  activations, gradients of the loss with respect to them, and (for
  activations whose derivative needs it) pre-activations. Block 0 of ``acts``
  holds the gathered input batch (a batch of consecutive samples is read from
  ``X`` in place instead); the last block holds the logits.

For a batch ``B`` with sample weights ``s`` and ``S = sum(s)``, the loss is

    J = (1/S) sum_i s_i loss(z_i, y_i) + (alpha / 2S) sum_l ||W_l||^2

(scikit-learn's convention), whose gradients are ``dJ/dW_l = (A_l.T @ D_l +
alpha W_l) / S`` and ``dJ/db_l = sum_i D_l[i] / S`` with ``D_L = s * (g(Z_L) - Y)``
and ``D_{l-1} = (D_l @ W_l.T) * f'(Z_{l-1})``.
"""

import math

import numpy as np
from numba import prange

from ..config import jit, parallel_jit
from .activations import add_bias_inplace, bias_activation_inplace, derivative_inplace
from .blas import TRANSPOSE_SCRATCH, matmul_bt_inplace, matmul_inplace
from .dtypes import like
from .losses import loss_delta_inplace, output_activation_inplace
from .optimizers import (CLIP_NORM, CLIP_VALUE, L2, LR, MOMENTUM, NESTEROV, OPTIMIZERS,
                         add_l2_inplace, flush_subnormals_inplace, gradient_norms,
                         update_inplace,
                         update_range_inplace, OUTER_CHUNK, update_layer_outer_inplace)
from .lazy import (MAX_LAG, catch_up_lazy_rows, lazy_layer_step, start_lazy_rows,
                   step_powers, takes_lazy_rows)
from .views import block, borrow, rows_of, segment

SGD_CODE = OPTIMIZERS["sgd"].code

#: Batches of at most this many rows take their optimizer step fused into the
#: backward pass (``backward_update_inplace``) instead of through a gradient
#: buffer. Measured (backward plus step, Nesterov; Adam): 64-100-10 at 1 row
#: 0.81x; 0.92x the time, at 2 rows 1.05x; 0.92x, at 4 rows 1.30x; 1.19x;
#: 784-256-10 at 1 row 0.51x; 0.82x, at 2 rows 0.56x; 0.83x, at 8 rows 1.16x; 1.18x.
OUTER_ROWS = 2


def scratch_size(sizes):
    """Length of the ``scratch`` buffer the kernels need for layer widths ``sizes``:
    column sums, then room for a chunk of gradient rows or a transposed weight
    matrix."""
    return max(sizes) + max(max(sizes), OUTER_CHUNK, TRANSPOSE_SCRATCH)


@jit
def forward_inplace(A0, params, offsets, sizes, acts, pre, a_off, hidden,
                    first_done=False):
    """Forward pass: writes every layer's activations into ``acts``.

    Parameters
    ----------
    A0 : ndarray, shape (rows, n_0)
        Input batch.
    params : ndarray, shape (P,)
    offsets : ndarray of int64, shape (L,)
    sizes : ndarray of int64, shape (L + 1,)
    acts : ndarray, flat
        Blocks 1..L are overwritten: hidden activations, then the logits.
    pre : ndarray, flat
        Empty, or (for activations whose derivative reads ``z``) blocks 1..L-1
        are overwritten with the pre-activations.
    a_off : ndarray of int64, shape (L + 2,)
        Block offsets; ``a_off[L + 1]`` is the end of the last block.
    hidden : int
        Activation code of the hidden layers (the output layer is linear).
    first_done : bool
        Block 1 of ``acts`` already holds ``A0 @ W_0`` (computed by the previous
        step, see :func:`backward_update_inplace`): only its bias and activation
        remain.
    """
    rows = A0.shape[0]
    keep_input = pre.size > 0
    n_layers = sizes.size - 1
    A = A0
    for layer in range(n_layers):
        n_in = sizes[layer]
        n_out = sizes[layer + 1]
        W = block(params, offsets[layer], n_in, n_out)
        b = segment(params, offsets[layer] + n_in * n_out, n_out)
        Z = block(acts, a_off[layer + 1], rows, n_out)
        if layer > 0 or not first_done:
            matmul_inplace(False, False, 1.0, A, W, 0.0, Z)
        if layer == n_layers - 1:
            add_bias_inplace(Z, b)
        else:
            rows_kept = rows if keep_input else 0
            bias_activation_inplace(Z, b, hidden,
                                    block(pre, a_off[layer + 1], rows_kept, n_out))
        A = Z


@jit
def _widest(sizes):
    """``max(sizes)``."""
    width = 0
    for n in sizes:
        width = max(width, n)
    return width


@jit(inline="always")   # measured: as a call it cost the online case 12% of its throughput
def _backprop_layer(A0, params, offsets, sizes, acts, deltas, pre, a_off, hidden, layer,
                    col_sums, spare):
    """The part of the backward pass at ``layer`` that comes before its update.

    Writes the input delta ``D_{l-1} = (D_l @ W_l.T) * f'(Z_{l-1})`` (layers
    above the first; it reads ``W_l``, so it runs before ``W_l`` changes; ``spare``
    is scratch space for ``blas.matmul_bt_inplace``) and ``col_sums[:n_out] =
    sum_i D_l[i]``, and returns the views ``A_l`` (the layer's input, shape
    (rows, n_l)) and ``D_l`` (shape (rows, n_{l+1})).
    """
    rows = A0.shape[0]
    n_in = sizes[layer]
    n_out = sizes[layer + 1]
    A = A0 if layer == 0 else block(acts, a_off[layer], rows, n_in)
    D = block(deltas, a_off[layer + 1], rows, n_out)
    if layer > 0:
        D_prev = block(deltas, a_off[layer], rows, n_in)
        matmul_bt_inplace(D, block(params, offsets[layer], n_in, n_out), D_prev, spare)
        P = block(pre, a_off[layer], rows, n_in) if pre.size > 0 else A
        derivative_inplace(D_prev, A, P, hidden)
    s = segment(col_sums, 0, n_out)
    s[:] = 0.0
    for i in range(rows):
        for j in range(n_out):
            s[j] += D[i, j]
    return A, D


@jit
def backward_inplace(A0, params, grads, offsets, sizes, acts, deltas, pre, a_off,
                     hidden, inv_sw, lr, l2, scratch):
    """Backward pass from the output gradient in the last block of ``deltas``.

    For each layer, from the top: the input delta ``D_{l-1}`` (with the
    activation derivative fused in) is computed from ``W_l`` first, then either

    * ``lr > 0``: plain SGD in place, ``W_l <- (1 - lr*l2*inv_sw) W_l -
      lr*inv_sw A_l.T @ D_l`` as one gemm, and ``b_l -= lr*inv_sw sum_i D_l[i]``;
    * ``lr == 0``: ``grads`` gets ``A_l.T @ D_l * inv_sw`` and ``sum_i D_l[i] * inv_sw``
      (the L2 term is added on the fly by the optimizer update).

    Parameters
    ----------
    A0 : ndarray, shape (rows, n_0)
    params, grads : ndarray, shape (P,)
    offsets, sizes, acts, pre, a_off, hidden : as in :func:`forward_inplace`
    deltas : ndarray, flat
        Blocks 1..L-1 are overwritten.
    inv_sw : float
        ``1 / S``.
    lr : float
        Learning rate of the fused plain-SGD update, or 0 to write ``grads``.
    l2 : float
        ``alpha``, used by the fused update.
    scratch : ndarray, shape (scratch_size(sizes),)
        Scratch space (column sums of ``D_l``, a transposed ``W_l``).
    """
    n_layers = sizes.size - 1
    # column sums at the start, the transposed W_l at the end (scratch_size)
    spare = segment(scratch, scratch.size - TRANSPOSE_SCRATCH, TRANSPOSE_SCRATCH)
    for layer in range(n_layers - 1, -1, -1):
        n_in = sizes[layer]
        n_out = sizes[layer + 1]
        start = offsets[layer]
        A, D = _backprop_layer(A0, params, offsets, sizes, acts, deltas, pre, a_off, hidden,
                               layer, scratch, spare)
        s = segment(scratch, 0, n_out)
        if lr > 0.0:
            step = lr * inv_sw
            matmul_inplace(True, False, -step, A, D, 1.0 - step * l2,
                           block(params, start, n_in, n_out))
            b = segment(params, start + n_in * n_out, n_out)
            c = like(step, b)
            for j in range(n_out):
                b[j] -= c * s[j]
        else:
            matmul_inplace(True, False, inv_sw, A, D, 0.0, block(grads, start, n_in, n_out))
            gb = segment(grads, start + n_in * n_out, n_out)
            c = like(inv_sw, gb)
            for j in range(n_out):
                gb[j] = c * s[j]


@jit
def backward_update_inplace(A0, params, state1, state2, offsets, sizes, acts, deltas, pre,
                            a_off, hidden, inv_sw, opt_code, hyper, t, l2, scratch, A_next,
                            since, row_sums, powers):
    """Backward pass fused with the optimizer step, for batches of a few rows.

    Each layer, from the top, gets its input delta and then its step from
    :func:`update_layer_outer_inplace`: the gradient ``A_l.T @ D_l`` is never
    stored. No clipping by norm (it needs the whole gradient first).

    Parameters
    ----------
    A0, params, offsets, sizes, acts, deltas, pre, a_off, hidden, inv_sw :
        as in :func:`backward_inplace`
    state1, state2, opt_code, hyper, t : as in ``optimizers.update_inplace``
    l2 : float
        Coefficient of ``W`` in the gradient (``alpha / S``).
    scratch : ndarray, shape (scratch_size(sizes),)
    A_next : ndarray, shape (rows_next, n_0)
        Input of the next batch, or no rows. Its product with the updated
        ``W_0`` goes to block 1 of ``acts`` (read as ``first_done`` by the next
        forward pass), computed while the update of ``W_0``, the last one of
        the step, has each row in cache.
    since, row_sums, powers : ndarray
        Empty, or the lazy rows of ``W_0`` (``lazy.lazy_layer_step``; one
        sample, SGD with momentum), which then also give ``A_next @ W_0``.

    Returns
    -------
    float
        ``sum_l ||W_l||^2`` before the step.
    """
    width = _widest(sizes)
    col_sums = segment(scratch, 0, width)
    g_row = segment(scratch, width, scratch.size - width)   # also the spare of backprop
    weight_sq = 0.0
    for layer in range(sizes.size - 2, -1, -1):
        A, D = _backprop_layer(A0, params, offsets, sizes, acts, deltas, pre, a_off, hidden,
                               layer, col_sums, g_row)
        # block 1 of acts (layer 0's output) is no longer read once layer 0 updates
        rows_next = A_next.shape[0] if layer == 0 else 0
        if layer == 0 and since.size > 0:
            weight_sq += lazy_layer_step(params, state1, offsets[0], A, D, col_sums, inv_sw,
                                         hyper, t, since, row_sums, powers, g_row,
                                         rows_of(A_next, 0, rows_next),
                                         block(acts, a_off[1], rows_next, sizes[1]))
            continue
        weight_sq += update_layer_outer_inplace(
            params, state1, state2, offsets[layer], A, D, col_sums, inv_sw, opt_code, hyper,
            t, l2, g_row, rows_of(A_next, 0, rows_next),
            block(acts, a_off[1], rows_next, sizes[1]))
    return weight_sq


@jit
def sum_squared_weights(params, offsets, sizes):
    """``sum_l ||W_l||^2`` (biases excluded), accumulated per layer in the dtype."""
    total = 0.0
    for layer in range(sizes.size - 1):
        W = segment(params, offsets[layer], sizes[layer] * sizes[layer + 1])
        layer_total = like(0.0, params)
        for i in range(W.size):
            layer_total += W[i] * W[i]
        total += layer_total
    return total


@jit
def _consecutive(idx):
    """Whether ``idx`` is ``k, k + 1, ..., k + len(idx) - 1``."""
    for i in range(1, idx.size):
        if idx[i] != idx[0] + i:
            return False
    return True


@jit
def gather_rows_inplace(X, idx, out):
    """``out[i] = X[idx[i]]`` for ``out`` of shape (len(idx), n_features)."""
    n = X.shape[1]
    for i in range(idx.size):
        k = idx[i]
        for j in range(n):
            out[i, j] = X[k, j]


@jit(inline="always")   # a call per batch: see _backprop_layer
def batch_input(X, idx, acts, n0):
    """The input rows ``X[idx]`` of a batch, shape (len(idx), n0).

    A batch of consecutive samples is a view of ``X`` (no copy); any other is
    gathered into block 0 of ``acts``.
    """
    rows = idx.size
    if _consecutive(idx):
        return rows_of(X, idx[0], rows)
    A0 = block(acts, 0, rows, n0)
    gather_rows_inplace(X, idx, A0)
    return A0


@jit(inline="always")   # a call per batch: see _backprop_layer
def batch_loss_and_delta(A0, Y, sw, idx, params, offsets, sizes, acts, deltas, pre,
                         a_off, hidden, loss_code, first_done=False):
    """Forward pass (see :func:`forward_inplace` for ``first_done``) and output
    gradient of one batch.

    Returns
    -------
    loss_sum : float
        The batch's weighted loss ``sum_i s_i loss_i`` (``S * J`` without the
        L2 term).
    sw_sum : float
        ``S``, the sum of the batch's sample weights.
    """
    rows = A0.shape[0]
    forward_inplace(A0, params, offsets, sizes, acts, pre, a_off, hidden, first_done)
    L = sizes.size - 1
    loss_sum = loss_delta_inplace(block(acts, a_off[L], rows, sizes[L]), Y, sw, idx,
                                  block(deltas, a_off[L], rows, sizes[L]), loss_code)
    sw_sum = 0.0
    for i in range(rows):
        sw_sum += sw[idx[i]]
    return loss_sum, sw_sum


@jit
def optimizer_step(params, grads, state1, state2, offsets, sizes, opt_code, hyper, t, l2,
                   measure, norms):
    """One optimizer step from the data gradient in ``grads``.

    Measures the per-layer gradient norms into ``norms`` when ``measure``,
    rescales for clipping by norm, and applies ``update_inplace``.

    Returns
    -------
    float
        ``sum_l ||W_l||^2`` before the step.
    """
    clip_norm = hyper[CLIP_NORM]
    scale = 1.0
    if measure or clip_norm > 0.0:
        sq = gradient_norms(grads, params, offsets, sizes, l2, hyper[CLIP_VALUE], norms,
                            measure)
        if clip_norm > 0.0 and sq > clip_norm * clip_norm:
            scale = clip_norm / math.sqrt(sq)
    return update_inplace(params, grads, state1, state2, offsets, sizes, opt_code, hyper, t,
                          scale, l2)


@jit
def _end_epoch(state1, state2, total_data, total_l2, n, n_done):
    """Flush sunk optimizer state (``flush_subnormals_inplace``); return the epoch's
    ``data_loss, l2_loss, n_done``."""
    flush_subnormals_inplace(state1)
    flush_subnormals_inplace(state2)
    return total_data / n, total_l2 / n, n_done


@jit
def train_epoch_inplace(X, Y, sw, order, batch_size, params, grads, state1, state2,
                        step, offsets, sizes, acts, deltas, pre, a_off, scratch,
                        hidden, loss_code, opt_code, hyper, norms):
    """One epoch of mini-batch training, in place.

    Batches are ``order[k*batch_size:(k+1)*batch_size]``; the last may be
    shorter and is averaged over its own weight. Each step: forward, loss,
    backward, update. The gradient norms are measured on the first batch.
    Single-sample SGD steps with momentum (no clipping, one sample weight for
    all) leave the rows of ``W_0`` whose input is 0 behind (``lazy.py``); the
    epoch brings them up to date before it returns.

    Parameters
    ----------
    X : ndarray, shape (N, n_0)
    Y : ndarray, shape (N, t)
    sw : ndarray, shape (N,)
    order : ndarray of int64, shape (n,)
        Sample indices in visiting order (a permutation, or any subset). A batch
        of consecutive indices is read from ``X`` in place, others are gathered.
    batch_size : int
    params, grads, state1, state2 : flat buffers (see ``optimizers``)
    step : ndarray of int64, shape (1,)
        Optimizer step counter, incremented per update.
    offsets, sizes, acts, deltas, pre, a_off, scratch : see module docstring;
        the work buffers hold ``batch_size`` rows per block.
    hidden, loss_code, opt_code : int
    hyper : ndarray of float64
        See ``optimizers.hyperparameters``.
    norms : ndarray of float64, shape (L,)
        Overwritten with per-layer gradient norms of the first batch.

    Returns
    -------
    data_loss, l2_loss : float
        The two terms of ``sum_k J_k * rows_k / n`` over the batches run
        (scikit-learn's epoch loss is their sum): the weighted mean losses, and
        the L2 terms ``alpha / (2 S_k) ||W||^2`` of the weights before each step.
    n_done : int
        Batches completed. Less than the number of batches when a batch loss
        was not finite: that batch was not applied and the epoch stopped.
    """
    # borrowed views: the per-step calls below then cost no reference counting
    X, Y, sw, order, params, grads = borrow(X), borrow(Y), borrow(sw), borrow(order), \
        borrow(params), borrow(grads)
    state1, state2, offsets, sizes, acts, deltas = borrow(state1), borrow(state2), \
        borrow(offsets), borrow(sizes), borrow(acts), borrow(deltas)
    pre, a_off, scratch, hyper = borrow(pre), borrow(a_off), borrow(scratch), borrow(hyper)
    n = order.size
    n0 = sizes[0]
    alpha = hyper[L2]
    lr = hyper[LR]
    clip_norm = hyper[CLIP_NORM]
    clip_value = hyper[CLIP_VALUE]
    plain_sgd = opt_code == SGD_CODE and hyper[MOMENTUM] == 0.0 and clip_norm == 0.0 \
        and clip_value == 0.0
    n_batches = (n + batch_size - 1) // batch_size
    total_data = 0.0
    total_l2 = 0.0
    first_done = False    # the previous step computed this batch's first product
    # single-sample momentum steps leave the rows of W_0 whose input is 0 behind
    lazy = batch_size == 1 and opt_code == SGD_CODE and hyper[MOMENTUM] > 0.0 \
        and clip_norm == 0.0 and clip_value == 0.0 and takes_lazy_rows(sw, order)
    n_lazy = n0 if lazy else 0
    since = np.zeros(n_lazy, np.int64)
    row_sums = np.zeros((n_lazy, 3))
    powers = step_powers(lr, hyper[MOMENTUM], hyper[NESTEROV] != 0.0,
                         alpha / sw[order[0]] if lazy else 0.0, params,
                         MAX_LAG + 2 if lazy else 0)
    lazy_started = False
    for k in range(n_batches):
        lo = k * batch_size
        rows = min(batch_size, n - lo)
        idx = segment(order, lo, rows)
        A0 = batch_input(X, idx, acts, n0)
        loss_sum, sw_sum = batch_loss_and_delta(A0, Y, sw, idx, params, offsets, sizes,
                                                acts, deltas, pre, a_off, hidden, loss_code,
                                                first_done)
        first_done = False
        if sw_sum <= 0.0:
            continue   # all weights zero: nothing to learn from this batch
        data_loss = loss_sum / sw_sum
        if not math.isfinite(data_loss):
            if lazy_started:
                catch_up_lazy_rows(params, state1, offsets[0], n0, sizes[1], since, row_sums,
                                   powers, step[0] + 1)
            return total_data / n, total_l2 / n, k
        measure = k == 0
        fused = plain_sgd and not measure
        step[0] += 1
        if not measure and not plain_sgd and clip_norm == 0.0 and rows <= OUTER_ROWS:
            # ||W||^2 before this step is a by-product of the update pass, and so
            # is the first product of the next batch when it is one sample (read
            # from X in place, so that block 0 of acts, maybe this A0, is kept)
            first_done = min(batch_size, n - lo - rows) == 1
            next_row = order[lo + rows] if first_done else 0
            if lazy and not lazy_started:
                start_lazy_rows(params, state1, offsets[0], n0, sizes[1], since, row_sums,
                                step[0])
                lazy_started = True
            weight_sq = backward_update_inplace(A0, params, state1, state2, offsets, sizes,
                                                acts, deltas, pre, a_off, hidden,
                                                1.0 / sw_sum, opt_code, hyper, step[0],
                                                alpha / sw_sum, scratch,
                                                rows_of(X, next_row, 1 if first_done else 0),
                                                since, row_sums, powers)
        elif fused:
            # ||W||^2 before this step, for the L2 term of the batch loss
            weight_sq = sum_squared_weights(params, offsets, sizes) if alpha > 0.0 else 0.0
            backward_inplace(A0, params, grads, offsets, sizes, acts, deltas, pre, a_off,
                             hidden, 1.0 / sw_sum, lr, alpha, scratch)
        else:
            backward_inplace(A0, params, grads, offsets, sizes, acts, deltas, pre, a_off,
                             hidden, 1.0 / sw_sum, 0.0, alpha, scratch)
            weight_sq = optimizer_step(params, grads, state1, state2, offsets, sizes,
                                       opt_code, hyper, step[0], alpha / sw_sum, measure,
                                       norms)
        total_data += data_loss * rows
        total_l2 += 0.5 * alpha * weight_sq / sw_sum * rows
    if lazy_started:
        catch_up_lazy_rows(params, state1, offsets[0], n0, sizes[1], since, row_sums, powers,
                           step[0] + 1)
    return _end_epoch(state1, state2, total_data, total_l2, n, n_batches)


@parallel_jit
def train_epoch_parallel_inplace(X, Y, sw, order, batch_size, params, grads, state1,
                                 state2, step, offsets, sizes, acts, deltas, pre, a_off,
                                 scratch, hidden, loss_code, opt_code, hyper, norms,
                                 part_grads, part_loss):
    """:func:`train_epoch_inplace` with each batch's rows split among parallel threads.

    Part ``p`` of a batch (rows ``p*per .. (p+1)*per - 1``, ``per = ceil(rows /
    parts)``) runs the forward and backward pass in its own work slot and
    writes the gradient of its rows, ``A_p.T @ D_p / S`` with the whole batch's
    ``S``, to ``grads`` (part 0) or ``part_grads`` (the others). The parts are
    summed into ``grads`` and one optimizer step follows, as in the serial
    epoch. The sum changes the rounding of the gradient (not its value) against
    the serial epoch; the same number of parts gives the same bits.

    Parameters
    ----------
    X, Y, sw, order, batch_size, params, grads, state1, state2, step, offsets,
    sizes, hidden, loss_code, opt_code, hyper, norms :
        As in :func:`train_epoch_inplace`.
    acts, deltas, pre : ndarray, flat
        ``parts`` slots of ``a_off[-1]`` elements each (``pre`` empty when the
        activation does not need it); ``a_off`` lays out one slot for
        ``ceil(batch_size / parts)`` rows.
    scratch : ndarray
        ``parts`` slots of ``scratch_size(sizes)`` elements.
    part_grads : ndarray, shape ((parts - 1) * P,)
    part_loss : ndarray of float64, shape (parts,)
        Per-part work space (losses, then sums of squared weights); its length
        is the number of parts.

    Returns
    -------
    data_loss, l2_loss, n_done : as in :func:`train_epoch_inplace`
    """
    parts = part_loss.size
    slot = a_off[a_off.size - 1]
    width = scratch.size // parts
    P = params.size
    n0 = sizes[0]
    n = order.size
    alpha = hyper[L2]
    n_batches = (n + batch_size - 1) // batch_size
    total_data = 0.0
    total_l2 = 0.0
    for k in range(n_batches):
        lo = k * batch_size
        rows = min(batch_size, n - lo)
        idx = segment(order, lo, rows)
        sw_sum = 0.0
        for i in range(rows):
            sw_sum += sw[idx[i]]
        if sw_sum <= 0.0:
            continue   # all weights zero: nothing to learn from this batch
        per = (rows + parts - 1) // parts
        for p in prange(parts):
            G = segment(grads, 0, P) if p == 0 else segment(part_grads, (p - 1) * P, P)
            first = p * per
            count = min(per, rows - first)
            part_loss[p] = 0.0
            if count <= 0:
                # a loop, not ``G[:] = 0.0``: Numba 0.68 left that slice assignment
                # undone inside this prange (the split-batch tests catch it)
                for i in range(P):
                    G[i] = 0.0
            else:
                part_idx = segment(idx, first, count)
                part_acts = segment(acts, p * slot, slot)
                part_deltas = segment(deltas, p * slot, slot)
                part_pre = segment(pre, p * slot, slot if pre.size > 0 else 0)
                A0 = batch_input(X, part_idx, part_acts, n0)
                part_loss[p], _ = batch_loss_and_delta(
                    A0, Y, sw, part_idx, params, offsets, sizes, part_acts, part_deltas,
                    part_pre, a_off, hidden, loss_code)
                backward_inplace(A0, params, G, offsets, sizes, part_acts, part_deltas,
                                 part_pre, a_off, hidden, 1.0 / sw_sum, 0.0, alpha,
                                 segment(scratch, p * width, width))
        loss_sum = 0.0
        for p in range(parts):
            loss_sum += part_loss[p]
        data_loss = loss_sum / sw_sum
        if not math.isfinite(data_loss):
            return total_data / n, total_l2 / n, k
        step[0] += 1
        # each thread sums the parts' gradients over its own range of parameters and,
        # unless the step needs the whole gradient first (norms), updates that range
        whole = k == 0 or hyper[CLIP_NORM] > 0.0
        chunk = (P + parts - 1) // parts
        for p in prange(parts):
            lo = min(p * chunk, P)
            hi = min(lo + chunk, P)
            for q in range(1, parts):
                G = segment(part_grads, (q - 1) * P, P)
                for i in range(lo, hi):
                    grads[i] += G[i]
            part_loss[p] = 0.0 if whole else update_range_inplace(
                params, grads, state1, state2, offsets, sizes, opt_code, hyper, step[0],
                1.0, alpha / sw_sum, lo, hi)
        if whole:
            weight_sq = optimizer_step(params, grads, state1, state2, offsets, sizes,
                                       opt_code, hyper, step[0], alpha / sw_sum, k == 0,
                                       norms)
        else:
            weight_sq = 0.0
            for p in range(parts):
                weight_sq += part_loss[p]
        total_data += data_loss * rows
        total_l2 += 0.5 * alpha * weight_sq / sw_sum * rows
    return _end_epoch(state1, state2, total_data, total_l2, n, n_batches)


@jit
def loss_grad_inplace(X, Y, sw, idx, params, grads, offsets, sizes, acts, deltas, pre,
                      a_off, scratch, hidden, loss_code, alpha, norms):
    """Loss and full gradient on the samples ``idx`` as one batch; ``params`` unchanged.

    ``grads`` is overwritten with ``dJ/dparams`` (L2 term included) and
    ``norms`` with the per-layer gradient norms. Work buffers hold
    ``len(idx)`` rows per block. Returns ``J``.
    """
    rows = idx.size
    A0 = block(acts, 0, rows, sizes[0])
    gather_rows_inplace(X, idx, A0)
    loss_sum, sw_sum = batch_loss_and_delta(A0, Y, sw, idx, params, offsets, sizes,
                                            acts, deltas, pre, a_off, hidden, loss_code)
    loss = loss_sum / sw_sum + 0.5 * alpha * sum_squared_weights(params, offsets, sizes) / sw_sum
    backward_inplace(A0, params, grads, offsets, sizes, acts, deltas, pre, a_off,
                     hidden, 1.0 / sw_sum, 0.0, alpha, scratch)
    add_l2_inplace(grads, params, offsets, sizes, alpha / sw_sum)
    gradient_norms(grads, params, offsets, sizes, 0.0, 0.0, norms, True)
    return loss


@jit
def predict_inplace(X, params, offsets, sizes, acts, a_off, hidden, output_code, out):
    """Outputs of the network for every row of ``X``, in chunks.

    Parameters
    ----------
    X : ndarray, shape (N, n_0)
    params, offsets, sizes, hidden : as in :func:`forward_inplace`
    acts : ndarray, flat
        Work buffer whose blocks 1..L hold ``chunk`` rows each (block 0, the
        input, is not used: ``a_off[0] == a_off[1]``).
    a_off : ndarray of int64, shape (L + 2,)
    output_code : int
        Loss code whose output activation is applied, or -1 for raw logits.
    out : ndarray, shape (N, n_L)
        Overwritten with the outputs.
    """
    N = X.shape[0]
    L = sizes.size - 1
    chunk = (a_off[L + 1] - a_off[L]) // sizes[L]
    no_pre = segment(acts, 0, 0)
    for lo in range(0, N, chunk):
        count = min(chunk, N - lo)
        forward_inplace(rows_of(X, lo, count), params, offsets, sizes, acts, no_pre, a_off,
                        hidden)
        Z = block(acts, a_off[L], count, sizes[L])
        if output_code >= 0:
            output_activation_inplace(Z, output_code)
        target = rows_of(out, lo, count)
        for i in range(count):
            for j in range(sizes[L]):
                target[i, j] = Z[i, j]


@parallel_jit
def predict_parallel_inplace(X, params, offsets, sizes, acts, a_off, hidden, output_code,
                             out):
    """:func:`predict_inplace` with the rows split into parts run by parallel threads.

    ``acts`` holds one work buffer of ``a_off[-1]`` elements per part; the
    number of parts is ``acts.size // a_off[-1]``. BLAS must be single-threaded
    around this call (the threads are Numba's).
    """
    N = X.shape[0]
    slot = a_off[a_off.size - 1]
    parts = acts.size // slot
    per = (N + parts - 1) // parts
    for part in prange(parts):
        lo = part * per
        count = min(per, N - lo)
        if count > 0:
            predict_inplace(rows_of(X, lo, count), params, offsets, sizes,
                            segment(acts, part * slot, slot), a_off, hidden, output_code,
                            rows_of(out, lo, count))
