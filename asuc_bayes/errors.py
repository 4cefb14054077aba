"""The one base class of every error asuc_bayes raises on purpose.

Each layer's error (:class:`~asuc_bayes.data.errors.InputError` for data,
:class:`~asuc_bayes.spec.config.ModelSpecError` for model files, ``DosingError``, ``OptionError``,
the PK layer's errors...) derives from :class:`AsucBayesError`, so a caller catches every
expected failure, and only those, with one ``except``; each also stays a ``ValueError`` (or
``RuntimeError``) as before. The command line turns them into one-line messages (exit 2)
and lets nothing else pass silently.

Examples
--------
>>> from asuc_bayes.data.errors import InputError
>>> issubclass(InputError, AsucBayesError), issubclass(InputError, ValueError)
(True, True)
"""

from __future__ import annotations

__all__ = ["AsucBayesError"]


class AsucBayesError(Exception):
    """An input, option, model file or result that asuc_bayes cannot use; the message names
    the field or option and the fix."""
