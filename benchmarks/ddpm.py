"""DDPM: the book's U-Net train step (batch 128) and `ddpm --quick`'s ResNet U-Net step
(v-prediction, min-SNR, cosine), each jaxgen vs PyTorch eager (the ResUNet's twin:
`torch_resunet.py`) and with achieved GFLOP/s against the `jnp.dot` peak measured in the same
run; sampling as one `lax.scan` vs a Python loop of jitted steps, DDIM-50 and
DPM-Solver++-20 vs DDPM-1000 (with a small U-Net, so it fits on a CPU)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgen import diffusion
from jaxgen.benchmarks.common import dot_peak_gflops, machine, median_seconds
from jaxgen.diffusion import ddpm
from jaxgen.diffusion.objective import make_loss
from jaxgen.diffusion.solvers import dpm_solver_2m
from jaxgen.train import init_state, make_train_step


def _torch_unet_step(batch: int):
    """The book's U-Net and train step in PyTorch eager (NCHW), or None without torch."""
    try:
        import torch
    except ImportError:
        return None
    from jaxgen.benchmarks.torch_book_ddpm import book_unet

    torch.manual_seed(0)

    net = book_unet()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x0 = torch.rand(batch, 1, 28, 28)
    v = torch.randn(batch, 100)  # the time embedding's cost is negligible next to the convs

    def step():
        noise = torch.randn_like(x0)
        loss = ((net(x0 + noise, v) - noise) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    return step, torch.__version__


def _step_cost(step, state, key, batch, repeats: int) -> tuple[float, float]:
    """(median seconds, XLA's FLOP count) of one jitted train step."""
    box = [state]

    def call():
        box[0], m = step(box[0], key, batch)
        return m

    seconds = median_seconds(call, repeats, warmup=1)
    cost = step.lower(box[0], key, batch).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return seconds, float(cost.get("flops", 0.0))


def _torch_resunet_step(cfg, batch: int):
    """The same ResUNet's train step (v-prediction, min-SNR-5 weighting, Adam) in PyTorch
    eager, or None without torch."""
    try:
        import torch
    except ImportError:
        return None
    from jaxgen.benchmarks.torch_resunet import res_unet

    torch.manual_seed(0)
    net = res_unet(cfg.base, tuple(cfg.mults), cfg.depth, tuple(cfg.attention),
                   upsample=cfg.upsample, scale_shift=cfg.scale_shift)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x0 = torch.rand(batch, 1, 28, 28) * 2 - 1
    alpha_bar = torch.cos(torch.linspace(0, 1, 1000) * math.pi / 2) ** 2

    def step():
        t = torch.randint(1, 1000, (batch,))
        a = alpha_bar[t].sqrt()[:, None, None, None]
        s = (1 - alpha_bar[t]).sqrt()[:, None, None, None]
        noise = torch.randn_like(x0)
        snr = alpha_bar[t] / (1 - alpha_bar[t])
        weight = torch.clamp(snr, max=5.0) / (snr + 1)  # min-SNR-5 on the v loss
        v = a * noise - s * x0
        err = ((net(a * x0 + s * noise, t) - v) ** 2).mean((1, 2, 3))
        loss = (weight * err).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    return step, sum(p.numel() for p in net.parameters())


def _resunet_rows(batch: int, repeats: int, peak: float) -> list[dict]:
    """`ddpm --quick`'s ResUNet train step in jaxgen and, with torch, its PyTorch eager twin."""
    from jaxgen.experiments._diffusion import QUICK_UNCONDITIONAL, DiffusionConfig, make_net

    cfg = DiffusionConfig(**QUICK_UNCONDITIONAL)
    net = make_net(cfg)
    key = jax.random.key(0)
    x = jax.random.uniform(key, (batch, 28, 28, 1)) * 2 - 1
    params = jax.jit(net.init)(key, x[:1], jnp.ones((1,), jnp.int32))["params"]
    opt = optax.adam(1e-3)
    loss = make_loss(net, diffusion.cosine(), prediction="v", weighting="min-snr")
    seconds, flops = _step_cost(make_train_step(loss, opt), init_state(params, opt), key, (x,),
                                repeats)
    n = sum(a.size for a in jax.tree_util.tree_leaves(params))
    case = (f"ResUNet {cfg.base}x{cfg.mults} up={cfg.upsample}{' AdaGN' * cfg.scale_shift} "
            f"({n / 1e6:.2f}M params) train step, batch {batch}")
    rows = [dict(case=case, impl="jaxgen jit", seconds=seconds, gflops=flops / seconds / 1e9,
                 peak_share=flops / seconds / 1e9 / peak)]
    twin = _torch_resunet_step(cfg, batch)
    if twin is not None:
        fn, n_torch = twin
        import torch

        t_torch = median_seconds(fn, repeats, warmup=1)
        rows[0]["vs_torch"] = t_torch / seconds
        rows.append(dict(case=case, impl=f"PyTorch {torch.__version__} eager (twin, "
                         f"{n_torch / 1e6:.2f}M params)", seconds=t_torch, vs_torch=1.0))
    return rows


def _conv_rows(batch: int, repeats: int, peak: float) -> list[dict]:
    """Where a conv net's step loses the dot peak: one 3x3 convolution ('SAME', NHWC) of the
    ResUNet at 28x28 (32 -> 32 channels) and at 14x14 (64 -> 64) -- its forward, its input
    gradient and its kernel gradient, each 2 B H W 9 C F FLOP -- in XLA and, with torch, in
    PyTorch (oneDNN: F.conv2d and aten's convolution backward)."""
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        torch = None
    dn = ("NHWC", "HWIO", "NHWC")

    def conv(x, w):
        return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=dn)

    if torch is not None:
        torch_fns = {
            "forward": lambda x, w, g: F.conv2d(x, w, padding=1),
            "input gradient": lambda x, w, g: torch.nn.grad.conv2d_input(x.shape, w, g,
                                                                         padding=1),
            "kernel gradient": lambda x, w, g: torch.nn.grad.conv2d_weight(x, w.shape, g,
                                                                           padding=1)}
    rows = []
    for hw, c in ((28, 32), (14, 64)):
        k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
        x = jax.random.normal(k1, (batch, hw, hw, c))
        w = jax.random.normal(k2, (3, 3, c, c)) * 0.1
        g = jax.random.normal(k3, (batch, hw, hw, c))
        fns = {"forward": jax.jit(conv),
               "input gradient": jax.jit(lambda x, w, g: jax.vjp(lambda x: conv(x, w), x)[1](g)),
               "kernel gradient": jax.jit(lambda x, w, g: jax.vjp(lambda w: conv(x, w), w)[1](g))}
        args = {"forward": (x, w), "input gradient": (x, w, g), "kernel gradient": (x, w, g)}
        gflop = 2 * batch * hw * hw * 9 * c * c / 1e9
        if torch is not None:
            targs = tuple(torch.from_numpy(np.asarray(a).transpose(*axes).copy())
                          for a, axes in ((x, (0, 3, 1, 2)), (w, (3, 2, 0, 1)), (g, (0, 3, 1, 2))))
        for part, fn in fns.items():
            seconds = median_seconds(lambda fn=fn, a=args[part]: fn(*a), repeats, warmup=1)
            case = f"conv 3x3 {hw}x{hw}, {c}->{c} ch, batch {batch}: {part}"
            row = dict(case=case, impl="jaxgen jit (XLA)", seconds=seconds,
                       gflops=gflop / seconds, peak_share=gflop / seconds / peak)
            rows.append(row)
            if torch is not None:
                with torch.no_grad():
                    t_torch = median_seconds(lambda f=torch_fns[part], a=targs: f(*a),
                                             repeats, warmup=1)
                row["vs_torch"] = t_torch / seconds
                rows.append(dict(case=case, impl=f"PyTorch {torch.__version__} (oneDNN)",
                                 seconds=t_torch, gflops=gflop / t_torch,
                                 peak_share=gflop / t_torch / peak, vs_torch=1.0))
    return rows


