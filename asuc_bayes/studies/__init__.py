"""Studies of models and methods: sensitivity analyses, MAP-versus-posterior comparison,
evaluation of fits, simulation-based calibration, virtual cohorts and external validation
(layer 5: imports the inference layer and below)."""
