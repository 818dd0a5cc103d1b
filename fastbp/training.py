"""Epoch-by-epoch training of an :class:`~fastbp.MLP` with a call after every epoch.

This is the driver behind ``fastbp train``: the same epochs as ``MLP.fit``
(one compiled call each), with a hook for progress reporting between them.
It is the only module outside :mod:`fastbp.model` that uses the model's
internals; a per-epoch callback in ``MLP.fit`` would replace it.
"""

import time
from dataclasses import dataclass

import numpy as np

from .model import TrainConfig, _TrainState
from .threads import thread_limits


@dataclass
class TrainResult:
    """What :func:`train_epochs` did.

    Attributes
    ----------
    epochs : int
        Epochs completed (fewer than asked if interrupted).
    seconds : float
        Wall-clock time of the whole loop, validation scoring included.
    interrupted : bool
        Ctrl-C stopped training; the model keeps its last completed epoch.
    """

    epochs: int
    seconds: float
    interrupted: bool


def train_epochs(net, X, y, epochs, config=TrainConfig(), validation_data=None,
                 on_epoch=None):
    """Train ``net`` from its current weights for ``epochs`` epochs.

    Parameters
    ----------
    net : fastbp.MLP
        Trained in place, with a fresh optimizer state; its ``history_``
        grows by one entry per epoch.
    X, y : array-like
        Training data, as for ``MLP.fit``.
    epochs : int
    config : fastbp.model.TrainConfig
        Batch size, optimizer and its hyperparameters, penalty, clipping.
    validation_data : tuple (X_val, y_val) or None
        Scored after every epoch (``history_["val_loss"]``, ``["val_score"]``).
    on_epoch : callable or None
        Called as ``on_epoch(net)`` after every completed epoch.

    Returns
    -------
    TrainResult

    Raises
    ------
    ValueError, TypeError
        Bad data or hyperparameters, before any epoch runs.
    FloatingPointError
        The loss became non-finite; the model keeps its last completed epoch.
    """
    config = config.checked()
    data = net._prepare(X, y)
    val = net._prepare_validation(validation_data)
    net._state = _TrainState(net, config)
    saved = np.empty_like(net.params_)
    completed, in_epoch = 0, False
    start = time.perf_counter()
    try:
        with thread_limits(net.n_threads):
            for _ in range(epochs):
                np.copyto(saved, net.params_)
                lengths = {key: len(values) for key, values in net.history_.items()}
                in_epoch = True
                net._epoch(data, val, False)
                in_epoch = False
                completed += 1
                if on_epoch is not None:
                    on_epoch(net)
    except KeyboardInterrupt:
        if in_epoch:  # undo the epoch in progress, weights and history alike
            np.copyto(net.params_, saved)
            for key, values in net.history_.items():
                del values[lengths.get(key, 0):]
        return TrainResult(completed, time.perf_counter() - start, True)
    seconds = time.perf_counter() - start
    net._warn_gradients()
    return TrainResult(completed, seconds, False)
