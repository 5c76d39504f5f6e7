"""Benchmarks, one module each, run by `jaxgen bench NAME`.

Each module defines `run(*, quick: bool) -> dict` with a list of `rows` (dicts printed as a
table) and any extra numbers; baselines are measured in the same run as jaxgen.
"""

BENCHMARKS = {
    "scaling": ("scaling", "EM time vs N and K; train step vs batch and device count (PNG)"),
    "core": ("core", "each pure function: op by op vs jit, compile time, vmap vs loop, scipy"),
    "gmm": ("gmm", "EM fit vs scikit-learn and a NumPy EM; mvn.log_prob vs scipy"),
    "vae": ("vae", "VAE train step: jit vs op by op vs PyTorch eager; epoch time"),
    "samplers": ("samplers", "FID vs steps for DDIM and DPM-Solver++ on a trained model (PNG)"),
    "guidance": ("guidance", "classifier-free guidance in a limited noise interval: FID, accuracy"),
    "recipes": ("recipes", "FID vs training minutes over diffusion runs' checkpoints (PNG)"),
    "ablation": ("ablation", "DDPM from the book's recipe to the CPU recipe, one ingredient a row"),
    "seeds": ("seeds", "8 VAE seeds as one vmapped train() vs 8 sequential runs"),
    "unets": ("unets", "parameters and forward GFLOP per image of the U-Net family's configurations"),
    "ddpm": ("ddpm", "U-Net train step vs PyTorch eager, GFLOP/s; scanned vs looped samplers"),
}
