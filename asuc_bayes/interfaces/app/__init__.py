"""The web app (Shiny for Python): ``asuc-bayes app [--port 8000] [--workers N]``.

The three input tabs of the published tool (dosing regimen, serum samples, covariates), an
upload of a NONMEM-style CSV or TOML/YAML patient file and the bundled examples; the
concentration–time course with its credible band, the risk panel (posterior mean, 95 % CrI,
P(high risk), class, and the MAP beside them), the posterior of ln(AUC_w2-4/CL), diagnostics,
the dosing panel, and downloads (HTML report, JSON, netCDF).

Modules: :mod:`~asuc_bayes.interfaces.app.layout` (the page),
:mod:`~asuc_bayes.interfaces.app.form` (form
validation and error placement), :mod:`~asuc_bayes.interfaces.app.server` (each session's state and
outputs), :mod:`~asuc_bayes.interfaces.app.work` (the jobs the worker processes compute),
:mod:`~asuc_bayes.interfaces.app.pool` (the worker pool and the per-session superseding task),
:mod:`~asuc_bayes.interfaces.app.views` (result elements), :mod:`~asuc_bayes.interfaces.app.main`
(start-up).

Many users: forecasts, figures, dose recommendations and downloads run in worker processes,
each with its own warm compiled forecaster, so the event loop stays free and every core is
used; a session that changes its inputs while a computation runs gets the newest result.

The app only calls the public API (:mod:`asuc_bayes.data.dataset`,
:mod:`asuc_bayes.inference.forecast`,
:mod:`asuc_bayes.decisions.dosing`, :mod:`asuc_bayes.interfaces.plots`,
:mod:`asuc_bayes.interfaces.report`); it holds no
model logic.

Privacy: uploads are read in the browser and sent over the app's websocket; they are parsed
in memory (:func:`asuc_bayes.data.dataset.parse_patients`) and never written to disk; downloads
are built in memory; nothing about a patient is logged (errors are logged by type only).
"""

from asuc_bayes.interfaces.app.main import create_app, run_app, warm_up

__all__ = ["create_app", "run_app", "warm_up"]
