"""fastbp: fast backpropagation for multilayer perceptrons on CPUs."""

from .kernels.activations import ACTIVATIONS
from .kernels.initializers import INITIALIZERS
from .kernels.losses import LOSSES
from .kernels.optimizers import OPTIMIZERS
from .model import MLP, GradientWarning, InterruptedTrainingWarning
from .io import ModelFileError, load, save

__version__ = "0.1.0"

__all__ = ["MLP", "GradientWarning", "InterruptedTrainingWarning", "ACTIVATIONS",
           "INITIALIZERS", "LOSSES", "OPTIMIZERS", "__version__"]
__all__ += ["save", "load", "ModelFileError"]
