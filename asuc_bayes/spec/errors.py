"""The error of a broken model file: it names the file, the key and the fix."""

from __future__ import annotations

from asuc_bayes.spec.config import ModelSpecError

__all__ = ["ModelFileError"]


class ModelFileError(ModelSpecError):
    """A model file is broken: ``file``, ``key`` and ``fix`` name where and what to do.

    A subclass of :class:`asuc_bayes.spec.config.ModelSpecError`, so that every caller that reports
    a broken model file today (exit code 2 of the CLI) reports these too.

    Examples
    --------
    >>> err = ModelFileError("m.toml", "parameters.CL.value", "must be a number", "write 0.3")
    >>> str(err)
    'm.toml: parameters.CL.value: must be a number; fix: write 0.3'
    """

    def __init__(self, file: str, key: str, problem: str, fix: str = "") -> None:
        self.file = file
        self.key = key
        self.problem = problem
        self.fix = fix
        message = f"{file}: {key}: {problem}" if key else f"{file}: {problem}"
        super().__init__(message + (f"; fix: {fix}" if fix else ""))
