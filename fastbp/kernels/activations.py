"""Activation functions and their derivatives, one registry entry each.

Each activation is a pair of scalar functions, side by side:

* ``forward(z)``: the activation ``a = f(z)``;
* ``derivative(a, z)``: ``f'(z)``, written in terms of the output ``a`` where
  that is possible (as scikit-learn does), so the backward pass needs no copy
  of the pre-activations. Only entries with ``uses_input=True`` read ``z``.

:data:`ACTIVATIONS` maps a name to its :class:`Activation`; the array kernels
:func:`bias_activation_inplace` and :func:`derivative_inplace` dispatch on the
entry's integer ``code``. Adding an activation is one scalar pair, one table
entry and one branch in each dispatcher, all in this file; the test suite
parametrizes over the table, so a new entry is gradient-checked automatically.
"""

import math
from typing import NamedTuple

from ..config import jit
from .dtypes import like
from .exp import exp

LEAKY_RELU_SLOPE = 0.01
_SQRT_HALF = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


# --- scalar pairs: forward f(z) and derivative f'(z) given a = f(z) -------------

@jit
def identity(z):
    return z


@jit
def identity_derivative(a, z):
    return like(1.0, a)


@jit
def relu(z):
    return z if z > 0.0 else like(0.0, z)


@jit
def relu_derivative(a, z):
    return like(1.0, a) if a > 0.0 else like(0.0, a)


@jit
def leaky_relu(z):
    return z if z > 0.0 else like(LEAKY_RELU_SLOPE, z) * z


@jit
def leaky_relu_derivative(a, z):
    return like(1.0, a) if a > 0.0 else like(LEAKY_RELU_SLOPE, a)


@jit
def logistic(z):
    # 1 / (1 + exp(-z)), written so that exp never overflows
    one = like(1.0, z)
    if z >= 0.0:
        return one / (one + like(exp(-z), z))
    e = like(exp(z), z)
    return e / (one + e)


@jit
def logistic_derivative(a, z):
    return a * (like(1.0, a) - a)


@jit
def tanh(z):
    return math.tanh(z)


@jit
def tanh_derivative(a, z):
    return like(1.0, a) - a * a


@jit
def elu(z):
    # alpha = 1: z if z > 0 else exp(z) - 1
    return z if z > 0.0 else math.expm1(z)


@jit
def elu_derivative(a, z):
    # for z <= 0: d/dz (exp(z) - 1) = exp(z) = a + 1
    one = like(1.0, a)
    return one if a > 0.0 else a + one


@jit
def softplus(z):
    # log(1 + exp(z)) = max(z, 0) + log1p(exp(-|z|))
    return max(z, like(0.0, z)) + math.log1p(like(exp(-abs(z)), z))


@jit
def softplus_derivative(a, z):
    # sigmoid(z) = 1 - exp(-a), since exp(a) = 1 + exp(z)
    return -math.expm1(-a)


@jit
def gelu(z):
    # exact GELU: z * Phi(z), Phi the standard normal CDF
    return like(0.5, z) * z * (like(1.0, z) + math.erf(z * like(_SQRT_HALF, z)))


@jit
def gelu_derivative(a, z):
    # Phi(z) + z * phi(z)
    half = like(0.5, z)
    cdf = half * (like(1.0, z) + math.erf(z * like(_SQRT_HALF, z)))
    return cdf + z * like(_INV_SQRT_2PI, z) * like(exp(-half * z * z), z)


# --- the registry --------------------------------------------------------------

class Activation(NamedTuple):
    """One activation: its kernel code, scalar pair, and whether f' needs ``z``."""

    code: int
    forward: object
    derivative: object
    uses_input: bool = False


