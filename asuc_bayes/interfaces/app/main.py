"""Create and serve the app: the worker pool is started and warmed before the server listens."""

from __future__ import annotations

import time

from shiny import App

from asuc_bayes.data.dataset import MAX_UPLOAD_BYTES, example_path, read_patients
from asuc_bayes.inference.forecast import SamplerSettings, forecaster_for
from asuc_bayes.interfaces.app.layout import app_ui
from asuc_bayes.interfaces.app.pool import WorkerPool, log
from asuc_bayes.interfaces.app.server import make_server
from asuc_bayes.spec.config import ModelSpec, load_model

__all__ = ["create_app", "run_app", "warm_up"]

#: Seconds a session's browser may take to answer the server's websocket ping.
WS_PING_TIMEOUT_S = 120.0


def warm_up(spec: ModelSpec, settings: SamplerSettings | None = None) -> float:
    """Compile or load the model's densities in this process and run one forecast; return the
    seconds taken (the app's workers do the same at start-up, each for itself)."""
    start = time.perf_counter()
    forecaster = forecaster_for(spec)
    patient = read_patients(
        example_path(), default_infusion_duration_day=spec.pk.default_infusion_duration_day
    ).patients[0]
    forecaster.forecast(patient, random_seed=0, settings=settings)
    return time.perf_counter() - start


def create_app(
    spec: ModelSpec | None = None,
    *,
    settings: SamplerSettings | None = None,
    seed: int = 0,
    debug: bool = False,
    workers: int | None = None,
    pool: WorkerPool | None = None,
) -> App:
    """The Shiny app for ``spec`` (the default model when ``None``).

    Parameters
    ----------
    spec
        The model.
    settings
        Sampler settings (the defaults of :class:`SamplerSettings` when ``None``).
    seed
        The random seed the app starts with (users can change it under *Options*).
    debug
        Print tracebacks of unexpected errors on stderr (they may name input values).
    workers
        Worker processes computing the forecasts (default: one per usable core).
    pool
        A started :class:`~asuc_bayes.interfaces.app.pool.WorkerPool` to use; when None, one is
        started (and warmed) here. The pool is stopped when the server shuts down.
    """
    spec = spec or load_model()
    settings = settings or SamplerSettings()
    examples = read_patients(
        example_path(), default_infusion_duration_day=spec.pk.default_infusion_duration_day
    )
    if pool is None:
        pool = WorkerPool(spec, settings, workers, debug=debug)
        pool.start()
    app = App(app_ui(spec, examples, seed), make_server(spec, examples, pool), debug=False)
    app.sanitize_errors = True  # a generic message, never an exception text, in the browser
    app.on_shutdown(pool.shutdown)  # uvicorn re-raises SIGTERM after it: clean up here
    return app


def run_app(
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    spec: ModelSpec | None = None,
    settings: SamplerSettings | None = None,
    seed: int = 0,
    quiet: bool = False,
    debug: bool = False,
    workers: int | None = None,
) -> None:
    """Start and warm the workers, then serve the app until interrupted (arguments as
    :func:`create_app`)."""
    import uvicorn

    spec = spec or load_model()
    pool = WorkerPool(spec, settings or SamplerSettings(), workers, debug=debug)
    if not quiet:
        log(
            f"starting {pool.workers} worker process(es) with the model {spec.label} (the "
            "first run on a machine compiles it, ~1 min)"
        )
    try:
        try:
            seconds = pool.start()
        except RuntimeError as exc:  # the worker's own error is on stderr above
            log(f"{exc}; not serving")
            raise SystemExit(1) from None
        if not quiet:
            log(f"workers ready in {seconds:.1f} s; serving on http://{host}:{port}")
        uvicorn.run(
            create_app(spec, settings=settings, seed=seed, debug=debug, pool=pool),
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            ws_max_size=4 * MAX_UPLOAD_BYTES,
            # a starved browser or server (a busy shared machine) answers pings late: keep
            # the session instead of dropping it after uvicorn's default 20 s
            ws_ping_timeout=WS_PING_TIMEOUT_S,
        )
    finally:
        pool.shutdown()
