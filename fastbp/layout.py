"""Where each layer lives in fastbp's flat buffers.

One parameter buffer per model: layer ``l`` is its weights ``W_l`` (shape
``(n_l, n_{l+1})``, row-major) followed by its bias ``b_l``; the layers follow
one another. Gradients and optimizer state use the same layout, so an update,
a clip, a copy or a checkpoint is one pass over one array.
"""

import numpy as np


def parameter_offsets(sizes):
    """Start of each layer in the flat parameter buffer, and its total length.

    Parameters
    ----------
    sizes : sequence of int, length L + 1
        Layer widths, input first.

    Returns
    -------
    offsets : ndarray of int64, shape (L,)
    n_params : int
    """
    offsets = np.zeros(len(sizes) - 1, dtype=np.int64)
    total = 0
    for layer in range(len(sizes) - 1):
        offsets[layer] = total
        total += sizes[layer] * sizes[layer + 1] + sizes[layer + 1]
    return offsets, total


def block_offsets(sizes, rows, with_input=True):
    """Offsets of per-layer ``(rows, n_l)`` blocks in a flat work buffer.

    Returns
    -------
    a_off : ndarray of int64, shape (L + 2,)
        Block ``l`` is ``buf[a_off[l]:a_off[l + 1]]``; ``a_off[-1]`` is the
        buffer's length. Without the input, block 0 is empty.
    """
    a_off = np.zeros(len(sizes) + 1, dtype=np.int64)
    for layer, width in enumerate(sizes):
        size = rows * width if (with_input or layer > 0) else 0
        a_off[layer + 1] = a_off[layer] + size
    return a_off


def layer_views(flat, sizes, offsets):
    """Per-layer views ``(W_l, b_l)`` into a flat buffer (writes go to the buffer)."""
    coefs, intercepts = [], []
    for layer in range(len(sizes) - 1):
        n_in, n_out = sizes[layer], sizes[layer + 1]
        start = offsets[layer]
        coefs.append(flat[start:start + n_in * n_out].reshape(n_in, n_out))
        intercepts.append(flat[start + n_in * n_out:start + n_in * n_out + n_out])
    return coefs, intercepts
