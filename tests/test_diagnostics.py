"""The fast gate diagnostics (asuc_bayes.diagnostics) equal ArviZ's rank-normalised split R-hat
and bulk ESS, which they replace in the per-patient gates."""

from __future__ import annotations

import arviz as az
import numpy as np
import pytest
import xarray as xr

from asuc_bayes.diagnostics import rank_diagnostics


def _arviz(draws: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    dataset = xr.Dataset({"x": (("chain", "draw", "k"), draws)})
    return az.rhat(dataset)["x"].values, az.ess(dataset, method="bulk")["x"].values


def _cases():
    rng = np.random.default_rng(7)
    rejected = rng.normal(size=(4, 1000, 2))
    rejected[:, 1::2] = rejected[:, ::2]  # an independence sampler's repeats: tied values
    stuck = rng.normal(size=(4, 60, 2))
    stuck[..., 1] = 2.5  # every draw the same: R-hat undefined, ESS = all draws
    return {
        "independent": rng.normal(size=(4, 1000, 2)),
        "ties": rejected,
        "rounded": np.round(rng.normal(size=(3, 400, 3)), 1),
        "random_walks": np.cumsum(rng.normal(size=(4, 1001, 2)), axis=1),  # odd draw count
        "separated_chains": rng.normal(size=(2, 9, 2)) + np.array([0.0, 4.0])[:, None, None],
        "constant_column": stuck,
    }


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # ArviZ's 0/0
@pytest.mark.parametrize("name", sorted(_cases()))
def test_rank_diagnostics_equal_arviz(name):
    draws = _cases()[name]
    rhat, ess = rank_diagnostics(draws)
    rhat_arviz, ess_arviz = _arviz(draws)
    np.testing.assert_allclose(rhat, rhat_arviz, rtol=1e-10, equal_nan=True)
    np.testing.assert_allclose(ess, ess_arviz, rtol=1e-10, equal_nan=True)


def test_undefined_rhat_is_nan_and_fails_the_gate(spec):
    from asuc_bayes.forecast import _convergence

    draws = _cases()["constant_column"]
    assert np.isnan(rank_diagnostics(draws)[0][1])
    checks = _convergence(draws, 0)
    assert np.isnan(checks["rhat_max"]) and not checks["passed"]


def test_rank_diagnostics_shape_errors():
    with pytest.raises(ValueError, match="chain >= 2"):
        rank_diagnostics(np.zeros((1, 100, 2)))
    with pytest.raises(ValueError, match="draw >= 4"):
        rank_diagnostics(np.zeros((4, 3, 2)))
