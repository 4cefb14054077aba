"""Decisions from a posterior: dosing to a target risk or trough, the risk class
(layer 5: imports the inference layer and below)."""
