"""Model weights: posterior model probabilities, likelihood/AIC weights, stacking.

- **Posterior model probability** of model m for a patient: p(m | y) ∝ π_m p(y | m), the
  evidence from :mod:`.marginal` (equal prior weights π by default).
- **Likelihood and AIC weights** (mapbayr-style, Uster et al. 2021): from the MAP fit's
  objective OFV = −2 [ln p(y | η̂) + ln p(η̂)]: likelihood weights ∝ exp(−OFV/2), AIC weights
  ∝ exp(−(OFV + 2 n_η)/2).
- **Stacking** (Yao et al. 2018): weights on the simplex maximising the cohort's summed
  leave-future-out log predictive density Σ_i ln Σ_m w_m p_m(y_i | y_<i) (every record, the
  first of each patient by its a-priori predictive; a censored record by the probability of
  its region, the M3 term).

Examples
--------
>>> import numpy as np
>>> probabilities(np.array([[0.0, np.log(3.0)]])).round(3).tolist()
[[0.25, 0.75]]
"""

from __future__ import annotations

import numpy as np
import scipy.optimize
import scipy.special

__all__ = ["aic_weights", "probabilities", "stacking_weights"]


def probabilities(log_score: np.ndarray, prior: np.ndarray | None = None) -> np.ndarray:
    """Row-wise normalised exp(``log_score``) × ``prior``: ``(n_patients, n_models)``."""
    log_score = np.atleast_2d(np.asarray(log_score, dtype=float))
    if prior is not None:
        prior = np.asarray(prior, dtype=float)
        if prior.shape != (log_score.shape[1],) or np.any(prior < 0) or prior.sum() <= 0:
            raise ValueError(
                "model weights: prior_weights must give one non-negative weight per model"
            )
        log_score = log_score + np.log(prior / prior.sum())
    return np.exp(log_score - scipy.special.logsumexp(log_score, axis=1, keepdims=True))


def aic_weights(map_log_density: np.ndarray, n_eta: np.ndarray) -> np.ndarray:
    """AIC weights ∝ exp(ln p(y, η̂) − n_η) per patient (rows) and model (columns)."""
    return probabilities(np.asarray(map_log_density) - np.asarray(n_eta, dtype=float)[None, :])


def stacking_weights(log_density: np.ndarray) -> np.ndarray:
    """Stacking weights from per-observation log predictive densities ``(n_obs, n_models)``.

    Examples
    --------
    >>> lpd = np.log(np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9]]))
    >>> bool(stacking_weights(lpd)[0] > 0.5)
    True
    """
    lpd = np.asarray(log_density, dtype=float)
    n_models = lpd.shape[1]
    if n_models == 1 or lpd.shape[0] == 0:
        return np.full(n_models, 1.0 / n_models)
    lpd = np.maximum(lpd, -700.0)

    def objective(a: np.ndarray) -> tuple[float, np.ndarray]:
        z = np.concatenate([[0.0], a])
        log_w = z - scipy.special.logsumexp(z)
        mix = scipy.special.logsumexp(lpd + log_w, axis=1)
        resp = np.exp(lpd + log_w - mix[:, None])  # (n, m)
        w = np.exp(log_w)
        gradient_z = resp.sum(axis=0) - lpd.shape[0] * w
        return -float(mix.sum()), -gradient_z[1:]

    result = scipy.optimize.minimize(
        objective,
        np.zeros(n_models - 1),
        jac=True,
        method="L-BFGS-B",
        bounds=[(-50.0, 50.0)] * (n_models - 1),
    )
    z = np.concatenate([[0.0], result.x])
    return np.exp(z - scipy.special.logsumexp(z))
