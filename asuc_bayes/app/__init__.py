"""The web app (Shiny for Python): ``asuc-bayes app [--port 8000] [--workers N]``.

The three input tabs of the published tool (dosing regimen, serum samples, covariates), an
upload of a NONMEM-style CSV or TOML/YAML patient file and the bundled examples; the
concentration–time course with its credible band, the risk panel (posterior mean, 95 % CrI,
P(high risk), class, and the MAP beside them), the posterior of ln(AUC_w2-4/CL), diagnostics,
the dosing panel, and downloads (HTML report, JSON, netCDF).

Modules: :mod:`~asuc_bayes.app.layout` (the page), :mod:`~asuc_bayes.app.form` (form
validation and error placement), :mod:`~asuc_bayes.app.server` (each session's state and
outputs), :mod:`~asuc_bayes.app.work` (the jobs the worker processes compute),
:mod:`~asuc_bayes.app.pool` (the worker pool and the per-session superseding task),
:mod:`~asuc_bayes.app.views` (result elements), :mod:`~asuc_bayes.app.main` (start-up).

Many users: forecasts, figures, dose recommendations and downloads run in worker processes,
each with its own warm compiled forecaster, so the event loop stays free and every core is
used; a session that changes its inputs while a computation runs gets the newest result.

The app only calls the public API (:mod:`asuc_bayes.dataset`, :mod:`asuc_bayes.forecast`,
:mod:`asuc_bayes.dosing`, :mod:`asuc_bayes.plots`, :mod:`asuc_bayes.report`); it holds no
model logic.

Privacy: uploads are read in the browser and sent over the app's websocket; they are parsed
in memory (:func:`asuc_bayes.dataset.parse_patients`) and never written to disk; downloads
are built in memory; nothing about a patient is logged (errors are logged by type only).
"""

from asuc_bayes.app.main import create_app, run_app, warm_up

__all__ = ["create_app", "run_app", "warm_up"]
