"""Progress over training epochs: a tqdm bar, or plain lines without tqdm.

tqdm is optional (``pip install "fastbp[progress]"``); without it every epoch
prints one line instead.
"""

import sys


def epoch_summary(history, score_name):
    """The latest epoch of ``history`` as ``loss ...  val_<score> ...  N samples/s``."""
    parts = [f"loss {history['loss'][-1]:.4f}"]
    if history["val_loss"] and history["val_loss"][-1] is not None:
        parts.append(f"val_loss {history['val_loss'][-1]:.4f}")
    if history["val_score"] and history["val_score"][-1] is not None:
        parts.append(f"val_{score_name} {history['val_score'][-1]:.4f}")
    parts.append(f"{history['samples_per_sec'][-1]:,.0f} samples/s")
    return "  ".join(parts)


class EpochProgress:
    """Reports each finished epoch on ``stream``; use as a context manager.

    Parameters
    ----------
    total : int
        Epochs planned.
    enabled : bool
        Report at all; when ``False`` every call does nothing.
    score_name : str
        Name of the validation score (``"acc"``, ``"r2"``).
    stream : file-like, default sys.stderr
    """

    def __init__(self, total, enabled=True, score_name="acc", stream=None):
        self.total = total
        self.enabled = enabled
        self.score_name = score_name
        self.stream = sys.stderr if stream is None else stream
        self._bar = None

    def __enter__(self):
        if self.enabled:
            try:
                from tqdm import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self._bar = tqdm(total=self.total, unit="epoch", desc="train",
                                 file=self.stream, dynamic_ncols=True, leave=True)
        return self

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        return False

    def update(self, net):
        """Report the epoch just recorded in ``net.history_``."""
        if not self.enabled:
            return
        summary = epoch_summary(net.history_, self.score_name)
        if self._bar is not None:
            self._bar.set_postfix_str(summary, refresh=False)
            self._bar.update(1)
        else:
            epoch = len(net.history_["loss"])
            print(f"epoch {epoch}/{self.total}  {summary}", file=self.stream, flush=True)
