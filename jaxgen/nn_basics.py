"""The neural-network basics the ladder uses (book chapter 6), written out: activations, a
numerically stable softmax and cross-entropy, and a numerical gradient to check `jax.grad`.

    step(x) = 1[x > 0],  sigmoid(x) = 1 / (1 + e^-x),  relu(x) = max(0, x)
    softmax(a)_i = e^(a_i - m) / sum_j e^(a_j - m),  m = max_j a_j
    cross_entropy(a, y) = -log softmax(a)_y = logsumexp(a) - a_y
    numerical_grad(f, x)_i = (f(x + h e_i) - f(x - h e_i)) / 2h      (central differences)

Subtracting the max m changes nothing mathematically (it cancels in the ratio) but keeps every
exponent <= 0: e^1000 overflows float32 (inf / inf = NaN), e^(1000 - 1000) = 1 does not.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


def step(x):
    """The perceptron's activation: 1 where x > 0, else 0 (its gradient is 0 almost everywhere,
    which is why gradient descent needs a smooth activation)."""
    return (jnp.asarray(x) > 0).astype(jnp.result_type(float))


def sigmoid(x):
    """1 / (1 + e^-x), computed from e^-|x| so that neither branch overflows."""
    x = jnp.asarray(x, jnp.result_type(float))
    z = jnp.exp(-jnp.abs(x))
    return jnp.where(x >= 0, 1 / (1 + z), z / (1 + z))


def relu(x):
    """max(0, x)."""
    return jnp.maximum(jnp.asarray(x), 0)


def softmax(logits, axis: int = -1):
    """exp(a - max a) / sum exp(a - max a) along `axis`: finite for any finite logits."""
    a = jnp.asarray(logits, jnp.result_type(float))
    e = jnp.exp(a - jax.lax.stop_gradient(jnp.max(a, axis=axis, keepdims=True)))
    return e / jnp.sum(e, axis=axis, keepdims=True)


def cross_entropy(logits, labels):
    """-log softmax(logits)[label] per example, shape (B,) for logits (B, C) and int labels
    (B,), as logsumexp(a) - a_y with the max subtracted inside the logsumexp."""
    a = jnp.asarray(logits, jnp.result_type(float))
    m = jax.lax.stop_gradient(jnp.max(a, axis=-1, keepdims=True))
    lse = jnp.log(jnp.sum(jnp.exp(a - m), axis=-1)) + m[..., 0]
    return lse - jnp.take_along_axis(a, jnp.asarray(labels)[..., None], axis=-1)[..., 0]


def numerical_grad(f: Callable[[np.ndarray], float], x, h: float = 1e-5) -> np.ndarray:
    """Central-difference gradient of a scalar `f` at x (any shape), in float64 NumPy: error
    O(h^2) from truncation plus O(eps / h) from rounding, so h ~ 1e-5 suits float64."""
    x = np.array(x, np.float64)
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        up = float(f(x))
        x[i] = old - h
        down = float(f(x))
        x[i] = old
        grad[i] = (up - down) / (2 * h)
    return grad


def relative_error(a, b) -> float:
    """max |a - b| / max(|a|, |b|, tiny): how far two gradients disagree, scale-free."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(a)), np.max(np.abs(b)), 1e-300))
