"""EM for Gaussian mixtures: jaxgen vs scikit-learn vs a NumPy EM in the book's style, all from
the same data, the same start and the same fixed iteration count (tol=0), in one run.
Also `mvn.log_prob` vs `scipy.stats.multivariate_normal.logpdf`."""

from __future__ import annotations

import warnings

import jax
import numpy as np
from tqdm import tqdm

from jaxgen import gmm, mvn
from jaxgen.benchmarks.common import (
    dot_peak_gflops,
    first_call_seconds,
    machine,
    median_seconds,
)


def numpy_em(x, weights, means, covs, n_iter):
    """The book's EM (step05/em.py), vectorised over points but not over components: each
    density through an explicit inverse and determinant, as the book writes it."""
    n, d = x.shape
    for _ in range(n_iter):
        dens = np.empty((n, len(weights)))
        for k, (w, mu, cov) in enumerate(zip(weights, means, covs, strict=True)):
            inv, det = np.linalg.inv(cov), np.linalg.det(cov)
            diff = x - mu
            z = 1 / np.sqrt((2 * np.pi) ** d * det)
            dens[:, k] = w * z * np.exp(-0.5 * np.sum(diff @ inv * diff, axis=1))
        q = dens / dens.sum(1, keepdims=True)
        nk = q.sum(0)
        weights = nk / n
        means = q.T @ x / nk[:, None]
        covs = np.stack([(q[:, k, None] * (x - means[k])).T @ (x - means[k]) / nk[k]
                         for k in range(len(nk))])
    return weights, means, covs


def _data(n, d, k, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(k, d))
    x = centres[rng.integers(0, k, n)] + rng.normal(size=(n, d))
    x = x.astype(np.float32)
    start = gmm.GMM(np.full(k, 1 / k, np.float32), x[rng.choice(n, k, replace=False)],
                    np.stack([np.cov(x.T).astype(np.float32)] * k))
    return x, start


def _sklearn(k, n_iter, **kw):
    from sklearn.mixture import GaussianMixture

    return GaussianMixture(k, covariance_type="full", tol=0.0, max_iter=n_iter, reg_covar=1e-6,
                           **kw)


