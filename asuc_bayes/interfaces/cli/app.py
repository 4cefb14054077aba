"""``app``: the web app (Shiny), after the model is loaded and the port checked."""

from __future__ import annotations

import argparse
import socket
import sys

from asuc_bayes.interfaces.cli.arguments import spec_and_settings
from asuc_bayes.interfaces.cli.common import EXIT_OK, error
from asuc_bayes.spec.config import ModelSpecError


def run_app(args: argparse.Namespace) -> int:
    """``app``: serve the web app until interrupted."""
    try:
        spec, settings = spec_and_settings(args)
        with socket.create_server((args.host, args.port)):
            pass  # the port is free (uvicorn would exit without a clear message otherwise)
    except (ModelSpecError, ValueError) as exc:
        return error(str(exc))
    except OSError as exc:
        return error(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}")
    from asuc_bayes.interfaces.app import run_app as serve  # imports Shiny only for this command

    if not args.quiet and args.host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"asuc-bayes: warning: listening on {args.host}: the app has no log-in; anyone who "
            "can reach this address can use it",
            file=sys.stderr,
        )
    try:
        serve(
            args.host,
            args.port,
            spec=spec,
            settings=settings,
            seed=args.seed,
            quiet=args.quiet,
            debug=args.debug,
            workers=args.workers,
        )
    except KeyboardInterrupt:
        pass
    return EXIT_OK
