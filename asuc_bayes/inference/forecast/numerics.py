"""Small numerical helpers of the 2-D forecasts: single-threaded BLAS, multi-start bounded
maximisation and the finite-difference Hessian of an exact gradient.

Examples
--------
>>> import numpy as np
>>> def f(x):  # value and gradient of -(x0² + 2 x1²)
...     return -(x[0] ** 2 + 2 * x[1] ** 2), -np.array([2 * x[0], 4 * x[1]])
>>> result = maximize(f, [np.array([1.0, -1.0])], bound=5.0)
>>> np.allclose(result.x, 0.0, atol=1e-6)
True
>>> np.allclose(finite_difference_hessian(f, result.x), [[-2.0, 0.0], [0.0, -4.0]])
True
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import scipy.optimize

__all__ = ["finite_difference_hessian", "maximize", "single_threaded_blas"]

_BLAS_CONTROLLER = None


def single_threaded_blas():
    """Context limiting BLAS to one thread.

    The linear algebra of these 2-D problems is tiny; OpenBLAS threads spinning for it on a
    busy 2-core machine made the MAP ~14x slower (366 ms instead of 26 ms per patient,
    measured with other jobs running).
    """
    global _BLAS_CONTROLLER
    if _BLAS_CONTROLLER is None:
        import threadpoolctl

        _BLAS_CONTROLLER = threadpoolctl.ThreadpoolController()
    return _BLAS_CONTROLLER.limit(limits=1, user_api="blas")


def maximize(
    fun: Callable[[np.ndarray], tuple], starts: Iterable, bound: float
) -> scipy.optimize.OptimizeResult:
    """Maximise ``fun`` (value, gradient) from several starts within ±``bound``."""

    def negative(x):
        value, gradient = fun(x)  # -inf where the density cannot be evaluated
        if not np.isfinite(value) or not np.all(np.isfinite(gradient)):
            return np.inf, np.zeros_like(x)
        return -float(value), -np.asarray(gradient, dtype=float)

    best = None
    for start in starts:
        result = scipy.optimize.minimize(
            negative,
            np.asarray(start, dtype=float),
            jac=True,
            method="L-BFGS-B",
            bounds=[(-bound, bound)] * len(start),
            options={"gtol": 1e-9, "ftol": 1e-14, "maxiter": 500},
        )
        if best is None or result.fun < best.fun:
            best = result
    return best


def finite_difference_hessian(value_and_gradient, x) -> np.ndarray:
    """Hessian at ``x`` as the central difference of the exact gradient (relative error
    ~1e-8 for these smooth 2-D densities), symmetrised."""
    x = np.asarray(x, dtype=float)
    steps = 1e-5 * (1.0 + np.abs(x))
    columns = []
    for i, step in enumerate(steps):
        offset = np.zeros_like(x)
        offset[i] = step
        forward = value_and_gradient(x + offset)[1]
        backward = value_and_gradient(x - offset)[1]
        columns.append((forward - backward) / (2 * step))
    matrix = np.column_stack(columns)
    return 0.5 * (matrix + matrix.T)
