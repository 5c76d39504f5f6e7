import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxgen import nn_basics


def test_activations_against_closed_forms_and_jax():
    x = np.array([-800.0, -3.0, 0.0, 2.0, 800.0], np.float32)
    np.testing.assert_array_equal(nn_basics.step(x), [0, 0, 0, 1, 1])
    np.testing.assert_array_equal(nn_basics.relu(x), [0, 0, 0, 2, 800])
    s = np.asarray(nn_basics.sigmoid(x))
    assert np.all(np.isfinite(s)) and s[0] == 0.0 and s[-1] == 1.0 and s[2] == 0.5
    np.testing.assert_allclose(s, jax.nn.sigmoid(x), rtol=1e-6, atol=1e-30)


def test_softmax_and_cross_entropy_are_stable_on_extreme_logits():
    logits = np.array([[1000.0, 999.0, -1000.0], [-1e4, -1e4 + 2, -1e4 + 1], [0.0, 0.0, 0.0]],
                      np.float32)
    labels = np.array([1, 0, 2])
    with np.errstate(over="ignore", invalid="ignore"):  # what the max-shift avoids
        naive = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    assert not np.all(np.isfinite(naive))
    p = np.asarray(nn_basics.softmax(logits))
    np.testing.assert_allclose(p, jax.nn.softmax(logits), rtol=1e-6, atol=1e-30)
    np.testing.assert_allclose(p.sum(-1), 1.0, rtol=1e-6)
    ce = nn_basics.cross_entropy(logits, labels)
    np.testing.assert_allclose(
        ce, optax.softmax_cross_entropy_with_integer_labels(logits, labels), rtol=1e-6)
    np.testing.assert_allclose(ce[2], np.log(3), rtol=1e-6)
    # its gradient is softmax - one_hot, finite at the extremes too
    g = jax.grad(lambda a: jnp.sum(nn_basics.cross_entropy(a, labels)))(logits)
    np.testing.assert_allclose(g, p - np.eye(3)[labels], atol=1e-6)


def test_numerical_gradient_agrees_with_jax_grad_for_an_mlp(x64):
    rng = np.random.default_rng(0)
    w1, w2 = rng.normal(size=(4, 5)) * 0.5, rng.normal(size=(5, 3)) * 0.5
    x, y = rng.normal(size=(8, 4)), rng.integers(0, 3, 8)

    def loss(w1_):
        h = nn_basics.sigmoid(x @ w1_)
        return jnp.mean(nn_basics.cross_entropy(h @ w2, y))

    auto = jax.grad(loss)(w1)
    num = nn_basics.numerical_grad(loss, w1)
    # central differences in float64 with h = 1e-5: O(h^2) ~ 1e-10 truncation, ~1e-11 rounding
    assert nn_basics.relative_error(num, auto) < 1e-7
    wrong = nn_basics.numerical_grad(lambda w: loss(w) + 1e-3 * jnp.sum(w), w1)
    assert nn_basics.relative_error(wrong, auto) > 1e-3  # the check catches a wrong gradient


@pytest.mark.parametrize("fn", [nn_basics.softmax, nn_basics.sigmoid])
def test_outputs_are_probabilities(fn):
    a = jax.random.normal(jax.random.key(0), (6, 4)) * 50
    p = np.asarray(fn(a))
    assert np.all((p >= 0) & (p <= 1))
