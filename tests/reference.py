"""A plain NumPy multilayer perceptron, written for clarity: the oracle of the tests.

It shares no code with fastbp's kernels. Conventions (scikit-learn's):

* hidden layers ``a = f(a @ W + b)``; the output layer is linear (logits ``z``);
* batch loss ``J = sum_i s_i loss_i / S + alpha / (2 S) * sum_l ||W_l||^2``;
* ``dJ/dz = s * (g(z) - y) / S`` for the canonical output activation ``g``;
* SGD with momentum / Nesterov and Adam as in scikit-learn.

Derivatives here are written in terms of the pre-activation ``z`` (the kernels
use the output where they can), so the two are independent derivations.
"""

import numpy as np
from scipy.special import erf, expit, log_softmax, softmax

SQRT2 = np.sqrt(2.0)

FORWARD = {
    "identity": lambda z: z,
    "relu": lambda z: np.maximum(z, 0.0),
    "leaky_relu": lambda z: np.where(z > 0, z, 0.01 * z),
    "logistic": expit,
    "tanh": np.tanh,
    "elu": lambda z: np.where(z > 0, z, np.expm1(np.minimum(z, 0.0))),
    "softplus": lambda z: np.logaddexp(0.0, z),
    "gelu": lambda z: 0.5 * z * (1.0 + erf(z / SQRT2)),
}

DERIVATIVE = {
    "identity": lambda z: np.ones_like(z),
    "relu": lambda z: (z > 0).astype(z.dtype),
    "leaky_relu": lambda z: np.where(z > 0, 1.0, 0.01),
    "logistic": lambda z: expit(z) * (1.0 - expit(z)),
    "tanh": lambda z: 1.0 - np.tanh(z) ** 2,
    "elu": lambda z: np.where(z > 0, 1.0, np.exp(np.minimum(z, 0.0))),
    "softplus": expit,
    "gelu": lambda z: 0.5 * (1.0 + erf(z / SQRT2)) + z * np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi),
}


def one_hot(labels, k):
    out = np.zeros((len(labels), k))
    out[np.arange(len(labels)), labels.astype(int)] = 1.0
    return out


def sample_losses(loss, z, y):
    """Per-sample loss, shape (n,), from logits ``z`` (n, k) and targets ``y``."""
    if loss == "softmax_cross_entropy":
        return -log_softmax(z, axis=1)[np.arange(len(z)), y.astype(int)]
    if loss == "binary_cross_entropy":
        return (np.logaddexp(0.0, z) - y * z).sum(axis=1)
    if loss == "mse":
        return 0.5 * ((z - y) ** 2).sum(axis=1)
    if loss == "poisson":
        ylogy = np.where(y > 0, y * np.log(np.where(y > 0, y, 1.0)), 0.0)
        return (np.exp(z) - y * z + ylogy - y).sum(axis=1)
    raise ValueError(loss)


def output(loss, z):
    """The canonical output activation ``g(z)``."""
    return {"softmax_cross_entropy": lambda: softmax(z, axis=1),
            "binary_cross_entropy": lambda: expit(z),
            "mse": lambda: z,
            "poisson": lambda: np.exp(z)}[loss]()


def targets_matrix(loss, y, k):
    return one_hot(y, k) if loss == "softmax_cross_entropy" else y.reshape(len(y), -1)


def loss_and_grads(layers, X, y, activation, loss, alpha=0.0, sw=None):
    """Batch loss ``J`` and its gradient, ``[(dW, db), ...]``."""
    n = len(X)
    sw = np.ones(n) if sw is None else sw
    S = sw.sum()
    # forward, keeping inputs and pre-activations of every layer
    a, inputs, pres = X, [], []
    for i, (W, b) in enumerate(layers):
        inputs.append(a)
        z = a @ W + b
        pres.append(z)
        a = FORWARD[activation](z) if i < len(layers) - 1 else z
    z = pres[-1]
    J = (sw * sample_losses(loss, z, y)).sum() / S
    J += 0.5 * alpha * sum((W ** 2).sum() for W, _ in layers) / S
    # backward
    delta = sw[:, None] * (output(loss, z) - targets_matrix(loss, y, z.shape[1]))
    grads = [None] * len(layers)
    for i in range(len(layers) - 1, -1, -1):
        W, _ = layers[i]
        grads[i] = ((inputs[i].T @ delta + alpha * W) / S, delta.sum(axis=0) / S)
        if i > 0:
            delta = (delta @ W.T) * DERIVATIVE[activation](pres[i - 1])
    return J, grads


def predict_outputs(layers, X, activation, loss):
    a = X
    for i, (W, b) in enumerate(layers):
        z = a @ W + b
        a = FORWARD[activation](z) if i < len(layers) - 1 else z
    return output(loss, a)


class Optimizer:
    """scikit-learn's SGD (momentum, Nesterov) and Adam on a list of arrays."""

    def __init__(self, name, lr, momentum=0.0, nesterov=False, beta1=0.9, beta2=0.999,
                 epsilon=1e-8):
        self.name, self.lr, self.momentum, self.nesterov = name, lr, momentum, nesterov
        self.beta1, self.beta2, self.epsilon = beta1, beta2, epsilon
        self.t = 0
        self.m = self.v = None

    def step(self, params, grads):
        """Update ``params`` (a list of arrays) in place with ``grads``."""
        if self.m is None:
            self.m = [np.zeros_like(p) for p in params]
            self.v = [np.zeros_like(p) for p in params]
        self.t += 1
        if self.name == "sgd":
            for p, g, v in zip(params, grads, self.m):
                v[...] = self.momentum * v - self.lr * g
                if self.nesterov:
                    p += self.momentum * v - self.lr * g
                else:
                    p += v
        else:
            lr_t = self.lr * np.sqrt(1 - self.beta2 ** self.t) / (1 - self.beta1 ** self.t)
            for p, g, m, v in zip(params, grads, self.m, self.v):
                m[...] = self.beta1 * m + (1 - self.beta1) * g
                v[...] = self.beta2 * v + (1 - self.beta2) * g * g
                p -= lr_t * m / (np.sqrt(v) + self.epsilon)


def clip(grads, clip_value=None, clip_norm=None):
    """Clip each element to [-clip_value, clip_value], then rescale to clip_norm."""
    if clip_value is not None:
        grads = [np.clip(g, -clip_value, clip_value) for g in grads]
    if clip_norm is not None:
        norm = np.sqrt(sum((g ** 2).sum() for g in grads))
        if norm > clip_norm:
            grads = [g * (clip_norm / norm) for g in grads]
    return grads


def train_epoch(layers, X, y, activation, loss, optimizer, batch_size, order=None,
                alpha=0.0, sw=None, clip_value=None, clip_norm=None):
    """One epoch of mini-batch training in place; returns sum_k J_k * rows_k / n."""
    n = len(X)
    order = np.arange(n) if order is None else order
    sw = np.ones(n) if sw is None else sw
    total = 0.0
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        J, grads = loss_and_grads(layers, X[idx], y[idx], activation, loss, alpha, sw[idx])
        total += J * len(idx)
        flat_grads = clip([g for pair in grads for g in pair], clip_value, clip_norm)
        optimizer.step([p for pair in layers for p in pair], flat_grads)
    return total / n


def random_layers(sizes, rng, scale=0.5):
    return [(scale * rng.standard_normal((a, b)), 0.1 * rng.standard_normal(b))
            for a, b in zip(sizes[:-1], sizes[1:])]
