"""Argument checks for the mixture functions: each error names the argument and what was
expected (run outside jit, on concrete shapes and values)."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from jaxgen import _checks
from jaxgen.gmm.mixture import COVARIANCE_TYPES, GMM

Array = jax.Array


def check_x(x, name: str = "x") -> None:
    if np.ndim(x) != 2:
        raise ValueError(f"{name} must have shape (N, D), got shape {np.shape(x)}")
    _checks.finite(name, x)


def check_gmm(gmm: GMM, d: int | None = None) -> None:
    if not isinstance(gmm, GMM):
        raise ValueError(f"gmm must be a jaxgen.gmm.GMM, got {type(gmm).__name__}")
    k = np.shape(gmm.weights)
    if len(k) != 1:
        raise ValueError(f"gmm.weights must have shape (K,), got shape {k}")
    (k,) = k
    if np.ndim(gmm.means) != 2 or np.shape(gmm.means)[0] != k:
        raise ValueError(f"gmm.means must have shape (K, D) with K={k}, got {np.shape(gmm.means)}")
    dm = np.shape(gmm.means)[1]
    if d is not None and dm != d:
        raise ValueError(f"x has D={d} features but gmm.means has shape {np.shape(gmm.means)}")
    if np.shape(gmm.covs) != (k, dm, dm):
        raise ValueError(f"gmm.covs must have shape (K, D, D)=({k}, {dm}, {dm}), "
                         f"got {np.shape(gmm.covs)}")
    if gmm.covariance_type not in COVARIANCE_TYPES:
        raise ValueError(f"gmm.covariance_type must be one of {COVARIANCE_TYPES}, "
                         f"got {gmm.covariance_type!r}")
    _checks.probabilities("gmm.weights", gmm.weights)
    _checks.finite("gmm.means", gmm.means)
    _checks.spd("gmm.covs", gmm.covs)


def check_x_gmm(gmm, x) -> None:
    check_x(x)
    check_gmm(gmm, np.shape(x)[1])


def as_float(gmm: GMM, x=None) -> tuple[GMM, Array]:
    """Cast the GMM's arrays and x to one floating dtype."""
    weights, means, covs, x = _checks.as_float(gmm.weights, gmm.means, gmm.covs,
                                               gmm.means if x is None else x)
    return dataclasses.replace(gmm, weights=weights, means=means, covs=covs), x


def check_covariance_type(covariance_type) -> None:
    if covariance_type not in COVARIANCE_TYPES:
        raise ValueError(f"covariance_type must be one of {COVARIANCE_TYPES}, "
                         f"got {covariance_type!r}")


def check_reg_covar(reg_covar) -> None:
    if _checks.is_concrete(reg_covar) and not float(reg_covar) >= 0:
        raise ValueError(f"reg_covar must be >= 0, got {reg_covar!r}")
