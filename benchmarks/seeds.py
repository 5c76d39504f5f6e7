"""Many seeds as one program: K = 8 seeds of the book's VAE (784-200-20, Adam 3e-4, batch 32)
trained by ONE `jaxgen.train(..., replicas=8)` (a jitted vmap of the step) against 8 sequential
`jaxgen.train` runs of the same seeds, measured in one run after both steps are compiled."""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgen import vae
from jaxgen.benchmarks.common import machine
from jaxgen.train import train

K = 8


def _runs(loss, optimizer, model, data, epochs: int):
    keys = [jax.random.split(jax.random.key(i)) for i in range(K)]
    inits = [model.init(ki, data[:1], ki) for ki, _ in keys]
    kw = dict(epochs=epochs, batch_size=32, desc="bench")

    def sequential():
        return [train(loss, p, optimizer, (data,), key=kt, **kw)[0]
                for p, (_, kt) in zip(inits, keys, strict=True)]

    def vmapped():
        stacked = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *inits)
        return train(loss, stacked, optimizer, (data,), key=jnp.stack([kt for _, kt in keys]),
                     replicas=K, **kw)[0]

    return sequential, vmapped


def _seconds(fn) -> float:
    t = time.perf_counter()
    jax.block_until_ready(jax.tree_util.tree_leaves(fn()))
    return time.perf_counter() - t


def run(*, quick: bool) -> dict:
    model, optimizer = vae.VAE(), optax.adam(3e-4)
    loss = vae.make_loss(model, "gaussian", book=True)
    n = 1_600 if quick else 16_000
    data = np.random.default_rng(0).random((n, 784), dtype=np.float32)
    for fn in _runs(loss, optimizer, model, data[:64], 1):  # compile both steps
        _seconds(fn)
    sequential, vmapped = _runs(loss, optimizer, model, data, 1)
    t_seq, t_vmap = _seconds(sequential), _seconds(vmapped)
    steps = n // 32
    rows = [dict(case=f"{K} seeds x {steps} steps, batch 32", impl=f"{K} sequential train() runs",
                 s=t_seq, ms_per_seed_step=1e3 * t_seq / (K * steps), speedup=1.0),
            dict(case=f"{K} seeds x {steps} steps, batch 32", impl="one vmapped train(replicas=8)",
                 s=t_vmap, ms_per_seed_step=1e3 * t_vmap / (K * steps), speedup=t_seq / t_vmap)]
    notes = ["speedup = sequential seconds / vmapped seconds, both measured here after "
             "compilation; the data order, initialisation and noise of each seed are the same "
             "in both (tests/test_train.py checks replica i equals the single run i)"]
    return {"machine": machine(), "rows": rows, "notes": notes, "speedup": t_seq / t_vmap}
