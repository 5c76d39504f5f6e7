"""The VAE train step (the book's 784-200-20 model, Adam, batch 32 and 128): jaxgen jitted vs
the same step run op by op (`jax.disable_jit`) vs PyTorch eager with the same shapes, measured
in one run; plus a full-size MNIST-shaped epoch (60,000 images)."""

from __future__ import annotations

import time

import jax
import numpy as np
import optax

from jaxgen import vae
from jaxgen.benchmarks.common import machine, median_seconds
from jaxgen.train import init_state, make_train_step


def _torch_step(batch: int):
    """A PyTorch eager step of the same model and loss, or None without torch."""
    try:
        import torch
    except ImportError:
        return None
    torch.manual_seed(0)
    enc = torch.nn.Sequential(torch.nn.Linear(784, 200), torch.nn.ReLU())
    mu_head, logvar_head = torch.nn.Linear(200, 20), torch.nn.Linear(200, 20)
    dec = torch.nn.Sequential(torch.nn.Linear(20, 200), torch.nn.ReLU(),
                              torch.nn.Linear(200, 784), torch.nn.Sigmoid())
    params = [*enc.parameters(), *mu_head.parameters(), *logvar_head.parameters(),
              *dec.parameters()]
    opt = torch.optim.Adam(params, lr=3e-4)
    x = torch.rand(batch, 784)

    def step():
        h = enc(x)
        mu, logvar = mu_head(h), logvar_head(h)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        x_hat = dec(z)
        loss = (((x_hat - x) ** 2).sum(1) - (1 + logvar - mu**2 - logvar.exp()).sum(1)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    return step, torch.__version__


def _threaded(step, state, key, x):
    """A no-argument call that runs one training step and keeps its new state, as a training
    loop does (each call waits for its result: PyTorch's eager steps are synchronous too)."""
    box = [state]

    def call():
        box[0], metrics = step(box[0], key, (x,))
        return box[0], metrics

    return call


def run(*, quick: bool) -> dict:
    model = vae.VAE()
    optimizer = optax.adam(3e-4)
    loss = vae.make_loss(model, "gaussian", book=True)
    jit_step = make_train_step(loss, optimizer)
    eager_step = jit_step.__wrapped__  # the same Python function, not compiled
    key = jax.random.key(0)
    repeats = 5 if quick else 20
    rows, notes = [], []
    for batch in (32, 128):
        x = jax.random.uniform(key, (batch, 784))
        state = init_state(model.init(key, x[:1], key), optimizer)
        t_jit = median_seconds(_threaded(jit_step, state, key, x), repeats, warmup=2)
        with jax.disable_jit():
            t_eager = median_seconds(_threaded(eager_step, state, key, x),
                                     max(3, repeats // 4), warmup=1)
        rows.append(dict(case=f"VAE train step, batch {batch}", impl="jaxgen jit",
                         ms=1e3 * t_jit, vs_torch=None, jit_speedup=t_eager / t_jit))
        rows.append(dict(case=f"VAE train step, batch {batch}", impl="jaxgen op by op",
                         ms=1e3 * t_eager))
        torch_step = _torch_step(batch)
        if torch_step is None:
            notes.append("PyTorch not installed: no eager baseline (pip install torch==2.13.0)")
        else:
            step, version = torch_step
            t_torch = median_seconds(step, repeats, warmup=3)
            rows[-2]["vs_torch"] = t_torch / t_jit
            rows.append(dict(case=f"VAE train step, batch {batch}",
                             impl=f"PyTorch {version} eager", ms=1e3 * t_torch, vs_torch=1.0))
    n = 6_000 if quick else 60_000
    data = np.random.default_rng(0).random((n, 784), dtype=np.float32)
    state = init_state(model.init(key, data[:1], key), optimizer)
    jax.block_until_ready(jit_step(state, key, (data[:32],)))
    start = time.perf_counter()
    for i in range(n // 32):
        state, _ = jit_step(state, jax.random.fold_in(key, i), (data[i * 32:(i + 1) * 32],))
    jax.block_until_ready(state)
    epoch = time.perf_counter() - start
    rows.append(dict(case=f"one epoch, {n} images, batch 32", impl="jaxgen jit (host batches)",
                     ms=1e3 * epoch))
    notes.append("vs_torch = PyTorch seconds / jaxgen seconds (higher is faster); "
                 f"jit_speedup = op-by-op / jit; medians of {repeats} after warm-up")
    return {"machine": machine(), "rows": rows, "notes": notes, "epoch_seconds": epoch}
