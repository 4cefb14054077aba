"""asuc_bayes: full-Bayesian forecasting of infliximab exposure and colectomy risk in ASUC."""

__version__ = "0.1.0"
