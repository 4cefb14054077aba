"""NPDE: the tests by hand, N(0, 1) under the simulating model, not under a wrong one."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

from asuc_bayes.inference.problem import PatientProblem
from asuc_bayes.spec import load_declaration
from asuc_bayes.studies.validation.npde import npde_tests, patient_npde
from asuc_bayes.studies.validation.simulation import (
    simulate_validation_cohort,
    with_scaled_parameter,
)


def test_npde_tests_by_hand():
    x = np.array([0.3, -1.2, 0.8, 2.1, -0.4, 0.0, 1.1, -0.9])
    tests = npde_tests(x)
    n, mean, var = 8, x.mean(), x.var(ddof=1)
    assert tests.mean == pytest.approx(mean) and tests.variance == pytest.approx(var)
    t = mean / np.sqrt(var / n)
    assert tests.mean_p == pytest.approx(2 * scipy.stats.t.sf(abs(t), n - 1))
    chi2 = (n - 1) * var
    tail = scipy.stats.chi2.cdf(chi2, n - 1)
    assert tests.variance_p == pytest.approx(2 * min(tail, 1 - tail))
    assert tests.p_value == pytest.approx(
        min(1.0, 3 * min(tests.mean_p, tests.variance_p, tests.normality_p))
    )
    assert npde_tests(x[:2]) is None
    wide = npde_tests(np.random.default_rng(0).normal(0.0, 2.0, 300))
    assert wide.variance_p < 1e-6 and wide.p_value < 1e-5


def _pooled_npde(declaration, cohort):
    values = []
    for i, patient in enumerate(cohort):
        problem = PatientProblem.from_patient(declaration, patient)
        values.append(patient_npde(problem, random_seed=i))
    return np.concatenate(values)


def test_npde_are_standard_normal_under_the_simulating_model():
    decl = load_declaration("niyigena2025")
    cohort = simulate_validation_cohort(decl, 40, random_seed=4, lloq_mg_l=2.0)
    censored = sum(o.censoring != 0 for p in cohort for o in p.observations)
    assert censored >= 3  # the imputation of censored records is exercised
    npde = _pooled_npde(decl, cohort)
    assert np.all(np.isfinite(npde))
    tests = npde_tests(npde)
    # n ~ 120: SE of the mean ~0.09, of the variance ~0.13
    assert abs(tests.mean) < 0.3 and abs(tests.variance - 1.0) < 0.4
    assert tests.p_value > 0.01
    # and they detect a model whose clearance is three times too high
    wrong = npde_tests(_pooled_npde(with_scaled_parameter("niyigena2025", "CL", 3.0), cohort))
    assert wrong.mean > 0.5 and wrong.p_value < 1e-4
