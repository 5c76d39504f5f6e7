"""Gaussian mixture models and their fit by expectation-maximisation (book chapters 4-5).

    p(x) = sum_k pi_k N(x | mu_k, Sigma_k)

- `mixture`: the `GMM` pytree and its parameter count;
- `density` (ch. 4): `log_prob`, ancestral `sample`, `bic` / `aic`;
- `em` (ch. 5): `e_step`, `m_step`, k-means++ starts and `fit`, the whole EM loop as one
  compiled `lax.while_loop` with `n_init` restarts as one vmapped program;
- `em_bound` (ch. 5): log p(x) = ELBO + KL(q || p(z|x)) before and after every half-step.

Covariance types follow scikit-learn ('full', 'diag', 'spherical', 'tied'); whatever the type,
`GMM.covs` holds full (K, D, D) matrices, so every density function has one code path.
"""

from jaxgen.gmm.density import aic, bic, log_prob, sample
from jaxgen.gmm.em import INIT_METHODS, FitInfo, e_step, fit, m_step, predict, predict_proba
from jaxgen.gmm.em_bound import BoundTrace, em_bound_trace
from jaxgen.gmm.mixture import COVARIANCE_TYPES, GMM, n_parameters

__all__ = [
           "COVARIANCE_TYPES",
           "GMM",
           "INIT_METHODS",
           "BoundTrace",
           "FitInfo",
           "aic",
           "bic",
           "e_step",
           "em_bound_trace",
           "fit",
           "log_prob",
           "m_step",
           "n_parameters",
           "predict",
           "predict_proba",
           "sample",
]
