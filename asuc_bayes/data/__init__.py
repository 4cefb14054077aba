"""The data layer: record types, safe loading of patient files, NONMEM dataset layout.

:mod:`asuc_bayes.dataset` is the public entry point (readers, validation, writer); the
modules here hold its parts: :mod:`~asuc_bayes.data.errors` (messages naming the patient, row
and field), :mod:`~asuc_bayes.data.types` (Dose, Observation, Patient...),
:mod:`~asuc_bayes.data.safe_load` (TOML/YAML parsed as bounded, duplicate-free data),
:mod:`~asuc_bayes.data.layout` (``$INPUT`` lists, ``IGNORE=``, clock times) and
:mod:`~asuc_bayes.data.regimen` (ADDL expansion, resets, what the engine supports, the
plausibility notes).
"""
