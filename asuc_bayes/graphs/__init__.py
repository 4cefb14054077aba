"""PyMC models built from the declarations: one patient's posterior, the population
model, and the disk-cached compiled densities (layer 3: imports data, spec and pk only)."""
