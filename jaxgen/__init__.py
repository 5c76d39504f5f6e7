"""jaxgen: generative models from first principles, in functional JAX.

The ladder of "Deep Learning from Scratch 5": `normal` and `bernoulli` (ch. 1-2), `mvn` (ch. 3),
`gmm` (ch. 4-5) and `kl` (the pieces of the ELBO). Every function is pure and jit/vmap-able.
"""

from jaxgen import bernoulli, gmm, kl, mvn, normal

__version__ = "0.1.0"
__all__ = ["bernoulli", "gmm", "kl", "mvn", "normal"]
