"""The Gaussian mixture as a pytree (book chapter 4): p(x) = sum_k pi_k N(x | mu_k, Sigma_k)."""

from __future__ import annotations

import dataclasses
import functools

import jax
import numpy as np

Array = jax.Array

COVARIANCE_TYPES = ("full", "diag", "spherical", "tied")


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["weights", "means", "covs"],
    meta_fields=["covariance_type"],
)
@dataclasses.dataclass(frozen=True)
class GMM:
    """A Gaussian mixture, a pytree of arrays.

    Attributes:
      weights: mixing weights pi, shape (K,), non-negative, summing to 1.
      means: component means mu, shape (K, D).
      covs: component covariances Sigma, shape (K, D, D), symmetric positive definite.
      covariance_type: how `covs` is constrained (static metadata; counts parameters for BIC).
    """

    weights: Array
    means: Array
    covs: Array
    covariance_type: str = "full"


def n_parameters(gmm: GMM) -> int:
    """Number of free parameters (as scikit-learn counts them for its covariance types)."""
    k, d = np.shape(gmm.means)
    cov = {"full": k * d * (d + 1) // 2, "diag": k * d, "spherical": k,
           "tied": d * (d + 1) // 2}[gmm.covariance_type]
    return cov + k * d + k - 1
