"""Chapter 6 and the neural-network basics: automatic differentiation, gradient descent on the
Rosenbrock function, linear regression and a 1-10-1 sigmoid MLP fitted to a sine. With
`--seeds K` the sine fit (its data, initialisation and 10,000 steps) runs for K seeds as one
vmapped program, and its final loss is reported as mean ± std."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgen.experiments._common import check_seeds, seed_keys, spread
from jaxgen.io import figure, save_figure


def rosenbrock(p):
    """f(x0, x1) = 100 (x1 - x0^2)^2 + (x0 - 1)^2, minimum 0 at (1, 1)."""
    return 100 * (p[1] - p[0] ** 2) ** 2 + (p[0] - 1) ** 2


def gradient_descent(f, x0, lr: float, steps: int):
    """x <- x - lr * grad f(x), as one lax.scan; returns the whole path (steps + 1, ...)."""
    def step(x, _):
        x = x - lr * jax.grad(f)(x)
        return x, x

    _, path = jax.lax.scan(step, x0, None, length=steps)
    return jnp.concatenate([x0[None], path])


class SineMLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(1)(nn.sigmoid(nn.Dense(10)(x)))


def fit(loss, params, opt, steps: int):
    """Full-batch optimisation as one lax.scan; returns (params, losses per step)."""
    state = opt.init(params)

    def step(carry, _):
        params, state = carry
        value, grads = jax.value_and_grad(loss)(params)
        updates, state = opt.update(grads, state)
        return (optax.apply_updates(params, updates), state), value

    (params, _), losses = jax.jit(lambda p, s: jax.lax.scan(step, (p, s), None,
                                                            length=steps))(params, state)
    return params, losses


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of this experiment (defaults: the book)."""

    seed: int = 0
    sine_steps: int = 10_000  # SGD steps of the sine-regression MLP
    seeds: int = 1  # sine fits from seeds seed, seed + 1, ... (one vmapped program)

    def __post_init__(self):
        check_seeds(self.seeds)


PRESETS = {"full": Config(), "quick": Config(sine_steps=2_000)}


def train_and_evaluate(config: Config, out: Path, *, resume: bool = False) -> dict:
    key = jax.random.key(config.seed)
    y, dy = jax.value_and_grad(lambda x: 3 * x**2)(5.0)

    path = jax.jit(lambda x0: gradient_descent(rosenbrock, x0, 1e-3, 10_000))(
        jnp.array([0.0, 2.0]))
    end = path[-1]

    kx, ky = jax.random.split(key, 5)[:2]  # the other three: the sine fit's, below
    x = jax.random.uniform(kx, (100, 1))
    t = 5 + 2 * x + jax.random.uniform(ky, (100, 1))
    mse = lambda p: jnp.mean((x @ p["W"] + p["b"] - t) ** 2)  # noqa: E731
    lin, lin_losses = fit(mse, {"W": jnp.zeros((1, 1)), "b": jnp.zeros(1)}, optax.sgd(0.1), 100)

    mlp = SineMLP()

    def sine_fit(root):  # one seed: its data, initialisation and fit, from its root key
        _, _, ks, kn, ki = jax.random.split(root, 5)
        xs = jax.random.uniform(ks, (100, 1))
        ts = jnp.sin(2 * jnp.pi * xs) + jax.random.uniform(kn, (100, 1))
        params, losses = fit(lambda p: jnp.mean((mlp.apply(p, xs) - ts) ** 2),
                             mlp.init(ki, xs), optax.sgd(0.2), config.sine_steps)
        return xs, ts, params, losses

    fits = jax.vmap(sine_fit)(jnp.stack(seed_keys(config)))  # K seeds, one program
    xs, ts, mlp_params, mlp_losses = jax.tree_util.tree_map(lambda a: a[0], fits)  # `key`'s
    finals = spread(np.asarray(fits[3][:, -1]))

    fig, axes = figure(1, 3, size=(4.5, 4))
    g0, g1 = np.meshgrid(np.linspace(-2, 2, 200), np.linspace(-1, 3, 200))
    axes[0].contour(g0, g1, np.log1p(np.asarray(rosenbrock(np.stack([g0, g1])))), levels=20)
    p = np.asarray(path[::100])
    axes[0].plot(p[:, 0], p[:, 1], "r.-", ms=2)
    axes[0].plot(1, 1, "k*", ms=12)
    axes[0].set(title=f"Rosenbrock GD, 10,000 steps -> ({end[0]:.4f}, {end[1]:.4f})",
                xlabel="x0", ylabel="x1")
    grid = jnp.linspace(0, 1, 100)[:, None]
    axes[1].scatter(x, t, s=10)
    axes[1].plot(grid, grid @ lin["W"] + lin["b"], "r",
                 label=f"y = {float(lin['W'][0, 0]):.3f} x + {float(lin['b'][0]):.3f}")
    axes[1].set(title=f"linear regression (loss {float(lin_losses[-1]):.4f})", xlabel="x",
                ylabel="y")
    axes[1].legend()
    axes[2].scatter(xs, ts, s=10)
    axes[2].plot(grid, mlp.apply(mlp_params, grid), "r", label="1-10-1 sigmoid MLP")
    axes[2].set(title=f"MLP on sin(2 pi x) + U (loss {float(mlp_losses[-1]):.4f})",
                xlabel="x", ylabel="y")
    axes[2].legend()
    save_figure(fig, out / "nn_basics.png")
    return {
        "autograd_y": y, "autograd_dy": dy,
        "rosenbrock_end": end,
        "linear_W": lin["W"][0, 0], "linear_b": lin["b"][0], "linear_loss": lin_losses[-1],
        "mlp_loss": mlp_losses[-1], "mlp_steps": len(mlp_losses),
        **({"seeds": {"seeds": [config.seed + i for i in range(config.seeds)],
                      "mlp_loss": finals}} if config.seeds > 1 else {}),
        "book": {"autograd": [75, 30], "rosenbrock_end": [0.99448, 0.98896],
                 "linear_W_b_loss": [2.286, 5.314, 0.0799], "mlp_loss": 0.0795,
                 "note": "the book's data come from torch's RNG; ours from jax.random"},
        "headline": f"dy/dx(5)={float(dy):.0f}; Rosenbrock -> ({end[0]:.4f}, {end[1]:.4f}); "
                    f"MLP loss {float(mlp_losses[-1]):.4f}" + (
                        f" ({finals['mean']:.4f} ± {finals['std']:.4f} over {config.seeds} "
                        f"seeds)" if config.seeds > 1 else ""),
        "figures": ["nn_basics.png"],
    }