def run(*, quick: bool) -> dict:
    batch = 32 if quick else 128
    repeats = 2 if quick else 3
    schedule = diffusion.linear()
    net = diffusion.UNet()
    key = jax.random.key(0)
    x = jax.random.uniform(key, (batch, 28, 28, 1))
    variables = jax.jit(net.init)(key, x[:1], jnp.ones((1,), jnp.int32))
    params = variables.pop("params")
    opt = optax.adam(1e-3)
    step = make_train_step(make_loss(net, schedule), opt)
    t_jax, flops = _step_cost(step, init_state(params, opt, dict(variables)), key, (x,),
                              repeats)
    peak = dot_peak_gflops()
    rows = [dict(case=f"U-Net train step, batch {batch}", impl="jaxgen jit", seconds=t_jax,
                 gflops=flops / t_jax / 1e9, peak_share=flops / t_jax / 1e9 / peak)]
    notes = [f"jnp.dot peak in this run: {peak:.1f} GFLOP/s; the jaxgen step runs "
             f"{flops / 1e9:.1f} GFLOP (XLA's count) at {100 * flops / t_jax / 1e9 / peak:.0f}% "
             "of it"]
    torch_step = _torch_unet_step(batch)
    if torch_step is None:
        notes.append("PyTorch not installed: no eager baseline (pip install torch==2.13.0)")
    else:
        fn, version = torch_step
        t_torch = median_seconds(fn, repeats, warmup=1)
        rows[0]["vs_torch"] = t_torch / t_jax
        rows.append(dict(case=f"U-Net train step, batch {batch}", impl=f"PyTorch {version} eager",
                         seconds=t_torch, vs_torch=1.0))
    rows += _resunet_rows(batch, repeats, peak)
    rows += _conv_rows(batch, 2 if quick else 15, peak)
    notes.append("peak_share = achieved GFLOP/s / the jnp.dot peak of this run; vs_torch = "
                 "PyTorch eager seconds / this row's seconds (the ResUNet's twin: "
                 "benchmarks/torch_resunet.py)")

    small = diffusion.UNet(widths=(16, 32, 64), norm="group")
    p_small = jax.jit(small.init)(key, x[:1], jnp.ones((1,), jnp.int32))
    eps_fn = lambda xt, t: small.apply(p_small, xt, t)  # noqa: E731
    shape = (8, 28, 28, 1)
    scanned = jax.jit(lambda k: ddpm.sample(eps_fn, shape, schedule, key=k)[0])
    one_step = jax.jit(lambda k, xt, t: ddpm.p_sample(eps_fn, xt, t, schedule, key=k))
    ddim = jax.jit(lambda k: ddpm.ddim_sample(eps_fn, shape, schedule, steps=50, key=k))
    dpm = jax.jit(lambda k: dpm_solver_2m(eps_fn, shape, schedule, steps=20, key=k))

    def python_loop(k):
        xt = jax.random.normal(jax.random.fold_in(k, 0), shape)
        for t in range(schedule.T, 0, -1):
            xt = one_step(k, xt, t)
        return xt

    t_scan = median_seconds(lambda: scanned(key), repeats, warmup=1)
    t_loop = median_seconds(lambda: python_loop(key), repeats, warmup=1)
    t_ddim = median_seconds(lambda: ddim(key), repeats, warmup=1)
    t_dpm = median_seconds(lambda: dpm(key), repeats, warmup=1)
    same = bool(np.allclose(scanned(key), python_loop(key), atol=1e-4))
    case = "sampling 8 images, U-Net 16-32-64"
    rows += [dict(case=case, impl="DDPM-1000, one lax.scan", seconds=t_scan),
             dict(case=case, impl="DDPM-1000, Python loop of jitted steps", seconds=t_loop,
                  scan_speedup=t_loop / t_scan),
             dict(case=case, impl="DDIM-50, one lax.scan", seconds=t_ddim,
                  vs_ddpm_1000=t_scan / t_ddim),
             dict(case=case, impl="DPM-Solver++(2M)-20, one lax.scan", seconds=t_dpm,
                  vs_ddpm_1000=t_scan / t_dpm)]
    notes.append(f"scanned and looped samplers agree to 1e-4: {same}")
    return {"machine": machine(), "rows": rows, "notes": notes, "dot_peak_gflops": peak,
            "train_step_gflop": flops / 1e9}