ACTIVATIONS = {
    "identity": Activation(0, identity, identity_derivative),
    "relu": Activation(1, relu, relu_derivative),
    "leaky_relu": Activation(2, leaky_relu, leaky_relu_derivative),
    "logistic": Activation(3, logistic, logistic_derivative),
    "tanh": Activation(4, tanh, tanh_derivative),
    "elu": Activation(5, elu, elu_derivative),
    "softplus": Activation(6, softplus, softplus_derivative),
    "gelu": Activation(7, gelu, gelu_derivative, uses_input=True),
}

#: Other accepted spellings.
ALIASES = {"sigmoid": "logistic", "linear": "identity"}


# --- array kernels ---------------------------------------------------------------

@jit(inline="always")
def _bias_activation_loop(Z, b, f):
    rows, cols = Z.shape
    for i in range(rows):
        for j in range(cols):
            Z[i, j] = f(Z[i, j] + b[j])


@jit
def add_bias_inplace(Z, b):
    """``Z += b`` row by row; ``Z`` of shape (n, m), ``b`` of shape (m,)."""
    rows, cols = Z.shape
    for i in range(rows):
        for j in range(cols):
            Z[i, j] += b[j]


@jit
def bias_activation_inplace(Z, b, code, P):
    """Overwrite ``Z`` with ``f(Z + b)``, in one pass.

    Parameters
    ----------
    Z : ndarray, shape (n, m)
        The product ``A @ W``; overwritten with the activations.
    b : ndarray, shape (m,)
        Bias.
    code : int
        ``ACTIVATIONS[name].code``.
    P : ndarray, shape (n, m) or empty
        If not empty, first overwritten with the pre-activations ``Z + b``
        (in a pass of its own, so that the usual case keeps a branch-free loop).
    """
    if P.size > 0:
        rows, cols = Z.shape
        for i in range(rows):
            for j in range(cols):
                P[i, j] = Z[i, j] + b[j]
    if code == 0:
        _bias_activation_loop(Z, b, identity)
    elif code == 1:
        _bias_activation_loop(Z, b, relu)
    elif code == 2:
        _bias_activation_loop(Z, b, leaky_relu)
    elif code == 3:
        _bias_activation_loop(Z, b, logistic)
    elif code == 4:
        _bias_activation_loop(Z, b, tanh)
    elif code == 5:
        _bias_activation_loop(Z, b, elu)
    elif code == 6:
        _bias_activation_loop(Z, b, softplus)
    elif code == 7:
        _bias_activation_loop(Z, b, gelu)


@jit(inline="always")
def _derivative_loop(delta, A, P, df):
    rows, cols = delta.shape
    for i in range(rows):
        for j in range(cols):
            delta[i, j] *= df(A[i, j], P[i, j])


@jit(inline="always")
def _derivative_loop_output(delta, A, df):
    rows, cols = delta.shape
    for i in range(rows):
        for j in range(cols):
            delta[i, j] *= df(A[i, j], A[i, j])


@jit
def derivative_inplace(delta, A, P, code):
    """Multiply ``delta`` by ``f'(z)`` element-wise, in place.

    Parameters
    ----------
    delta : ndarray, shape (n, m)
        Gradient of the loss with respect to the activations ``A``; becomes
        the gradient with respect to the pre-activations ``z``.
    A : ndarray, shape (n, m)
        Activations ``f(z)``.
    P : ndarray, shape (n, m)
        Pre-activations ``z``; read only by entries with ``uses_input``.
    code : int
    """
    if code == 0:
        return
    elif code == 1:
        _derivative_loop_output(delta, A, relu_derivative)
    elif code == 2:
        _derivative_loop_output(delta, A, leaky_relu_derivative)
    elif code == 3:
        _derivative_loop_output(delta, A, logistic_derivative)
    elif code == 4:
        _derivative_loop_output(delta, A, tanh_derivative)
    elif code == 5:
        _derivative_loop_output(delta, A, elu_derivative)
    elif code == 6:
        _derivative_loop_output(delta, A, softplus_derivative)
    elif code == 7:
        _derivative_loop(delta, A, P, gelu_derivative)
