"""Experiments, one module each, run by `jaxgen run NAME`.

Each module declares its settings once and has one entry point (the shape of the Flax examples):

    @dataclasses.dataclass(frozen=True)
    class Config: ...                      # every setting, defaults = the book (`full`)
    PRESETS = {"full": Config(), "quick": Config(epochs=3, ...)}
    def train_and_evaluate(config: Config, out: Path, *, resume: bool = False) -> dict

`train_and_evaluate` writes its figures into `out` and returns its metrics (the CLI adds the
config, versions and timing and writes `out/metrics.json`); `resume` continues from the
checkpoints under `out` (experiments that train nothing simply run again). An experiment is a
thin script over the library: the maths lives in `jaxgen`.
"""

# `jaxgen run NAME` -> what it shows, in the order of the book's chapters; the module of NAME
# is NAME with '-' as '_'
_TABLE = """
normal               ch. 1: the normal distribution and the central limit theorem
mle                  ch. 2: maximum likelihood for heights, generated samples, probabilities
likelihood           ch. 2: the likelihood in mu and sigma, gradient ascent, ML as KL minimisation
estimation           ch. 2: bias, variance and consistency of estimators, by vmapped simulation
mvn                  ch. 3: multivariate normal, MLE of height/weight with contours
gmm                  ch. 4: a Gaussian mixture's density and ancestral samples
em                   ch. 5: EM on Old Faithful from the book's start; BIC over K
nn                   ch. 6: autograd, Rosenbrock descent, linear regression, a sine MLP
nn-basics            ch. 6: learning rates, batch sizes, dropout and initialisation, in plain JAX
classifier           MNIST MLP design choices and the CNN evaluator (FID)
vae                  ch. 7: VAE on MNIST, -ELBO and IWAE in nats, samples, 2-D latents
hvae                 ch. 8: two-level hierarchical VAE on MNIST
noising              ch. 9: flower.png noised step by step and in closed form
ddpm                 ch. 9: DDPM with the book's U-Net on MNIST; DDPM and DDIM samples
conditional          ch. 10: a label-conditioned DDPM, one row per digit
cfg                  ch. 10: classifier-free guidance, gamma in {0, 1, 3, 5}
classifier-guidance  ch. 10: an unconditional DDPM steered by a noisy-image classifier
latent-diffusion     ch. 10: CFG diffusion in an autoencoder's 8x8x2 latent space
"""
# name -> (module, one-line description)
EXPERIMENTS = {name: (name.replace("-", "_"), desc.strip())
               for name, desc in (line.split(maxsplit=1) for line in _TABLE.strip().splitlines())}
