"""fastbp: fast backpropagation for multilayer perceptrons on CPUs."""

__version__ = "0.1.0"   # before the imports: fastbp.io and fastbp.cli read it

from .io import ModelFileError, load, save
from .kernels.activations import ACTIVATIONS
from .kernels.initializers import INITIALIZERS
from .kernels.losses import LOSSES
from .kernels.optimizers import OPTIMIZERS
from .model import MLP, GradientWarning, InterruptedTrainingWarning

__all__ = ["MLP", "MLPClassifier", "MLPRegressor", "save", "load", "ModelFileError",
           "GradientWarning", "InterruptedTrainingWarning", "ACTIVATIONS", "INITIALIZERS",
           "LOSSES", "OPTIMIZERS", "__version__"]


def __getattr__(name):
    """``fastbp.MLPClassifier`` and ``fastbp.MLPRegressor``, imported on first use.

    They live in :mod:`fastbp.sklearn` and import scikit-learn's estimator
    machinery, which ``import fastbp`` alone does not need.
    """
    if name in ("MLPClassifier", "MLPRegressor"):
        from . import sklearn as estimators
        return getattr(estimators, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
