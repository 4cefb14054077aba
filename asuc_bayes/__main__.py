"""``python -m asuc_bayes``: the command line (:func:`asuc_bayes.interfaces.cli.main`)."""

from asuc_bayes.interfaces.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
