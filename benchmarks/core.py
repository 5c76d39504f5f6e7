"""The public pure functions, each timed four ways in one run: op by op (`jax.disable_jit`),
jitted (median after warm-up), compile time (first call minus a warm call), and, for per-example
functions, `vmap` over a batch against a Python loop of jitted calls; external baselines (scipy,
scikit-learn) where one exists."""

from __future__ import annotations

import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from jaxgen import diffusion, gmm, kl, mvn, normal, vae
from jaxgen.benchmarks.common import block, machine, median_seconds
from jaxgen.diffusion import ddpm


def _times(fn, args, repeats: int, eager: bool = True) -> dict:
    """op-by-op (unless eager=False), jit and compile seconds of fn(*args)."""
    jitted = jax.jit(fn)
    t0 = time.perf_counter()
    block(jitted(*args))
    first = time.perf_counter() - t0
    t_jit = median_seconds(lambda: jitted(*args), repeats, warmup=1)
    out = {"jit_ms": 1e3 * t_jit, "compile_ms": 1e3 * max(first - t_jit, 0.0)}
    if eager:
        with jax.disable_jit():
            t_eager = median_seconds(lambda: fn(*args), 1, warmup=0)
        out.update(op_by_op_ms=1e3 * t_eager, jit_speedup=t_eager / t_jit)
    return out


def _vmap_vs_loop(one, batched_args, repeats: int) -> dict:
    """jax.vmap(one) over the leading axis vs a Python loop of jax.jit(one) per example."""
    vmapped, single = jax.jit(jax.vmap(one)), jax.jit(one)
    n = jax.tree_util.tree_leaves(batched_args)[0].shape[0]
    items = [jax.tree_util.tree_map(lambda a, i=i: a[i], batched_args) for i in range(n)]
    t_vmap = median_seconds(lambda: vmapped(*batched_args), repeats, warmup=1)
    t_loop = median_seconds(lambda: [single(*a) for a in items], max(1, repeats // 2), warmup=1)
    return {"vmap_ms": 1e3 * t_vmap, "loop_ms": 1e3 * t_loop, "vmap_speedup": t_loop / t_vmap}


def run(*, quick: bool) -> dict:
    import scipy.stats
    from sklearn.mixture import GaussianMixture

    rng = np.random.default_rng(0)
    key = jax.random.key(0)
    r = 3 if quick else 7
    n = 20_000 if quick else 1_000_000
    loop_n = 20 if quick else 1000
    rows = []
    bar = tqdm(total=7, desc="bench core", unit="fn")

    def add(name, size, timing, baseline=None, base_seconds=None, **extra):
        row = dict(function=name, size=size, **timing, **extra)
        if baseline is not None:
            row["baseline"] = baseline
            row["vs_baseline"] = base_seconds / (timing["jit_ms"] / 1e3)
        rows.append(row)
        bar.update()

    # normal.log_prob: elementwise
    x = jnp.asarray(rng.normal(size=n), jnp.float32)
    xs = np.asarray(x, np.float64)
    t = _times(lambda v: normal.log_prob(v, 0.5, 2.0), (x,), r)
    add("normal.log_prob", f"{n}", t, "scipy.stats.norm.logpdf",
        median_seconds(lambda: scipy.stats.norm.logpdf(xs, 0.5, 2.0), r, warmup=0),
        **_vmap_vs_loop(lambda v: normal.log_prob(v, 0.5, 2.0), (x[:loop_n],), r))

    # mvn.log_prob: D = 16
    d, m = 16, n // 10
    pts = jnp.asarray(rng.normal(size=(m, d)), jnp.float32)
    a = rng.normal(size=(d, d))
    mean, cov = rng.normal(size=d).astype(np.float32), (a @ a.T / d + np.eye(d)).astype(np.float32)
    frozen = scipy.stats.multivariate_normal(mean, cov)
    pts64 = np.asarray(pts, np.float64)
    covs = jnp.asarray(np.stack([cov * (1 + 0.01 * i) for i in range(loop_n)]))
    t = _times(lambda p: mvn.log_prob(p, mean, cov), (pts,), r)
    add("mvn.log_prob", f"{m}x{d}", t, "scipy multivariate_normal.logpdf",
        median_seconds(lambda: frozen.logpdf(pts64), r, warmup=0),
        **_vmap_vs_loop(lambda c: mvn.log_prob(pts[:256], mean, c), (covs,), r))

    # kl.diag_normal: the VAE's KL term
    mu, sd = jnp.asarray(rng.normal(size=(m, 32)), jnp.float32), jnp.full((m, 32), 0.7)
    t = _times(lambda u, s: kl.diag_normal(u, s, 0.0, 1.0), (mu, sd), r)
    add("kl.diag_normal", f"{m}x32", t)

    # one EM iteration (E-step + M-step) of a full-covariance GMM
    k = 16
    xg = jnp.asarray(rng.normal(size=(m, d)), jnp.float32)
    g0 = gmm.fit(xg, k, key=key, max_iter=1)[0]

    def em_iteration(xx, g):
        return gmm.m_step(xx, gmm.e_step(g, xx), reg_covar=1e-6)

    t = _times(em_iteration, (xg, g0), r, eager=not quick)
    sk = GaussianMixture(k, max_iter=1, tol=0.0, init_params="random", random_state=0)
    warnings.simplefilter("ignore")  # scikit-learn warns that one iteration did not converge
    xg64 = np.asarray(xg, np.float64)
    add("gmm EM iteration", f"N={m} D={d} K={k}", t, "scikit-learn (1 iteration + init)",
        median_seconds(lambda: sk.fit(xg64), 1, warmup=0))

    # VAE negative ELBO per example (a loss evaluation)
    model = vae.VAE()
    xv = jax.random.uniform(key, (256, 784))
    params = model.init(key, xv[:1], key)
    t = _times(lambda p, v: jnp.mean(vae.neg_elbo(model, p, v, key=key)), (params, xv), r,
               eager=not quick)
    add("vae.neg_elbo", "batch 256", t)

    if quick:  # the smoke test stops here: U-Net compiles take ~15 s on 2 cores
        bar.close()
        return {"machine": machine(), "rows": rows, "notes": ["quick: no U-Net rows"]}
    # DDPM loss and its gradient for a small U-Net; and a DDIM-10 sampler
    net = diffusion.UNet(widths=(8, 16, 32), norm="group")
    xi = jax.random.uniform(key, (32, 28, 28, 1))
    up = net.init(key, xi[:1], jnp.ones((1,), jnp.int32))
    sched = diffusion.linear()

    def loss(p, v):
        return jnp.mean(ddpm.loss(lambda z, tt: net.apply(p, z, tt), v, sched, key=key))

    t = _times(jax.grad(loss), (up, xi), r)
    add(f"grad of ddpm.loss (U-Net {'-'.join(map(str, net.widths))})", "batch 32", t)
    t = _times(lambda p: ddpm.ddim_sample(lambda z, tt: net.apply(p, z, tt),
                                          (8, 28, 28, 1), sched, 10, key=key), (up,), r)
    add("ddpm.ddim_sample, 10 steps", "8 images", t)
    bar.close()
    return {"machine": machine(), "rows": rows, "notes": [
        "jit_speedup = op-by-op / jit; vmap_speedup = Python loop of jitted calls / one vmapped "
        "call (the loop runs the per-example function over the first "
        f"{loop_n} examples); vs_baseline = baseline seconds / jit seconds (higher is faster)",
        f"medians of {r} after one warm-up; op by op: one run; compile = first call - warm call"]}
