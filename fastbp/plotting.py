"""Training curves as an image: loss per epoch and per-layer gradient norms.

matplotlib is optional (``pip install "fastbp[plot]"``). Figures are drawn on
matplotlib's Agg canvas directly, so no pyplot state or interactive backend is
touched.
"""

import numpy as np

#: What to run when matplotlib is missing.
INSTALL_HINT = 'pip install "fastbp[plot]"'


def require_matplotlib():
    """Raise ``ImportError`` with an install hint unless matplotlib is importable."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ImportError(f"plotting needs matplotlib; install it with: "
                          f"{INSTALL_HINT}") from None


def plot_history(history, path, title=None):
    """Write the training curves of ``history`` to the image file ``path``.

    Left: training and validation loss per epoch. Right: the L2 norm of each
    layer's gradient per epoch (measured on the epoch's first mini-batch), on
    a log scale, where vanishing or exploding gradients show as lines drifting
    apart by orders of magnitude.

    Parameters
    ----------
    history : dict
        ``MLP.history_``.
    path : str or os.PathLike
        The image file; its suffix picks the format (``.png``, ``.svg``,
        ``.pdf``).
    title : str or None
        A title over both panels.

    Raises
    ------
    ImportError
        matplotlib is not installed (the message says how to install it).
    ValueError
        ``history`` holds no epochs.
    """
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    loss = np.asarray(history.get("loss", []), dtype=float)
    if loss.size == 0:
        raise ValueError("The model has no training history to plot; train it first.")
    epochs = np.arange(1, loss.size + 1)
    val_loss = [np.nan if x is None else x for x in history.get("val_loss", [])]
    norms = np.asarray(history.get("grad_norm", []), dtype=float)

    fig = Figure(figsize=(10, 4), layout="constrained")
    FigureCanvasAgg(fig)
    ax_loss, ax_grad = fig.subplots(1, 2)

    ax_loss.plot(epochs, loss, marker=".", label="train")
    if val_loss and not np.isnan(val_loss).all():
        ax_loss.plot(epochs[:len(val_loss)], val_loss, marker=".", label="validation")
    losses = np.concatenate([loss, np.asarray(val_loss, dtype=float)])
    if (losses[np.isfinite(losses)] > 0).all():
        ax_loss.set_yscale("log")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="Loss")
    ax_loss.legend()
    ax_loss.grid(True, which="both", alpha=0.3)

    if norms.ndim == 2 and norms.size:
        for layer in range(norms.shape[1]):
            ax_grad.plot(epochs[:norms.shape[0]], norms[:, layer], marker=".",
                         label=f"layer {layer + 1}")
        if (norms > 0).all():
            ax_grad.set_yscale("log")
        ax_grad.legend()
    ax_grad.set(xlabel="epoch", ylabel="gradient L2 norm",
                title="Gradient norm per layer (first mini-batch)")
    ax_grad.grid(True, which="both", alpha=0.3)

    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=100)
