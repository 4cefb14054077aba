"""The data layer. :mod:`asuc_bayes.data.dataset` is the public entry point (readers, validation,
writer; every name is importable from there); the parts live here:

- :mod:`~asuc_bayes.data.errors`: :class:`InputError`, messages naming patient, row, field;
- :mod:`~asuc_bayes.data.types`: Dose, Observation, EventRecord, CovariateRecord, Reset,
  Patient, PatientSet, PlausibilityLimits, and what the forecasting engine supports;
- :mod:`~asuc_bayes.data.validation`: plausibility limits, checked once, and notes on likely
  mistakes (hours, mg/kg, samples during an infusion, beyond the validated horizon);
- :mod:`~asuc_bayes.data.layout` and :mod:`~asuc_bayes.data.table`: a NONMEM dataset's text
  as named cells (``$INPUT`` lists, ``IGNORE=``, clock times, time units);
- :mod:`~asuc_bayes.data.nonmem`: NONMEM record semantics (EVID, MDV, CMT, ADDL/II, RATE,
  SS, resets, per-record covariates);
- :mod:`~asuc_bayes.data.safe_load` and :mod:`~asuc_bayes.data.patient_files`: TOML/YAML
  patient files read as bounded, duplicate-free data;
- :mod:`~asuc_bayes.data.writer`: the NONMEM CSV writer that round-trips all of the above.
"""
