"""``python -m asuc_bayes.interfaces.cli``: the command line (:func:`main`)."""

import sys

from asuc_bayes.interfaces.cli import main

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