def run(*, quick: bool) -> dict:
    try:
        import scipy.stats
        import sklearn  # noqa: F401
    except ImportError as e:
        raise SystemExit("jaxgen bench gmm needs scipy and scikit-learn: "
                         "pip install 'jaxgen[bench]'") from e
    n, d, k, n_iter = (5_000, 4, 4, 20) if quick else (100_000, 16, 16, 100)
    n_init = 2 if quick else 8
    n_points = 100_000 if quick else 1_000_000
    repeats = 3
    x, start = _data(n, d, k)
    case = f"fit N={n} D={d} K={k} full, {n_iter} it"
    case_init = f"n_init={n_init} (k-means++), {n_iter} it"
    rows, results = [], {}
    progress = tqdm(total=9, desc="bench gmm", unit="step")

    def step(name, seconds):
        results[name] = seconds
        progress.update()
        progress.set_postfix_str(name)
        return seconds

    fit = lambda: gmm.fit(x, start, tol=0.0, max_iter=n_iter)  # noqa: E731
    first = step("jaxgen first call", first_call_seconds(fit))
    t_jax = step("jaxgen", median_seconds(fit, repeats, warmup=0))
    _, info = fit()
    warnings.simplefilter("ignore")  # scikit-learn warns that tol=0 never converges
    precisions = np.linalg.inv(np.asarray(start.covs, np.float64))
    sk_fit = lambda: _sklearn(k, n_iter, weights_init=np.asarray(start.weights),  # noqa: E731
                              means_init=np.asarray(start.means),
                              precisions_init=precisions).fit(x)
    t_sk = step("sklearn", median_seconds(sk_fit, 1 if not quick else repeats, warmup=0))
    sk = sk_fit()
    t_np = step("numpy", median_seconds(
        lambda: numpy_em(x.astype(np.float64), *(np.asarray(a, np.float64) for a in
                                                 (start.weights, start.means, start.covs)),
                         n_iter), 1, warmup=0))

    fit8 = lambda: gmm.fit(x, k, key=jax.random.key(0), n_init=n_init, tol=0.0,  # noqa: E731
                           max_iter=n_iter)
    first8 = step("jaxgen n_init first call", first_call_seconds(fit8))
    t_jax8 = step("jaxgen n_init", median_seconds(fit8, 1 if not quick else repeats, warmup=0))
    t_sk8 = step("sklearn n_init", median_seconds(
        lambda: _sklearn(k, n_iter, n_init=n_init, init_params="k-means++", random_state=0).fit(x),
        1, warmup=0))

    rng = np.random.default_rng(1)
    pts = rng.normal(size=(n_points, d)).astype(np.float32)
    a = rng.normal(size=(d, d))
    mean, cov = rng.normal(size=d), a @ a.T / d + np.eye(d)
    t_lp = step("mvn jaxgen", median_seconds(lambda: mvn.log_prob(pts, mean, cov), 5))
    pts_device = jax.device_put(pts)
    t_lp_dev = median_seconds(lambda: mvn.log_prob(pts_device, mean, cov), 5)
    frozen = scipy.stats.multivariate_normal(mean, cov)
    t_lp_sp = step("mvn scipy", median_seconds(lambda: frozen.logpdf(pts), repeats, warmup=0))
    progress.close()

    peak = dot_peak_gflops()
    flops_per_iter = 4 * n * k * d * d + 4 * n * k * d  # E: (N,D)x(D,D) per k; M: scatter, means
    gflops = flops_per_iter * n_iter / t_jax / 1e9
    ll_jax = float(info.log_likelihood[n_iter])
    ll_sk = float(sk.score(x))
    rows += [
        dict(case=case, impl="jaxgen (jit, float32)", seconds=t_jax, vs_sklearn=t_sk / t_jax,
             final_mean_ll=ll_jax),
        dict(case=case, impl="jaxgen compile (first call - run)", seconds=first - t_jax),
        dict(case=case, impl="scikit-learn (float64)", seconds=t_sk, vs_sklearn=1.0,
             final_mean_ll=ll_sk),
        dict(case=case, impl="NumPy, book style (float64)", seconds=t_np, vs_sklearn=t_sk / t_np),
        dict(case=case_init, impl="jaxgen (one vmapped program)", seconds=t_jax8,
             vs_sklearn=t_sk8 / t_jax8),
        dict(case=case_init, impl="jaxgen compile (first call - run)", seconds=first8 - t_jax8),
        dict(case=case_init, impl="scikit-learn (sequential restarts)", seconds=t_sk8,
             vs_sklearn=1.0),
        dict(case=f"mvn.log_prob {n_points}x{d}", impl="jaxgen (jit, float32, numpy input)",
             seconds=t_lp, vs_scipy=t_lp_sp / t_lp),
        dict(case=f"mvn.log_prob {n_points}x{d}", impl="jaxgen (input already a jax.Array)",
             seconds=t_lp_dev, vs_scipy=t_lp_sp / t_lp_dev),
        dict(case=f"mvn.log_prob {n_points}x{d}", impl="scipy.stats (float64)", seconds=t_lp_sp,
             vs_scipy=1.0),
    ]
    return {
        "machine": machine(),
        "rows": rows,
        "em_iteration_gflops": gflops,
        "dot_peak_gflops": peak,
        "notes": [
            f"EM iteration: {gflops:.1f} GFLOP/s achieved vs jnp.dot peak {peak:.1f} GFLOP/s "
            f"({100 * gflops / peak:.0f}%), counting {flops_per_iter / 1e6:.0f} MFLOP/iteration",
            "vs_* columns: baseline seconds / these seconds (higher is faster); compile time is "
            "excluded from the ratios",
            f"jaxgen single fits: median of {repeats}; other full-size runs: one each",
        ],
    }
