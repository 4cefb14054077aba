"""Individual forecasting (being split into modules by responsibility; see forecaster.py)."""

from asuc_bayes.inference.forecast.forecaster import *  # noqa: F403
from asuc_bayes.inference.forecast.forecaster import (  # noqa: F401
    DEFAULT_DRAWS,
    ESS_BULK_MIN,
    IDENTITY_WHITENING,
    IMH_BURN,
    IMH_PRIOR_WEIGHT,
    IMH_SCALE,
    MAX_DRAWS_FACTOR,
    PRECISION_PROBS,
    PRECISION_QUANTITIES,
    PRECISION_TARGET,
    RHAT_MAX,
    PriorProposal,
    _convergence,
    run_precision,
    summary_from_tree,
)
from asuc_bayes.inference.forecast.forecaster import __all__ as __all__
